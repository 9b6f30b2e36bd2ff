from mathrecipes import runlog
from mathrecipes.provenance import Manifest
from mathrecipes.synthesis import synthesize_shard
from mathrecipes.teachers.operational import from_resources, with_settings

runlog.start(snakemake.log[0])
prompts = {key: getattr(snakemake.input, key) for key in snakemake.params.prompts}
# how the teacher's server is reached comes as resources (it does not change the answers)
teacher_settings = from_resources(snakemake.resources)
inputs = [*snakemake.input.pool, *prompts.values()]
with Manifest("synthesize", inputs=inputs, params=snakemake.params.spec) as m:
    summary = synthesize_shard(
        snakemake.wildcards.synth,
        with_settings(snakemake.params.spec, teacher_settings),
        snakemake.input.pool,
        int(snakemake.wildcards.shard),
        snakemake.output.shard,
        snakemake.output.rejects,
        prompt_files=prompts,
        prompt_sha256=snakemake.params.prompts,
        threads=snakemake.threads,
        cache_dir=snakemake.resources.teacher_cache_dir,
    )
    m.add(
        summary=summary,
        shard=int(snakemake.wildcards.shard),
        code=snakemake.params.code,
        teacher_settings=teacher_settings,
    )
    m.write([snakemake.output.shard, snakemake.output.rejects], snakemake.output.manifest)
