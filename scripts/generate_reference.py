from mathrecipes import runlog
from mathrecipes.provenance import Manifest
from mathrecipes.served import answer_benchmark
from mathrecipes.teachers.operational import from_resources

runlog.start(snakemake.log[0])
settings = from_resources(snakemake.resources, "reference")
with Manifest("reference", inputs=list(snakemake.input), params=snakemake.params.spec) as m:
    summary = answer_benchmark(
        snakemake.wildcards.reference,
        snakemake.input.benchmark,
        snakemake.output.generations,
        snakemake.params.spec,
        settings,
        cache_dir=settings["cache_dir"],
        prompt_file=snakemake.input.get("prompt"),
        few_shot_file=snakemake.input.get("few_shot"),
    )
    m.add(summary=summary)
    m.write([snakemake.output.generations], snakemake.output.manifest)
