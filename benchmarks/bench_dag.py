"""The workflow's own overhead: dry run and no-op of a large grid, ours against bare Snakemake.

    python benchmarks/bench_dag.py [--dir DIR] [--reps 3] [--recipes 50] [--seeds 5]
                                   [--benchmarks 4] [--shards 80] [--setup-only]

The grid (builtin sources and teacher, so it runs offline): one builtin dataset, ``--benchmarks``
builtin benchmarks, four builtin-teacher synthesis entries with ``--shards`` shards between them,
``--recipes`` recipes (mixing the dataset and the entries), one student, ``--seeds`` seeds,
likelihood off. The default, 50 recipes x 5 seeds x 4 benchmarks and 80 shards, is 2,387 jobs:
1 ingest_dataset, 4 build_benchmark, 80 synthesize_shard, 50 select_recipe, 250 train_student,
1,000 generate_answers, 1,000 grade_generations, make_tables and all.

The bare workflow (``DIR/bare/Snakefile``) has the same job graph: the same rule names,
wildcards, wildcard constraints, inputs, outputs, logs and benchmark files, with trivial bodies
(``run:`` blocks that create the outputs), no params, no resources, no ``conda:`` or ``script:``.

* dry run: ``snakemake -n`` in an empty working folder (every job planned);
* no-op: ``snakemake`` in a working folder where every output exists and is newer than its
  inputs (the files every job writes, made once by this script stage by stage with rising
  mtimes, and copied with their mtimes for ours; then Snakemake's metadata record of every job
  is written in each folder, as a finished run leaves it, so that both compare params, code,
  input and software stack on the same files).

Ours and bare run in turn (ours, bare, ours, bare, ...) ``--reps`` times each; the medians of the
whole-process wall times and their ratio (ours / bare) are printed, and the ratio of each
back-to-back pair. ``--setup-only`` writes the folders and prints the commands, for timing from
outside (``/usr/bin/time``, hyperfine). Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
ENTRIES = 4  # synthesis entries (the shards are spread over them)


def grid_config(recipes: int, seeds: int, benchmarks: int, shards: int) -> dict:
    """The grid experiment (mathrecipes config schema)."""
    per_entry = [shards // ENTRIES + (i < shards % ENTRIES) for i in range(ENTRIES)]
    synthesis = {
        f"synth{i}": {
            "from": "arith",
            "method": "distill",
            "teacher": {"backend": "builtin", "error_rate": 0.05},
            "shards": n,
        }
        for i, n in enumerate(per_entry)
    }
    pools = ["arith", *synthesis]
    mixes = {}
    for r in range(recipes):
        first = pools[r % len(pools)]
        if r < len(pools):
            mix = [{"from": first}]
        else:  # two pools, weighted
            second = pools[(r // len(pools) + r) % len(pools)]
            if second == first:
                second = pools[(r + 1) % len(pools)]
            mix = [{"from": first, "weight": 0.7}, {"from": second, "weight": 0.3}]
        mixes[f"recipe{r:02d}"] = {"mix": mix, "volume": {"count": 100 + r}}
    return {
        "results": "results",
        "seeds": list(range(seeds)),
        "datasets": {
            "arith": {"source": "builtin", "split": "train", "style": "answer_only", "n": 300}
        },
        "benchmarks": {
            f"bench{b}": {"source": "builtin", "split": "test", "n": 20, "seed": 10 + b}
            for b in range(benchmarks)
        },
        "synthesis": synthesis,
        "recipes": mixes,
        "students": {
            "nano": {
                "init": "scratch",
                "model": {
                    "hidden_size": 32,
                    "intermediate_size": 64,
                    "num_hidden_layers": 1,
                    "num_attention_heads": 2,
                    "max_position_embeddings": 160,
                },
                "tokenizer": {"vocab_size": 300},
                "training": {"max_steps": 6, "tokens_per_step": 1000},
                "resources": {"gpus": 1, "cpus": 1, "mem_mb": 1000, "runtime": 10},
            }  # fmt: skip
        },
        "likelihood": {"enabled": False},
        "tables": {"baseline": "recipe00"},
    }


BARE = r'''# Bare Snakemake: the job graph of mathrecipes on the grid, trivial bodies (bench_dag.py).
import re
from pathlib import Path

configfile: "graph.json"

G = config
R = "results"


def alt(names):
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


wildcard_constraints:
    dataset=alt(G["datasets"]),
    benchmark=alt(G["benchmarks"]),
    synth=alt(G["synthesis"]),
    recipe=alt(G["recipes"]),
    student=alt(G["students"]),
    seed=r"\d+",
    shard=r"\d+",


RUN = "{student}/{recipe}/seed-{seed}"
EVALUATION = RUN + "/{benchmark}"
SHARD = "{synth}/shard-{shard}"
DATASET = R + "/datasets/{dataset}"
BENCHMARK = R + "/benchmarks/{benchmark}"
SYNTH_SHARD = R + "/synth/" + SHARD
RECIPE = R + "/recipes/{recipe}"
CHECKPOINT = R + "/checkpoints/" + RUN
GENERATIONS = R + "/generations/" + EVALUATION
GRADES = R + "/grades/" + EVALUATION
GRID = dict(student=G["students"], recipe=G["recipes"], seed=G["seeds"])


def log(rule, job=None):
    return f"{R}/logs/{rule}/{job}.log" if job else f"{R}/logs/{rule}.log"


def bench(rule, job=None):
    return f"{R}/runtime/{rule}/{job}.tsv" if job else f"{R}/runtime/{rule}.tsv"


def make(output, log, folder=False):
    """Create the outputs (a folder: with one file in it) and the log."""
    for f in [*output, *log]:
        Path(f).parent.mkdir(parents=True, exist_ok=True)
        if folder and f in output:
            Path(f).mkdir(exist_ok=True)
            Path(f, "model.safetensors").touch()
        else:
            Path(f).touch()


rule all:
    input:
        R + "/tables/scores.csv",


rule ingest_dataset:
    output:
        records=DATASET + ".parquet",
        quarantine=DATASET + ".quarantine.parquet",
        manifest=DATASET + ".manifest.json",
    log:
        log("ingest_dataset", "{dataset}"),
    benchmark:
        bench("ingest_dataset", "{dataset}")
    run:
        make(output, log)


rule build_benchmark:
    output:
        records=BENCHMARK + ".parquet",
        quarantine=BENCHMARK + ".quarantine.parquet",
        manifest=BENCHMARK + ".manifest.json",
    log:
        log("build_benchmark", "{benchmark}"),
    benchmark:
        bench("build_benchmark", "{benchmark}")
    run:
        make(output, log)


rule synthesize_shard:
    input:
        pool=lambda w: G["synth_inputs"][w.synth],
    output:
        shard=SYNTH_SHARD + ".parquet",
        rejects=SYNTH_SHARD + ".rejects.parquet",
        manifest=SYNTH_SHARD + ".manifest.json",
    log:
        log("synthesize_shard", SHARD),
    benchmark:
        bench("synthesize_shard", SHARD)
    run:
        make(output, log)


rule select_recipe:
    input:
        pools=lambda w: G["recipe_pools"][w.recipe],
        benchmarks=expand(BENCHMARK + ".parquet", benchmark=G["benchmarks"]),
    output:
        train=RECIPE + "/train.parquet",
        stats=RECIPE + "/stats.json",
        contamination=RECIPE + "/contamination.parquet",
        removed=RECIPE + "/removed.parquet",
        manifest=RECIPE + "/train.manifest.json",
    log:
        log("select_recipe", "{recipe}"),
    benchmark:
        bench("select_recipe", "{recipe}")
    run:
        make(output, log)


rule train_student:
    input:
        train=rules.select_recipe.output.train,
    output:
        checkpoint=directory(CHECKPOINT),
    log:
        log("train_student", RUN),
    benchmark:
        bench("train_student", RUN)
    run:
        make(output, log, folder=True)


rule generate_answers:
    input:
        checkpoint=rules.train_student.output.checkpoint,
        benchmark=rules.build_benchmark.output.records,
    output:
        generations=GENERATIONS + ".parquet",
        manifest=GENERATIONS + ".manifest.json",
    log:
        log("generate_answers", EVALUATION),
    benchmark:
        bench("generate_answers", EVALUATION)
    run:
        make(output, log)


rule grade_generations:
    input:
        generations=rules.generate_answers.output.generations,
        benchmark=rules.build_benchmark.output.records,
    output:
        grades=GRADES + ".parquet",
        disagreements=GRADES + ".disagreements.parquet",
        manifest=GRADES + ".manifest.json",
    log:
        log("grade_generations", EVALUATION),
    benchmark:
        bench("grade_generations", EVALUATION)
    run:
        make(output, log)


rule make_tables:
    input:
        grades=expand(GRADES + ".parquet", **GRID, benchmark=G["benchmarks"]),
        checkpoints=expand(CHECKPOINT, **GRID),
        stats=expand(RECIPE + "/stats.json", recipe=G["recipes"]),
    output:
        **{k: f"{R}/tables/{v}" for k, v in G["tables"].items()},
        figure=R + "/figures/accuracy_vs_size.png",
    log:
        log("make_tables"),
    benchmark:
        bench("make_tables")
    run:
        make(output, log)
'''

TABLES = {"scores": "scores.csv", "markdown": "scores.md", "html": "scores.html",
          "reliability": "reliability.csv", "agreement": "agreement.csv", "latex": "scores.tex",
          "per_seed": "per_seed.csv", "provenance": "provenance.json",
          "manifest": "manifest.json"}  # fmt: skip


def pool_files(g: dict, name: str) -> list[str]:
    """The parquet files of a dataset or of every shard of a synthesis entry."""
    if name in g["datasets"]:
        return [f"results/datasets/{name}.parquet"]
    return [f"results/synth/{name}/shard-{k}.parquet" for k in range(g["shards"][name])]


def graph(cfg: dict) -> dict:
    """What the bare Snakefile needs of the grid: names, and each rule's pool files."""

    def pool(name: str) -> list[str]:
        return pool_files({"datasets": cfg["datasets"], "shards": shards}, name)

    shards = {n: s["shards"] for n, s in cfg["synthesis"].items()}
    return {
        "shards": shards,
        "datasets": sorted(cfg["datasets"]),
        "benchmarks": sorted(cfg["benchmarks"]),
        "synthesis": sorted(cfg["synthesis"]),
        "recipes": sorted(cfg["recipes"]),
        "students": sorted(cfg["students"]),
        "seeds": sorted(cfg["seeds"]),
        "synth_inputs": {n: pool(s["from"]) for n, s in cfg["synthesis"].items()},
        "recipe_pools": {
            r: sorted({f for part in spec["mix"] for f in pool(part["from"])})
            for r, spec in cfg["recipes"].items()
        },
        "tables": TABLES,
    }


def make_outputs(workdir: Path, g: dict) -> None:
    """Every job's outputs, log and benchmark file, stage by stage, each stage's files a second
    newer than the one before (what running the bare workflow makes, without its 2,387 jobs'
    scheduling: minutes on two cores)."""
    run = "{student}/{recipe}/seed-{seed}"
    runs = [run.format(student=st, recipe=r, seed=s)
            for st in g["students"] for r in g["recipes"] for s in g["seeds"]]  # fmt: skip
    evals = [f"{x}/{b}" for x in runs for b in g["benchmarks"]]
    shards = [f.removeprefix("results/synth/").removesuffix(".parquet")
              for n in g["synthesis"] for f in pool_files(g, n)]  # fmt: skip
    stages = [
        ("ingest_dataset", "datasets", g["datasets"], (".parquet", ".quarantine.parquet",
         ".manifest.json")),
        ("build_benchmark", "benchmarks", g["benchmarks"], (".parquet", ".quarantine.parquet",
         ".manifest.json")),
        ("synthesize_shard", "synth", shards, (".parquet", ".rejects.parquet", ".manifest.json")),
        ("select_recipe", "recipes", g["recipes"], ("/train.parquet", "/stats.json",
         "/contamination.parquet", "/removed.parquet", "/train.manifest.json")),
        ("train_student", "checkpoints", runs, ("/model.safetensors",)),
        ("generate_answers", "generations", evals, (".parquet", ".manifest.json")),
        ("grade_generations", "grades", evals, (".parquet", ".disagreements.parquet",
         ".manifest.json")),
    ]  # fmt: skip
    start = time.time() - 20  # newer than the workflow's scripts (the code trigger)
    for i, (rule, folder, jobs, suffixes) in enumerate(stages):
        files = [f"results/{folder}/{job}{suffix}" for job in jobs for suffix in suffixes]
        files += [f"results/{kind}/{rule}/{job}.{ext}" for job in jobs
                  for kind, ext in (("logs", "log"), ("runtime", "tsv"))]  # fmt: skip
        touch(workdir, files, start + i)
        if rule == "train_student":  # the checkpoint folders themselves
            touch(workdir, [f"results/checkpoints/{job}" for job in jobs], start + i)
    tables = [f"results/tables/{name}" for name in g["tables"].values()]
    tables += ["results/figures/accuracy_vs_size.png", "results/logs/make_tables.log",
               "results/runtime/make_tables.tsv"]  # fmt: skip
    touch(workdir, tables, start + len(stages))


def touch(workdir: Path, files: list[str], mtime: float) -> None:
    for name in files:
        path = workdir / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        os.utime(path, (mtime, mtime))


def record(snakefile: str, workdir: str, *configfiles: str) -> int:
    """Write Snakemake's metadata record of every job of the workflow in ``workdir`` (whose
    outputs exist), as a finished run would: its params, code, input and software stack, so that
    the no-op compares them (without a record Snakemake skips those triggers). Run in its own
    process (``--record``)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        ExecutionSettings,
        OutputSettings,
        ResourceSettings,
    )

    with SnakemakeApi(OutputSettings()) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=[Path(c) for c in configfiles]),
            snakefile=Path(snakefile),
            workdir=Path(workdir),
        )
        workflow_api.dag()
        workflow = workflow_api._workflow  # no public API writes records without running jobs
        workflow.execution_settings = ExecutionSettings()
        workflow._prepare_dag(forceall=False, ignore_incomplete=False, lock_warn_only=True)
        workflow._build_dag()
        for job in workflow.dag.jobs:
            workflow.async_run(workflow.persistence.finished(job))
    return 0


def setup(root: Path, cfg: dict) -> dict[str, list[str]]:
    """Write the folders; return the four commands (ours/bare x dry/noop)."""
    if root.exists():
        shutil.rmtree(root)
    for d in ("ours_dry", "bare_dry", "bare_noop"):
        (root / d).mkdir(parents=True)
    (root / "grid.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (root / "bare").mkdir()
    (root / "bare" / "Snakefile").write_text(BARE)
    for d in ("bare", "bare_dry", "bare_noop"):
        (root / d / "graph.json").write_text(json.dumps(graph(cfg)))
    ours = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--configfile", str(root / "grid.yaml"),
            "--cores", "1"]  # fmt: skip
    bare = [*SNAKEMAKE, "-s", str(root / "bare" / "Snakefile"), "--cores", "1"]
    t = time.perf_counter()
    make_outputs(root / "bare_noop", graph(cfg))
    shutil.copytree(root / "bare_noop", root / "ours_noop", symlinks=True)
    (root / "ours_noop" / "graph.json").unlink()
    me = [sys.executable, __file__, "--record"]
    for args in ([str(REPO / "Snakefile"), str(root / "ours_noop"), str(root / "grid.yaml")],
                 [str(root / "bare" / "Snakefile"), str(root / "bare_noop")]):  # fmt: skip
        subprocess.run([*me, *args], check=True, capture_output=True)
    print(f"outputs and metadata made in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return {
        "ours dry run": [*ours, "-d", str(root / "ours_dry"), "-n"],
        "bare dry run": [*bare, "-d", str(root / "bare_dry"), "-n"],
        "ours no-op": [*ours, "-d", str(root / "ours_noop")],
        "bare no-op": [*bare, "-d", str(root / "bare_noop")],
    }


def probe_stub(root: Path) -> dict[str, str]:
    """The environment of the timed runs: a ``scontrol`` that fails at once first on PATH. The
    SLURM executor plugin, when installed, runs ``scontrol show config`` whenever Snakemake
    starts (ours and bare alike); where no slurmctld answers, that waits 9 s, a constant of the
    machine that is neither workflow's work (``--keep-scontrol``: time with it)."""
    stub = root / "stub"
    stub.mkdir(exist_ok=True)
    (stub / "scontrol").write_text("#!/bin/sh\nexit 1\n")
    (stub / "scontrol").chmod(0o755)
    return {**os.environ, "PATH": f"{stub}{os.pathsep}{os.environ.get('PATH', '')}"}


def wall(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t
    if done.returncode or ("-n" not in cmd and "Nothing to be done" not in done.stderr):
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return seconds, done.stdout + done.stderr


def jobs_planned(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("total"):
            return line.split()[-1]
    return "0" if "Nothing to be done" in text else "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench_dag"), help="work folder")
    parser.add_argument("--reps", type=int, default=3, help="runs of each command")
    parser.add_argument("--recipes", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--benchmarks", type=int, default=4)
    parser.add_argument("--shards", type=int, default=80)
    parser.add_argument("--record", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument(
        "--keep-scontrol", action="store_true", help="time with the real scontrol on PATH"
    )
    parser.add_argument("--setup-only", action="store_true", help="print the commands and exit")
    args = parser.parse_args(argv)
    if args.record:
        return record(*args.record)
    cfg = grid_config(args.recipes, args.seeds, args.benchmarks, args.shards)
    cmds = setup(args.dir.resolve(), cfg)
    env = None if args.keep_scontrol else probe_stub(args.dir.resolve())
    if args.setup_only:
        if env is not None:
            print(f"PATH={env['PATH'].split(os.pathsep)[0]}:$PATH before each command")
        for name, cmd in cmds.items():
            print(f"{name}: {' '.join(cmd)}")
        return 0
    for case in ("dry run", "no-op"):
        times: dict[str, list[float]] = {"ours": [], "bare": []}
        for _ in range(args.reps):
            for who in ("ours", "bare"):
                seconds, text = wall(cmds[f"{who} {case}"], env)
                times[who].append(seconds)
                planned = jobs_planned(text)
        ours, bare = (statistics.median(times[w]) for w in ("ours", "bare"))
        pairs = " ".join(f"{o / b:.2f}" for o, b in zip(times["ours"], times["bare"], strict=True))
        print(f"{case}: ours {ours:.2f} s, bare {bare:.2f} s (medians of {args.reps}), "
              f"ratio {ours / bare:.2f} (pairs: {pairs}); jobs planned (last bare run): "
              f"{planned}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
