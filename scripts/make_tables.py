import os

from mathrecipes import runlog
from mathrecipes.provenance import Manifest
from mathrecipes.tables import make_tables

runlog.start(snakemake.log[0])
spec = snakemake.params.spec
with Manifest("tables", inputs=snakemake.input.grades, params=spec) as m:
    scores = make_tables(
        snakemake.params.entries,
        spec["baseline"],
        out_dir=os.path.dirname(snakemake.output.scores),
        figure_path=snakemake.output.figure,
        figure_benchmarks=spec["figure_benchmarks"],
    )
    print(scores)
    m.write(
        [snakemake.output.scores, snakemake.output.markdown, snakemake.output.per_seed],
        snakemake.output.manifest,
    )
