"""Near-duplicate removal with MinHash LSH (datasketch), and the row filters of a recipe.

Near duplicates: every row's text (its ``problem`` by default) is normalized
(:func:`mathrecipes.textnorm.normalize`), cut into word ``ngram`` shingles (a text shorter than
that is one shingle) and summarized by a MinHash of ``num_perm`` permutations with a fixed seed.
Rows are visited in id order; a row whose estimated Jaccard similarity to an earlier kept row
reaches ``threshold`` (candidates from LSH, then checked on the signatures) is a near duplicate
of the earliest such row and is removed. The result depends only on the rows, not their order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mathrecipes.config import RowFilters
from mathrecipes.records import loads_meta
from mathrecipes.textnorm import normalize

MINHASH_SEED = 1


def shingles(text: str, ngram: int) -> list[bytes]:
    words = normalize(text).split()
    if len(words) <= ngram:
        return [" ".join(words).encode()]
    return sorted({" ".join(words[i : i + ngram]).encode() for i in range(len(words) - ngram + 1)})


@dataclass(frozen=True)
class NearDuplicate:
    row_id: str
    duplicate_of: str
    jaccard: float  # estimated from the signatures


def near_duplicates(
    rows: Sequence[Mapping[str, Any]],
    *,
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 5,
    field: str = "problem",
) -> tuple[list[Mapping[str, Any]], list[NearDuplicate]]:
    """``(kept, removed)``: ``kept`` in id order; see the module docstring."""
    from datasketch import MinHash, MinHashLSH

    ordered = sorted(rows, key=lambda r: r["id"])
    if not ordered:
        return [], []
    signatures = MinHash.bulk(
        [shingles(str(r[field]), ngram) for r in ordered], num_perm=num_perm, seed=MINHASH_SEED
    )
    try:
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    except ValueError as exc:  # e.g. a threshold so strict that LSH gets fewer than 2 bands
        raise ValueError(
            f"near_dedup: threshold {threshold} with num_perm {num_perm} does not work for LSH "
            f"({exc}); lower near_dedup.threshold or raise near_dedup.num_perm"
        ) from None
    kept: list[Mapping[str, Any]] = []
    kept_sig: dict[str, Any] = {}
    removed: list[NearDuplicate] = []
    for row, sig in zip(ordered, signatures, strict=True):
        best: tuple[str, float] | None = None
        for cand in lsh.query(sig):
            jac = float(sig.jaccard(kept_sig[cand]))
            if jac >= threshold and (best is None or cand < best[0]):
                best = (cand, jac)
        if best is not None:
            removed.append(NearDuplicate(row["id"], best[0], round(best[1], 4)))
            continue
        lsh.insert(row["id"], sig)
        kept_sig[row["id"]] = sig
        kept.append(row)
    return kept, removed


def filter_reason(row: Mapping[str, Any], filters: RowFilters | Mapping[str, Any]) -> str | None:
    """Why ``row`` fails the recipe's ``filters`` (a :class:`~mathrecipes.config.RowFilters` or
    a mapping for one; None: it passes). Lengths are characters."""
    filters = RowFilters.model_validate(filters)
    checks = (
        ("problem", filters.min_problem_chars, filters.max_problem_chars),
        ("solution", filters.min_solution_chars, filters.max_solution_chars),
    )
    for column, lo, hi in checks:
        n = len(str(row.get(column) or ""))
        if lo is not None and n < lo:
            return f"{column}_too_short: {n} < {lo} characters"
        if hi is not None and n > hi:
            return f"{column}_too_long: {n} > {hi} characters"
    types = filters.answer_types
    if types is not None and row.get("answer_type") not in types:
        return f"answer_type: {row.get('answer_type')!r} not in {sorted(types)}"
    lo, hi = filters.min_pass_rate, filters.max_pass_rate
    if lo is not None or hi is not None:
        rate = loads_meta(row.get("meta")).get("pass_rate")
        if rate is None:
            return "pass_rate: the row has no meta.pass_rate (only distill with samples sets it)"
        rate = float(rate)
        if lo is not None and rate < lo:
            return f"pass_rate: {rate:g} < {lo:g}"
        if hi is not None and rate > hi:
            return f"pass_rate: {rate:g} > {hi:g}"
    return None
