"""Ingest, synthesis and selection as package functions (no Snakemake)."""

import json
import re

import pyarrow.parquet as pq
import pytest

from mathrecipes.ingest import ingest
from mathrecipes.records import RecordError, read_records, write_records
from mathrecipes.selection import SelectionError, quotas, select_recipe
from mathrecipes.synthesis import shard_of, synthesize_shard

BUILTIN = dict(
    source="builtin", generator="arithmetic", split="train", style="answer_only", n=600, seed=1,
    min_steps=2, max_steps=4, max_value=100, on_bad_row="fail",
)  # fmt: skip


@pytest.fixture
def arith(tmp_path):
    out = tmp_path / "arith.parquet"
    ingest("arith", BUILTIN, out, tmp_path / "q.parquet", progress=False)
    return out


@pytest.fixture
def bench(tmp_path):
    out = tmp_path / "bench.parquet"
    spec = {**BUILTIN, "split": "test", "n": 60, "seed": 7}
    ingest("bench", spec, out, tmp_path / "bq.parquet", progress=False)
    return out


def test_builtin_ingest_canonical_schema(arith):
    rows = read_records(arith)
    assert len(rows) == 600
    assert set(rows[0]) == {"id", "source", "problem", "solution", "answer", "answer_type", "meta"}
    assert rows[0]["id"] == "arith/000000" and rows[0]["source"] == "arith"
    assert {r["answer_type"] for r in rows} == {"integer"}
    assert json.loads(rows[0]["meta"])["split"] == "train"


def _jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_local_jsonl_with_field_mapping(tmp_path):
    src = _jsonl(
        tmp_path / "d.jsonl",
        [{"question": "1+1?", "final": "2", "extra": 5}, {"question": "2+2?", "final": "4"}],
    )
    spec = {"source": "local", "path": str(src), "fields": {"problem": "question", "answer": "final"},
            "answer_type": "integer", "on_bad_row": "fail"}  # fmt: skip
    summary = ingest("loc", spec, tmp_path / "o.parquet", tmp_path / "q.parquet", progress=False)
    rows = read_records(tmp_path / "o.parquet")
    assert summary["rows"] == 2 and rows[0]["answer"] == "2" and rows[0]["id"] == "loc/0000000"
    assert json.loads(rows[0]["meta"]) == {"extra": 5}


def test_row_without_answer_fails_naming_file_and_row(tmp_path):
    src = _jsonl(tmp_path / "d.jsonl", [{"problem": "a", "answer": "1"}, {"problem": "b"}])
    spec = {"source": "local", "path": str(src), "on_bad_row": "fail"}
    with pytest.raises(RecordError, match=r"d\.jsonl line 2: missing or empty field\(s\) answer"):
        ingest("loc", spec, tmp_path / "o.parquet", tmp_path / "q.parquet", progress=False)
    assert not (tmp_path / "o.parquet").exists()


def test_row_without_answer_is_quarantined_and_counted(tmp_path):
    src = _jsonl(
        tmp_path / "d.jsonl",
        [
            {"problem": "a", "answer": "1"},
            {"problem": "b", "answer": " "},
            {"problem": "c", "answer": "3"},
        ],
    )
    spec = {"source": "local", "path": str(src), "on_bad_row": "quarantine"}
    summary = ingest("loc", spec, tmp_path / "o.parquet", tmp_path / "q.parquet", progress=False)
    assert summary["rows"] == 2 and summary["quarantined"] == 1
    q = pq.read_table(tmp_path / "q.parquet").to_pylist()
    assert q[0]["where"].endswith("d.jsonl line 2") and "answer" in q[0]["reason"]


def test_malformed_jsonl_line_names_file_and_line(tmp_path):
    src = tmp_path / "d.jsonl"
    src.write_text('{"problem": "a", "answer": "1"}\n{"problem": "b", "answer": \n')
    spec = {"source": "local", "path": str(src), "on_bad_row": "fail"}  # quarantine: test_sources
    with pytest.raises(ValueError, match=r"d\.jsonl line 2: malformed JSON"):
        ingest("loc", spec, tmp_path / "o.parquet", tmp_path / "q.parquet", progress=False)


def test_duplicate_ids_fail(tmp_path):
    src = _jsonl(tmp_path / "d.jsonl", [{"id": "x", "problem": "a", "answer": "1"}] * 2)
    spec = {"source": "local", "path": str(src), "on_bad_row": "quarantine"}
    with pytest.raises(RecordError, match="duplicate id 'loc/x'"):
        ingest("loc", spec, tmp_path / "o.parquet", tmp_path / "q.parquet", progress=False)


DISTILL = {"from": "arith", "method": "distill", "format": "structured", "shards": 3,
           "teacher": {"backend": "builtin", "error_rate": 0.1, "seed": 0}}  # fmt: skip


def test_synthesis_shards_partition_the_input_and_account_for_every_row(arith, tmp_path):
    kept_ids, total = set(), 0
    for k in range(3):
        s = synthesize_shard("dist", DISTILL, [arith], k, tmp_path / f"s{k}.parquet",
                             tmp_path / f"r{k}.parquet", progress=False)  # fmt: skip
        kept = read_records(tmp_path / f"s{k}.parquet")
        rejects = pq.read_table(tmp_path / f"r{k}.parquet").to_pylist()
        assert s["kept"] == len(kept) and s["rejected"] == len(rejects)
        assert s["input_rows"] == s["kept"] + s["rejected"]
        assert all(shard_of(json.loads(r["meta"])["parent_id"], 3) == k for r in kept)
        kept_ids |= {r["id"] for r in kept}
        total += s["input_rows"]
    assert total == 600
    assert 0 < 600 - len(kept_ids) < 200  # slips were rejected, most rows kept
    row = kept[0]
    meta = json.loads(row["meta"])
    assert row["id"] == f"dist/{meta['parent_id']}" and meta["verified"] is True
    assert meta["teacher"]["backend"] == "builtin"
    lines = row["solution"].splitlines()
    assert re.fullmatch(r"\d+ [-+*/] \d+ = \d+", lines[0]), lines
    assert lines[-1] == f"\\boxed{{{row['answer']}}}"


def _recipe(**kw):
    spec = {"mix": [{"from": "arith", "weight": 1.0}], "volume": {"fraction": 1.0}, "dedup": True,
            "seed": 0, "decontaminate": {"enabled": True, "ngram": 13, "benchmarks": "all"}}  # fmt: skip
    spec.update(kw)
    return spec


def _select(tmp_path, name, spec, pools, benches):
    d = tmp_path / name
    stats = select_recipe(name, spec, pools, benches, d / "train.parquet", d / "stats.json",
                          d / "contamination.parquet")  # fmt: skip
    return stats, read_records(d / "train.parquet"), pq.read_table(d / "contamination.parquet")


def test_volume_subsets_are_nested_for_the_same_seed(arith, bench, tmp_path):
    pools, benches = {"arith": [arith]}, {"bench": bench}
    _, full, _ = _select(tmp_path, "full", _recipe(), pools, benches)
    _, third, _ = _select(tmp_path, "third", _recipe(volume={"fraction": 1 / 3}), pools, benches)
    _, count, _ = _select(tmp_path, "count", _recipe(volume={"count": 100}), pools, benches)
    _, other, _ = _select(tmp_path, "other", _recipe(volume={"count": 100}, seed=5), pools, benches)
    ids = lambda rows: {r["id"] for r in rows}  # noqa: E731
    assert len(full) == 600 and len(third) == 200 and len(count) == 100
    assert ids(count) < ids(third) < ids(full)
    assert ids(other) != ids(count)


def test_exact_dedup(tmp_path, bench):
    rows = [
        {
            "id": f"d/{i}",
            "source": "d",
            "problem": p,
            "solution": "",
            "answer": "1",
            "answer_type": "integer",
            "meta": "{}",
        }  # fmt: skip
        for i, p in enumerate(["What is 1+1?", "what is 1 + 1 ?", "What is 2+2?"])
    ]
    write_records(rows, tmp_path / "d.parquet")
    stats, train, _ = _select(tmp_path, "r", _recipe(mix=[{"from": "d", "weight": 1}]),
                              {"d": [tmp_path / "d.parquet"]}, {"bench": bench})  # fmt: skip
    assert stats["parts"][0]["duplicates_removed"] == 1
    assert [r["id"] for r in train] == ["d/0", "d/2"]


def test_decontamination_removes_and_reports_planted_overlaps(arith, bench, tmp_path):
    test_rows = read_records(bench)
    planted = [
        {**test_rows[0], "id": "p/exact", "source": "p"},
        {**test_rows[2], "id": "p/norm", "source": "p", "problem": test_rows[2]["problem"].upper()},
        {
            **test_rows[1],
            "id": "p/ngram",
            "source": "p",
            "problem": "Intro words. " + test_rows[1]["problem"],
        },
    ]
    write_records(planted + read_records(arith)[:50], tmp_path / "p.parquet")
    stats, train, contam = _select(tmp_path, "r", _recipe(mix=[{"from": "p", "weight": 1}]),
                                   {"p": [tmp_path / "p.parquet"]}, {"bench": bench})  # fmt: skip
    assert stats["decontamination"]["rows_removed"] == 3
    assert {r["id"] for r in train}.isdisjoint({"p/exact", "p/ngram", "p/norm"})
    found = {(r["train_id"], r["benchmark_id"], r["kind"]) for r in contam.to_pylist()}
    assert ("p/exact", test_rows[0]["id"], "verbatim") in found
    assert ("p/norm", test_rows[2]["id"], "normalized") in found
    assert ("p/ngram", test_rows[1]["id"], "ngram") in found
    assert all(r["overlap"] == 1.0 for r in contam.to_pylist())


def test_builtin_train_and_test_have_no_13gram_overlap(arith, bench, tmp_path):
    stats, _, contam = _select(tmp_path, "r", _recipe(), {"arith": [arith]}, {"bench": bench})
    assert stats["decontamination"]["matches"] == 0 and contam.num_rows == 0
    classic8 = {"enabled": True, "ngram": 8, "min_overlap": 0.0, "benchmarks": "all"}
    stats8, _, _ = _select(tmp_path, "r8", _recipe(decontaminate=classic8),
                           {"arith": [arith]}, {"bench": bench})  # fmt: skip
    assert stats8["decontamination"]["matches"] > 0  # the detector does fire on shorter n-grams


def test_weighted_mix_20_80(arith, tmp_path, bench):
    dist = tmp_path / "dist.parquet"
    synthesize_shard(
        "dist", {**DISTILL, "shards": 1}, [arith], 0, dist, tmp_path / "r.parquet", progress=False
    )
    spec = _recipe(
        mix=[{"from": "dist", "weight": 0.2}, {"from": "arith", "weight": 0.8}],
        volume={"count": 250},
    )
    stats, train, _ = _select(
        tmp_path, "mix", spec, {"dist": [dist], "arith": [arith]}, {"bench": bench}
    )
    assert [p["quota"] for p in stats["parts"]] == [50, 200]
    assert sum(r["source"] == "dist" for r in train) == 50 and len(train) == 250
    # a distilled row has its parent's problem: counted where the parent was selected too
    problems = {
        src: {r["problem"] for r in train if r["source"] == src} for src in ("dist", "arith")
    }
    shared = problems["dist"] & problems["arith"]
    assert stats["cross_part_duplicate_problems"] == len(shared) > 0


def test_count_larger_than_pool_names_the_key(arith, bench, tmp_path):
    with pytest.raises(SelectionError, match=r"recipes\.r\.volume\.count: 5000 rows asked for"):
        _select(
            tmp_path, "r", _recipe(volume={"count": 5000}), {"arith": [arith]}, {"bench": bench}
        )


def test_quotas_sum_exactly():
    assert quotas(10, [1, 1, 1]) == [4, 3, 3]
    assert sum(quotas(12345, [0.2, 0.3, 0.5])) == 12345


def test_mix_without_weights_takes_the_pools_whole(arith, tmp_path, bench):
    dist = tmp_path / "dist.parquet"
    synthesize_shard(
        "dist", {**DISTILL, "shards": 1}, [arith], 0, dist, tmp_path / "r.parquet", progress=False
    )
    n_dist = len(read_records(dist))
    spec = _recipe(mix=[{"from": "dist"}, {"from": "arith"}])
    stats, train, _ = _select(
        tmp_path, "union", spec, {"dist": [dist], "arith": [arith]}, {"bench": bench}
    )
    assert [p["quota"] for p in stats["parts"]] == [n_dist, 600]
    assert len(train) == n_dist + 600
    half = _recipe(mix=[{"from": "dist"}, {"from": "arith"}], volume={"fraction": 0.5})
    stats, _, _ = _select(
        tmp_path, "half", half, {"dist": [dist], "arith": [arith]}, {"bench": bench}
    )
    assert sum(p["quota"] for p in stats["parts"]) == round(0.5 * (n_dist + 600))
    with pytest.raises(SelectionError, match="weight on every part or on none"):
        _select(tmp_path, "bad", _recipe(mix=[{"from": "dist", "weight": 1}, {"from": "arith"}]),
                {"dist": [dist], "arith": [arith]}, {"bench": bench})  # fmt: skip
