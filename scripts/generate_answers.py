from mathrecipes import runlog
from mathrecipes.generation import generate_file
from mathrecipes.provenance import Manifest

runlog.start(snakemake.log[0])
inputs = [snakemake.input.checkpoint, snakemake.input.benchmark]
with Manifest("generate", inputs=inputs, params=snakemake.params.spec) as m:
    summary = generate_file(
        snakemake.input.checkpoint,
        snakemake.input.benchmark,
        snakemake.output.generations,
        snakemake.params.spec,
        threads=snakemake.threads,
        resume_dir=snakemake.params.resume_dir,
    )
    m.add(summary=summary, threads=snakemake.threads)
    m.write([snakemake.output.generations], snakemake.output.manifest)
