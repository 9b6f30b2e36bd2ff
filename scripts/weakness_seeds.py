import os

import pyarrow.parquet as pq
import torch

from mathrecipes import runlog
from mathrecipes.embedding import Embedder
from mathrecipes.provenance import Manifest
from mathrecipes.records import read_many, read_records, write_records
from mathrecipes.synthesis.weakness import find_seeds

runlog.start(snakemake.log[0])
spec = snakemake.params.spec
name = snakemake.wildcards.synth
torch.set_num_threads(snakemake.threads)
inputs = [*snakemake.input.pool, snakemake.input.probe, snakemake.input.grades]
with Manifest("weakness_seeds", inputs=inputs, params=spec) as m:
    emb = spec.get("embedder") or {}
    embedder = Embedder(
        emb.get("model", "minilm"),
        batch_size=int(emb.get("batch_size", 64)),
        key=f"synthesis.{name}.embedder.model",
    )
    grades = pq.read_table(
        snakemake.input.grades, columns=["problem_id", "sample", "verdict"]
    ).to_pylist()
    seeds, summary = find_seeds(
        spec,
        read_records(snakemake.input.probe),
        grades,
        read_many(snakemake.input.pool),
        embedder,
        progress=os.isatty(2),
    )
    write_records(seeds, snakemake.output.seeds)
    m.add(summary=summary, embedder=embedder.describe(), code=snakemake.params.code)
    m.write([snakemake.output.seeds], snakemake.output.manifest)
