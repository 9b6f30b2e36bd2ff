"""Selection's per-pool steps as functions of row ranges (shards), for pools of any size.

What a recipe removes from one pool (filters, exact dedup, near dedup, decontamination) depends
on the pool and on a few settings only (:func:`pool_settings`), not on the recipe's seed, volume
or mix weights. It is computed in two steps:

1. :func:`shard_signatures`, per row range ``shard`` of ``shards`` (positions
   ``[shard * n // shards, (shard + 1) * n // shards)`` of the pool's files concatenated in the
   given order, read a row group at a time): the filters (per row); the normalized problem
   (:func:`mathrecipes.textnorm.normalize_series`); its exact-dedup key (``norm``: a 128-bit
   BLAKE2b digest of the normalized text: two different texts share one with probability about
   2^-128, so dedup on it is dedup on the text); near dedup's MinHash signature (``sig``: its
   ``num_perm`` uint32 values as ``4 * num_perm`` bytes, the machine's byte order;
   :mod:`mathrecipes.minhash`: a row's signature does not depend on the rows beside it) and its
   datasketch band keys (``band_0`` ...: a 64-bit hash of each band's ``r`` values); the row's
   benchmark matches (``matches``: the screen and :meth:`BenchmarkIndex.matches
   <mathrecipes.decontam.BenchmarkIndex.matches>`, which depend on the row only). Every column
   is a function of its row, so the shards' tables together are the whole pool's table.
2. :func:`pool_union`, over every shard's table: the rows in id order (a stable sort: rows with
   the same id keep their file order); exact dedup (the smallest id per ``norm`` is kept, the
   others are its duplicates); near dedup on the rows left: the candidate pairs are the rows
   with an equal band key, checked on the band values and the estimated Jaccard, then the greedy
   rule of :func:`mathrecipes.neardup.near_duplicates` (id order, a row is removed when an
   earlier kept row reaches the threshold, ``duplicate_of`` the smallest such id); then the rows
   left with a benchmark match are removed. It reads the shards column by column (ids, keys, one
   band at a time, the signatures of the rows in a candidate pair only).

A recipe's selection (:func:`mathrecipes.selection.select_recipe`) takes the kept rows of each
pool from :func:`pool_union`: in one job (``selection.shards: 1``: both steps in-process) or from
the files the sharded jobs wrote; both give the same training set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mathrecipes import minhash
from mathrecipes.config.recipes import RowFilters, pool_settings, settings_key  # noqa: F401 (re-exported)
from mathrecipes.decontam import BenchmarkIndex
from mathrecipes.neardup import CHUNK_ROWS, filter_reason, lsh_bands
from mathrecipes.records import FIELDS, NO_ANSWER, SCHEMA, RecordError, read_records, write_table
from mathrecipes.textnorm import gram_hash_chunks, normalize_series

log = logging.getLogger(__name__)

MATCH = pa.struct(
    [
        ("benchmark", pa.string()),
        ("benchmark_id", pa.string()),
        ("kind", pa.string()),
        ("overlap", pa.float64()),
        ("evidence", pa.string()),
    ]
)
KEPT_SCHEMA = pa.schema(
    [("id", pa.string()), ("pos", pa.int64()), ("norm", pa.binary(16))]
)  # a pool's rows left after dedup and decontamination, in id order


class Clock:
    """Seconds per step and the peak memory so far, for the log."""

    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.laps: list[str] = []

    def lap(self, what: str) -> None:
        import resource

        now = time.perf_counter()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux
        self.laps.append(f"{what} {now - self.t:.1f} s (peak {peak:.2f} GB)")
        self.t = now

    def __str__(self) -> str:
        return ", ".join(self.laps)


_THREADS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decontam-screen")


class SelectionError(ValueError):
    pass


class PoolResult(NamedTuple):
    """One pool after :func:`pool_union`: ``kept`` (:data:`KEPT_SCHEMA`, id order), the removed
    rows (``REMOVED_FIELDS`` of :mod:`mathrecipes.selection`, in id order per stage), the
    benchmark matches of the rows left after near dedup, the counts."""

    kept: pa.Table
    removed: list[dict[str, str]]
    matches: list[dict[str, Any]]
    stats: dict[str, Any]


def pool_rows(paths: Sequence[str | Path]) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in paths)


def shard_range(rows: int, shard: int, shards: int) -> tuple[int, int]:
    return rows * shard // shards, rows * (shard + 1) // shards


def read_slice(
    paths: Sequence[str | Path], start: int, stop: int, columns: Sequence[str]
) -> pa.Table:
    """``columns`` of the rows at positions ``[start, stop)`` of ``paths`` concatenated, read a
    row group at a time (only the groups that overlap the range)."""
    columns = list(dict.fromkeys(columns))
    schema = pa.schema([SCHEMA.field(c) for c in columns])
    parts, offset = [], 0
    for path in paths:
        f = pq.ParquetFile(path)
        missing = [c for c in FIELDS if c not in f.schema_arrow.names]
        if missing:
            raise RecordError(f"{path}: not a canonical record file, missing column(s) {missing}")
        for g in range(f.metadata.num_row_groups):
            n = f.metadata.row_group(g).num_rows
            lo, hi = max(start, offset), min(stop, offset + n)
            if lo < hi:
                t = f.read_row_group(g, columns=columns).slice(lo - offset, hi - lo)
                parts.append(t.cast(schema))
            offset += n
    return pa.concat_tables(parts) if parts else schema.empty_table()


def band_keys(sigs: Any, b: int, r: int) -> Any:
    """A 64-bit key per row and band (rows x ``b``, uint64): a hash of the band's ``r`` values
    (equal bands, equal keys; unequal ones collide with probability about 2^-64 and are told
    apart on the values by :func:`pool_union`)."""
    weights = np.random.default_rng(0).integers(1, 2**63, size=r, dtype=np.uint64) | np.uint64(1)
    out = np.empty((len(sigs), b), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band in range(b):
            vals = sigs[:, band * r : (band + 1) * r].astype(np.uint64)
            out[:, band] = (vals * weights).sum(axis=1, dtype=np.uint64)
    return out


def norm_keys(norms: pl.Series) -> pa.Array:
    """The 128-bit BLAKE2b digest of each normalized text (``fixed_size_binary(16)``)."""
    blob = b"".join(hashlib.blake2b(t.encode(), digest_size=16).digest() for t in norms.to_list())
    return pa.Array.from_buffers(pa.binary(16), len(norms), [None, pa.py_buffer(blob)])


def key_pairs(arr: Any) -> np.ndarray:
    """A ``fixed_size_binary(16)`` array (no nulls) as rows x 2 uint64."""
    return _matrix(arr, np.uint64, 2)


def _matrix(arr: Any, dtype: Any, width: int) -> np.ndarray:
    """A fixed-size binary array of rows of ``width`` values of ``dtype`` as a numpy matrix
    (a view where the array is one chunk)."""
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    if len(arr) == 0:
        return np.empty((0, width), dtype=dtype)
    buf = np.frombuffer(arr.buffers()[1], dtype=dtype)
    return buf[width * arr.offset : width * (arr.offset + len(arr))].reshape(-1, width)


def _fixed(values: np.ndarray, valid: np.ndarray | None) -> pa.Array:
    """Rows of a numpy matrix as a fixed-size binary array (null where ``valid`` is False):
    parquet reads it back far more cheaply than a list column."""
    values = np.ascontiguousarray(values)
    width = values.itemsize * (values.shape[1] if values.ndim > 1 else 1)
    bitmap = None if valid is None else pa.array(valid).buffers()[1]
    return pa.Array.from_buffers(pa.binary(width), len(values), [bitmap, pa.py_buffer(values)])


def _filled(values: np.ndarray, keep: np.ndarray, fill: Any = 0) -> np.ndarray:
    """``values`` (the passing rows') spread over every row of the shard."""
    if keep.all():
        return values
    out = np.full((len(keep), *values.shape[1:]), fill, dtype=values.dtype)
    out[keep] = values
    return out


def shard_signatures(
    paths: Sequence[str | Path],
    shard: int,
    shards: int,
    settings: Mapping[str, Any],
    benchmarks: Mapping[str, str | Path],
    *,
    pool: str = "pool",
    workers: int = 1,
    index: BenchmarkIndex | None = None,
) -> pa.Table:
    """Step 1 of the module docstring for row range ``shard`` of ``shards`` of the pool
    ``paths``: a table of its rows (file order) with ``id``, ``pos`` (the position in the
    files), ``filtered`` (the filter's reason, ``""`` for a row that passes), and for the rows
    that pass (null for the others) ``norm``, ``band_0`` ... ``band_{b-1}`` and ``sig`` (with
    near dedup on), ``matches`` (with decontamination on). ``benchmarks``: name -> parquet file
    of the benchmarks in ``settings`` (``index``: one already built from them)."""
    filters = settings["filters"]
    near = settings["near_dedup"]
    decon = settings["decontaminate"]
    clock = Clock()
    start, stop = shard_range(pool_rows(paths), shard, shards)
    used = ["id", "problem", "answer_type"] + (["solution", "meta"] if filters else [])
    table = read_slice(paths, start, stop, used)
    rows = table.num_rows
    answerless = pc.sum(pc.equal(table["answer_type"], NO_ANSWER)).as_py() or 0
    if answerless:  # the config refuses such a pool; files made by hand are refused here
        raise SelectionError(
            f"{pool!r} has {answerless} row(s) without a gold answer (answer_type "
            f"{NO_ANSWER!r}: raw text); only rewrite / extract read them"
        )
    reasons = [""] * rows
    if filters:
        cols = table.select(["id", "problem", "solution", "answer_type", "meta"]).to_pylist()
        bounds = RowFilters.model_validate(filters)  # once, not per row
        reasons = [filter_reason(r, bounds) or "" for r in cols]
        del cols
    keep = np.array([not r for r in reasons], dtype=bool)
    clock.lap("read and filter")
    passing = table.filter(pa.array(keep)) if not keep.all() else table
    ids = table["id"]
    out: dict[str, Any] = {
        "id": ids,
        "pos": pa.array(np.arange(start, stop, dtype=np.int64)),
        "filtered": pa.array(reasons, pa.string()),
    }
    mask = pa.array(~keep) if not keep.all() else None
    norms = normalize_series(passing["problem"])
    clock.lap("normalize")
    digest = norm_keys(norms)
    out["norm"] = digest if mask is None else _fixed(_filled(key_pairs(digest), keep), keep)
    clock.lap("keys")
    screen = None
    if decon.get("enabled"):
        if index is None:
            index = benchmark_index(settings, benchmarks)
        if len(norms):
            # the screen (numpy and polars, which let go of the GIL) runs in a thread beside
            # the signatures: the second core
            screen = _THREADS.submit(index.candidates, norms)
    if near.get("enabled"):
        num_perm, ngram = near["num_perm"], near["ngram"]
        b, r = lsh_bands(near["threshold"], num_perm)
        # rensa's signature of r * ceil(num_perm / r) values, of which the first num_perm are
        # the row's (as selection has always drawn them: another length draws other values)
        perms = r * -(-num_perm // r)
        chunks = gram_hash_chunks(norms, ngram, empty_gram=True, rows=CHUNK_ROWS)
        sigs = minhash.signatures(chunks, len(norms), perms, workers=workers, keep=num_perm)
        keys = _filled(band_keys(sigs, b, r), keep)
        for band in range(b):
            out[f"band_{band}"] = pa.array(
                keys[:, band], pa.uint64(), mask=None if mask is None else ~keep
            )
        # 4 * num_perm bytes a row: the signature's uint32 values in native order
        out["sig"] = _fixed(_filled(sigs, keep), None if mask is None else keep)
        del sigs
        clock.lap("signatures")
    if decon.get("enabled"):
        suspects = np.flatnonzero(screen.result()) if screen else np.empty(0, int)
        counts = np.zeros(len(norms), dtype=np.int32)  # matches per passing row
        values: list[dict[str, Any]] = []
        if len(suspects):
            take = pa.array(suspects)
            sub = zip(
                passing["id"].take(take).to_pylist(),
                passing["problem"].take(take).to_pylist(),
                norms.gather(pl.Series(suspects)).to_list(),
                strict=True,
            )
            for k, (row_id, problem, norm) in zip(suspects.tolist(), sub, strict=True):
                found = index.matches(row_id, problem, norm)
                counts[k] = len(found)
                values.extend(
                    {
                        "benchmark": m.benchmark,
                        "benchmark_id": m.benchmark_id,
                        "kind": m.kind,
                        "overlap": m.overlap,
                        "evidence": m.evidence,
                    }
                    for m in found
                )
        # a list per row (empty for most), built from offsets: no Python object per row
        offsets = np.zeros(rows + 1, dtype=np.int32)
        np.cumsum(_filled(counts, keep), out=offsets[1:])
        out["matches"] = pa.ListArray.from_arrays(
            pa.array(offsets), pa.array(values, MATCH), mask=mask
        )
        clock.lap("decontaminate")
    log.info("pool %s, shard %d of %d (%d rows): %s", pool, shard, shards, rows, clock)
    return pa.table(out)


def benchmark_index(
    settings: Mapping[str, Any], benchmarks: Mapping[str, str | Path]
) -> BenchmarkIndex:
    decon = settings["decontaminate"]
    return BenchmarkIndex(
        {b: read_records(benchmarks[b]) for b in decon["benchmarks"]},
        decon["ngram"],
        decon["min_overlap"],
    )


def _column(shards: Sequence[pa.Table | str | Path], name: str) -> pa.ChunkedArray:
    cols = [
        s[name] if isinstance(s, pa.Table) else pq.read_table(s, columns=[name])[name]
        for s in shards
    ]
    return pa.chunked_array([c for col in cols for c in col.chunks], type=cols[0].type)


def _batches(shard: pa.Table | str | Path, name: str):
    """``(first row, array)`` of column ``name`` of a shard, a row group at a time."""
    if isinstance(shard, pa.Table):
        yield 0, shard[name]
        return
    f = pq.ParquetFile(shard)
    first = 0
    for g in range(f.metadata.num_row_groups):
        col = f.read_row_group(g, columns=[name])[name]
        yield first, col
        first += len(col)


SHARD_ROW_GROUP = 1 << 16  # rows per row group of a shard file (the union reads them in turn)


def write_shard(table: pa.Table, path: str | Path) -> None:
    """:func:`shard_signatures`' table as a parquet file (small row groups: the union job reads
    the signatures of a few rows a row group at a time)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd", row_group_size=SHARD_ROW_GROUP)
    tmp.replace(path)


def _greedy(lo: np.ndarray, hi: np.ndarray, jac: np.ndarray) -> list[tuple[int, int, float]]:
    """:func:`mathrecipes.neardup.near_duplicates`' rule on the pairs ``(lo, hi)`` (``lo <
    hi`` in id order) whose estimated Jaccard ``jac`` reaches the threshold: ``(row, duplicate
    of, jaccard)`` in id order."""
    order = np.lexsort((lo, hi))  # by the later row, then the earlier
    lo, hi, jac = lo[order], hi[order], jac[order]
    removed: set[int] = set()
    out = []
    edges = np.flatnonzero(np.r_[True, hi[1:] != hi[:-1], True])
    for a, z in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        for i, x in zip(lo[a:z].tolist(), jac[a:z].tolist(), strict=True):
            if i not in removed:  # the smallest earlier row still kept
                j = int(hi[a])
                removed.add(j)
                out.append((j, i, x))
                break
    return out


def _near(
    shards: Sequence[pa.Table | str | Path],
    survivors: np.ndarray,
    near: Mapping[str, Any],
    sizes: np.ndarray,
) -> list[tuple[int, int, float]]:
    """Near duplicates among rows ``survivors`` (indices into the shards' rows concatenated,
    in id order): ``(k, k_of, jaccard)``, ``k`` and ``k_of`` indices into ``survivors``."""
    m = len(survivors)
    num_perm, threshold = near["num_perm"], near["threshold"]
    b, r = lsh_bands(threshold, num_perm)
    codes = []
    for band in range(b):
        keys = _column(shards, f"band_{band}").to_numpy()[survivors]
        order = np.argsort(keys, kind="stable")
        sk = keys[order]
        same = sk[1:] == sk[:-1]
        if not same.any():
            continue
        edge = np.flatnonzero(np.diff(np.r_[False, same, False].astype(np.int8)))
        s, e = edge[::2], edge[1::2]
        two = e - s == 1  # most runs are one pair
        lo = np.minimum(order[s[two]], order[e[two]])
        hi = np.maximum(order[s[two]], order[e[two]])
        codes.append(lo.astype(np.int64) * m + hi)
        for start, end in zip(s[~two].tolist(), e[~two].tolist(), strict=True):
            members = np.sort(order[start : end + 1]).astype(np.int64)
            x, y = np.triu_indices(len(members), 1)
            codes.append(members[x] * m + members[y])
        del keys, order, sk
    if not codes:
        return []
    code = np.unique(np.concatenate(codes))
    del codes
    lo, hi = code // m, code % m
    del code
    # the signatures of the rows in a pair only, a shard at a time
    involved = np.unique(np.r_[lo, hi])
    rows = survivors[involved]
    sigs = np.empty((len(rows), num_perm), dtype=np.uint32)
    bounds = np.r_[0, np.cumsum(sizes)]
    order = np.argsort(rows, kind="stable")
    for k, shard in enumerate(shards):
        a, z = np.searchsorted(rows[order], [bounds[k], bounds[k + 1]])
        if a == z:
            continue
        local = rows[order[a:z]] - bounds[k]
        at = order[a:z]
        for first, batch in _batches(shard, "sig"):  # a batch at a time: bounded memory
            lo_b, hi_b = np.searchsorted(local, [first, first + len(batch)])
            if hi_b > lo_b:
                taken = batch.take(pa.array(local[lo_b:hi_b] - first))
                sigs[at[lo_b:hi_b]] = _matrix(taken, np.uint32, num_perm)
    li, hj = np.searchsorted(involved, lo), np.searchsorted(involved, hi)
    keep_lo, keep_hi, keep_j = [], [], []
    step = 1 << 18  # pairs checked at once (two rows of signatures each: 256 MB)
    for a in range(0, len(li), step):
        x, y = sigs[li[a : a + step]], sigs[hj[a : a + step]]
        eq = x == y
        # an equal band key of unequal bands is no candidate (datasketch compares the values)
        band_eq = eq[:, : b * r].reshape(len(eq), b, r).all(axis=2).any(axis=1)
        jac = np.count_nonzero(eq, axis=1) / num_perm
        ok = band_eq & (jac >= threshold)
        keep_lo.append(lo[a : a + step][ok])
        keep_hi.append(hi[a : a + step][ok])
        keep_j.append(jac[ok])
    return _greedy(np.concatenate(keep_lo), np.concatenate(keep_hi), np.concatenate(keep_j))


def pool_union(
    shards: Sequence[pa.Table | str | Path], settings: Mapping[str, Any], *, pool: str = "pool"
) -> PoolResult:
    """Step 2 of the module docstring over every shard (tables or the files
    :func:`shard_signatures`' tables were written to, in shard order)."""
    clock = Clock()
    ids = _column(shards, "id")
    sizes = np.array(
        [
            s.num_rows if isinstance(s, pa.Table) else pq.ParquetFile(s).metadata.num_rows
            for s in shards
        ],
        dtype=np.int64,
    )
    gathered = len(ids)
    order = (
        pc.sort_indices(ids).to_numpy().astype(np.int64)
    )  # stable: equal ids keep their file order
    filtered = _column(shards, "filtered")
    removed: list[dict[str, str]] = []
    counts: dict[str, int] = {}
    bad = np.flatnonzero(pc.not_equal(filtered, "").to_numpy(zero_copy_only=False))
    passing = order
    if len(bad):
        is_bad = np.zeros(gathered, dtype=bool)
        is_bad[bad] = True
        gone = order[is_bad[order]]
        for row_id, why in zip(
            ids.take(pa.array(gone)).to_pylist(),
            filtered.take(pa.array(gone)).to_pylist(),
            strict=True,
        ):
            kind = why.split(":")[0]
            counts[kind] = counts.get(kind, 0) + 1
            removed.append(_removed(row_id, pool, "filter", why))
        passing = order[~is_bad[order]]
    del filtered
    clock.lap("ids and filters")
    norm = key_pairs(_column(shards, "norm").take(pa.array(passing)))
    survivors = passing
    dups = 0
    if settings["dedup"] and len(passing):
        # rows with one key together, in id order (lexsort is stable): the first is kept
        by_key = np.lexsort((norm[:, 1], norm[:, 0]))
        sk = norm[by_key]
        start = np.r_[True, (sk[1:] != sk[:-1]).any(axis=1)]
        del sk
        first_at = np.empty(len(passing), dtype=np.int64)
        first_at[by_key] = by_key[np.flatnonzero(start)[np.cumsum(start) - 1]]
        del by_key, start
        is_dup = first_at != np.arange(len(passing))
        dups = int(is_dup.sum())
        if dups:
            at = np.flatnonzero(is_dup)
            dup_ids = ids.take(pa.array(passing[at])).to_pylist()
            of_ids = ids.take(pa.array(passing[first_at[at]])).to_pylist()
            for row_id, of in zip(dup_ids, of_ids, strict=True):
                removed.append(_removed(row_id, pool, "dedup", "same normalized problem text", of))
            survivors = passing[~is_dup]
            norm = norm[~is_dup]
    clock.lap("exact dedup")
    near_dups = 0
    if settings["near_dedup"].get("enabled") and len(survivors):
        found = _near(shards, survivors, settings["near_dedup"], sizes)
        near_dups = len(found)
        if found:
            k, k_of, jac = (np.array(v) for v in zip(*found, strict=True))
            row_ids = ids.take(pa.array(survivors[k])).to_pylist()
            of_ids = ids.take(pa.array(survivors[k_of])).to_pylist()
            for row_id, of, x in zip(row_ids, of_ids, jac.tolist(), strict=True):
                x = round(x, 4)
                removed.append(_removed(row_id, pool, "near_dedup", f"minhash jaccard {x:.3f}", of))
            gone = np.zeros(len(survivors), dtype=bool)
            gone[k] = True
            survivors, norm = survivors[~gone], norm[~gone]
    clock.lap("near dedup")
    matches: list[dict[str, Any]] = []
    contaminated = 0
    if settings["decontaminate"].get("enabled") and len(survivors):
        col = _column(shards, "matches").take(pa.array(survivors))
        hit = np.flatnonzero(
            pc.greater(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
        )
        if len(hit):
            contaminated = len(hit)
            hit_ids = ids.take(pa.array(survivors[hit])).to_pylist()
            for row_id, found in zip(hit_ids, col.take(pa.array(hit)).to_pylist(), strict=True):
                matches.extend({"train_id": row_id, "part": pool, **m} for m in found)
            clean = np.ones(len(survivors), dtype=bool)
            clean[hit] = False
            survivors, norm = survivors[clean], norm[clean]
        del col
    clock.lap("decontaminate")
    pos = _column(shards, "pos").to_numpy()[survivors]
    kept = pa.table(
        {
            "id": ids.take(pa.array(survivors)),
            "pos": pa.array(pos, pa.int64()),
            "norm": _fixed(norm, None),
        },
        schema=KEPT_SCHEMA,
    )
    stats = {
        "gathered": gathered,
        "filtered_removed": dict(sorted(counts.items())),
        "duplicates_removed": dups,
        "near_duplicates_removed": near_dups,
        "contaminated_removed": contaminated,
        "pool": kept.num_rows,
    }
    log.info("pool %s, union of %d shard(s) (%d rows): %s", pool, len(shards), gathered, clock)
    return PoolResult(kept, removed, matches, stats)


def _removed(row_id: str, part: str, stage: str, reason: str, of: str = "") -> dict[str, str]:
    return {"train_id": row_id, "part": part, "stage": stage, "reason": reason, "duplicate_of": of}


# ------------------------------------------------------------------ the sharded jobs' files

REMOVED_FIELDS = ("train_id", "part", "stage", "reason", "duplicate_of")
MATCH_FIELDS = ("train_id", "part", "benchmark", "benchmark_id", "kind", "overlap", "evidence")


def write_union(result: PoolResult, folder: str | Path) -> list[Path]:
    """A pool's :class:`PoolResult` as files in ``folder``: ``kept.parquet``,
    ``removed.parquet``, ``contamination.parquet``, ``stats.json``."""
    folder = Path(folder)
    write_table(result.kept, folder / "kept.parquet")
    write_table(
        pa.table(
            {f: [m[f] for m in result.removed] for f in REMOVED_FIELDS},
            schema=pa.schema([(f, pa.string()) for f in REMOVED_FIELDS]),
        ),
        folder / "removed.parquet",
    )
    schema = pa.schema([(f, pa.float64() if f == "overlap" else pa.string()) for f in MATCH_FIELDS])
    write_table(
        pa.table({f: [m[f] for m in result.matches] for f in MATCH_FIELDS}, schema=schema),
        folder / "contamination.parquet",
    )
    (folder / "stats.json").write_text(json.dumps(result.stats, indent=2, sort_keys=True) + "\n")
    return [
        folder / n
        for n in ("kept.parquet", "removed.parquet", "contamination.parquet", "stats.json")
    ]


def read_union(folder: str | Path, pool: str) -> PoolResult:
    """:func:`write_union`'s files back (``pool``: the part name the rows are reported under)."""
    folder = Path(folder)
    removed = pq.read_table(folder / "removed.parquet").to_pylist()
    matches = pq.read_table(folder / "contamination.parquet").to_pylist()
    for row in (*removed, *matches):
        row["part"] = pool
    stats = json.loads((folder / "stats.json").read_text())
    return PoolResult(pq.read_table(folder / "kept.parquet"), removed, matches, stats)
