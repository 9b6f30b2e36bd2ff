"""The vectorised selection (issue 13) against the per-row rules it replaced, on real data.

A small pool from benchmarks/make_pool.py (real MATH, GSM8K and DeepScaleR problems with planted
exact, near and benchmark copies): exact dedup and decontamination give the same rows, matches
and evidence as the per-row code (normalize per row, BenchmarkIndex.matches on every row); near
dedup gives datasketch's result exactly when given datasketch's signatures, and with its own
(rensa) signatures differs only on pairs near the threshold (the figure on the 200k pool is in
docs/selection.md, from benchmarks/bench_select.py --agreement).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasketch import MinHash

from mathrecipes.decontam import BenchmarkIndex
from mathrecipes.minhash import digest_chunk, signatures
from mathrecipes.neardup import MINHASH_SEED, near_duplicates, near_duplicates_of, shingles
from mathrecipes.records import write_records
from mathrecipes.selection import select_recipe
from mathrecipes.textnorm import gram_hashes, normalize, normalize_series

REPO = Path(__file__).resolve().parents[1]


def _make_pool_module():
    spec = importlib.util.spec_from_file_location("make_pool", REPO / "benchmarks/make_pool.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def real_pool(shared_data, tmp_path_factory):
    """A 3,000-row pool and the MATH-500 / GSM8K test benchmarks as record files."""
    d = tmp_path_factory.mktemp("pool")
    mp = _make_pool_module()
    pq.write_table(mp.make_pool(3000, seed=3, shared=shared_data), d / "pool.parquet")
    benches = {}
    for name, path, field in (
        ("math500", "eval/math500/test.jsonl", "problem"),
        ("gsm8k", "eval/gsm8k/test.jsonl", "question"),
    ):
        lines = (shared_data / path).read_text().splitlines()
        rows = [
            {"id": f"{name}/{i}", "source": name, "problem": json.loads(line)[field],
             "solution": "", "answer": "1", "answer_type": "integer", "meta": "{}"}
            for i, line in enumerate(lines)
        ]  # fmt: skip
        write_records(rows, d / f"{name}.parquet")
        benches[name] = d / f"{name}.parquet"
    rows = pq.read_table(d / "pool.parquet").to_pylist()
    return d / "pool.parquet", benches, sorted(rows, key=lambda r: r["id"])


def _spec(near: bool) -> dict:
    return {
        "mix": [{"from": "pool", "weight": None}],
        "volume": {"fraction": 1.0},
        "dedup": True,
        "near_dedup": {"enabled": near, "threshold": 0.8, "num_perm": 128, "ngram": 5},
        "seed": 0,
        "decontaminate": {"enabled": True, "ngram": 13, "min_overlap": 0.7},
    }


def _select(tmp_path, pool, benches, near):
    out = tmp_path / ("near" if near else "plain")
    select_recipe("r", _spec(near), {"pool": [pool]}, benches, out / "train.parquet",
                  out / "stats.json", out / "contamination.parquet", out / "removed.parquet")  # fmt: skip
    return (
        pq.read_table(out / "removed.parquet").to_pylist(),
        pq.read_table(out / "contamination.parquet").to_pylist(),
        [r["id"] for r in pq.read_table(out / "train.parquet").to_pylist()],
    )


def _exact_reference(rows):
    seen: dict[str, str] = {}
    unique, removed = [], {}
    for r in rows:
        key = normalize(r["problem"])
        if key in seen:
            removed[r["id"]] = seen[key]
            continue
        seen[key] = r["id"]
        unique.append(r)
    return unique, removed


def test_normalize_and_gram_hashes_agree_with_the_per_row_functions(real_pool):
    _, _, rows = real_pool
    texts = [r["problem"] for r in rows[:800]] + ["", "  ", "a b", "Ünïcode ﬁ — ok", "x y z w v"]
    norms = normalize_series(texts)
    assert norms.to_list() == [normalize(t) for t in texts]
    for n, empty_gram in ((5, True), (13, False)):
        hashes, offsets = gram_hashes(norms, n, empty_gram=empty_gram)
        gram_of: dict[int, str] = {}
        for i, t in enumerate(texts):
            words = normalize(t).split()
            if len(words) >= n:
                grams = [" ".join(words[k : k + n]) for k in range(len(words) - n + 1)]
            else:
                grams = [" ".join(words)] if words or empty_gram else []
            got = hashes[offsets[i] : offsets[i + 1]].tolist()
            assert len(got) == len(grams)
            for g, h in zip(grams, got, strict=True):  # one hash per n-gram and back
                assert gram_of.setdefault(h, g) == g
            if empty_gram:
                assert len(set(got)) == len(shingles(t, n))


def test_exact_dedup_and_contamination_are_the_per_row_results(real_pool, tmp_path):
    pool, benches, rows = real_pool
    removed, contam, kept = _select(tmp_path, pool, benches, near=False)
    unique, exact = _exact_reference(rows)
    assert {r["train_id"]: r["duplicate_of"] for r in removed if r["stage"] == "dedup"} == exact
    index = BenchmarkIndex({b: pq.read_table(p).to_pylist() for b, p in benches.items()}, 13, 0.7)
    expected = []
    for r in unique:
        for m in index.matches(r["id"], r["problem"]):
            expected.append({"train_id": m.train_id, "part": "pool", "benchmark": m.benchmark,
                             "benchmark_id": m.benchmark_id, "kind": m.kind,
                             "overlap": m.overlap, "evidence": m.evidence})  # fmt: skip
    expected.sort(key=lambda m: (m["train_id"], m["benchmark"], m["benchmark_id"]))
    assert contam == expected
    # the planted benchmark copies (0.5% of 3,000) are found, of all three kinds
    assert len({m["train_id"] for m in contam}) >= 15
    assert {m["kind"] for m in contam} == {"verbatim", "normalized", "ngram"}
    dirty = {m["train_id"] for m in contam}
    assert kept == [r["id"] for r in unique if r["id"] not in dirty]


def test_near_dedup_is_datasketchs_rule_and_agrees_with_its_result(real_pool, tmp_path):
    _, _, rows = real_pool
    unique, _ = _exact_reference(rows)
    ids = [r["id"] for r in unique]
    norms = normalize_series([r["problem"] for r in unique])
    _, old = near_duplicates(unique, threshold=0.8, num_perm=128, ngram=5)
    # datasketch's signatures through the new LSH: datasketch's removals, pair for pair
    sigs = np.array(
        [m.hashvalues for m in MinHash.bulk([shingles(r["problem"], 5) for r in unique],
                                            num_perm=128, seed=MINHASH_SEED)]
    )  # fmt: skip
    assert near_duplicates_of(ids, norms, sigs=sigs) == old
    # rensa's signatures: the same rule on another draw of the estimator; its LSH pass only
    # skips rows without a colliding band (all rows' signatures give the same result)
    new = near_duplicates_of(ids, norms, threshold=0.8, num_perm=128, ngram=5)
    hashes, offsets = gram_hashes(norms, 5, empty_gram=True)
    every = digest_chunk(hashes, offsets, 130)[:, :128]  # 130: 10 bands of datasketch's 13
    assert near_duplicates_of(ids, norms, sigs=every) == new
    o, n = {d.row_id for d in old}, {d.row_id for d in new}
    assert len(o & n) / len(o | n) > 0.6, (len(o), len(n), len(o & n))
    text = {r["id"]: r["problem"] for r in unique}

    def true_jaccard(d):
        a, b = set(shingles(text[d.row_id], 5)), set(shingles(text[d.duplicate_of], 5))
        return len(a & b) / len(a | b)

    # every difference is a pair near the threshold (detection probability well below 1)
    assert all(
        0.6 <= true_jaccard(d) < 0.97 for d in old + new if (d.row_id in o) != (d.row_id in n)
    )
    # and the selection uses near_duplicates_of
    removed, _, _ = _select(tmp_path, real_pool[0], real_pool[1], near=True)
    assert {r["train_id"] for r in removed if r["stage"] == "near_dedup"} == n


def test_signature_workers_give_the_signatures_of_one_process(real_pool):
    _, _, rows = real_pool
    norms = normalize_series([r["problem"] for r in rows[:900]])

    def chunks():
        for start in range(0, 900, 300):
            yield gram_hashes(norms.slice(start, 300), 5, empty_gram=True)

    one = signatures(chunks(), 900, 128, workers=1)
    two = signatures(chunks(), 900, 128, workers=2, min_rows_per_worker=0)
    assert one.shape == (900, 128) and (one == two).all()
    # a row's signature does not depend on the rows digested with it
    hashes, offsets = gram_hashes(norms.slice(0, 1), 5, empty_gram=True)
    assert (digest_chunk(hashes, offsets, 128)[0] == one[0]).all()
