from mathrecipes import runlog
from mathrecipes.provenance import Manifest
from mathrecipes.training import train_student

runlog.start(snakemake.log[0])
out = snakemake.output.checkpoint
params = {**snakemake.params.spec, "seed": int(snakemake.wildcards.seed)}
with Manifest("train", inputs=[snakemake.input.train, *snakemake.input.init], params=params) as m:
    summary = train_student(
        snakemake.input.train,
        out,
        snakemake.params.spec,
        seed=int(snakemake.wildcards.seed),
        threads=snakemake.threads,
    )
    m.add(summary=summary, threads=snakemake.threads)
    m.write([out])
