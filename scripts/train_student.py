import sys
from pathlib import Path

from mathrecipes import runlog
from mathrecipes.config import load_config
from mathrecipes.provenance import Manifest
from mathrecipes.training.launch import launch_training, processes_for
from mathrecipes.training.resume import TrainingStopped

runlog.start(snakemake.log[0])
wc = snakemake.wildcards
cfg = load_config(snakemake.config)
# Resumable state lives outside the job's outputs (Snakemake deletes those when a job fails);
# how often it is saved is not a job parameter (it does not change the result).
resume_dir = Path(cfg.results) / "resume" / "train" / wc.student / wc.recipe / f"seed-{wc.seed}"
checkpointing = cfg.students[wc.student].checkpointing.model_dump()
processes = processes_for(int(snakemake.resources.gpu))
out = snakemake.output.checkpoint
params = {**snakemake.params.spec, "seed": int(wc.seed)}
with Manifest("train", inputs=[snakemake.input.train, *snakemake.input.init], params=params) as m:
    try:
        summary = launch_training(
            snakemake.input.train,
            out,
            snakemake.params.spec,
            seed=int(wc.seed),
            processes=processes,
            threads=snakemake.threads,
            resume_dir=str(resume_dir),
            checkpointing=checkpointing,
        )
    except TrainingStopped as exc:
        print(f"[train] {exc}", file=sys.stderr, flush=True)
        sys.exit(TrainingStopped.exit_code)
    m.add(summary=summary, threads=snakemake.threads, processes=processes)
    m.write([out])
