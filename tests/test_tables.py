import json
import math

import polars as pl
import pytest

from mathrecipes.tables import make_tables, mean_ci, t975


def _grades(path, verdicts):
    pl.DataFrame(
        {
            "problem_id": [f"b/{i}" for i in range(len(verdicts))],
            "sample": [0] * len(verdicts),
            "verdict": verdicts,
        }
    ).write_parquet(path)


def _setup(tmp_path):
    """Two recipes x two seeds x one benchmark with known accuracies."""
    acc = {("more", 0): 5, ("more", 1): 7, ("better", 0): 9, ("better", 1): 8}  # correct of 10
    entries = []
    for recipe in ("more", "better"):
        rdir = tmp_path / "recipes" / recipe
        rdir.mkdir(parents=True)
        (rdir / "stats.json").write_text(json.dumps({"examples": 300 if recipe == "more" else 100}))
        for seed in (0, 1):
            ck = tmp_path / "ck" / recipe / f"seed-{seed}"
            ck.mkdir(parents=True)
            (ck / "train_summary.json").write_text(json.dumps({"train_tokens": 1234, "steps": 10}))
            g = tmp_path / f"g-{recipe}-{seed}.parquet"
            k = acc[(recipe, seed)]
            verdicts = ["correct"] * k + ["incorrect"] * (9 - k) + ["gold_unparseable"]
            if k < 9:
                verdicts[k] = "no_answer"
            _grades(g, verdicts)
            entries.append({"student": "s", "recipe": recipe, "seed": seed, "benchmark": "b",
                            "grades": str(g), "checkpoint": str(ck), "train": str(rdir / "train.parquet"),
                            "stats": str(rdir / "stats.json"), "synth": []})  # fmt: skip
    return entries


def test_scores_intervals_and_deltas(tmp_path):
    entries = _setup(tmp_path)
    scores = make_tables(entries, "more", tmp_path / "t", tmp_path / "f.png")
    better = scores.filter(pl.col("recipe") == "better").row(0, named=True)
    more = scores.filter(pl.col("recipe") == "more").row(0, named=True)
    # gold_unparseable rows are excluded: 9 scored rows per file
    assert more["accuracy"] == pytest.approx((5 / 9 + 7 / 9) / 2)
    assert better["accuracy"] == pytest.approx((9 / 9 + 8 / 9) / 2)
    sd = math.sqrt(((5 / 9 - 6 / 9) ** 2 + (7 / 9 - 6 / 9) ** 2) / 1)
    assert more["ci95"] == pytest.approx(12.7062 * sd / math.sqrt(2))
    assert better["delta_vs_baseline"] == pytest.approx(better["accuracy"] - more["accuracy"])
    assert more["delta_vs_baseline"] == pytest.approx(0.0)
    assert better["train_examples"] == 100 and better["train_tokens"] == 1234
    assert more["gold_unparseable"] == 1 and better["seeds"] == 2
    md = (tmp_path / "t" / "scores.md").read_text()
    assert "`more` (baseline)" in md and "± " in md
    assert (tmp_path / "f.png").stat().st_size > 1000
    assert (tmp_path / "t" / "per_seed.csv").read_text().count("\n") == 5
    prov = json.loads((tmp_path / "t" / "provenance.json").read_text())
    assert set(prov["s/better/b"]["seeds"]) == {"0", "1"}


def test_tables_are_byte_identical_when_rerun(tmp_path):
    entries = _setup(tmp_path)
    make_tables(entries, "more", tmp_path / "a", tmp_path / "a.png")
    make_tables(entries, "more", tmp_path / "b", tmp_path / "b.png")
    for name in ("scores.csv", "per_seed.csv", "scores.md", "scores.tex"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_single_seed_has_no_interval(tmp_path):
    entries = [e for e in _setup(tmp_path) if e["seed"] == 0]
    scores = make_tables(entries, "more", tmp_path / "t", tmp_path / "f.png")
    assert scores["ci95"].null_count() == scores.height


def test_t_quantiles():
    assert t975(1) == pytest.approx(12.7062)
    assert t975(1000) == pytest.approx(1.96, abs=1e-3)
    assert mean_ci([1.0]) == (1.0, None)
