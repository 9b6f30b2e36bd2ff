"""The workflow on a real SLURM cluster, through `--profile profiles/slurm`.

The `slurm` tests need a running cluster: `.ci/run` starts a one-node one on this machine
(../shared/slurm/start-local-slurm.sh, fake GPUs) and runs `pytest -m slurm`; the default `pytest`
deselects them (pyproject.toml) and they skip when `sinfo` is missing or fails
(MATHRECIPES_REQUIRE_SLURM=1 turns that skip into a failure). They run the tiny config once
locally and once through the SLURM executor, compare the tables byte for byte, and check in the
accounting records that every job ran as a SLURM job with the resources its rule declares.

The profile test below needs no cluster: it checks that Snakemake reads the profile and that a
dry run on the default config gives every job its resources.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"
PROFILE = REPO / "profiles" / "slurm"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# The cluster command of the README (profiles/default, merged in by Snakemake, sets nothing that
# could cap the jobs' threads or the latency wait).
SLURM_ARGS = ["--profile", str(PROFILE)]

TABLES = ("scores.csv", "per_seed.csv", "scores.md", "scores.tex")
GPU_RULES = {"train_student", "generate_answers", "score_likelihood"}
# Jobs of the tiny config: 2 datasets, 2 benchmarks, 3 synthesis shards, 4 recipes,
# 1 student x 4 recipes x 1 seed, x 2 benchmarks (generation, likelihood, grading), one table job.
TINY_JOBS = {
    "ingest_dataset": 2, "build_benchmark": 2, "synthesize_shard": 3, "select_recipe": 4,
    "train_student": 4, "generate_answers": 8, "score_likelihood": 8, "grade_generations": 8,
    "make_tables": 1,
}  # fmt: skip
# What each rule asks for under the tiny config (rules/*.smk, rules/common.smk): (cpus, mem_mb).
TINY_REQUESTS = {
    "ingest_dataset": (1, 4000), "build_benchmark": (1, 2000), "synthesize_shard": (1, 4000),
    "select_recipe": (2, 8000), "train_student": (1, 1000), "generate_answers": (1, 1000),
    "score_likelihood": (1, 1000), "grade_generations": (1, 1500), "make_tables": (1, 2000),
}  # fmt: skip


def run_snakemake(workdir: Path, *args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


# ------------------------------------------------------------------ the profile (no cluster)


def test_snakemake_reads_the_slurm_profile(monkeypatch):
    from snakemake.cli import parse_args

    monkeypatch.chdir(REPO)
    _, args = parse_args(["-n", *SLURM_ARGS])
    assert args.executor == "slurm"
    assert args.retries == 1
    assert args.jobs >= 1


def test_dry_run_gives_every_job_its_resources(tmp_path):
    """The default config's job plan: GPU rules ask for the student's GPU and CPUs per GPU,
    every submitted job for memory and time."""
    proc = run_snakemake(tmp_path, "-n", *SLURM_ARGS)
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    student = next(iter(cfg["students"].values()))["resources"]
    jobs = collections.Counter()
    rule = None
    for line in proc.stdout.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if m:  # the target rules (all, all_*) run on the submit host
            rule, threads = (None if m.group(1).startswith("all") else m.group(1)), 1
            continue
        if line.strip().startswith("threads: "):
            threads = int(line.strip().split()[1])
        if rule and line.strip().startswith("resources: "):
            res = dict(kv.split("=", 1) for kv in line.strip()[len("resources: ") :].split(", "))
            assert int(res["mem_mb"]) > 0 and int(res["runtime"]) > 0, (rule, res)
            if rule in GPU_RULES:
                assert int(res["gpu"]) == student["gpus"], (rule, res)
                assert int(res["cpus_per_gpu"]) == -(-student["cpus"] // student["gpus"]), res
                assert int(res["mem_mb"]) == student["mem_mb"], (rule, res)
                assert threads == student["cpus"], (rule, threads)
            else:  # synthesis with a builtin or openai teacher asks for no GPU
                assert int(res.get("gpu", 0)) == 0, (rule, res)
            jobs[rule] += 1
            rule = None
    assert rule is None
    assert jobs["train_student"] == 3 and jobs["generate_answers"] == 6
    assert jobs["score_likelihood"] == 6
    assert set(jobs) == set(TINY_JOBS)


def _synth_requests(stdout: str) -> dict[str, tuple[int, dict[str, str]]]:
    """{synthesis entry: (threads, resources)} of the synthesize_shard jobs of a dry run."""
    out, rule, threads = {}, None, 1
    for line in (s.strip() for s in stdout.splitlines()):
        m = re.match(r"^(?:local)?rule (\w+):$", line)
        if m:
            rule, threads = m.group(1), 1
        elif line.startswith("threads: "):
            threads = int(line.split()[1])
        elif rule == "synthesize_shard" and line.startswith("wildcards: "):
            synth = dict(kv.split("=", 1) for kv in line[len("wildcards: ") :].split(", "))["synth"]
        elif rule == "synthesize_shard" and line.startswith("resources: "):
            out[synth] = (threads, dict(kv.split("=", 1) for kv in line[11:].split(", ")))
    return out


def test_dry_run_gives_a_local_model_synthesis_job_its_gpus(tmp_path):
    """A synthesis job whose teacher or judge runs a local model (hf, vllm) asks for that
    model's `resources` as a GPU job; builtin and openai entries keep 1 CPU, no GPU."""
    (tmp_path / "teacher").mkdir()
    (tmp_path / "teacher" / "config.json").write_text("{}")
    raw = yaml.safe_load(TINY.read_text())
    served = {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}
    raw["synthesis"].update(
        local={"from": "arith", "shards": 1, "teacher": {
            "backend": "hf", "model": "teacher",
            "resources": {"gpus": 2, "cpus": 6, "mem_mb": 24000, "runtime": 90}}},
        judged={"from": "arith", "shards": 1, "method": "rewrite", "teacher": served, "judge": {
            "backend": "vllm", "model": "Qwen/Qwen2.5-7B-Instruct"}},
        served={"from": "arith", "shards": 1, "teacher": served},
    )  # fmt: skip
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    proc = run_snakemake(tmp_path, "all_synthesis", "-n", *SLURM_ARGS, "--configfile", str(config))
    got = _synth_requests(proc.stdout)
    assert set(got) == {"distilled", "distilled_prose", "local", "judged", "served"}

    def request(name: str) -> tuple[int, ...]:
        threads, res = got[name]
        return threads, *(int(res[k]) for k in ("gpu", "cpus_per_gpu", "mem_mb", "runtime"))

    assert request("local") == (6, 2, 3, 24000, 90)
    assert request("judged") == (4, 1, 4, 32000, 240)  # the vllm judge's default resources
    for name in ("distilled", "distilled_prose", "served"):
        assert request(name) == (1, 0, 0, 4000, 60), name


# ------------------------------------------------------------------ a real cluster


def _cluster_problem() -> str | None:
    if shutil.which("sinfo") is None:
        return "sinfo not found: no SLURM cluster"
    try:
        proc = subprocess.run(
            ["sinfo", "--noheader", "--format=%P %t %G"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return "sinfo timed out"
    if proc.returncode != 0:
        return f"sinfo failed: {proc.stderr.strip()}"
    if "gpu" not in proc.stdout:
        return f"no node with a GPU (GRES) in sinfo: {proc.stdout.strip()}"
    return None


def _sacct_works() -> bool:
    proc = subprocess.run(["sacct", "-n", "-X", "-S", "now"], capture_output=True, timeout=30)
    return proc.returncode == 0


@pytest.fixture(scope="module")
def cluster():
    problem = _cluster_problem()
    if problem:
        if os.environ.get("MATHRECIPES_REQUIRE_SLURM") == "1":
            pytest.fail(problem)
        pytest.skip(problem)


@pytest.fixture(scope="module")
def slurm_and_local_runs(cluster, tmp_path_factory):
    """The tiny config run locally and through the SLURM executor (workdirs, SLURM wall time)."""
    config = tmp_path_factory.mktemp("config") / "tiny.yaml"
    shutil.copy(TINY, config)
    local = tmp_path_factory.mktemp("local")
    run_snakemake(local, "--configfile", str(config), "--cores", "2")

    slurm = tmp_path_factory.mktemp("slurm")
    status = [] if _sacct_works() else ["--slurm-status-command", "squeue"]
    start = time.monotonic()
    run_snakemake(
        slurm,
        "--configfile", str(config), *SLURM_ARGS, *status,
        "--slurm-init-seconds-before-status-checks", "5",
        "--slurm-keep-successful-logs",
    )  # fmt: skip
    wall = time.monotonic() - start
    print(f"SLURM run of the tiny config: {wall:.0f} s")
    return local, slurm, wall


def _slurm_jobs(workdir: Path) -> dict[str, str]:
    """SLURM job id -> rule, from the executor's log files
    (.snakemake/slurm_logs/rule_<rule>/<wildcards>/<jobid>.log)."""
    jobs = {}
    for log in (workdir / ".snakemake" / "slurm_logs").rglob("*.log"):
        rule_dir = next(p for p in log.relative_to(workdir).parts if p.startswith("rule_"))
        jobs[log.stem] = rule_dir.removeprefix("rule_")
    return jobs


def _tres(text: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in text.split(",") if kv)


def _mem_mb(value: str) -> float:
    scale = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}
    return float(value[:-1]) * scale[value[-1]]


@pytest.mark.slurm
def test_slurm_run_gives_the_tables_of_a_local_run(slurm_and_local_runs):
    local, slurm, _ = slurm_and_local_runs
    for name in TABLES:
        a = (local / "results" / "tables" / name).read_bytes()
        b = (slurm / "results" / "tables" / name).read_bytes()
        assert a == b, name
    # Every completion and verdict too (only the timing columns differ between runs).
    for kind, columns in (
        ("generations", ["problem_id", "sample", "completion", "finish_reason"]),
        ("grades", ["problem_id", "sample", "extracted", "verdict", "rule", "answer_group"]),
    ):
        files = sorted(
            p.relative_to(local)
            for p in (local / "results" / kind).rglob("*.parquet")
            if "." not in p.stem
        )
        assert len(files) == 8, kind
        for f in files:
            a = pl.read_parquet(local / f, columns=columns)
            b = pl.read_parquet(slurm / f, columns=columns)
            assert a.equals(b), f


@pytest.mark.slurm
def test_every_job_ran_on_slurm_with_its_declared_resources(slurm_and_local_runs):
    _, slurm, _ = slurm_and_local_runs
    jobs = _slurm_jobs(slurm)
    assert collections.Counter(jobs.values()) == TINY_JOBS
    if not _sacct_works():
        pytest.skip("no SLURM accounting (sacct): the requests cannot be checked")
    proc = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", ",".join(jobs), "-o", "JobIDRaw,State,AllocTRES"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    records = {}
    for line in proc.stdout.splitlines():
        job_id, state, tres = line.split("|")
        records[job_id] = (state, _tres(tres))
    assert set(records) == set(jobs)
    for job_id, rule in jobs.items():
        state, tres = records[job_id]
        cpus, mem_mb = TINY_REQUESTS[rule]
        assert state == "COMPLETED", (rule, job_id, state)
        assert int(tres["cpu"]) == cpus, (rule, tres)
        assert _mem_mb(tres["mem"]) == mem_mb, (rule, tres)
        assert tres.get("gres/gpu") == ("1" if rule in GPU_RULES else None), (rule, tres)


@pytest.fixture(scope="module")
def sharded_runs(cluster, tmp_path_factory):
    """The tiny config's recipes (all_recipes) with near dedup on: locally in one select_recipe
    job per recipe (selection.shards 1), and through the SLURM executor with selection.shards 3
    (select_signatures, select_union, then select_recipe)."""
    raw = yaml.safe_load(TINY.read_text())
    for spec in raw["recipes"].values():
        spec["near_dedup"] = {"enabled": True}
    folder = tmp_path_factory.mktemp("sharded-config")
    (folder / "one.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    raw["selection"] = {"shards": 3}
    (folder / "three.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    local = tmp_path_factory.mktemp("sharded-local")
    run_snakemake(local, "--configfile", str(folder / "one.yaml"), "--cores", "2", "all_recipes")
    slurm = tmp_path_factory.mktemp("sharded-slurm")
    status = [] if _sacct_works() else ["--slurm-status-command", "squeue"]
    run_snakemake(
        slurm,
        "--configfile", str(folder / "three.yaml"), *SLURM_ARGS, *status,
        "--slurm-init-seconds-before-status-checks", "5",
        "--slurm-keep-successful-logs", "all_recipes",
    )  # fmt: skip
    return local, slurm, list(raw["recipes"])


@pytest.mark.slurm
def test_sharded_selection_on_slurm_gives_the_local_training_sets(sharded_runs):
    local, slurm, recipes = sharded_runs
    for recipe in recipes:
        for name in ("train.parquet", "removed.parquet", "contamination.parquet", "stats.json"):
            a = (local / "results" / "recipes" / recipe / name).read_bytes()
            b = (slurm / "results" / "recipes" / recipe / name).read_bytes()
            assert a == b, (recipe, name)
    jobs = collections.Counter(_slurm_jobs(slurm).values())
    # 3 pools (arith, distilled, distilled_prose; arith's jobs shared by 3 recipes) x 3 shards
    assert jobs["select_signatures"] == 9 and jobs["select_union"] == 3, jobs
    assert jobs["select_recipe"] == len(recipes), jobs
