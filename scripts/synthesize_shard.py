from mathrecipes import runlog
from mathrecipes.provenance import Manifest
from mathrecipes.synthesis import synthesize_shard

runlog.start(snakemake.log[0])
with Manifest("synthesize", inputs=snakemake.input.pool, params=snakemake.params.spec) as m:
    summary = synthesize_shard(
        snakemake.wildcards.synth,
        snakemake.params.spec,
        snakemake.input.pool,
        int(snakemake.wildcards.shard),
        snakemake.output.shard,
        snakemake.output.rejects,
    )
    m.add(summary=summary, shard=int(snakemake.wildcards.shard))
    m.write([snakemake.output.shard, snakemake.output.rejects], snakemake.output.manifest)
