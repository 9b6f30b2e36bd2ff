import os

import torch

from mathrecipes import runlog
from mathrecipes.provenance import Manifest
from mathrecipes.synthesis.weakness import weakness_seeds

runlog.start(snakemake.log[0])
spec = snakemake.params.spec
torch.set_num_threads(snakemake.threads)
inputs = [*snakemake.input.pool, snakemake.input.probe, snakemake.input.grades]
with Manifest("weakness_seeds", inputs=inputs, params=spec) as m:
    summary, embedder = weakness_seeds(
        snakemake.wildcards.synth,
        spec,
        snakemake.input.probe,
        snakemake.input.grades,
        snakemake.input.pool,
        snakemake.output.seeds,
        progress=os.isatty(2),
    )
    m.add(summary=summary, embedder=embedder, code=snakemake.params.code)
    m.write([snakemake.output.seeds], snakemake.output.manifest)
