"""Decontamination on real public files: the known overlaps are found, templates are not."""

import json

import pytest

from mathrecipes.decontam import BenchmarkIndex, Match


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _rows(items, field="problem"):
    return [{"id": str(i), "problem": r[field]} for i, r in enumerate(items)]


@pytest.fixture(scope="module")
def real(shared_data):
    d = shared_data
    return {
        "math500": _rows(_jsonl(d / "eval/math500/test.jsonl")),
        "math": _rows(_jsonl(d / "eval/math/test.jsonl")),
        "gsm8k_test": _rows(_jsonl(d / "eval/gsm8k/test.jsonl"), "question"),
        "gsm8k_train": _rows(_jsonl(d / "train/gsm8k/train.jsonl"), "question"),
        "aime": _rows(json.loads((d / "train/deepscaler/aime.json").read_text())),
        "math_train": _rows(_jsonl(d / "train/math/train.jsonl")),
    }


def _hits(index: BenchmarkIndex, rows, bench) -> dict[str, set[str]]:
    """train id -> kinds of its matches against ``bench``."""
    out: dict[str, set[str]] = {}
    for r in rows:
        kinds = {m.kind for m in index.matches(r["id"], r["problem"]) if m.benchmark == bench}
        if kinds:
            out[r["id"]] = kinds
    return out


@pytest.fixture(scope="module")
def index(real):
    return BenchmarkIndex(
        {"math500": real["math500"], "math": real["math"], "gsm8k": real["gsm8k_test"]}, n=13
    )


def test_every_math500_problem_is_found_in_the_math_test_split(real):
    idx = BenchmarkIndex({"math": real["math"]}, n=13)
    hits = _hits(idx, real["math500"], "math")
    assert len(hits) == 500
    assert sum("verbatim" in k for k in hits.values()) == 500


def test_deepscaler_aime_overlaps(real, index):
    in500 = _hits(index, real["aime"], "math500")
    inmath = _hits(index, real["aime"], "math")
    # the data README's verbatim counts ...
    assert sum("verbatim" in k for k in in500.values()) == 3
    assert sum("verbatim" in k for k in inmath.values()) == 20
    # ... plus copies that differ in spacing, punctuation or LaTeX, which are the same problems
    assert 3 < len(in500) <= 8 and 20 < len(inmath) <= 70
    print(f"\nAIME in MATH-500: {len(in500)}, in MATH test: {len(inmath)}")


def test_no_overlap_between_gsm8k_train_and_test(real, index):
    assert _hits(index, real["gsm8k_train"], "gsm8k") == {}


def test_classic_any_ngram_rule_flags_templates(real):
    """min_overlap=0 is the classic rule; on GSM8K it flags template siblings, not copies."""
    idx = BenchmarkIndex({"gsm8k": real["gsm8k_test"]}, n=13, min_overlap=0.0)
    hits = _hits(idx, real["gsm8k_train"], "gsm8k")
    assert 0 < len(hits) < 10
    assert all(k == {"ngram"} for k in hits.values())


def test_math_train_has_one_verbatim_math_test_problem(real, index):
    hits = _hits(index, real["math_train"], "math")
    assert sum("verbatim" in k for k in hits.values()) == 1
    assert not any("verbatim" in k for k in _hits(index, real["math_train"], "math500").values())


def test_match_reports_overlap_and_evidence():
    idx = BenchmarkIndex(
        {"b": [{"id": "1", "problem": " ".join(f"w{i}" for i in range(20))}]}, n=13
    )
    (m,) = idx.matches("t", "Preamble. " + " ".join(f"w{i}" for i in range(20)))
    assert isinstance(m, Match) and m.kind == "ngram" and m.overlap == 1.0
    assert m.evidence.startswith("w")
    assert idx.matches("t", " ".join(f"w{i}" for i in range(8))) == []
    with pytest.raises(ValueError, match="min_overlap"):
        BenchmarkIndex({}, min_overlap=2)
