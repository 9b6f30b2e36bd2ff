from mathrecipes import runlog
from mathrecipes.grading import grade_file
from mathrecipes.provenance import Manifest

runlog.start(snakemake.log[0])
inputs = [snakemake.input.generations, snakemake.input.benchmark]
with Manifest("grade", inputs=inputs, params=snakemake.params.spec) as m:
    summary = grade_file(
        snakemake.input.generations,
        snakemake.input.benchmark,
        snakemake.output.grades,
        snakemake.params.spec,
    )
    m.add(summary=summary)
    m.write([snakemake.output.grades], snakemake.output.manifest)
