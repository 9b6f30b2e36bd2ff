from mathrecipes import runlog
from mathrecipes.provenance import Manifest
from mathrecipes.synthesis import synthesize_shard
from mathrecipes.teachers.operational import operational_settings, with_operational

runlog.start(snakemake.log[0])
prompts = {key: getattr(snakemake.input, key) for key in snakemake.params.prompts}
# how the teacher's and judge's servers are reached comes as resources (not the answers)
spec = with_operational(snakemake.params.spec, snakemake.resources)
inputs = [*snakemake.input.pool, *prompts.values()]
with Manifest("synthesize", inputs=inputs, params=snakemake.params.spec) as m:
    summary = synthesize_shard(
        snakemake.wildcards.synth,
        spec,
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
        operational=operational_settings(snakemake.resources),
    )
    m.write([snakemake.output.shard, snakemake.output.rejects], snakemake.output.manifest)
