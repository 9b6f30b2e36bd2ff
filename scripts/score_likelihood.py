from mathrecipes import runlog
from mathrecipes.likelihood import score_file
from mathrecipes.provenance import Manifest

runlog.start(snakemake.log[0])
inputs = [snakemake.input.checkpoint, snakemake.input.benchmark]
with Manifest("likelihood", inputs=inputs, params=snakemake.params.spec) as m:
    summary = score_file(
        snakemake.input.checkpoint,
        snakemake.input.benchmark,
        snakemake.output.likelihood,
        snakemake.params.spec,
        benchmark=snakemake.wildcards.benchmark,
        threads=snakemake.threads,
        resume_dir=snakemake.params.resume_dir,
    )
    m.add(summary=summary, threads=snakemake.threads)
    m.write([snakemake.output.likelihood], snakemake.output.manifest)
