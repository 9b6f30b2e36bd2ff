"""The tables stage on hand-made grade files: paired intervals, verdicts, metrics, outputs."""

import json
import math

import numpy as np
import polars as pl
import pytest

from mathrecipes import stats
from mathrecipes.tables import make_tables


def _grades(path, verdicts, samples=1, groups=None):
    n = len(verdicts) // samples
    pl.DataFrame(
        {
            "problem_id": [f"b/{i:03d}" for i in range(n) for _ in range(samples)],
            "sample": [s for _ in range(n) for s in range(samples)],
            "verdict": verdicts,
            "answer_group": groups if groups is not None else [0] * len(verdicts),
        },
        schema_overrides={"answer_group": pl.Int64},
    ).write_parquet(path)


def _entry(tmp_path, recipe, seed, grades, bench="b", likelihood=None, student="s"):
    rdir = tmp_path / "recipes" / recipe
    rdir.mkdir(parents=True, exist_ok=True)
    (rdir / "stats.json").write_text(json.dumps({"examples": 300 if recipe == "more" else 100}))
    ck = tmp_path / "ck" / student / recipe / f"seed-{seed}"
    ck.mkdir(parents=True, exist_ok=True)
    (ck / "train_summary.json").write_text(json.dumps({"train_tokens": 1234, "steps": 10}))
    return {"student": student, "recipe": recipe, "seed": seed, "benchmark": bench,
            "grades": str(grades), "checkpoint": str(ck), "train": str(rdir / "train.parquet"),
            "stats": str(rdir / "stats.json"), "synth": [], "likelihood": likelihood}  # fmt: skip


def _setup(tmp_path, seeds=(0, 1)):
    """Two recipes x seeds x one benchmark of 40 problems; `better` solves 10 more."""
    rng = np.random.default_rng(0)
    entries = []
    for recipe, solved in (("more", 16), ("better", 26)):
        for seed in seeds:
            correct = (
                set(rng.choice(40, solved, replace=False).tolist()) if seed else set(range(solved))
            )
            verdicts = ["correct" if i in correct else "incorrect" for i in range(40)]
            verdicts[39] = "gold_unparseable"
            if recipe == "more":
                verdicts[38] = "no_answer"
            g = tmp_path / f"g-{recipe}-{seed}.parquet"
            _grades(g, verdicts)
            entries.append(_entry(tmp_path, recipe, seed, g))
    return entries


def _row(scores, recipe, bench="b"):
    return scores.filter((pl.col("recipe") == recipe) & (pl.col("benchmark") == bench)).row(
        0, named=True
    )


def test_paired_delta_interval_and_verdict_with_one_seed(tmp_path):
    entries = [e for e in _setup(tmp_path) if e["seed"] == 0]
    scores = make_tables(entries, "more", tmp_path / "t", tmp_path / "f.png")
    better, more = _row(scores, "better"), _row(scores, "more")
    # the gold_unparseable problem is left out: 39 problems
    assert better["problems"] == 39 and more["gold_unparseable"] == 1
    assert better["accuracy"] == pytest.approx(26 / 39)
    # one 0/1 sample per problem on 39 problems: Wilson
    assert better["interval"] == "wilson"
    assert (better["accuracy_lo"], better["accuracy_hi"]) == pytest.approx(stats.wilson(26, 39))
    # the paired delta: better solves problems 0..25, more 0..15 -> d = 1 on 10 problems
    d = np.array([1.0] * 10 + [0.0] * 29)
    half = stats.t_quantile(0.975, 38) * d.std(ddof=1) / math.sqrt(39)
    assert better["delta_vs_baseline"] == pytest.approx(10 / 39)
    assert better["delta_hi"] - better["delta_vs_baseline"] == pytest.approx(half)
    assert better["verdict"] == "better" and more["verdict"] == "baseline"
    md = (tmp_path / "t" / "scores.md").read_text()
    assert "`more` (baseline)" in md and "**better**" in md
    assert "problems and samples only" in md  # one seed: the table says what is covered
    html = (tmp_path / "t" / "scores.html").read_text()
    assert "<table>" in html and "<b>better</b>" in html
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_two_seeds_add_seed_variance_and_say_so(tmp_path):
    entries = _setup(tmp_path)
    scores = make_tables(entries, "more", tmp_path / "t", tmp_path / "f.png")
    better = _row(scores, "better")
    assert better["seeds"] == 2 and better["interval"] == "t"
    one = make_tables(
        [e for e in entries if e["seed"] == 0], "more", tmp_path / "u", tmp_path / "g.png"
    )
    per_seed = pl.read_csv(tmp_path / "t" / "per_seed.csv").filter(pl.col("recipe") == "better")
    assert better["accuracy"] == pytest.approx(per_seed["accuracy"].mean())
    assert better["delta_hi"] - better["delta_lo"] > 0
    assert _row(one, "better")["delta_hi"] != better["delta_hi"]
    assert "training seeds" in (tmp_path / "t" / "scores.md").read_text()
    rel = pl.read_csv(tmp_path / "t" / "reliability.csv")
    assert rel["seeds"].to_list() == [2] and rel["mde"][0] > 0
    # one sample per problem: the sample part cannot be told from the problem part
    assert rel["share_samples"][0] is None
    assert rel["share_problems"][0] + rel["share_seeds"][0] == pytest.approx(1.0)


def test_tables_are_byte_identical_when_rerun(tmp_path):
    entries = _setup(tmp_path, seeds=(0,))
    for name in ("a", "b"):
        make_tables(entries, {"baseline": "more", "wilson_below": 0}, tmp_path / name,
                    tmp_path / f"{name}.png")  # fmt: skip
    assert pl.read_csv(tmp_path / "a" / "scores.csv")["interval"][0] == "bootstrap"
    for name in ("scores.csv", "per_seed.csv", "reliability.csv", "scores.md", "scores.tex"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_pass_at_k_and_maj_at_k_from_samples(tmp_path):
    """Four samples per problem. Problem 0: one correct -> pass@4 = 1, pass@1 = 1/4; the three
    wrong answers are one equivalence group (1/2, 0.5, \\frac12) -> maj@4 = 0 although a string
    vote would split them. Problem 1: two correct of four -> maj@4 is a tie of two groups."""
    rows = {
        "more": (
            ["correct", "incorrect", "incorrect", "incorrect"] + ["correct", "correct", "incorrect", "incorrect"],
            [0, 1, 1, 1] + [0, 0, 1, 1],
        ),
        "better": (["correct"] * 4 + ["correct", "correct", "correct", "incorrect"], [0] * 4 + [0, 0, 0, 1]),
    }  # fmt: skip
    entries = []
    for recipe, (verdicts, groups) in rows.items():
        g = tmp_path / f"{recipe}.parquet"
        _grades(g, verdicts, samples=4, groups=groups)
        entries.append(_entry(tmp_path, recipe, 0, g))
    scores = make_tables(entries, "more", tmp_path / "t", tmp_path / "f.png")
    more, better = _row(scores, "more"), _row(scores, "better")
    assert more["samples"] == 4
    assert more["accuracy"] == pytest.approx((1 / 4 + 2 / 4) / 2)
    assert more["pass@4"] == pytest.approx(1.0)
    assert more["maj@4"] == pytest.approx((0 + 0.5) / 2)
    assert better["maj@4"] == pytest.approx(1.0)
    assert better["maj@4_delta"] == pytest.approx(0.75)
    make_tables(entries, {"baseline": "more", "metrics": ["accuracy", "pass@2"]},
                tmp_path / "u", tmp_path / "g.png")  # fmt: skip
    cols = pl.read_csv(tmp_path / "u" / "scores.csv").columns
    assert "pass@2" in cols and "maj@4" not in cols
    p2 = pl.read_csv(tmp_path / "u" / "scores.csv").filter(pl.col("recipe") == "more")["pass@2"][0]
    assert p2 == pytest.approx((1 - 3 / 6 + 1 - 1 / 6) / 2)  # 1 - C(3,2)/C(4,2), 1 - C(2,2)/C(4,2)


def _likelihood(path, nll, nbytes):
    pl.DataFrame(
        {
            "problem_id": [f"b/{i:03d}" for i in range(len(nll))],
            "nll": nll,
            "tokens": [5] * len(nll),
            "bytes": nbytes,
            "truncated": [False] * len(nll),
        }  # fmt: skip
    ).write_parquet(path)


def test_bits_per_byte_paired_and_lower_is_better(tmp_path):
    entries = [e for e in _setup(tmp_path) if e["seed"] == 0]
    rng = np.random.default_rng(1)
    base = rng.uniform(20, 40, 40)
    for e in entries:
        lk = tmp_path / f"lk-{e['recipe']}.parquet"
        nll = base - (3.0 if e["recipe"] == "better" else 0.0) + rng.normal(0, 0.5, 40)
        _likelihood(lk, nll.tolist(), [30] * 40)
        e["likelihood"] = str(lk)
    scores = make_tables(entries, "more", tmp_path / "t", tmp_path / "f.png")
    better = _row(scores, "better")
    assert better["bpb_delta"] < 0 and better["bpb_verdict"] == "better"
    assert better["bpb_interval"] == "bootstrap"
    per_seed = pl.read_csv(tmp_path / "t" / "per_seed.csv")
    assert per_seed["bpb"].null_count() == 0


def test_a_benchmark_without_reference_solutions_is_noted_not_an_error(tmp_path):
    entries = [e for e in _setup(tmp_path) if e["seed"] == 0]
    for e in entries:
        lk = tmp_path / f"lk-{e['recipe']}.parquet"
        _likelihood(lk, [], [])
        e["likelihood"] = str(lk)
    scores = make_tables(entries, "more", tmp_path / "t", tmp_path / "f.png")
    assert scores["bpb"].null_count() == scores.height
    assert "has no reference solutions" in (tmp_path / "t" / "scores.md").read_text()


def test_two_students_agreement(tmp_path):
    entries = []
    for student, solved in (("small", {"more": 10, "better": 20, "mid": 15}),
                            ("large", {"more": 20, "better": 30, "mid": 10})):  # fmt: skip
        for recipe, k in solved.items():
            g = tmp_path / f"{student}-{recipe}.parquet"
            _grades(g, ["correct"] * k + ["incorrect"] * (40 - k))
            entries.append(_entry(tmp_path, recipe, 0, g, student=student))
    make_tables(entries, "more", tmp_path / "t", tmp_path / "f.png")
    agree = pl.read_csv(tmp_path / "t" / "agreement.csv")
    # pairs: (better, mid), (better, more), (mid, more): the students disagree on mid vs more
    assert agree.row(0, named=True)["recipe_pairs"] == 3
    assert agree.row(0, named=True)["same_order"] == 2


def test_a_recipe_that_solves_nothing_draws_and_tabulates(tmp_path):
    entries = []
    for recipe in ("more", "better"):
        g = tmp_path / f"{recipe}.parquet"
        _grades(g, ["incorrect"] * 24)
        entries.append(_entry(tmp_path, recipe, 0, g))
    scores = make_tables(entries, "more", tmp_path / "t", tmp_path / "f.png")
    better = _row(scores, "better")
    assert (better["accuracy"], better["accuracy_lo"]) == (0.0, 0.0)
    assert better["verdict"] == "inconclusive" and better["p_value"] == 1.0
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_contamination_section_from_the_recipes_stats(tmp_path):
    entries = _setup(tmp_path, seeds=(0,))
    zero = {"verbatim": 0, "normalized": 0, "ngram": 0}
    found = {
        "enabled": True, "benchmarks": {"b": 40}, "matches": 4, "rows_removed": 3,
        "by_method": {**zero, "verbatim": 1, "ngram": 2},
        "by_benchmark": {"b": {"rows_removed": 3, "matches": 4, "benchmark_problems_hit": 2,
                               "by_method": {**zero, "verbatim": 1, "ngram": 2}}},
        "by_pool": {"distilled": {"type": "synthesis", "rows_removed": 3, "matches": 4,
                                  "by_benchmark": {"b": 3},
                                  "by_method": {**zero, "verbatim": 1, "ngram": 2}}},
    }  # fmt: skip
    clean = {**found, "matches": 0, "rows_removed": 0, "by_method": zero,
             "by_benchmark": {"b": {"rows_removed": 0, "matches": 0,
                                    "benchmark_problems_hit": 0, "by_method": zero}},
             "by_pool": {}}  # fmt: skip
    for recipe, block in (("more", clean), ("better", found)):
        path = tmp_path / "recipes" / recipe / "stats.json"
        # sorted keys, as select_recipe writes them (ngram before verbatim)
        path.write_text(json.dumps({"examples": 100, "decontamination": block}, sort_keys=True))
    make_tables(entries, "more", tmp_path / "t", tmp_path / "f.png")
    md = (tmp_path / "t" / "scores.md").read_text()
    assert md.index("## Contamination") < md.index("## Benchmark reliability")
    assert "| `better` | 3 | 3 (verbatim 1, n-gram 2), 2 problems |" in md
    assert "| `more` | 0 | 0 |" in md
    assert "| `better` | `distilled` (synthesis) | 3 | b 3 | verbatim 1, n-gram 2 |" in md
    page = (tmp_path / "t" / "scores.html").read_text()
    assert (
        "<h2>Contamination</h2>" in page and "<td>3 (verbatim 1, n-gram 2), 2 problems</td>" in page
    )
    # nothing matched: one line
    path = tmp_path / "recipes" / "better" / "stats.json"
    path.write_text(json.dumps({"examples": 100, "decontamination": clean}))
    make_tables(entries, "more", tmp_path / "t", tmp_path / "f.png")
    md = (tmp_path / "t" / "scores.md").read_text()
    assert "## Contamination\n\nNo training row matched a benchmark (checked: b).\n" in md
