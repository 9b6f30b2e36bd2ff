"""Text normalization shared by dedup and decontamination."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any

_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)


def normalize(text: str) -> str:
    """Lowercase, NFKC, punctuation to spaces, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_NON_WORD.sub(" ", text).split())


def words(text: str) -> list[str]:
    return normalize(text).split()


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


# --- vectorised forms for large pools (selection); the same results as the functions above ---

_ASCII_NON_WORD = r"[^a-z0-9_]+"
_NON_ASCII = r"[^\x00-\x7f]"
_HALF_MIN = 50_000  # normalize_series splits a longer series in two threads
_PRIME = 0x100000001B3  # FNV-64 prime: the multiplier of the polynomial over word hashes
_WORD_SEED = 0x5EED
_SHORT_TAG = 0x9E3779B97F4A7C15  # tells the hash of a short text whole from an n-gram's


def normalize_series(texts: Any) -> Any:
    """:func:`normalize` of every text of ``texts`` (a polars Series, a pyarrow array or a
    list) as a polars Series of strings. ASCII texts are normalized by polars (lower case,
    runs of characters other than ``[a-z0-9_]`` to one space, trimmed), which is exactly
    :func:`normalize` on ASCII (NFKC leaves ASCII as it is, and ``\\w`` on ASCII is
    ``[A-Za-z0-9_]``); the other texts go through :func:`normalize` itself."""
    import polars as pl

    s = texts if isinstance(texts, pl.Series) else pl.Series(texts, dtype=pl.String)
    if len(s) > 2 * _HALF_MIN:  # two halves in two threads (polars lets go of the GIL)
        from concurrent.futures import ThreadPoolExecutor

        half = len(s) // 2
        with ThreadPoolExecutor(max_workers=2) as pool:
            a, b = pool.map(_normalize_series, (s.slice(0, half), s.slice(half)))
        return pl.concat([a, b], rechunk=False)
    return _normalize_series(s)


def _normalize_series(s: Any) -> Any:
    import polars as pl

    fast = s.str.to_lowercase().str.replace_all(_ASCII_NON_WORD, " ").str.strip_chars(" ")
    other = s.str.contains(_NON_ASCII).fill_null(False)
    if other.any():
        idx = other.arg_true()
        slow = pl.Series([normalize(t) for t in s.gather(idx).to_list()], dtype=pl.String)
        fast = fast.scatter(idx, slow)
    return fast


def gram_hashes(norms: Any, n: int, *, empty_gram: bool) -> tuple[Any, Any]:
    """64-bit hashes of the word ``n``-grams of each normalized text of ``norms`` (a polars
    Series of :func:`normalize` outputs): ``(hashes, offsets)``, row ``i``'s hashes being
    ``hashes[offsets[i]:offsets[i + 1]]`` (numpy uint64, offsets of length ``len(norms) + 1``).

    A text of at least ``n`` words has one hash per n-gram (a window of ``n`` words, repeats
    kept); a shorter one has one hash, of the whole text (the shingle of
    :func:`mathrecipes.neardup.shingles` and the gram of :func:`mathrecipes.decontam.gram_set`);
    an empty text has one constant hash with ``empty_gram`` (near dedup: the shingle ``""``) or
    none (decontamination). Equal n-grams hash equally within one process (polars' string
    hash, then a polynomial modulo 2^64 over the word hashes); different ones collide with probability
    about 2^-64, so a caller that needs exact answers checks the rows the hashes point to.
    """
    import numpy as np
    import polars as pl

    rows = len(norms)
    words = norms.str.split(" ")
    lens = words.list.len().to_numpy().astype(np.int64)
    empty = (norms.str.len_bytes() == 0).to_numpy()
    nwords = np.where(empty, 0, lens)
    wh = words.explode().hash(seed=_WORD_SEED).to_numpy()
    starts = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(lens, out=starts[1:])
    windows = np.maximum(nwords - n + 1, 0)
    counts = np.where(nwords >= n, windows, np.where(nwords > 0, 1, 1 if empty_gram else 0))
    offsets = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    total = int(lens.sum())
    out = np.empty(int(offsets[-1]), dtype=np.uint64)
    long_slot = np.repeat(windows > 0, counts)
    if total >= n and long_slot.any():
        mark = np.zeros(total, dtype=np.int32)
        mark[starts[1:-1]] = 1
        row_of = np.cumsum(mark, dtype=np.int32)  # the row of each exploded word
        m = total - n + 1
        # a window is an n-gram when its first and last words are in the same row (of >= n
        # words: an empty text is one word "" after the split)
        valid = (row_of[:m] == row_of[n - 1 :]) & (nwords[row_of[:m]] > 0)
        g = wh[:m].copy()
        with np.errstate(over="ignore"):
            for k in range(1, n):
                g *= np.uint64(_PRIME)
                g += wh[k : k + m]
        # mixed: the polynomial is linear in the word hashes, and so are MinHash permutations
        # (a * h + b); unmixed, the near-dup counts over rensa's seeds spread twice as wide as
        # datasketch's (benchmarks/bench_select.py, 20k pool: 1243-1316 vs 1243-1278)
        out[long_slot] = _mix(g[valid])
    short_rows = np.flatnonzero((windows == 0) & (counts > 0))
    if len(short_rows):
        whole = norms.gather(pl.Series(short_rows)).hash(seed=_WORD_SEED).to_numpy()
        whole = np.where(
            nwords[short_rows] > 0, _mix(whole ^ np.uint64(_SHORT_TAG)), np.uint64(_SHORT_TAG)
        )
        out[~long_slot] = whole.astype(np.uint64)
    return out, offsets


def gram_hash_chunks(
    norms: Any, n: int, *, empty_gram: bool, rows: int, ahead: int = 1
) -> Iterator[tuple[Any, Any]]:
    """:func:`gram_hashes` of ``norms`` ``rows`` texts at a time, in order; the next ``ahead``
    chunks are hashed in a background thread while the caller works on this one (polars and
    numpy let go of the GIL: the second core)."""
    from concurrent.futures import ThreadPoolExecutor

    starts = range(0, len(norms), rows)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gram-hashes") as pool:
        pending = []
        for start in starts:
            pending.append(
                pool.submit(gram_hashes, norms.slice(start, rows), n, empty_gram=empty_gram)
            )
            if len(pending) > ahead:
                yield pending.pop(0).result()
        for fut in pending:
            yield fut.result()


def _mix(x: Any) -> Any:
    """The splitmix64 finalizer (spreads the polynomial's bits over the whole word)."""
    import numpy as np

    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))
