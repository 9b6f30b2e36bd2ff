"""Contamination you can read: the decontamination matches per benchmark, per pool and per method.

:func:`contamination_summary` turns the matches that selection writes to
``contamination.parquet`` (``selection.CONTAM_FIELDS``: one row per training row x benchmark
problem it matched, with the strongest ``kind`` of that pair) into the breakdown of
``stats.json``'s ``decontamination`` block. It is a pure function of the matches, the recipe's
pools and the checked benchmarks, so any selection code that writes the matches can call it.

Counting (a *row* is a training row, keyed by its pool and id; every matched row was removed):

* ``rows_removed``: distinct rows. A row that matched two benchmarks counts once in a pool's
  and the recipe's ``rows_removed`` and once under *each* benchmark it matched, so the
  per-benchmark figures can sum to more than the total.
* ``matches``: (row, benchmark problem) pairs, the rows of ``contamination.parquet``.
* ``by_method``: rows, each under its *strongest* method within the scope (verbatim, then
  normalized, then ngram): under a benchmark, the strongest of its matches with that benchmark;
  under a pool or the recipe, the strongest of all its matches. So ``by_method`` sums to
  ``rows_removed`` in every scope.
* ``benchmark_problems_hit``: distinct problems of the benchmark matched by some row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mathrecipes.decontam import KINDS

POOL_TYPES = ("dataset", "synthesis")
_RANK = {k: i for i, k in enumerate(KINDS)}  # lower is stronger


def _rows(matches: Any) -> list[dict[str, Any]]:
    """Matches as dicts: a pyarrow table, a polars frame or an iterable of mappings."""
    if hasattr(matches, "to_pylist"):  # pyarrow
        return matches.to_pylist()
    if hasattr(matches, "to_dicts"):  # polars
        return matches.to_dicts()
    return [dict(m) for m in matches]


def _methods(kinds: Iterable[str]) -> dict[str, int]:
    out = dict.fromkeys(KINDS, 0)
    for k in kinds:
        out[k] += 1
    return out


def _strongest(kinds: Iterable[str]) -> str:
    return min(kinds, key=_RANK.__getitem__)


def contamination_summary(
    matches: Any,
    pools: Sequence[str],
    benchmarks: Sequence[str],
    pool_types: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``by_method``, ``by_benchmark`` and ``by_pool`` of the ``decontamination`` block.

    ``matches``: the contamination table (columns ``train_id``, ``part``, ``benchmark``,
    ``benchmark_id``, ``kind``; a pyarrow table, polars frame or dicts); ``pools``: the mix
    parts' ``from`` names (each gets an entry, matched or not); ``benchmarks``: the benchmarks
    checked (each gets an entry); ``pool_types``: ``from`` name -> ``dataset`` or ``synthesis``
    (written as the pool's ``type`` when given). A match naming another pool, benchmark or
    method is an error.
    """
    rows = _rows(matches)
    pools = list(dict.fromkeys(pools))
    benchmarks = sorted(set(benchmarks))
    for r in rows:
        if r["part"] not in pools:
            raise ValueError(f"contamination row {r['train_id']!r}: pool {r['part']!r} is not "
                             f"one of the recipe's pools {pools}")  # fmt: skip
        if r["benchmark"] not in benchmarks:
            raise ValueError(f"contamination row {r['train_id']!r}: benchmark "
                             f"{r['benchmark']!r} was not checked ({benchmarks})")  # fmt: skip
        if r["kind"] not in _RANK:
            raise ValueError(f"contamination row {r['train_id']!r}: kind {r['kind']!r} is not "
                             f"one of {list(KINDS)}")  # fmt: skip
    for name, kind in (pool_types or {}).items():
        if kind not in POOL_TYPES:
            raise ValueError(f"pool {name!r}: type {kind!r} is not one of {list(POOL_TYPES)}")

    # (pool, train id) -> benchmark -> the kinds of its matches with that benchmark's problems
    kinds_of: dict[tuple[str, str], dict[str, list[str]]] = {}
    for r in rows:
        kinds_of.setdefault((r["part"], r["train_id"]), {}).setdefault(r["benchmark"], [])
        kinds_of[(r["part"], r["train_id"])][r["benchmark"]].append(r["kind"])

    by_benchmark: dict[str, dict[str, Any]] = {}
    for b in benchmarks:
        hit = [r for r in rows if r["benchmark"] == b]
        strongest = [_strongest(per[b]) for per in kinds_of.values() if b in per]
        by_benchmark[b] = {
            "rows_removed": len(strongest),
            "matches": len(hit),
            "benchmark_problems_hit": len({r["benchmark_id"] for r in hit}),
            "by_method": _methods(strongest),
        }

    by_pool: dict[str, dict[str, Any]] = {}
    for p in pools:
        mine = {key: per for key, per in kinds_of.items() if key[0] == p}
        entry: dict[str, Any] = {}
        if pool_types and p in pool_types:
            entry["type"] = pool_types[p]
        entry.update(
            rows_removed=len(mine),
            matches=sum(len(ks) for per in mine.values() for ks in per.values()),
            by_benchmark={b: sum(b in per for per in mine.values()) for b in benchmarks},
            by_method=_methods(
                _strongest(k for ks in per.values() for k in ks) for per in mine.values()
            ),
        )
        by_pool[p] = entry

    return {
        "by_method": _methods(
            _strongest(k for ks in per.values() for k in ks) for per in kinds_of.values()
        ),
        "by_benchmark": by_benchmark,
        "by_pool": by_pool,
    }
