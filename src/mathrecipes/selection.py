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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mathrecipes.config import RecipeSpec
from mathrecipes.config.recipes import pool_settings
from mathrecipes.contamination import contamination_summary
from mathrecipes.poolsteps import (
    Clock,
    SelectionError,
    benchmark_index,
    key_pairs,
    pool_union,
    read_union,
    shard_signatures,
)
from mathrecipes.records import FIELDS, SCHEMA, RecordError, write_table

log = logging.getLogger(__name__)

CONTAM_FIELDS = ("train_id", "part", "benchmark", "benchmark_id", "kind", "overlap", "evidence")
REMOVED_FIELDS = ("train_id", "part", "stage", "reason", "duplicate_of")


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


ROW_GROUP = 1 << 18  # rows per row group of train.parquet (bounds what select_recipe holds)


def rank_order(seed: int, ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The indices of ``ids`` sorted by :func:`rank_key` (stable), the keys held as one numpy
    ``S32`` array (32 bytes a row, not Python bytes objects)."""
    keys = np.empty(len(ids), dtype="S32")
    step = 1 << 18
    for a in range(0, len(ids), step):
        chunk = ids.slice(a, step).to_pylist()
        blob = b"".join(rank_key(seed, rid) for rid in chunk)
        keys[a : a + len(chunk)] = np.frombuffer(blob, dtype="S32")
    return np.argsort(keys, kind="stable")


def _write_rows(parts: Sequence[tuple[Sequence[str | Path], np.ndarray]], out: str | Path) -> int:
    """The whole rows of each part (its pool's files, the positions in them of its selected
    rows, in id order) to ``out`` in id order, in row groups of :data:`ROW_GROUP` rows. One
    part whose positions rise with the ids (a pool file in id order, as ingest writes it) is
    streamed a row group at a time; otherwise the selected rows are gathered first."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    written = 0
    with pq.ParquetWriter(tmp, SCHEMA, compression="zstd", store_schema=True) as writer:
        pending: list[pa.Table] = []
        held = 0

        def emit(t: pa.Table, final: bool = False) -> None:
            nonlocal held, written
            if t.num_rows:
                pending.append(t)
                held += t.num_rows
            while held >= ROW_GROUP or (final and held):
                whole = pa.concat_tables(pending)
                group, rest = whole.slice(0, ROW_GROUP), whole.slice(ROW_GROUP)
                # one chunk: the pages do not depend on how the rows were read
                writer.write_table(group.combine_chunks(), row_group_size=ROW_GROUP)
                written += group.num_rows
                pending[:] = [rest] if rest.num_rows else []
                held = rest.num_rows

        rising = len(parts) == 1 and bool(np.all(np.diff(parts[0][1]) > 0))
        if rising:
            for batch in _stream_rows(parts[0][0], parts[0][1]):
                emit(batch)
        else:
            tables = []
            for paths, pos in parts:
                order = np.argsort(pos, kind="stable")
                got = (
                    pa.concat_tables(list(_stream_rows(paths, pos[order])), promote_options="none")
                    if len(pos)
                    else SCHEMA.empty_table()
                )
                back = np.empty(len(order), dtype=np.int64)
                back[order] = np.arange(len(order))
                tables.append(got.take(pa.array(back)))
            train = pa.concat_tables(tables)
            del tables
            if len(parts) > 1:
                train = train.take(pc.sort_indices(train, [("id", "ascending")]))
            emit(train)
        emit(SCHEMA.empty_table(), final=True)
    tmp.replace(out)
    return written


def _stream_rows(paths: Sequence[str | Path], positions: np.ndarray):
    """The whole rows at ``positions`` (rising) of ``paths`` concatenated, a row group at a
    time."""
    offset = 0
    for path in paths:
        f = pq.ParquetFile(path)
        for g in range(f.metadata.num_row_groups):
            n = f.metadata.row_group(g).num_rows
            lo, hi = np.searchsorted(positions, [offset, offset + n])
            if hi > lo:
                t = f.read_row_group(g, columns=list(FIELDS)).cast(SCHEMA)
                yield t.take(pa.array(positions[lo:hi] - offset))
            offset += n


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
    unions: Mapping[str, str | Path] | None = None,
    pool_types: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build ``recipes.<name>`` (``spec``: a :class:`~mathrecipes.config.RecipeSpec` or a mapping
    for one); ``pools`` maps each mix part's ``from`` to its parquet files. Each pool's kept rows
    come from :func:`mathrecipes.poolsteps.pool_union`: computed here (both steps in this
    process; ``workers``: the processes that compute near dedup's signatures), or, with
    ``unions`` (``from`` -> the folder of its sharded selection), read from the files the
    sharded jobs wrote (:func:`mathrecipes.poolsteps.write_union`). ``pool_types``: ``from`` ->
    ``dataset`` or ``synthesis``, for the contamination breakdown. The log gives each step's
    seconds."""
    spec = RecipeSpec.model_validate(spec)
    seed = spec.seed
    decon = spec.decontaminate
    decon_on = decon.enabled
    wanted = decon.benchmarks
    bench_names = sorted(benchmarks) if wanted == "all" else list(wanted)
    settings = pool_settings(spec, bench_names if decon_on else [])
    index = None
    if settings["decontaminate"]["enabled"] and unions is None:
        index = benchmark_index(settings, benchmarks)
    filters = spec.filters.model_dump(exclude_none=True)  # the bounds that are set, for stats
    near = spec.near_dedup
    parts_stats: list[dict[str, Any]] = []
    kept_rows: list[pa.Table | None] = []
    matches_out: list[dict[str, Any]] = []
    removed_out: list[dict[str, str]] = []
    for i, part in enumerate(spec.mix):
        src = part.from_
        if src not in pools:
            raise SelectionError(f"recipes.{name}.mix.{i}.from: no input files for {src!r}")
        clock = Clock()
        if unions is not None:
            result = read_union(unions[src], src)
        else:
            try:
                table = shard_signatures(
                    pools[src], 0, 1, settings, benchmarks, pool=src, workers=workers, index=index
                )
            except SelectionError as exc:
                raise SelectionError(f"recipes.{name}.mix.{i}.from: {exc}") from None
            clock.lap("signatures")
            result = pool_union([table], settings, pool=src)
            del table
        clock.lap("union")
        removed_out.extend(result.removed)
        matches_out.extend(result.matches)
        kept_rows.append(result.kept)
        log.info("recipe %s, %s (%d rows): %s", name, src, result.stats["gathered"], clock)
        parts_stats.append({"from": src, "weight": part.weight, **result.stats})
        del result

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
    clock = Clock()
    norm_keys: list[np.ndarray] = []
    parts: list[tuple[Sequence[str | Path], np.ndarray]] = []
    for i, (stats, k) in enumerate(zip(parts_stats, q, strict=True)):
        stats["quota"] = k
        kept = kept_rows[i]
        kept_rows[i] = None  # freed part by part
        take = np.sort(rank_order(seed, kept["id"])[:k])  # id order
        norm_keys.append(key_pairs(kept["norm"].take(pa.array(take))))
        parts.append((pools[stats["from"]], kept["pos"].to_numpy()[take]))
        del kept
    keys = np.concatenate(norm_keys)
    cross = len(keys) - pl.DataFrame({"a": keys[:, 0], "b": keys[:, 1]}).n_unique()
    del keys, norm_keys
    clock.lap("rank")
    examples = _write_rows(parts, out_train)
    clock.lap("write")
    log.info("recipe %s: %s", name, clock)
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
    used = settings["decontaminate"]["enabled"]
    stats = {
        "recipe": name,
        "seed": seed,
        "examples": examples,
        "volume": volume,
        "max_total": t_max,
        "parts": parts_stats,
        "cross_part_duplicate_problems": cross,
        "filters": filters,
        "near_dedup": near.model_dump() if near.enabled else {"enabled": False},
        "rows_removed_before_decontamination": len(removed_out),
        "decontamination": {
            "enabled": decon_on,
            "ngram": decon.ngram,
            "min_overlap": decon.min_overlap,
            "benchmarks": {
                b: (pq.ParquetFile(benchmarks[b]).metadata.num_rows if used else 0)
                for b in bench_names
            },
            "matches": len(matches_out),
            "rows_removed": sum(p["contaminated_removed"] for p in parts_stats),
            **contamination_summary(
                matches_out, [p["from"] for p in parts_stats], bench_names, pool_types
            ),
        },
    }
    Path(out_stats).parent.mkdir(parents=True, exist_ok=True)
    Path(out_stats).write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
    log.info("recipe %s: %d examples", name, examples)
    return stats
