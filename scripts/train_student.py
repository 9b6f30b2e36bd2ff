import sys

from mathrecipes import runlog
from mathrecipes.provenance import Manifest
from mathrecipes.training.launch import launch_training, processes_for
from mathrecipes.training.resume import TrainingStopped

runlog.start(snakemake.log[0])
res = snakemake.resources
# Resumable state lives outside the job's outputs (Snakemake deletes those when a job fails);
# how often it is saved comes as resources (it does not change the result).
checkpointing = {"every_steps": int(res.checkpoint_steps), "every_s": int(res.checkpoint_s)}
processes = processes_for(int(res.gpu))
seed = int(snakemake.wildcards.seed)
out = snakemake.output.checkpoint
params = {**snakemake.params.spec, "seed": seed}
with Manifest("train", inputs=[snakemake.input.train, *snakemake.input.init], params=params) as m:
    try:
        summary = launch_training(
            snakemake.input.train,
            out,
            snakemake.params.spec,
            seed=seed,
            processes=processes,
            threads=snakemake.threads,
            resume_dir=snakemake.params.resume_dir,
            checkpointing=checkpointing,
        )
    except TrainingStopped as exc:
        print(f"[train] {exc}", file=sys.stderr, flush=True)
        sys.exit(TrainingStopped.exit_code)
    m.add(summary=summary, threads=snakemake.threads, processes=processes)
    m.write([out])
