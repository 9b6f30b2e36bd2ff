from pathlib import Path

from mathrecipes import runlog
from mathrecipes.provenance import Manifest
from mathrecipes.synthesis import synthesize_shard

runlog.start(snakemake.log[0])
prompts = {key: getattr(snakemake.input, key) for key in snakemake.params.prompts}
results = Path(snakemake.output.shard).parents[2]
inputs = [*snakemake.input.pool, *prompts.values()]
with Manifest("synthesize", inputs=inputs, params=snakemake.params.spec) as m:
    summary = synthesize_shard(
        snakemake.wildcards.synth,
        snakemake.params.spec,
        snakemake.input.pool,
        int(snakemake.wildcards.shard),
        snakemake.output.shard,
        snakemake.output.rejects,
        prompt_files=prompts,
        prompt_sha256=snakemake.params.prompts,
        threads=snakemake.threads,
        cache_dir=results / "cache" / "teachers",
    )
    m.add(summary=summary, shard=int(snakemake.wildcards.shard), code=snakemake.params.code)
    m.write([snakemake.output.shard, snakemake.output.rejects], snakemake.output.manifest)
