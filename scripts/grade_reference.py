from mathrecipes import runlog
from mathrecipes.grading import grade_file
from mathrecipes.provenance import Manifest

runlog.start(snakemake.log[0])
inputs = [snakemake.input.generations, snakemake.input.benchmark]
settings = {**snakemake.params.spec, "workers": snakemake.threads}
with Manifest("grade", inputs=inputs, params=snakemake.params.spec) as m:
    summary = grade_file(
        snakemake.input.generations,
        snakemake.input.benchmark,
        snakemake.output.grades,
        settings,
        disagreements_path=snakemake.output.disagreements,
    )
    m.add(summary=summary)
    m.write([snakemake.output.grades, snakemake.output.disagreements], snakemake.output.manifest)
