"""Near-duplicate removal with MinHash LSH, and the row filters of a recipe.

Near duplicates: every row's text (its ``problem`` by default) is normalized
(:func:`mathrecipes.textnorm.normalize`), cut into word ``ngram`` shingles (a text shorter than
that is one shingle) and summarized by a MinHash of ``num_perm`` permutations with a fixed seed.
Rows are visited in id order; a row whose estimated Jaccard similarity to an earlier kept row
reaches ``threshold`` (candidates from LSH, then checked on the signatures) is a near duplicate
of the earliest such row and is removed. The result depends only on the rows, not their order.

Two implementations of that rule:

* :func:`near_duplicates` (rows as mappings; datasketch's MinHash and LSH): the synthesis
  methods' near dedup inside a shard (a few thousand rows);
* :func:`near_duplicates_of` (vectorised; selection's near dedup before the pool steps of
  :mod:`mathrecipes.poolsteps`, which give the same removals and now run selection: kept as
  their reference in tests and ``benchmarks/bench_select.py --agreement``): the shingles
  are hashed by :func:`mathrecipes.textnorm.gram_hashes`, the signatures computed by ``rensa``
  (a Rust MinHash), and the LSH is datasketch's own banding (``b`` bands of ``r`` rows, chosen
  by datasketch for the threshold and num_perm) done in numpy. Only the signature values differ
  from datasketch's (another hash of the shingles and other permutations): given the same
  signatures both give the same removals (tests/test_neardup.py checks it), and with their own
  signatures they differ only on pairs whose estimated Jaccard falls on the other side of the
  threshold, or whose LSH collision happens in one draw and not the other (near the threshold
  the estimate's standard error is about ``sqrt(J(1-J)/num_perm)``, 0.035 at 0.8 and 128).
  rensa's own LSH index (its signatures of ``r * ceil(num_perm / r)`` values, the first
  ``num_perm`` being the signature, in bands of ``r``) finds the rows that share a band with
  another; only those rows' signatures are taken out to numpy (through Python lists, the slow
  part, in ``workers`` processes: :mod:`mathrecipes.minhash`), where datasketch's bands are
  hashed to 64 bits, grouped, and a key collision checked on the values (datasketch keys its
  buckets by the values themselves).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mathrecipes import minhash
from mathrecipes.config import RowFilters
from mathrecipes.minhash import MINHASH_SEED
from mathrecipes.records import loads_meta
from mathrecipes.textnorm import gram_hash_chunks, normalize

CHUNK_ROWS = 25_000  # rows hashed at once by near_duplicates_of (bounds the working memory)


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
    lsh_bands(threshold, num_perm)  # the clear error for a threshold LSH cannot serve
    signatures = MinHash.bulk(
        [shingles(str(r[field]), ngram) for r in ordered], num_perm=num_perm, seed=MINHASH_SEED
    )
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
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


# datasketch's (b, r) for common settings: importing datasketch (and scipy) costs a job 0.5-2 s;
# tests/test_selection_shards.py checks these against datasketch
KNOWN_BANDS = {
    (0.7, 128): (14, 9),
    (0.75, 128): (11, 11),
    (0.8, 128): (9, 13),
    (0.85, 128): (8, 16),
    (0.9, 128): (5, 25),
    (0.8, 256): (17, 15),
}


def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """datasketch's ``(b, r)`` for ``threshold`` and ``num_perm`` (equal weights on false
    positives and negatives), with its error for a threshold LSH cannot serve."""
    if (threshold, num_perm) in KNOWN_BANDS:
        return KNOWN_BANDS[(threshold, num_perm)]
    from datasketch import MinHashLSH

    try:
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    except ValueError as exc:  # e.g. a threshold so strict that LSH gets fewer than 2 bands
        raise ValueError(
            f"near_dedup: threshold {threshold} with num_perm {num_perm} does not work for LSH "
            f"({exc}); lower near_dedup.threshold or raise near_dedup.num_perm"
        ) from None
    return lsh.b, lsh.r


def near_duplicates_of(
    ids: Sequence[str],
    norms: Any,
    *,
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 5,
    workers: int = 1,
    sigs: Any = None,
) -> list[NearDuplicate]:
    """The near duplicates among rows ``ids`` (distinct, sorted) with normalized texts ``norms``
    (a polars Series, :func:`mathrecipes.textnorm.normalize_series`), in id order; the rule of
    :func:`near_duplicates`, the implementation of the module docstring, the signatures made by
    ``workers`` processes. ``sigs``: signatures to use instead of rensa's (a rows x
    ``num_perm`` array; tests give datasketch's)."""
    import numpy as np

    b, r = lsh_bands(threshold, num_perm)
    rows = len(ids)
    if rows == 0:
        return []
    if sigs is None:
        # rensa's signatures of perms >= num_perm values (a multiple of r, so that its own LSH
        # index has bands of r values: datasketch's b bands and maybe one more), of which the
        # first num_perm are the signature; only rows sharing a band with another row can be
        # near duplicates, and only theirs leave rensa
        perms = r * -(-num_perm // r)
        flagged = _colliding_rows(norms, ngram=ngram, perms=perms, r=r)
        subset = norms.gather(flagged)
        chunks = gram_hash_chunks(subset, ngram, empty_gram=True, rows=CHUNK_ROWS)
        sigs = minhash.signatures(chunks, len(subset), perms, workers=workers)[:, :num_perm]
        ids = [ids[k] for k in flagged.tolist()]
    sigs = np.asarray(sigs)
    lo, hi = _band_pairs(sigs, b, r)
    if not len(lo):
        return []
    jac = np.count_nonzero(sigs[lo] == sigs[hi], axis=1) / num_perm
    close: dict[int, list[tuple[int, float]]] = {}
    for i, j, x in zip(lo.tolist(), hi.tolist(), jac.tolist(), strict=True):
        if x >= threshold:
            close.setdefault(j, []).append((i, x))
    removed_at: set[int] = set()
    out = []
    for j in sorted(close):  # id order: a row is compared with the earlier rows still kept
        kept = [(i, x) for i, x in close[j] if i not in removed_at]
        if kept:
            i, x = min(kept)
            removed_at.add(j)
            out.append(NearDuplicate(ids[j], ids[i], round(x, 4)))
    return out


def _colliding_rows(norms: Any, *, ngram: int, perms: int, r: int) -> Any:
    """Indices of the rows whose rensa signature (``perms`` values) has a band of ``r``
    values equal to another row's: rensa's LSH index over chunks of :data:`CHUNK_ROWS` rows,
    queried once every row is in."""
    import numpy as np
    from rensa import RMinHash, RMinHashLSH

    index = RMinHashLSH(0.5, perms, perms // r)
    matrices = []
    chunks = gram_hash_chunks(norms, ngram, empty_gram=True, rows=CHUNK_ROWS)
    for start, (hashes, offsets) in zip(range(0, len(norms), CHUNK_ROWS), chunks, strict=True):
        matrix = RMinHash.digest_matrix_from_flat_token_hashes(
            hashes, offsets.astype(np.uint64), num_perm=perms, seed=MINHASH_SEED
        )
        index.insert_matrix(matrix, start_key=start)
        matrices.append(matrix)
    flags = [np.asarray(index.query_duplicate_flags_matrix(m), dtype=bool) for m in matrices]
    return np.flatnonzero(np.concatenate(flags)) if flags else np.empty(0, np.int64)


def _band_pairs(sigs: Any, b: int, r: int) -> tuple[Any, Any]:
    """The row pairs ``(lo, hi)`` (``lo < hi``, each pair once) with an equal band: the
    ``r`` signature values from ``k * r``, ``k < b`` (datasketch's LSH candidates)."""
    import numpy as np

    rows = len(sigs)
    found_lo, found_hi = [], []
    weights = np.random.default_rng(0).integers(1, 2**63, size=r, dtype=np.uint64) | np.uint64(1)
    for band in range(b):
        vals = sigs[:, band * r : (band + 1) * r]
        with np.errstate(over="ignore"):
            keys = (vals.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)
        order = np.argsort(keys, kind="stable")
        sk = keys[order]
        same = sk[1:] == sk[:-1]
        if not same.any():
            continue
        # runs of equal keys (start s, end e inclusive): every pair inside a run
        edge = np.flatnonzero(np.diff(np.r_[False, same, False].astype(np.int8)))
        s, e = edge[::2], edge[1::2]
        two = e - s == 1  # most runs are one pair
        band_lo = [np.minimum(order[s[two]], order[e[two]])]
        band_hi = [np.maximum(order[s[two]], order[e[two]])]
        for start, end in zip(s[~two].tolist(), e[~two].tolist(), strict=True):
            members = np.sort(order[start : end + 1])
            x, y = np.triu_indices(len(members), 1)
            band_lo.append(members[x])
            band_hi.append(members[y])
        lo, hi = np.concatenate(band_lo), np.concatenate(band_hi)
        # a key collision of unequal bands is no candidate (datasketch compares the values)
        equal = (vals[lo] == vals[hi]).all(axis=1)
        found_lo.append(lo[equal])
        found_hi.append(hi[equal])
    if not found_lo:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    code = np.unique(np.concatenate(found_lo).astype(np.int64) * rows + np.concatenate(found_hi))
    return code // rows, code % rows


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
