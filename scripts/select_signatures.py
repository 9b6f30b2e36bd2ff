import os

# polars sizes its thread pool when it is first imported: the job's threads, not the node's cores
os.environ.setdefault("POLARS_MAX_THREADS", str(snakemake.threads))

from mathrecipes import runlog  # noqa: E402
from mathrecipes.poolsteps import shard_signatures, write_shard  # noqa: E402
from mathrecipes.provenance import Manifest  # noqa: E402

runlog.start(snakemake.log[0])
w = snakemake.wildcards
inputs = [*snakemake.input.pools, *snakemake.input.benchmarks]
params = {"settings": snakemake.params.settings, "shards": snakemake.params.shards}
with Manifest("select", inputs=inputs, params=params) as m:
    table = shard_signatures(
        snakemake.input.pools,
        int(w.shard),
        snakemake.params.shards,
        snakemake.params.settings,
        snakemake.params.benchmarks,
        pool=w.pool,
        workers=snakemake.threads,
    )
    write_shard(table, snakemake.output.shard)
    m.add(summary={"pool": w.pool, "shard": int(w.shard), "rows": table.num_rows})
    m.write([snakemake.output.shard], snakemake.output.manifest)
