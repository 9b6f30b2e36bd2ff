"""The likelihood of reference solutions: NLL against a plain forward per row, batching and
padding invariance, truncation at the model's window, left-out and all-empty benchmarks, resume
after a crash, determinism."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402  (a core dependency: no skip without it)
from helpers import TINY_MODEL  # noqa: E402

from mathrecipes import likelihood  # noqa: E402
from mathrecipes.config import ModelSpec  # noqa: E402
from mathrecipes.likelihood import LikelihoodSpecError, score_file  # noqa: E402
from mathrecipes.records import check_record, write_records  # noqa: E402
from mathrecipes.training.data import encode_examples  # noqa: E402

COLUMNS = {"problem_id": "string", "nll": "double", "tokens": "int64", "bytes": "int64",
           "truncated": "bool"}  # fmt: skip
SPEC = {"batch_size": 4, "dtype": "float32", "attn_implementation": "eager"}


def record(i: int, problem: str, solution: str, answer: str = "1") -> dict:
    row = {"id": f"b/{i:03d}", "source": "b", "problem": problem, "solution": solution,
           "answer": answer, "answer_type": "integer"}  # fmt: skip
    return check_record(row, where=f"row {i}")


def bench_rows() -> list[dict]:
    """Sums of varied lengths, two rows without a solution, one with non-ASCII text and one
    whose solution carries surrounding blank space (stripped, as training strips it)."""
    rows = []
    for i in range(13):
        terms = list(range(1, 2 + i % 5))
        expr = " + ".join(map(str, terms))
        steps = "\n".join(f"Step {k}: {expr} = {sum(terms)}" for k in range(1 + i % 3))
        rows.append(
            record(i, f"What is {expr}?" + " please" * (i % 4), f"{steps}\n\\boxed{{{sum(terms)}}}")
        )
    rows.append(record(13, "What is 2 + 2?", ""))
    rows.append(record(14, "What is 3 + 3?", "   "))
    rows.append(record(15, "What is √9 × 2?", "√9 = 3, 3 × 2 = 6\n\\boxed{6}"))
    rows.append(record(16, "What is 5 + 5?", "\n  5 + 5 = 10\n\\boxed{10}  \n"))
    return list(reversed(rows))  # out of order on purpose: the file is sorted by problem_id


def make_student(folder: Path, max_positions: int) -> Path:
    """A tiny random Llama with a BPE trained on the benchmark texts; weights drawn wide
    enough that token predictions differ clearly from uniform."""
    from mathrecipes.training.model import build_scratch_model
    from mathrecipes.training.tokenizer import train_bpe_tokenizer

    texts = [f"{r['problem']} {r['solution']}" for r in bench_rows()] * 5
    tok = train_bpe_tokenizer(texts, vocab_size=300)
    spec = ModelSpec(**{**TINY_MODEL, "max_position_embeddings": max_positions}).model_dump()
    model = build_scratch_model(spec, tok, seed=0)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(1)
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.15)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> str:
    return str(make_student(tmp_path_factory.mktemp("lik") / "student", max_positions=128))


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("bench") / "bench.parquet"
    write_records(bench_rows(), path)
    return str(path)


def read(path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def hand_nll(model, ids: list[int], n_prompt: int) -> float:
    """Sum of -log p(ids[t] | ids[:t]) for t >= n_prompt: one unpadded forward of one row."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    return -sum(logp[t - 1, ids[t]].item() for t in range(n_prompt, len(ids)))


def training_example(tok, row: dict) -> tuple[list[int], int]:
    """The row's training example without its eos, and its prompt length (training's own
    encoding, untruncated)."""
    ex = encode_examples(tok, [row], max_length=10**6)
    return ex.ids[0][:-1], ex.n_prompt[0]


def test_nll_is_the_training_tokens_unbatched_nll(student, bench, tmp_path):
    from mathrecipes.decoding import load_student

    out = tmp_path / "lik.parquet"
    summary = score_file(student, bench, str(out), SPEC, progress=False, threads=1)
    table = pq.read_table(out)
    assert {f.name: str(f.type) for f in table.schema} == COLUMNS
    assert table.column_names == list(COLUMNS)
    got = table.to_pylist()
    with_solution = {r["id"]: r for r in bench_rows() if r["solution"].strip()}
    assert [r["problem_id"] for r in got] == sorted(with_solution)  # empty solutions left out
    tok, model = load_student(student, "cpu", "eager")
    lengths = set()
    for r in got:
        row = with_solution[r["problem_id"]]
        ids, n_prompt = training_example(tok, row)
        lengths.add(len(ids))
        assert r["tokens"] == len(ids) - n_prompt and not r["truncated"]
        assert r["bytes"] == len(row["solution"].strip().encode("utf-8"))
        assert r["nll"] == pytest.approx(hand_nll(model, ids, n_prompt), rel=1e-5, abs=1e-5)
    assert len(lengths) > 4  # batches really were padded
    utf8 = next(r for r in got if r["problem_id"] == "b/015")  # √ and × take 3 and 2 bytes
    assert utf8["bytes"] == len(with_solution["b/015"]["solution"]) + 3
    total_nll, total_bytes = sum(r["nll"] for r in got), sum(r["bytes"] for r in got)
    assert summary["rows"] == 17 and summary["scored"] == 15 and summary["left_out"] == 2
    assert summary["truncated"] == 0 and summary["bytes"] == total_bytes
    assert summary["nll"] == pytest.approx(total_nll)
    assert summary["bits_per_byte"] == pytest.approx(total_nll / math.log(2) / total_bytes)
    assert summary["tokens"] == sum(r["tokens"] for r in got)
    # per token the random student is far from uniform (the check above compares real numbers)
    per_token = [r["nll"] / r["tokens"] for r in got]
    assert max(per_token) - min(per_token) > 0.1

    again = tmp_path / "again.parquet"
    score_file(student, bench, str(again), SPEC, progress=False, threads=1)
    assert again.read_bytes() == out.read_bytes()  # deterministic, no timing column


def test_batch_size_and_padding_do_not_change_the_numbers(student, bench, tmp_path):
    results = {}
    for size in (1, 3, 64):
        out = tmp_path / f"b{size}.parquet"
        score_file(student, bench, str(out), {**SPEC, "batch_size": size}, progress=False)
        results[size] = read(out)
    for a, b, c in zip(results[1], results[3], results[64], strict=True):
        assert a["problem_id"] == b["problem_id"] == c["problem_id"]
        assert a["tokens"] == b["tokens"] == c["tokens"] and a["bytes"] == b["bytes"] == c["bytes"]
        assert b["nll"] == pytest.approx(a["nll"], rel=1e-5, abs=1e-5)
        assert c["nll"] == pytest.approx(a["nll"], rel=1e-5, abs=1e-5)


def test_rows_longer_than_the_window_keep_the_targets_first_tokens(tmp_path):
    from mathrecipes.decoding import load_student

    long_solution = "\n".join(f"Step {k}: 1 + 2 + 3 = 6" for k in range(12)) + "\n\\boxed{6}"
    rows = [
        record(0, "What is 1 + 2?", "1 + 2 = 3\n\\boxed{3}"),  # fits
        record(1, "What is 1 + 2 + 3?", long_solution),  # cut
        record(2, "What is " + " + ".join(["1"] * 40) + "?", "\\boxed{40}"),  # prompt too long
        record(3, "What is 4 + 4?", ""),
    ]
    bench = tmp_path / "b.parquet"
    write_records(rows, bench)
    window = 48
    student = str(make_student(tmp_path / "short", max_positions=window))
    tok, model = load_student(student, "cpu", "eager")
    out = tmp_path / "lik.parquet"
    summary = score_file(student, str(bench), str(out), SPEC, progress=False)
    got = {r["problem_id"]: r for r in read(out)}
    assert set(got) == {"b/000", "b/001", "b/002"}

    ids, n_prompt = training_example(tok, rows[0])
    assert len(ids) <= window and not got["b/000"]["truncated"]
    assert got["b/000"]["nll"] == pytest.approx(hand_nll(model, ids, n_prompt), rel=1e-5)

    ids, n_prompt = training_example(tok, rows[1])
    assert n_prompt < window < len(ids)
    cut = got["b/001"]
    assert cut["truncated"] and cut["tokens"] == window - n_prompt
    assert cut["nll"] == pytest.approx(hand_nll(model, ids[:window], n_prompt), rel=1e-5)
    kept_text = tok.decode(ids[n_prompt:window], clean_up_tokenization_spaces=False)
    assert cut["bytes"] == len(kept_text.removeprefix(" ").encode())
    assert 0 < cut["bytes"] < len(long_solution.encode())

    ids, n_prompt = training_example(tok, rows[2])
    assert n_prompt >= window  # nothing of the target fits: scored as nothing, not a crash
    assert got["b/002"] == {"problem_id": "b/002", "nll": 0.0, "tokens": 0, "bytes": 0,
                            "truncated": True}  # fmt: skip
    assert summary["truncated"] == 2 and summary["left_out"] == 1 and summary["scored"] == 3


def test_a_benchmark_without_solutions_is_skipped(student, tmp_path):
    bench = tmp_path / "answers_only.parquet"
    write_records([record(0, "What is 1 + 1?", ""), record(1, "What is 2 + 1?", " ")], bench)
    out = tmp_path / "lik.parquet"
    summary = score_file(student, str(bench), str(out), SPEC, benchmark="gsm", progress=False)
    assert summary == {"skipped": "benchmark gsm has no reference solutions"}
    table = pq.read_table(out)
    assert table.num_rows == 0 and {f.name: str(f.type) for f in table.schema} == COLUMNS


def test_bad_spec_names_the_key(student, bench, tmp_path):
    out = str(tmp_path / "x.parquet")
    with pytest.raises(LikelihoodSpecError, match="missing key.*batch_size"):
        score_file(student, bench, out, {"dtype": "auto", "attn_implementation": "auto"})
    with pytest.raises(LikelihoodSpecError, match="likelihood.batch_size"):
        score_file(student, bench, out, {**SPEC, "batch_size": 0})
    with pytest.raises(LikelihoodSpecError, match="generation.dtype"):
        score_file(student, bench, out, {**SPEC, "dtype": "int8"})


# ------------------------------------------------------------------ resume


class Crash(RuntimeError):
    pass


ORIGINAL = likelihood.target_nll


def crash_after(monkeypatch, n_batches: int) -> list[int]:
    """Make the forward raise on its (n_batches + 1)-th batch; returns the call counter."""
    calls = [0]

    def forward(*args, **kw):
        calls[0] += 1
        if calls[0] > n_batches:
            raise Crash("simulated kill")
        return ORIGINAL(*args, **kw)

    monkeypatch.setattr(likelihood, "target_nll", forward)
    return calls


def saved_batches(progress: Path) -> int:
    return max(progress.read_bytes().count(b"\n") - 1, 0) if progress.exists() else 0


def test_resume_after_a_kill_writes_the_same_file(student, bench, tmp_path, monkeypatch, caplog):
    spec = {**SPEC, "batch_size": 3}  # 15 scored rows: 5 batches
    reference = tmp_path / "reference.parquet"
    score_file(student, bench, str(reference), spec, progress=False, threads=1)
    resume, out = tmp_path / "resume", tmp_path / "out.parquet"

    crash_after(monkeypatch, 2)
    with pytest.raises(Crash):
        score_file(
            student, bench, str(out), spec, progress=False, threads=1, resume_dir=str(resume)
        )
    progress = resume / "progress.jsonl"
    assert saved_batches(progress) == 2 and not out.exists()
    with open(progress, "ab") as fh:  # what a kill in the middle of a write leaves
        fh.write(b'{"batch": 2, "rows": [{"problem_id": "b/0')

    calls = crash_after(monkeypatch, 99)
    with caplog.at_level(logging.WARNING, logger="mathrecipes.likelihood"):
        summary = score_file(
            student, bench, str(out), spec, progress=False, threads=1, resume_dir=str(resume)
        )
    assert any("torn" in r.getMessage() for r in caplog.records)
    assert calls[0] == 3  # batches 2..4 only
    assert summary["recovered_rows"] == 6
    assert out.read_bytes() == reference.read_bytes()
    assert not resume.exists()  # progress deleted once the parquet is written


def test_progress_of_another_spec_is_not_reused(student, bench, tmp_path, monkeypatch):
    resume, out = tmp_path / "resume", tmp_path / "out.parquet"
    crash_after(monkeypatch, 2)
    with pytest.raises(Crash):
        score_file(student, bench, str(out), {**SPEC, "batch_size": 3}, progress=False,
                   resume_dir=str(resume))  # fmt: skip
    header = json.loads((resume / "progress.jsonl").read_text().splitlines()[0])
    calls = crash_after(monkeypatch, 99)
    # another dtype: another key, whatever the batches
    score_file(student, bench, str(out), {**SPEC, "batch_size": 3, "dtype": "auto"},
               progress=False, resume_dir=str(resume))  # fmt: skip
    assert calls[0] == 5 and header["batches"] == 5
