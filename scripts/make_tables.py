import os

from mathrecipes import runlog
from mathrecipes.provenance import Manifest
from mathrecipes.tables import make_tables

runlog.start(snakemake.log[0])
spec = snakemake.params.spec
# the recipes' stats.json give the training examples and the contamination section
inputs = [*snakemake.input.grades, *snakemake.input.get("likelihood", [])]
inputs += snakemake.input.get("stats", [])
with Manifest("tables", inputs=inputs, params=spec) as m:
    scores = make_tables(
        snakemake.params.entries,
        spec,
        out_dir=os.path.dirname(snakemake.output.scores),
        figure_path=snakemake.output.figure,
        figure_benchmarks=spec["figure_benchmarks"],
    )
    print(scores)
    outputs = [
        snakemake.output[k]
        for k in ("scores", "markdown", "per_seed", "reliability", "agreement", "html")
    ]
    m.write(outputs, snakemake.output.manifest)
