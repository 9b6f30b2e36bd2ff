"""Student training: tokenizer, example encoding, batching, the loop, checkpoints."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402  (a core dependency: no skip without it)
from helpers import TINY_MODEL, arithmetic_rows, student_spec  # noqa: E402

from mathrecipes.config import StudentSpec  # noqa: E402
from mathrecipes.prompting import format_prompt, format_target  # noqa: E402
from mathrecipes.records import write_records  # noqa: E402
from mathrecipes.training import SpecError, train_student  # noqa: E402
from mathrecipes.training.data import (  # noqa: E402
    IGNORE_INDEX,
    encode_examples,
    encode_prompt,
    encode_texts,
    labels_for,
    plan_batches,
    plan_epoch,
)
from mathrecipes.training.loop import collate, lr_factor  # noqa: E402
from mathrecipes.training.tokenizer import train_bpe_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def train_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "train.parquet"
    write_records(arithmetic_rows(200), path)
    return str(path)


@pytest.fixture(scope="module")
def tokenizer():
    texts = []
    for r in arithmetic_rows(200):
        texts += [format_prompt(r["problem"]), format_target(r)]
    texts += ["12345 + 12345 = 24690"] * 50  # tempting digit merges
    return train_bpe_tokenizer(texts, vocab_size=400, min_frequency=2)


# --------------------------------------------------------------------------- tokenizer


def test_tokenizer_splits_digits_one_per_token(tokenizer):
    ids = encode_texts(tokenizer, ["12345 + 12345 = 24690, and 3.14 or 1e10"])[0]
    tokens = [tokenizer.decode([i]) for i in ids]
    for tok in tokens:
        digits = [c for c in tok if c.isdigit()]
        assert len(digits) <= 1, f"token {tok!r} holds several digits"
        if digits:
            assert tok.strip() == digits[0], f"digit glued to other text: {tok!r}"
    assert sum(c.isdigit() for tok in tokens for c in tok) == len("123451234524690314110")
    assert " 2" in tokens  # a space before a number stays with its first digit


@pytest.mark.parametrize(
    "text",
    [
        "Problem: What is 3 + 4?\nSolution: Step 1: 3 + 4 = 7\n\\boxed{7}",
        "  leading and  double  spaces, trailing ",
        "unicode: π ≈ 3.14159, x² − y² = (x−y)(x+y) — ü ß 漢字",
        "tabs\tand\r\nnewlines\n\n$\\frac{1}{2}$",
    ],
)
def test_tokenizer_round_trips(tokenizer, text):
    ids = encode_texts(tokenizer, [text])[0]
    assert tokenizer.decode(ids) == text
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_tokenizer_specials_and_vocab_cap(tokenizer):
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert len(tokenizer) <= 400
    assert encode_texts(tokenizer, ["x"])[0] == tokenizer("x", add_special_tokens=False).input_ids
    assert tokenizer.bos_token_id not in encode_texts(tokenizer, ["What is 3 + 4?"])[0]


# --------------------------------------------------------------------------- examples


def test_labels_mask_bos_and_prompt_exactly(tokenizer):
    record = arithmetic_rows(1)[0]
    prompt = encode_texts(tokenizer, [format_prompt(record["problem"])])[0]
    target = encode_texts(tokenizer, [format_target(record)])[0]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id

    ex = encode_examples(tokenizer, [record], max_length=256)
    assert ex.ids[0] == [bos, *prompt, *target, eos]
    assert ex.n_prompt[0] == 1 + len(prompt)
    assert encode_prompt(tokenizer, record["problem"]) == [bos, *prompt]  # = generation input
    assert ex.total_tokens == 2 + len(prompt) + len(target)
    assert ex.target_tokens == len(target) + 1

    labels = labels_for(ex.ids[0], ex.n_prompt[0])
    n_p = 1 + len(prompt)
    assert labels[:n_p] == [IGNORE_INDEX] * n_p
    assert labels[n_p:] == [*target, eos]

    # in a right-padded batch with a longer neighbour, padding is masked too
    longer = dict(record, solution=record["solution"] + "\nso the answer is 7 indeed")
    ex2 = encode_examples(tokenizer, [record, longer], max_length=256)
    ids, lab, real = collate(ex2, [0, 1], pad=tokenizer.pad_token_id)
    n0 = len(ex2.ids[0])
    assert ids.shape == (2, len(ex2.ids[1]))
    assert lab[0].tolist() == labels + [IGNORE_INDEX] * (ids.shape[1] - n0)
    assert ids[0, n0:].eq(tokenizer.pad_token_id).all()
    assert real == n0 + len(ex2.ids[1])


def test_truncation_and_dropping(tokenizer):
    rows = arithmetic_rows(3)
    n_prompt = len(encode_prompt(tokenizer, rows[0]["problem"]))
    ex = encode_examples(tokenizer, rows, max_length=n_prompt + 2)
    assert len(ex) == 3 and ex.truncated == 3
    assert all(len(ids) == n_prompt + 2 for ids in ex.ids)
    ex = encode_examples(tokenizer, rows, max_length=n_prompt)
    assert len(ex) == 0 and ex.dropped == 3


# --------------------------------------------------------------------------- batching


def test_plan_epoch_budget_coverage_and_determinism():
    rng = random.Random(0)
    lengths = [rng.randrange(5, 120) for _ in range(500)] + [400]  # one over-budget example
    batches = plan_epoch(lengths, 300, random.Random(1))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        longest = max(lengths[i] for i in b)
        assert len(b) == 1 or len(b) * longest <= 300
    assert batches == plan_epoch(lengths, 300, random.Random(1))
    assert batches != plan_epoch(lengths, 300, random.Random(2))
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded < 1.25 * sum(lengths)  # bucketing keeps padding low


def test_plan_batches_budget_modes():
    lengths = [10] * 100  # 10 per batch at 100 tokens -> 10 batches per epoch
    assert len(plan_batches(lengths, 100, 0, max_steps=25)) == 25
    two = plan_batches(lengths, 100, 0, epochs=2)
    assert len(two) == 20
    assert sorted(i for b in two[:10] for i in b) == list(range(100))
    assert two[:10] != two[10:]  # reshuffled every epoch
    assert len(plan_batches(lengths, 100, 0, epochs=1.5)) == 15
    assert plan_batches(lengths, 100, 3, epochs=2) == plan_batches(lengths, 100, 3, epochs=2)


def test_lr_schedule():
    assert lr_factor(0, 100, 10, "cosine") == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(99, 100, 10, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(99, 100, 10, "linear") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(54, 100, 10, "linear") == pytest.approx(0.5)
    assert lr_factor(99, 100, 10, "constant") == 1.0
    assert lr_factor(0, 5, 0, "cosine") < 1.0


# --------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def trained(train_path, tmp_path_factory):
    """The same scratch run twice (same seed)."""
    spec = student_spec(max_steps=40)
    a = tmp_path_factory.mktemp("ckpt_a")
    b = tmp_path_factory.mktemp("ckpt_b")
    summary_a = train_student(train_path, str(a), spec, seed=7, threads=2, progress=False)
    summary_b = train_student(train_path, str(b), spec, seed=7, threads=2, progress=False)
    return a, b, summary_a, summary_b


def test_scratch_training_writes_checkpoint_and_loss_decreases(trained):
    a, _, summary, _ = trained
    names = {p.name for p in a.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "train_log.jsonl",
        "train_summary.json",
    } <= names
    assert json.loads((a / "train_summary.json").read_text()) == summary
    for key in (
        "examples",
        "train_tokens",
        "target_tokens",
        "steps",
        "epochs_seen",
        "tokens_seen",
        "final_loss",
        "params",
        "tokens_per_s",
        "wall_s",
        "device",
        "seed",
        "init",
    ):
        assert key in summary, key
    assert summary["examples"] == 200 and summary["steps"] == 40 and summary["seed"] == 7
    assert summary["init"] == "scratch" and summary["device"] in ("cpu", "cuda")
    assert summary["target_tokens"] < summary["train_tokens"]

    log = [json.loads(line) for line in (a / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == list(range(5, 41, 5))
    assert set(log[0]) == {"step", "loss", "lr", "tokens_seen", "elapsed_s"}
    assert log[-1]["loss"] < 0.6 * log[0]["loss"]
    assert summary["final_loss"] == pytest.approx(log[-1]["loss"], abs=1e-5)
    assert log[-1]["tokens_seen"] == summary["tokens_seen"]


def test_same_seed_gives_byte_identical_weights(trained):
    a, b, sa, sb = trained
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()
    assert sa["final_loss"] == sb["final_loss"]


def test_checkpoint_reloads_with_auto_classes(trained):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    a = trained[0]
    tok = AutoTokenizer.from_pretrained(a)
    model = AutoModelForCausalLM.from_pretrained(a)
    assert model.config.vocab_size == len(tok)
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 64
    assert (model.config.bos_token_id, model.config.eos_token_id) == (1, 2)
    assert model.config.pad_token_id == 0
    text = "Problem: What is 12 + 30?\nSolution: 42"
    assert tok.decode(tok(text, add_special_tokens=False).input_ids) == text


def test_epochs_budget(train_path, tmp_path):
    s = train_student(train_path, str(tmp_path), student_spec(epochs=1.0), seed=0, progress=False)
    assert s["epochs_seen"] == pytest.approx(1.0)
    assert s["steps"] >= 1


def test_hf_init_fine_tunes_a_local_model_folder(train_path, tmp_path, tokenizer):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mathrecipes.training.model import build_scratch_model

    base = tmp_path / "base"
    spec_model = StudentSpec(model=TINY_MODEL, training={"max_steps": 1}).model.model_dump()
    model = build_scratch_model(spec_model, tokenizer, seed=0)
    model.save_pretrained(base)
    tokenizer.pad_token = None  # the init path must cope with a tokenizer without pad
    try:
        tokenizer.save_pretrained(base)
    finally:
        tokenizer.pad_token = "<pad>"
    assert AutoTokenizer.from_pretrained(base).pad_token_id is None

    out = tmp_path / "ft"
    summary = train_student(
        train_path, str(out), student_spec(init=str(base), max_steps=6), seed=1, progress=False
    )
    assert summary["init"] == str(base) and summary["steps"] == 6
    assert json.loads((out / "train_summary.json").read_text()) == summary
    tuned = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.pad_token_id == tok.eos_token_id
    before = AutoModelForCausalLM.from_pretrained(base)
    w0 = before.get_input_embeddings().weight
    w1 = tuned.get_input_embeddings().weight
    assert w0.shape == w1.shape and not torch.equal(w0, w1)


# --------------------------------------------------------------------------- errors


def test_empty_training_set_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.parquet"
    write_records([], path)
    with pytest.raises(ValueError, match="empty"):
        train_student(str(path), str(tmp_path / "out"), student_spec(), seed=0, progress=False)
    assert not (tmp_path / "out" / "train_summary.json").exists()


def test_spec_missing_keys_is_a_clear_error(train_path, tmp_path):
    spec = student_spec()
    del spec["training"]["lr"]
    del spec["tokenizer"]
    with pytest.raises(SpecError, match=r"tokenizer.*training\.lr|training\.lr.*tokenizer"):
        train_student(train_path, str(tmp_path), spec, seed=0, progress=False)
    spec = student_spec()
    spec["training"]["epochs"] = 1.0  # both budgets set
    with pytest.raises(SpecError, match="exactly one"):
        train_student(train_path, str(tmp_path), spec, seed=0, progress=False)


def test_data_module_does_not_import_torch():
    code = "import sys, mathrecipes.training.data; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
