"""Preemption-safe training: resume after SIGTERM / SIGKILL, packing without leakage, and DDP
over several CPU processes giving the single-process update."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402  (a core dependency: no skip without it)
from helpers import TINY_MODEL, arithmetic_rows, student_spec  # noqa: E402

from mathrecipes.config import ModelSpec  # noqa: E402
from mathrecipes.records import write_records  # noqa: E402
from mathrecipes.training.data import (  # noqa: E402
    encode_examples,
    pack_rows,
    plan_batches,
    plan_epoch_packed,
    split_for_ranks,
)
from mathrecipes.training.loop import collate, collate_packed  # noqa: E402
from mathrecipes.training.model import build_scratch_model  # noqa: E402
from mathrecipes.training.tokenizer import train_bpe_tokenizer  # noqa: E402

DRIVER = """
import json, sys
from mathrecipes.training.launch import launch_training
from mathrecipes.training.resume import TrainingStopped
args = json.loads(sys.argv[1])
try:
    summary = launch_training(**args)
except TrainingStopped as exc:
    print("STOPPED", exc, file=sys.stderr)
    sys.exit(143)
print(json.dumps(summary))
"""


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("resume") / "train.parquet"
    write_records(arithmetic_rows(300, seed=3), path)
    return str(path)


def run_driver(args: dict, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def train_args(train_file: str, out: Path, steps: int, **extra) -> dict:
    training = {"max_steps": steps, "log_every": 5, **extra.pop("training", {})}
    return {
        "train_path": train_file,
        "out_dir": str(out),
        "spec": student_spec(**training),
        "seed": 1,
        "threads": 1,
        "progress": False,
        **extra,
    }


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the training finished before it could be interrupted:\n{err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for the training to make progress")
        time.sleep(0.05)


def logged_steps(out: Path) -> int:
    log = out / "train_log.jsonl"
    if not log.is_file():
        return 0
    lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
    return json.loads(lines[-1])["step"] if lines else 0


def saved_step(resume: Path) -> int:
    meta = resume / "state" / "meta.json"
    try:
        return json.loads(meta.read_text())["step"]
    except (OSError, ValueError, KeyError):
        return 0


STEPS = 160


@pytest.fixture(scope="module")
def uninterrupted(train_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "ckpt"
    rc, stdout, err = finish(run_driver(train_args(train_file, out, STEPS)))
    assert rc == 0, err[-3000:]
    return json.loads(stdout.strip().splitlines()[-1]), out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_killed_training_resumes_to_the_same_result(train_file, tmp_path, uninterrupted, sig):
    full, full_out = uninterrupted
    out, resume = tmp_path / "ckpt", tmp_path / "resume"
    args = train_args(
        train_file,
        out,
        STEPS,
        resume_dir=str(resume),
        checkpointing={"every_steps": 20, "every_s": 0},
    )
    proc = run_driver(args)
    if sig == signal.SIGTERM:
        wait_for(lambda: logged_steps(out) >= STEPS // 2, proc)
    else:  # SIGKILL gives no chance to save: it must lose at most the steps since a save
        wait_for(lambda: saved_step(resume) >= STEPS // 2, proc)
    proc.send_signal(sig)
    rc, _, err = finish(proc)
    assert rc != 0, "the killed run must fail (so that Snakemake reruns it)"
    step = saved_step(resume)
    assert 0 < step < STEPS
    if sig == signal.SIGTERM:
        assert "STOPPED" in err and f"after step {step} of {STEPS}" in err
    assert not (out / "train_summary.json").exists()

    rc, stdout, err = finish(run_driver(args))
    assert rc == 0, err[-3000:]
    assert f"resuming from step {step} of {STEPS}" in err
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["resumed_from_step"] == step
    assert summary["steps"] == STEPS
    assert abs(summary["final_loss"] - full["final_loss"]) < 1e-4
    # same data order and state: the same log and (on this CPU) the same weights
    strip = [
        {k: v for k, v in json.loads(x).items() if k != "elapsed_s"}
        for x in (out / "train_log.jsonl").read_text().splitlines()
    ]
    full_rows = [
        {k: v for k, v in json.loads(x).items() if k != "elapsed_s"}
        for x in (full_out / "train_log.jsonl").read_text().splitlines()
    ]
    assert strip == full_rows
    assert summary["tokens_seen"] == full["tokens_seen"]
    assert (out / "model.safetensors").read_bytes() == (full_out / "model.safetensors").read_bytes()
    assert not resume.exists(), "a finished run removes its resume state"


def test_stale_resume_state_is_discarded(train_file, tmp_path):
    out, resume = tmp_path / "ckpt", tmp_path / "resume"
    args = train_args(
        train_file, out, 60, resume_dir=str(resume), checkpointing={"every_steps": 10, "every_s": 0}
    )
    proc = run_driver(args)
    wait_for(lambda: saved_step(resume) >= 10, proc)
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    # another learning rate: the saved state belongs to another run
    other = train_args(
        train_file,
        out,
        60,
        resume_dir=str(resume),
        checkpointing={"every_steps": 10, "every_s": 0},
        training={"lr": 1e-3},
    )
    rc, stdout, err = finish(run_driver(other))
    assert rc == 0, err[-3000:]
    assert "discarding resume state" in err and "resuming" not in err
    assert json.loads(stdout.strip().splitlines()[-1])["resumed_from_step"] == 0


# ----------------------------------------------------------------------------- packing


@pytest.fixture(scope="module")
def tiny_model_and_examples():
    rows = arithmetic_rows(40, seed=5)
    corpus = [r["problem"] for r in rows] + [r["solution"] for r in rows]
    tok = train_bpe_tokenizer(corpus, vocab_size=300, min_frequency=1, model_max_length=128)
    model = build_scratch_model(
        ModelSpec(**TINY_MODEL).model_dump(), tok, seed=0, attn_implementation="sdpa"
    )
    model.eval()
    return tok, model, encode_examples(tok, rows, 128)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_loss_equals_unpacked_loss(tiny_model_and_examples, attn):
    """Packed rows (position ids restarting per example, as the loop feeds them) give every
    example exactly the logits it gets alone, and the same loss as padded rows."""
    tok, model, ex = tiny_model_and_examples
    model.config._attn_implementation = attn
    batch = list(range(12))
    n_targets = sum(len(ex.ids[i]) - ex.n_prompt[i] for i in batch)
    rows = pack_rows(ex.lengths, batch, 128)
    assert len(rows) < len(batch), "the examples must share rows for the test to mean anything"
    with torch.no_grad():
        ids, labels, _ = collate(ex, batch, tok.pad_token_id)
        unpacked = model(
            input_ids=ids, labels=labels, use_cache=False, num_items_in_batch=n_targets
        ).loss
        ids, labels, pos, real = collate_packed(ex, rows, tok.pad_token_id)
        assert real == sum(ex.lengths[i] for i in batch)
        out = model(
            input_ids=ids,
            labels=labels,
            position_ids=pos,
            use_cache=False,
            num_items_in_batch=n_targets,
        )
        # the same rows with one running position sequence: examples attend to each other
        leaky = model(
            input_ids=ids, position_ids=torch.arange(ids.shape[1]).expand_as(ids), use_cache=False
        ).logits
        worst = leak = 0.0
        for r, row in enumerate(rows):
            offset = 0
            for i in row:
                n = ex.lengths[i]
                alone = model(input_ids=torch.tensor([ex.ids[i]]), use_cache=False).logits[0]
                worst = max(worst, (out.logits[r, offset : offset + n] - alone).abs().max().item())
                leak = max(leak, (leaky[r, offset : offset + n] - alone).abs().max().item())
                offset += n
    assert worst < 1e-4
    assert leak > 1e-2, "the leak check must be able to fail"
    assert abs(out.loss.item() - unpacked.item()) < 1e-5


def test_pack_rows_and_packed_plan():
    lengths = [30, 50, 20, 64, 10, 40, 5]
    rows = pack_rows(lengths, range(len(lengths)), 64)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 64 for row in rows)
    assert len(rows) == 4  # 219 tokens need at least 4 rows of 64
    import random

    steps = plan_epoch_packed(lengths, 100, random.Random(0))
    assert sorted(i for s in steps for i in s) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in s) <= 100 or len(s) == 1 for s in steps)
    assert plan_batches(lengths, 100, 0, max_steps=9, packing=True) == plan_batches(
        lengths, 100, 0, max_steps=9, packing=True
    )


def test_split_for_ranks_balances_tokens():
    lengths = [100, 90, 10, 10, 10, 80]
    shares = split_for_ranks(lengths, range(6), 2)
    assert sorted(i for s in shares for i in s) == list(range(6))
    loads = [sum(lengths[i] for i in s) for s in shares]
    assert max(loads) - min(loads) <= 40  # 130 vs 170 is the best split here


# ----------------------------------------------------------------------------- DDP on CPU


@pytest.mark.slow
def test_two_processes_give_the_single_process_result(train_file, tmp_path, uninterrupted):
    """`accelerate launch` with 2 CPU processes (gloo DDP): the same loss curve as one
    process, up to float summation order."""
    full, full_out = uninterrupted
    out = tmp_path / "ckpt"
    args = train_args(train_file, out, STEPS, processes=2, threads=2)
    rc, stdout, err = finish(run_driver(args))
    assert rc == 0, err[-3000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["processes"] == 2
    assert summary["tokens_seen"] == full["tokens_seen"]
    assert abs(summary["final_loss"] - full["final_loss"]) < 1e-4
    ours = [json.loads(x)["loss"] for x in (out / "train_log.jsonl").read_text().splitlines()]
    theirs = [
        json.loads(x)["loss"] for x in (full_out / "train_log.jsonl").read_text().splitlines()
    ]
    assert max(abs(a - b) for a, b in zip(ours, theirs, strict=True)) < 1e-4


@pytest.mark.slow
def test_fsdp_two_processes_stopped_by_sigterm_resume(train_file, tmp_path, uninterrupted):
    """FSDP over 2 CPU processes, SIGTERM to the launching process halfway: the signal reaches
    the workers, they save and stop (exit 143 from the driver), the rerun resumes and ends
    with the single-process loss."""
    full, _ = uninterrupted
    out, resume = tmp_path / "ckpt", tmp_path / "resume"
    args = train_args(
        train_file,
        out,
        STEPS,
        processes=2,
        threads=2,
        resume_dir=str(resume),
        checkpointing={"every_steps": 0, "every_s": 0},
        training={"distributed": "fsdp"},
    )
    proc = run_driver(args)
    wait_for(lambda: logged_steps(out) >= STEPS // 2, proc, timeout=300)
    proc.send_signal(signal.SIGTERM)
    rc, _, err = finish(proc)
    assert rc == 143, err[-3000:]
    step = saved_step(resume)
    assert STEPS // 2 <= step < STEPS
    rc, stdout, err = finish(run_driver(args))
    assert rc == 0, err[-3000:]
    assert err.count(f"resuming from step {step} of {STEPS}") == 1  # said once, by rank 0
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["processes"] == 2 and summary["resumed_from_step"] == step
    assert abs(summary["final_loss"] - full["final_loss"]) < 1e-4


def test_checkpointing_minutes_become_seconds_once():
    """The config's minutes become the job's `checkpoint_s` resource, which the loop reads as
    seconds (no conversion back)."""
    from mathrecipes.config import Checkpointing
    from mathrecipes.training.resume import SaveEvery

    assert SaveEvery.of(Checkpointing(every_steps=7, every_minutes=0.5)) == SaveEvery(7, 30)
    assert SaveEvery.of(Checkpointing()) == SaveEvery(500, 600)
    with pytest.raises(ValueError, match="every_s must be an integer >= 0"):
        SaveEvery(1, -5)
