import os

# polars sizes its thread pool when it is first imported: the job's threads, not the node's cores
os.environ.setdefault("POLARS_MAX_THREADS", str(snakemake.threads))

from mathrecipes import runlog  # noqa: E402
from mathrecipes.provenance import Manifest  # noqa: E402
from mathrecipes.selection import select_recipe  # noqa: E402

runlog.start(snakemake.log[0])
inputs = [*snakemake.input.pools, *snakemake.input.benchmarks, *snakemake.input.unions]
with Manifest("select", inputs=inputs, params=snakemake.params.spec) as m:
    stats = select_recipe(
        snakemake.wildcards.recipe,
        snakemake.params.spec,
        snakemake.params.pools,
        snakemake.params.benchmarks,
        snakemake.output.train,
        snakemake.output.stats,
        snakemake.output.contamination,
        snakemake.output.removed,
        workers=snakemake.threads,
        pool_types=snakemake.params.pool_types,
        unions=snakemake.params.unions,
    )
    m.add(summary=stats)
    m.write(
        [
            snakemake.output.train,
            snakemake.output.stats,
            snakemake.output.contamination,
            snakemake.output.removed,
        ],
        snakemake.output.manifest,
    )
