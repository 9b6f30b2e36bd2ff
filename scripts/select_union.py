import os

os.environ.setdefault("POLARS_MAX_THREADS", str(snakemake.threads))

from pathlib import Path  # noqa: E402

from mathrecipes import runlog  # noqa: E402
from mathrecipes.poolsteps import pool_union, write_union  # noqa: E402
from mathrecipes.provenance import Manifest  # noqa: E402

runlog.start(snakemake.log[0])
w = snakemake.wildcards
with Manifest("select", inputs=snakemake.input.shards, params=snakemake.params.settings) as m:
    result = pool_union(snakemake.input.shards, snakemake.params.settings, pool=w.pool)
    written = write_union(result, Path(snakemake.output.kept).parent)
    m.add(summary={"pool": w.pool, **result.stats})
    m.write(written, snakemake.output.manifest)
