"""Sharded selection (selection.shards > 1) against the single job, on real data.

The pool of tests/test_selection_fast.py (real problems with planted exact, near and benchmark
copies): the signature jobs over 1, 3 or 7 row ranges, the union job over their files and
select_recipe reading the union give byte for byte the single job's train.parquet, removed,
contamination and stats; so does a pool in two files with ids out of order and filters on.
The single job's near duplicates are those of neardup.near_duplicates_of (the code before
sharding), so its outputs did not change.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_selection_fast import _spec, real_pool  # noqa: F401 (a fixture)

from mathrecipes.config import RecipeSpec
from mathrecipes.config.recipes import pool_settings, settings_key
from mathrecipes.neardup import KNOWN_BANDS, near_duplicates_of
from mathrecipes.poolsteps import (
    benchmark_index,
    pool_union,
    shard_signatures,
    write_shard,
    write_union,
)
from mathrecipes.selection import select_recipe
from mathrecipes.textnorm import normalize_series

FILES = ("train.parquet", "removed.parquet", "contamination.parquet", "stats.json")


def _run(out, spec, pools, benches, unions=None):
    select_recipe("r", spec, pools, benches, *(out / f for f in FILES[:1]), out / "stats.json",
                  out / "contamination.parquet", out / "removed.parquet", unions=unions)  # fmt: skip
    return {f: (out / f).read_bytes() for f in FILES}


def _sharded(tmp, spec, pools, benches, shards):
    settings = pool_settings(RecipeSpec.model_validate(spec), sorted(benches))
    index = benchmark_index(settings, benches)  # one for every shard (a job builds its own)
    unions = {}
    for name, paths in pools.items():
        folder = tmp / f"sel-{name}-{shards}"
        files = []
        for k in range(shards):
            table = shard_signatures(paths, k, shards, settings, benches, pool=name, index=index)
            write_shard(table, folder / f"shard-{k}.parquet")
            files.append(folder / f"shard-{k}.parquet")
        write_union(pool_union(files, settings, pool=name), folder)
        unions[name] = folder
    return _run(tmp / f"sharded-{shards}", spec, pools, benches, unions)


@pytest.mark.parametrize("shards", [1, 3, 7])
def test_sharded_selection_gives_the_single_jobs_files(real_pool, tmp_path, shards):  # noqa: F811
    pool, benches, _ = real_pool
    spec = _spec(near=True)
    single = _run(tmp_path / "single", spec, {"pool": [pool]}, benches)
    assert _sharded(tmp_path, spec, {"pool": [pool]}, benches, shards) == single
    removed = pq.read_table(tmp_path / "single/removed.parquet").to_pylist()
    stages = {r["stage"] for r in removed}
    assert stages == {"dedup", "near_dedup"}  # the planted copies were found
    assert pq.read_table(tmp_path / "single/contamination.parquet").num_rows > 0


def test_sharded_selection_with_filters_two_files_and_ids_out_of_order(real_pool, tmp_path):  # noqa: F811
    pool, benches, _ = real_pool
    table = pq.read_table(pool)
    table = table.take(pa.array(np.random.default_rng(1).permutation(table.num_rows)))
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(table.slice(0, 1700), a, row_group_size=400)
    pq.write_table(table.slice(1700), b, row_group_size=500)
    spec = {
        **_spec(near=True),
        "mix": [{"from": "p", "weight": 2.0}, {"from": "q", "weight": 1.0}],
        "filters": {"max_problem_chars": 400},
        "seed": 3,
    }
    pools = {"p": [a, b], "q": [b]}
    single = _run(tmp_path / "single", spec, pools, benches)
    assert _sharded(tmp_path, spec, pools, benches, 3) == single
    stats = pq.read_table(tmp_path / "single/removed.parquet").column("stage").to_pylist()
    assert "filter" in stats


def test_single_job_near_duplicates_are_the_previous_codes(real_pool, tmp_path):  # noqa: F811
    pool, benches, _ = real_pool
    spec = _spec(near=True)
    _run(tmp_path / "single", spec, {"pool": [pool]}, benches)
    removed = pq.read_table(tmp_path / "single/removed.parquet").to_pylist()
    exact = {r["train_id"] for r in removed if r["stage"] == "dedup"}
    rows = sorted(pq.read_table(pool, columns=["id", "problem"]).to_pylist(), key=lambda r: r["id"])
    rows = [r for r in rows if r["id"] not in exact]
    found = near_duplicates_of(
        [r["id"] for r in rows], normalize_series([r["problem"] for r in rows])
    )
    near = [
        (r["train_id"], r["duplicate_of"], r["reason"])
        for r in removed
        if r["stage"] == "near_dedup"
    ]
    assert near == [(d.row_id, d.duplicate_of, f"minhash jaccard {d.jaccard:.3f}") for d in found]


def test_settings_key_ignores_seed_volume_and_weights():
    base = RecipeSpec.model_validate(_spec(near=True))
    other = RecipeSpec.model_validate({**_spec(near=True), "seed": 9, "volume": {"count": 5}})
    key = settings_key(pool_settings(base, ["b"]), 4)
    assert settings_key(pool_settings(other, ["b"]), 4) == key
    assert settings_key(pool_settings(base, ["b"]), 3) != key
    assert settings_key(pool_settings(base, ["b", "c"]), 4) != key
    off = RecipeSpec.model_validate({**_spec(near=False)})
    assert settings_key(pool_settings(off, ["b"]), 4) != key


def test_known_bands_are_datasketchs():
    from datasketch import MinHashLSH

    for (threshold, num_perm), (b, r) in KNOWN_BANDS.items():
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        assert (lsh.b, lsh.r) == (b, r), (threshold, num_perm)
