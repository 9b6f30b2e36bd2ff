from mathrecipes import runlog
from mathrecipes.provenance import Manifest
from mathrecipes.selection import select_recipe

runlog.start(snakemake.log[0])
inputs = [*snakemake.input.pools, *snakemake.input.benchmarks]
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
