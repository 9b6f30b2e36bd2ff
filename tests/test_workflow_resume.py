"""A training job stopped the way SLURM stops one (SIGTERM to every process of the job) and
rerun through Snakemake resumes from its saved state and ends with the uninterrupted weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"

pytestmark = [pytest.mark.slow, pytest.mark.heavy]  # `pytest -m heavy` (not in the default run)


def make_config(tmp: Path, results: Path) -> Path:
    raw = yaml.safe_load(TINY.read_text())
    raw["results"] = str(results)
    student = raw["students"]["nano"]
    student["training"]["max_steps"] = 400
    student["training"]["log_every"] = 10
    student["checkpointing"] = {"every_steps": 20, "every_minutes": 0}
    path = tmp / f"{results.name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def snakemake_cmd(config: Path, results: Path) -> list[str]:
    """Build the run's checkpoint, with the config's tmp folder as the working directory (never
    the checkout: Snakemake keeps its .snakemake/ state there)."""
    target = results / "checkpoints" / "nano" / "better" / "seed-0"
    return [
        sys.executable,
        "-m",
        "snakemake",
        str(target),
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(config.parent),  # its .snakemake folder there, not in the checkout
        "--cores",
        "1",
        "--configfile",
        str(config),
    ]


def env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def test_sigtermed_training_job_resumes_through_snakemake(tmp_path):
    results = tmp_path / "results"
    config = make_config(tmp_path, results)
    meta = results / "resume" / "train" / "nano" / "better" / "seed-0" / "state" / "meta.json"
    proc = subprocess.Popen(
        snakemake_cmd(config, results),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env(),
        start_new_session=True,  # its own process group, like a SLURM job step
    )
    deadline = time.monotonic() + 600
    while not meta.is_file():
        assert proc.poll() is None, "the run ended before its training could be stopped"
        assert time.monotonic() < deadline, "no resume state appeared"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)  # what SLURM does at preemption / time limit
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0, out[-3000:]
    stopped_at = json.loads(meta.read_text())["step"]
    assert 0 < stopped_at < 400
    checkpoint = results / "checkpoints" / "nano" / "better" / "seed-0"
    assert not (checkpoint / "train_summary.json").exists()

    rerun = subprocess.run(
        snakemake_cmd(config, results), capture_output=True, text=True, env=env(), timeout=900
    )
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    log = (results / "logs" / "train_student" / "nano" / "better" / "seed-0.log").read_text()
    assert f"resuming from step {stopped_at} of 400" in log
    summary = json.loads((checkpoint / "train_summary.json").read_text())
    assert summary["resumed_from_step"] == stopped_at
    assert not meta.parent.exists(), "the finished job removes its resume state"

    # an uninterrupted run of the same job: the same weights, byte for byte (CPU)
    fresh = tmp_path / "fresh"
    fresh_config = make_config(tmp_path, fresh)
    full = subprocess.run(
        snakemake_cmd(fresh_config, fresh), capture_output=True, text=True, env=env(), timeout=900
    )
    assert full.returncode == 0, full.stderr[-4000:]
    fresh_ckpt = fresh / "checkpoints" / "nano" / "better" / "seed-0"
    fresh_summary = json.loads((fresh_ckpt / "train_summary.json").read_text())
    assert abs(summary["final_loss"] - fresh_summary["final_loss"]) < 1e-4
    assert (checkpoint / "model.safetensors").read_bytes() == (
        fresh_ckpt / "model.safetensors"
    ).read_bytes()
