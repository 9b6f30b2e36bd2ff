"""Near-duplicate removal (MinHash LSH) and row filters as recipe options."""

from __future__ import annotations

import json
import random

import pyarrow.parquet as pq
import pytest

from mathrecipes.neardup import filter_reason, near_duplicates, shingles
from mathrecipes.records import read_records, write_records
from mathrecipes.selection import select_recipe

WORDS = [
    "apples",
    "pears",
    "stamps",
    "marbles",
    "books",
    "coins",
    "shells",
    "cards",
    "pencils",
    "stickers",
    "cookies",
    "tickets",
    "buttons",
    "flowers",
    "candles",
    "bottles",
    "ribbons",
    "tiles",
    "bricks",
    "seeds",
    "oranges",
    "lemons",
    "crayons",
]


def row(i: int, problem: str, **kw) -> dict:
    base = {
        "id": f"p/{i:03d}",
        "source": "p",
        "problem": problem,
        "solution": kw.pop("solution", "x"),
        "answer": "1",
        "answer_type": kw.pop("answer_type", "integer"),
        "meta": json.dumps(kw.pop("meta", {})),
    }
    return base


def sentence(rng: random.Random, n: int = 30) -> str:
    return " ".join(rng.choice(WORDS) + str(rng.randrange(100)) for _ in range(n))


def test_near_duplicates_find_edited_copies_and_keep_the_earliest_id():
    rng = random.Random(0)
    originals = [sentence(rng) for _ in range(40)]
    rows = [row(i, text) for i, text in enumerate(originals)]
    # copies with their last word changed: Jaccard of 5-word shingles 25/27 = 0.93
    planted = {}
    for k, src in enumerate((3, 17, 29)):
        words = originals[src].split()
        words[-1] = "zebra"
        rows.append(row(100 + k, " ".join(words)))
        planted[f"p/{100 + k:03d}"] = f"p/{src:03d}"
    rng.shuffle(rows)
    kept, removed = near_duplicates(rows, threshold=0.8, num_perm=128, ngram=5)
    assert {d.row_id: d.duplicate_of for d in removed} == planted
    assert all(0.8 <= d.jaccard <= 1 for d in removed)
    assert [r["id"] for r in kept] == sorted(f"p/{i:03d}" for i in range(40))
    # a strict threshold keeps them all; the order of the input does not matter
    assert near_duplicates(rows, threshold=0.97, num_perm=256)[1] == []
    with pytest.raises(ValueError, match="near_dedup.threshold"):
        near_duplicates(rows, threshold=0.999)
    assert near_duplicates(list(reversed(rows)), threshold=0.8)[1] == removed


def test_shingles_normalize_and_short_texts():
    assert shingles("What  is 1+1?", 5) == shingles("what is 1 + 1 ?", 5)
    assert len(shingles("a b", 5)) == 1


def test_filter_reasons():
    r = row(1, "What is 2+2?", solution="s" * 50, answer_type="integer", meta={"pass_rate": 0.25})
    assert filter_reason(r, {}) is None
    assert filter_reason(r, {"max_solution_chars": 10}).startswith("solution_too_long")
    assert filter_reason(r, {"min_problem_chars": 100}).startswith("problem_too_short")
    assert filter_reason(r, {"answer_types": ["fraction"]}).startswith("answer_type")
    assert filter_reason(r, {"min_pass_rate": 0.5}) == "pass_rate: 0.25 < 0.5"
    assert filter_reason(r, {"max_pass_rate": 0.2}) == "pass_rate: 0.25 > 0.2"
    assert filter_reason(r, {"min_pass_rate": 0.1, "max_pass_rate": 0.9}) is None
    no_rate = row(2, "x")
    assert "no meta.pass_rate" in filter_reason(no_rate, {"min_pass_rate": 0.1})


@pytest.fixture
def pool(tmp_path):
    rng = random.Random(1)
    texts = [sentence(rng) for _ in range(30)]
    rows = [
        row(i, t, solution="step " * (i + 1), meta={"pass_rate": (i % 5) / 4})
        for i, t in enumerate(texts)
    ]
    # planted duplicates that pass the filters, so that dedup and near dedup see them
    near = texts[4].split()
    near[-1] = "zebra"
    rows.append(row(50, " ".join(near), meta={"pass_rate": 0.5}))  # p/004 with one word changed
    rows.append(row(51, texts[7].upper(), meta={"pass_rate": 0.5}))  # p/007 after normalization
    path = tmp_path / "pool.parquet"
    write_records(rows, path)
    return path


def test_recipe_filters_and_near_dedup_are_recorded_in_removed_parquet(pool, tmp_path):
    spec = {
        "mix": [{"from": "p", "weight": None}],
        "volume": {"fraction": 1.0},
        "dedup": True,
        "near_dedup": {"enabled": True, "threshold": 0.8, "num_perm": 128, "ngram": 5},
        "filters": {"min_pass_rate": 0.25, "max_solution_chars": 100},
        "seed": 0,
        "decontaminate": {"enabled": False},
    }
    out = tmp_path / "r"
    stats = select_recipe(
        "r", spec, {"p": [pool]}, {}, out / "train.parquet", out / "stats.json",
        out / "contamination.parquet", out / "removed.parquet",
    )  # fmt: skip
    removed = pq.read_table(out / "removed.parquet").to_pylist()
    by_stage: dict[str, dict[str, dict]] = {}
    for r in removed:
        by_stage.setdefault(r["stage"], {})[r["train_id"]] = r
    part = stats["parts"][0]
    # the first failing check names the reason: solutions longer than 100 characters
    # ("step " * (i + 1), i >= 20: 10 rows), then pass_rate 0 (i % 5 == 0 below 20: 4 rows)
    too_long = {f"p/{i:03d}" for i in range(20, 30)}
    rate_0 = {f"p/{i:03d}" for i in range(0, 20, 5)}
    assert part["filtered_removed"] == {"pass_rate": 4, "solution_too_long": 10}
    assert {i: r["reason"].split(":")[0] for i, r in by_stage["filter"].items()} == {
        **dict.fromkeys(too_long, "solution_too_long"),
        **dict.fromkeys(rate_0, "pass_rate"),
    }
    # the planted copies passed the filters: exact dedup takes p/051, near dedup p/050
    assert set(by_stage) == {"filter", "dedup", "near_dedup"}
    (exact,) = by_stage["dedup"].values()
    assert (exact["train_id"], exact["duplicate_of"]) == ("p/051", "p/007")
    (near,) = by_stage["near_dedup"].values()
    assert (near["train_id"], near["duplicate_of"]) == ("p/050", "p/004")
    kind, estimate = near["reason"].rsplit(" ", 1)  # of 25 / 27 = 0.93 (shingles shared)
    assert kind == "minhash jaccard" and 0.8 <= float(estimate) <= 1
    assert (part["duplicates_removed"], part["near_duplicates_removed"]) == (1, 1)
    kept = {r["id"] for r in read_records(out / "train.parquet")}
    assert kept == {f"p/{i:03d}" for i in range(20)} - rate_0
    assert len(kept) + len(removed) == 32


def test_recipe_near_dedup_removes_the_edited_copy(tmp_path):
    rng = random.Random(2)
    texts = [sentence(rng) for _ in range(20)]
    rows = [row(i, t) for i, t in enumerate(texts)]
    near = texts[4].split()
    near[-1] = "zebra"
    rows.append(row(50, " ".join(near)))
    rows.append(row(51, texts[7].upper()))
    write_records(rows, tmp_path / "pool.parquet")
    spec = {
        "mix": [{"from": "p", "weight": None}],
        "volume": {"fraction": 1.0},
        "dedup": True,
        "near_dedup": {"enabled": True, "threshold": 0.8},
        "seed": 0,
        "decontaminate": {"enabled": False},
    }
    out = tmp_path / "r"
    stats = select_recipe(
        "r", spec, {"p": [tmp_path / "pool.parquet"]}, {}, out / "train.parquet",
        out / "stats.json", out / "contamination.parquet", out / "removed.parquet",
    )  # fmt: skip
    removed = {r["train_id"]: r for r in pq.read_table(out / "removed.parquet").to_pylist()}
    assert removed["p/051"]["stage"] == "dedup" and removed["p/051"]["duplicate_of"] == "p/007"
    assert removed["p/050"]["stage"] == "near_dedup"
    assert removed["p/050"]["duplicate_of"] == "p/004"
    assert stats["parts"][0]["near_duplicates_removed"] == 1
    assert stats["examples"] == 20
