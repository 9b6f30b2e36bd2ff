"""Contamination per benchmark, pool and method: the summary, selection's stats.json, the tables."""

import json

import pyarrow as pa
import pytest

from mathrecipes.contamination import contamination_summary
from mathrecipes.records import write_records
from mathrecipes.selection import CONTAM_FIELDS, select_recipe
from mathrecipes.tables.render import contamination_markdown, html_page


def _m(train_id, part, bench, bid, kind):
    return {"train_id": train_id, "part": part, "benchmark": bench, "benchmark_id": bid,
            "kind": kind, "overlap": 1.0, "evidence": ""}  # fmt: skip


HANDMADE = [
    # a/1 matches two math500 problems (verbatim, n-gram) and one gsm8k problem (normalized)
    _m("a/1", "a", "math500", "m1", "verbatim"),
    _m("a/1", "a", "math500", "m2", "ngram"),
    _m("a/1", "a", "gsm8k", "g1", "normalized"),
    _m("a/2", "a", "math500", "m1", "ngram"),
    # s/1 (a synthesis pool) matches two gsm8k problems by n-grams
    _m("s/1", "s", "gsm8k", "g2", "ngram"),
    _m("s/1", "s", "gsm8k", "g3", "ngram"),
]


def test_summary_counts_rows_per_benchmark_and_strongest_method():
    table = pa.Table.from_pylist(HANDMADE)
    got = contamination_summary(table, ["a", "s", "b"], ["gsm8k", "math500", "aime"],
                                {"a": "dataset", "s": "synthesis", "b": "dataset"})  # fmt: skip
    assert got["by_method"] == {"verbatim": 1, "normalized": 0, "ngram": 2}
    assert got["by_benchmark"] == {
        "aime": {"rows_removed": 0, "matches": 0, "benchmark_problems_hit": 0,
                 "by_method": {"verbatim": 0, "normalized": 0, "ngram": 0}},
        # a/1 counts under gsm8k (normalized) and under math500 (verbatim, its strongest there)
        "gsm8k": {"rows_removed": 2, "matches": 3, "benchmark_problems_hit": 3,
                  "by_method": {"verbatim": 0, "normalized": 1, "ngram": 1}},
        "math500": {"rows_removed": 2, "matches": 3, "benchmark_problems_hit": 2,
                    "by_method": {"verbatim": 1, "normalized": 0, "ngram": 1}},
    }  # fmt: skip
    assert got["by_pool"] == {
        "a": {"type": "dataset", "rows_removed": 2, "matches": 4,
              "by_benchmark": {"aime": 0, "gsm8k": 1, "math500": 2},
              "by_method": {"verbatim": 1, "normalized": 0, "ngram": 1}},
        "s": {"type": "synthesis", "rows_removed": 1, "matches": 2,
              "by_benchmark": {"aime": 0, "gsm8k": 1, "math500": 0},
              "by_method": {"verbatim": 0, "normalized": 0, "ngram": 1}},
        "b": {"type": "dataset", "rows_removed": 0, "matches": 0,
              "by_benchmark": {"aime": 0, "gsm8k": 0, "math500": 0},
              "by_method": {"verbatim": 0, "normalized": 0, "ngram": 0}},
    }  # fmt: skip
    # the same from dicts, and without pool types (no "type" key)
    plain = contamination_summary(HANDMADE, ["a", "s", "b"], ["gsm8k", "math500", "aime"])
    assert "type" not in plain["by_pool"]["a"]
    assert plain["by_benchmark"] == got["by_benchmark"]


def test_summary_of_no_match_and_of_bad_rows():
    empty = contamination_summary([], ["a"], ["gsm8k"])
    assert empty["by_pool"]["a"]["rows_removed"] == 0
    assert empty["by_benchmark"]["gsm8k"]["benchmark_problems_hit"] == 0
    with pytest.raises(ValueError, match="pool 'z'"):
        contamination_summary([_m("z/1", "z", "gsm8k", "g", "ngram")], ["a"], ["gsm8k"])
    with pytest.raises(ValueError, match="kind 'fuzzy'"):
        contamination_summary([_m("a/1", "a", "gsm8k", "g", "fuzzy")], ["a"], ["gsm8k"])
    with pytest.raises(ValueError, match="benchmark 'aime'"):
        contamination_summary([_m("a/1", "a", "aime", "g", "ngram")], ["a"], ["gsm8k"])


def _jsonl(path, n=None):
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows[:n] if n else rows


def _record(rid, problem, answer_type="integer"):
    return {"id": rid, "source": rid.split("/")[0], "problem": problem, "solution": "",
            "answer": "1", "answer_type": answer_type, "meta": "{}"}  # fmt: skip


@pytest.fixture(scope="module")
def planted(shared_data, tmp_path_factory):
    """Real benchmarks (MATH-500, the MATH test problems behind it, GSM8K test) and two pools of
    real training problems with planted copies: a dataset (MATH train) and a synthesis entry's
    shards (GSM8K train)."""
    d, tmp = shared_data, tmp_path_factory.mktemp("planted")
    math500 = _jsonl(d / "eval/math500/test.jsonl", 30)
    gsm_test = _jsonl(d / "eval/gsm8k/test.jsonl", 30)
    picked = {r["problem"] for r in math500[:2]}
    math_test = [r for r in _jsonl(d / "eval/math/test.jsonl") if r["problem"] in picked]
    assert len(math_test) == 2, "MATH test holds MATH-500's first two problems verbatim"
    math_test += _jsonl(d / "eval/math/test.jsonl", 30)
    benches = {}
    for name, rows, field in (("math500", math500, "problem"), ("math", math_test, "problem"),
                              ("gsm8k", gsm_test, "question")):  # fmt: skip
        recs = [_record(f"{name}/{i}", r[field]) for i, r in enumerate(rows)]
        write_records(recs, tmp / f"{name}.parquet")
        benches[name] = tmp / f"{name}.parquet"
    math_pool = [_record(f"mt/{i:03d}", r["problem"], "expression")
                 for i, r in enumerate(_jsonl(d / "train/math/train.jsonl", 60))]  # fmt: skip
    math_pool += [
        _record("mt/p-verbatim", math500[0]["problem"]),  # in MATH-500 and in MATH test
        _record("mt/p-normalized", math500[1]["problem"].upper()),
    ]
    gsm_train = _jsonl(d / "train/gsm8k/train.jsonl", 60)
    synth = [_record(f"gd/{i:03d}", r["question"]) for i, r in enumerate(gsm_train)]
    synth += [
        _record("gd/p-ngram", "Here is a word problem. " + gsm_test[0]["question"]),
        _record("gd/p-verbatim", gsm_test[1]["question"]),
        _record("gd/p-normalized", "  " + gsm_test[2]["question"].upper()),
    ]
    write_records(math_pool, tmp / "math_train.parquet")
    write_records(synth[:40], tmp / "shard-0.parquet")
    write_records(synth[40:], tmp / "shard-1.parquet")
    pools = {
        "math_train": [tmp / "math_train.parquet"],
        "gsm_distill": [tmp / "shard-0.parquet", tmp / "shard-1.parquet"],
    }
    spec = {"mix": [{"from": "math_train"}, {"from": "gsm_distill"}], "seed": 0,
            "decontaminate": {"enabled": True, "ngram": 13, "benchmarks": "all"}}  # fmt: skip
    out = tmp / "recipe"
    stats = select_recipe(
        "r", spec, pools, benches, out / "train.parquet", out / "stats.json",
        out / "contamination.parquet", out / "removed.parquet",
        pool_types={"math_train": "dataset", "gsm_distill": "synthesis"},
    )  # fmt: skip
    return stats, out


def test_select_recipe_reports_planted_copies_per_benchmark_pool_and_method(planted):
    stats, out = planted
    decon = stats["decontamination"]
    assert json.loads((out / "stats.json").read_text())["decontamination"] == decon
    assert decon["rows_removed"] == 5 and decon["matches"] == 7  # the totals, as before
    assert decon["by_method"] == {"verbatim": 2, "normalized": 2, "ngram": 1}
    methods = lambda v, n, g: {"verbatim": v, "normalized": n, "ngram": g}  # noqa: E731
    assert decon["by_benchmark"] == {
        "gsm8k": {"rows_removed": 3, "matches": 3, "benchmark_problems_hit": 3,
                  "by_method": methods(1, 1, 1)},
        "math": {"rows_removed": 2, "matches": 2, "benchmark_problems_hit": 2,
                 "by_method": methods(1, 1, 0)},
        "math500": {"rows_removed": 2, "matches": 2, "benchmark_problems_hit": 2,
                    "by_method": methods(1, 1, 0)},
    }  # fmt: skip
    assert decon["by_pool"] == {
        "math_train": {"type": "dataset", "rows_removed": 2, "matches": 4,
                       "by_benchmark": {"gsm8k": 0, "math": 2, "math500": 2},
                       "by_method": methods(1, 1, 0)},
        "gsm_distill": {"type": "synthesis", "rows_removed": 3, "matches": 3,
                        "by_benchmark": {"gsm8k": 3, "math": 0, "math500": 0},
                        "by_method": methods(1, 1, 1)},
    }  # fmt: skip
    for part in stats["parts"]:  # the breakdown agrees with each part's count
        assert part["contaminated_removed"] == decon["by_pool"][part["from"]]["rows_removed"]
    # the breakdown is the summary of contamination.parquet
    import pyarrow.parquet as pq

    table = pq.read_table(out / "contamination.parquet")
    assert tuple(table.column_names) == CONTAM_FIELDS
    again = contamination_summary(table, ["math_train", "gsm_distill"], decon["benchmarks"],
                                  {"math_train": "dataset", "gsm_distill": "synthesis"})  # fmt: skip
    assert {k: decon[k] for k in again} == again

    lines = contamination_markdown({"r": decon, "clean": {**decon, "rows_removed": 0,
                                    "by_benchmark": None, "by_pool": {}}})  # fmt: skip
    md = "\n".join(lines)
    assert "| recipe | rows removed | gsm8k | math | math500 |" in md
    assert ("| `r` | 5 | 3 (verbatim 1, normalized 1, n-gram 1), 3 problems | "
            "2 (verbatim 1, normalized 1), 2 problems | "
            "2 (verbatim 1, normalized 1), 2 problems |") in md  # fmt: skip
    assert "| `clean` | 0 | n/a | n/a | n/a |" in md
    pool_row = "| `r` | `math_train` (dataset) | 2 | math 2, math500 2 | verbatim 1, normalized 1 |"
    assert pool_row in md
    assert ("| `r` | `gsm_distill` (synthesis) | 3 | gsm8k 3 | "
            "verbatim 1, normalized 1, n-gram 1 |") in md  # fmt: skip
    assert "<h2>Contamination</h2>" in html_page(md)


def test_contamination_section_when_nothing_matched_or_off():
    clean = {"enabled": True, "benchmarks": {"gsm8k": 30}, "rows_removed": 0, "matches": 0}
    lines = contamination_markdown({"a": clean, "b": {"enabled": False, "benchmarks": {}}})
    assert lines == [
        "## Contamination",
        "",
        "Decontamination is off for `b`.",
        "",
        "No training row matched a benchmark (checked: gsm8k).",
        "",
    ]
    assert contamination_markdown({"a": None}) == []
