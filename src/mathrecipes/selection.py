"""Selection: turn pools (datasets, synthesis outputs) into one recipe's training set.

For each part of the recipe's ``mix`` (in config order):

1. gather the rows of its pool (a dataset file or every shard of a synthesis entry);
   drop the rows that fail the recipe's ``filters`` (lengths, answer types, pass rate);
2. exact dedup on the normalized problem text (the first row by id is kept), then, when
   ``near_dedup.enabled``, MinHash near-duplicate removal (:mod:`mathrecipes.neardup`);
3. decontaminate against the configured benchmarks (:mod:`mathrecipes.decontam`): a verbatim,
   normalized-text or n-gram match removes the row, and every match is written to
   ``contamination.parquet``; pools are raw datasets or synthesis shards, so decontamination
   applies to both (a rephrased problem is checked again even if its parent was clean);
   ``stats.json`` breaks the matches down per benchmark, pool and method
   (:mod:`mathrecipes.contamination`);
4. rank the remaining rows by ``sha256(seed|id)``; this order depends only on the seed and the
   row ids, so for the same seed a smaller volume is always a prefix of a larger one (the 1/3
   subset lies inside the full set);
5. take the part's quota of the volume.

Volume: the largest mix the pools allow is ``T_max = min_i floor(pool_i / w_i)`` with weights
normalized to sum 1 (without weights the parts are taken in proportion to their pool sizes, so
``fraction: 1.0`` is every row of every pool); ``fraction`` takes ``round(fraction * T_max)`` rows in all, ``count`` that many
(an error if the pools cannot supply it). Quotas are split by the weights with the largest
remainder method, so they sum to the total exactly.

Rows of different parts with the same problem text (e.g. a raw row and its distilled version) are
kept; their number is reported as ``cross_part_duplicate_problems``.

Every row dropped by a filter, exact dedup or near dedup is listed in ``removed.parquet``
(``REMOVED_FIELDS``) with its reason; decontamination matches go to ``contamination.parquet``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
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

from mathrecipes.config import RecipeSpec
from mathrecipes.contamination import contamination_summary
from mathrecipes.decontam import BenchmarkIndex
from mathrecipes.neardup import filter_reason, near_duplicates_of
from mathrecipes.records import FIELDS, NO_ANSWER, SCHEMA, RecordError, read_records, write_table
from mathrecipes.textnorm import normalize_series

log = logging.getLogger(__name__)

CONTAM_FIELDS = ("train_id", "part", "benchmark", "benchmark_id", "kind", "overlap", "evidence")
REMOVED_FIELDS = ("train_id", "part", "stage", "reason", "duplicate_of")


class SelectionError(ValueError):
    pass


class _Pool(NamedTuple):
    """One part after dedup and decontamination: its rows (in id order; the columns the steps
    read and ``_pos``, the row's position in the pool), their normalized problems, and the row
    indices in rank order."""

    table: pa.Table
    norms: pl.Series
    order: np.ndarray


def read_pool(paths: Sequence[str | Path], columns: Sequence[str] = FIELDS) -> pa.Table:
    """``columns`` (canonical fields) of a pool's parquet files as one arrow table in id order
    (a stable sort: rows with the same id keep their file order), not as Python rows. The same
    files give the same order whatever the columns (selection reads the text columns first and
    the whole rows of the selected positions at the end)."""
    tables = []
    columns = list(dict.fromkeys(["id", *columns]))
    for path in paths:
        names = pq.read_schema(path).names
        missing = [f for f in FIELDS if f not in names]
        if missing:
            raise RecordError(f"{path}: not a canonical record file, missing column(s) {missing}")
        schema = pa.schema([SCHEMA.field(c) for c in columns])
        tables.append(pq.read_table(path, columns=columns).cast(schema))
    if not tables:
        return pa.schema([SCHEMA.field(c) for c in columns]).empty_table()
    table = pa.concat_tables(tables)
    ids = table["id"]
    if len(ids) < 2 or pc.all(pc.less_equal(ids.slice(0, len(ids) - 1), ids.slice(1))).as_py():
        return table  # already in id order (an ingested file usually is): no second copy
    return table.take(pc.sort_indices(table, [("id", "ascending")]))


def _take_rows(paths: Sequence[str | Path], positions: np.ndarray) -> pa.Table:
    """The whole rows at ``positions`` (sorted) of :func:`read_pool`'s table; from one file
    already in id order, read a row group at a time (the pool is never held whole)."""
    if len(paths) == 1:
        ids = pq.read_table(paths[0], columns=["id"])["id"]
        n = len(ids)
        if n < 2 or pc.all(pc.less_equal(ids.slice(0, n - 1), ids.slice(1))).as_py():
            del ids
            parts, start = [], 0
            for batch in pq.ParquetFile(paths[0]).iter_batches(columns=list(FIELDS)):
                lo, hi = np.searchsorted(positions, [start, start + batch.num_rows])
                if hi > lo:
                    parts.append(batch.take(pa.array(positions[lo:hi] - start)))
                start += batch.num_rows
            schema = SCHEMA
            return pa.Table.from_batches([b.cast(schema) for b in parts], schema=schema)
    return read_pool(paths).take(pa.array(positions))


def _keep(table: pa.Table, norms: pl.Series, mask: Any) -> tuple[pa.Table, pl.Series]:
    mask = np.asarray(mask, dtype=bool)
    return table.filter(pa.array(mask)), norms.filter(pl.Series(mask))


_THREADS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decontam-screen")


class _Clock:
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


def rank_key(seed: int, row_id: str) -> bytes:
    return hashlib.sha256(f"{seed}|{row_id}".encode()).digest()


def quotas(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` by ``weights`` with the largest remainder method (sums to ``total``)."""
    s = sum(weights)
    exact = [total * w / s for w in weights]
    base = [math.floor(x) for x in exact]
    rest = total - sum(base)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - base[i]), i))
    for i in order[:rest]:
        base[i] += 1
    return base


def select_recipe(
    name: str,
    spec: RecipeSpec | Mapping[str, Any],
    pools: Mapping[str, Sequence[str | Path]],
    benchmarks: Mapping[str, str | Path],
    out_train: str | Path,
    out_stats: str | Path,
    out_contamination: str | Path,
    out_removed: str | Path | None = None,
    *,
    workers: int = 1,
    pool_types: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build ``recipes.<name>`` (``spec``: a :class:`~mathrecipes.config.RecipeSpec` or a mapping
    for one); ``pools`` maps each mix part's ``from`` to its parquet files. ``workers``: the
    processes that compute near dedup's signatures (the job's threads; polars uses its own
    thread pool, ``POLARS_MAX_THREADS``); ``pool_types``: ``from`` -> ``dataset`` or
    ``synthesis``, for the contamination breakdown. The log gives each step's seconds."""
    spec = RecipeSpec.model_validate(spec)
    seed = spec.seed
    decon = spec.decontaminate
    decon_on = decon.enabled
    n = decon.ngram
    min_overlap = decon.min_overlap
    wanted = decon.benchmarks
    bench_names = sorted(benchmarks) if wanted == "all" else list(wanted)
    index = None
    if decon_on and bench_names:
        index = BenchmarkIndex(
            {b: read_records(benchmarks[b]) for b in bench_names}, n, min_overlap
        )

    filters = spec.filters.model_dump(exclude_none=True)  # the bounds that are set, for stats
    near = spec.near_dedup
    near_on = near.enabled
    parts_stats: list[dict[str, Any]] = []
    pools_rows: list[_Pool | None] = []
    matches_out: list[dict[str, str]] = []
    removed_out: list[dict[str, str]] = []
    for i, part in enumerate(spec.mix):
        src = part.from_
        if src not in pools:
            raise SelectionError(f"recipes.{name}.mix.{i}.from: no input files for {src!r}")
        clock = _Clock()
        # the columns the steps read, and each row's position for taking whole rows at the end
        used = ["id", "problem", "answer_type"] + (["solution", "meta"] if filters else [])
        table = read_pool(pools[src], used)
        table = table.append_column("_pos", pa.array(np.arange(table.num_rows, dtype=np.int64)))
        answerless = pc.sum(pc.equal(table["answer_type"], NO_ANSWER)).as_py() or 0
        if answerless:  # the config refuses such a pool; files made by hand are refused here
            raise SelectionError(
                f"recipes.{name}.mix.{i}.from: {src!r} has {answerless} row(s) without a gold "
                f"answer (answer_type {NO_ANSWER!r}: raw text); only rewrite / extract read them"
            )
        gathered = table.num_rows

        def drop(row_id: str, stage: str, reason: str, duplicate_of: str = "") -> None:
            removed_out.append(
                {
                    "train_id": row_id,
                    "part": src,  # noqa: B023 (called within this iteration only)
                    "stage": stage,
                    "reason": reason,
                    "duplicate_of": duplicate_of,
                }
            )

        filtered: dict[str, int] = {}
        if filters:
            keep = []
            for r in table.select(["id", "problem", "solution", "answer_type", "meta"]).to_pylist():
                why = filter_reason(r, spec.filters)
                keep.append(why is None)
                if why is not None:
                    kind = why.split(":")[0]
                    filtered[kind] = filtered.get(kind, 0) + 1
                    drop(r["id"], "filter", why)
            table = table.filter(pa.array(keep, pa.bool_()))
        clock.lap("read and filter")
        norms = normalize_series(table["problem"])
        # the steps after this read the normalized text; decontamination reads the few
        # suspects' problems back by position (the column is the pool's largest)
        table = table.drop_columns(["problem"])
        clock.lap("normalize")
        dups = 0
        if spec.dedup:
            first = norms.is_first_distinct().to_numpy()
            dups = int((~first).sum())
            if dups:
                ids = pl.Series(table["id"])
                first_id = (
                    pl.DataFrame({"id": ids, "norm": norms})
                    .select(pl.col("id").first().over("norm"))
                    .to_series()
                )
                for k in np.flatnonzero(~first).tolist():
                    drop(ids[k], "dedup", "same normalized problem text", first_id[k])
                table, norms = _keep(table, norms, first)
        clock.lap("exact dedup")
        # decontamination's screen (numpy and polars, which let go of the GIL) runs in a thread
        # beside near dedup: the second core; the rows near dedup removes are dropped from it
        screen = None
        if index is not None and table.num_rows:
            screen = _THREADS.submit(index.candidates, norms)
        near_dups = 0
        kept_by_near = None
        if near_on:
            found_near = near_duplicates_of(
                table["id"].to_pylist(),
                norms,
                threshold=near.threshold,
                num_perm=near.num_perm,
                ngram=near.ngram,
                workers=workers,
            )
            near_dups = len(found_near)
            gone = set()
            for d in found_near:
                drop(d.row_id, "near_dedup", f"minhash jaccard {d.jaccard:.3f}", d.duplicate_of)
                gone.add(d.row_id)
            if gone:
                kept_by_near = ~np.asarray(pc.is_in(table["id"], pa.array(sorted(gone))))
                table, norms = _keep(table, norms, kept_by_near)
        clock.lap("near dedup")
        contaminated = 0
        if screen is not None:
            clean = np.ones(table.num_rows, dtype=bool)
            mask = screen.result()
            suspects = np.flatnonzero(mask if kept_by_near is None else mask[kept_by_near])
            positions = table["_pos"].take(pa.array(suspects))
            problems = read_pool(pools[src], ["problem"])["problem"].take(positions)
            sub = [
                {"id": i, "problem": p}
                for i, p in zip(
                    table["id"].take(pa.array(suspects)).to_pylist(),
                    problems.to_pylist(),
                    strict=True,
                )
            ]
            sub_norms = norms.gather(pl.Series(suspects)).to_list()
            for k, r, norm in zip(suspects.tolist(), sub, sub_norms, strict=True):
                found = index.matches(r["id"], r["problem"], norm)
                if found:
                    contaminated += 1
                    clean[k] = False
                    for m in found:
                        matches_out.append(
                            {
                                "train_id": m.train_id,
                                "part": src,
                                "benchmark": m.benchmark,
                                "benchmark_id": m.benchmark_id,
                                "kind": m.kind,
                                "overlap": m.overlap,
                                "evidence": m.evidence,
                            }
                        )
            if contaminated:
                table, norms = _keep(table, norms, clean)
        clock.lap("decontaminate")
        keys = [rank_key(seed, rid) for rid in table["id"].to_pylist()]
        order = sorted(range(table.num_rows), key=keys.__getitem__)
        del keys
        pools_rows.append(_Pool(table, norms, np.array(order, dtype=np.int64)))
        clock.lap("rank")
        log.info("recipe %s, %s (%d rows): %s", name, src, gathered, clock)
        parts_stats.append(
            {
                "from": src,
                "weight": part.weight,
                "gathered": gathered,
                "filtered_removed": dict(sorted(filtered.items())),
                "duplicates_removed": dups,
                "near_duplicates_removed": near_dups,
                "contaminated_removed": contaminated,
                "pool": table.num_rows,
            }
        )

    table = norms = None  # the last part's, held in pools_rows until its rows are taken
    if all(p["weight"] is None for p in parts_stats):
        # no weights: the pools whole, i.e. shares in proportion to their sizes
        for p in parts_stats:
            p["weight"] = float(p["pool"])
    elif any(p["weight"] is None for p in parts_stats):
        raise SelectionError(f"recipes.{name}.mix: give a weight on every part or on none")
    weights = [float(p["weight"]) for p in parts_stats]
    wsum = sum(weights)
    if wsum <= 0:
        raise SelectionError(f"recipes.{name}: every pool is empty after dedup and decontamination")
    t_max = min(
        math.floor(p["pool"] / (w / wsum) + 1e-9) if w > 0 else math.inf
        for p, w in zip(parts_stats, weights, strict=True)
    )
    volume = spec.volume.model_dump()
    if spec.volume.count is not None:
        total = spec.volume.count
        if total > t_max:
            detail = ", ".join(f"{p['from']}: {p['pool']}" for p in parts_stats)
            raise SelectionError(
                f"recipes.{name}.volume.count: {total} rows asked for, but the pools allow at most "
                f"{t_max} for these weights ({detail})"
            )
    else:
        total = round(spec.volume.fraction * t_max)
    if total <= 0:
        raise SelectionError(f"recipes.{name}.volume: selects no rows (pools allow {t_max})")
    q = quotas(total, weights)
    selected: list[pa.Table] = []
    selected_norms: list[pl.Series] = []
    positions: list[np.ndarray] = []
    for i, (stats, k) in enumerate(zip(parts_stats, q, strict=True)):
        stats["quota"] = k
        pool = pools_rows[i]
        pools_rows[i] = None  # freed part by part
        take = pool.order[:k]
        selected_norms.append(pool.norms.gather(pl.Series(take)))
        positions.append(np.sort(pool.table["_pos"].to_numpy()[take]))
        del pool
    all_norms = pl.concat(selected_norms, rechunk=False)
    cross = len(all_norms) - all_norms.n_unique()
    del all_norms, selected_norms  # before the whole rows are read
    for stats, pos in zip(parts_stats, positions, strict=True):
        # whole rows of the selected positions (in id order: the pool is read in id order)
        selected.append(_take_rows(pools[stats["from"]], pos))
    train = pa.concat_tables(selected)
    del selected
    if len(spec.mix) > 1:
        train = train.take(pc.sort_indices(train, [("id", "ascending")]))
    write_table(train, out_train)  # chunked as read: the row groups do not depend on it
    matches_out.sort(key=lambda m: (m["train_id"], m["benchmark"], m["benchmark_id"]))
    schema = pa.schema(
        [(f, pa.float64() if f == "overlap" else pa.string()) for f in CONTAM_FIELDS]
    )
    write_table(
        pa.table({f: [m[f] for m in matches_out] for f in CONTAM_FIELDS}, schema=schema),
        out_contamination,
    )
    if out_removed is not None:
        removed_out.sort(key=lambda m: (m["part"], m["train_id"]))
        write_table(
            pa.table(
                {f: [m[f] for m in removed_out] for f in REMOVED_FIELDS},
                schema=pa.schema([(f, pa.string()) for f in REMOVED_FIELDS]),
            ),
            out_removed,
        )
    stats = {
        "recipe": name,
        "seed": seed,
        "examples": train.num_rows,
        "volume": volume,
        "max_total": t_max,
        "parts": parts_stats,
        "cross_part_duplicate_problems": cross,
        "filters": filters,
        "near_dedup": near.model_dump() if near_on else {"enabled": False},
        "rows_removed_before_decontamination": len(removed_out),
        "decontamination": {
            "enabled": decon_on,
            "ngram": n,
            "min_overlap": min_overlap,
            "benchmarks": {b: (index.sizes.get(b, 0) if index else 0) for b in bench_names},
            "matches": len(matches_out),
            "rows_removed": sum(p["contaminated_removed"] for p in parts_stats),
            **contamination_summary(
                matches_out, [p["from"] for p in parts_stats], bench_names, pool_types
            ),
        },
    }
    Path(out_stats).parent.mkdir(parents=True, exist_ok=True)
    Path(out_stats).write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
    log.info("recipe %s: %d examples", name, train.num_rows)
    return stats
