from mathrecipes import runlog
from mathrecipes.likelihood import score_file
from mathrecipes.provenance import Manifest

runlog.start(snakemake.log[0])
# a benchmark's prompt template and few-shot dataset, when it has them
prompt_file = getattr(snakemake.input, "prompt", None)
few_shot_file = getattr(snakemake.input, "few_shot", None)
inputs = [snakemake.input.checkpoint, snakemake.input.benchmark]
inputs += [f for f in (prompt_file, few_shot_file) if f]
with Manifest("likelihood", inputs=inputs, params=snakemake.params.spec) as m:
    summary = score_file(
        snakemake.input.checkpoint,
        snakemake.input.benchmark,
        snakemake.output.likelihood,
        snakemake.params.spec,
        benchmark=snakemake.wildcards.benchmark,
        threads=snakemake.threads,
        resume_dir=snakemake.params.resume_dir,
        prompt_file=prompt_file,
        few_shot_file=few_shot_file,
    )
    m.add(summary=summary, threads=snakemake.threads)
    m.write([snakemake.output.likelihood], snakemake.output.manifest)
