"""Decontamination: find training rows that overlap a benchmark.

Three checks on the problem text, strongest first; a training row is reported once per benchmark
item it matches, with the strongest kind:

* ``verbatim``: equal after trimming and collapsing whitespace;
* ``normalized``: equal after :func:`mathrecipes.textnorm.normalize` (case, punctuation and LaTeX
  spacing differences, e.g. ``15$`` vs ``15,$``);
* ``ngram``: the two texts share word n-grams (13 words by default, 8 as the stricter preset)
  covering at least ``min_overlap`` of the shorter text's n-grams. ``min_overlap: 0`` is the
  classic rule (any shared n-gram). The default 0.7 catches lightly edited copies (an AIME problem
  re-typeset in MATH) but not different problems that share a boilerplate sentence ("... where m
  and n are relatively prime positive integers. Find m+n.") or a template ("A train travels 270
  miles in 3 hours. At the same rate, ...").

Every match is reported (training id, benchmark, benchmark id, kind, overlap, evidence) and a
training row with any match is removed from the pool.

A large pool is screened first (:meth:`BenchmarkIndex.candidates`, vectorised): a row can match
only if its normalized text is a benchmark's or it shares an n-gram with one (a verbatim match
is a normalized one too), which 64-bit n-gram hashes find without a miss; only those rows go
through :meth:`BenchmarkIndex.matches`, so the matches are the same as checking every row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mathrecipes.textnorm import gram_hashes, ngrams, normalize

KINDS = ("verbatim", "normalized", "ngram")
SCREEN_ROWS = 25_000  # rows hashed at once by BenchmarkIndex.candidates (bounds its memory)


@dataclass(frozen=True)
class Match:
    train_id: str
    benchmark: str
    benchmark_id: str
    kind: str  # one of KINDS
    overlap: float  # fraction of the shorter text's n-grams that are shared (1.0 for equal texts)
    evidence: str


def verbatim_key(text: str) -> str:
    return " ".join(text.split())


def gram_set(norm: str, n: int) -> set[tuple[str, ...]]:
    words = norm.split()
    grams = set(ngrams(words, n))
    return grams if grams else ({tuple(words)} if words else set())


class BenchmarkIndex:
    """Verbatim, normalized-text and n-gram index over the problems of several benchmarks."""

    def __init__(
        self,
        benchmarks: Mapping[str, Iterable[Mapping[str, str]]],
        n: int = 13,
        min_overlap: float = 0.7,
    ) -> None:
        if not 0 <= min_overlap <= 1:
            raise ValueError(f"min_overlap must be within [0, 1], got {min_overlap}")
        self.n = n
        self.min_overlap = min_overlap
        self.keys: list[tuple[str, str]] = []
        self.sizes_of: list[int] = []
        self.verbatim: dict[str, list[int]] = {}
        self.normalized: dict[str, list[int]] = {}
        self.grams: dict[tuple[str, ...], list[int]] = {}
        self.sizes: dict[str, int] = {}
        for bench, rows in sorted(benchmarks.items()):
            count = 0
            for row in rows:
                count += 1
                k = len(self.keys)
                self.keys.append((bench, row["id"]))
                norm = normalize(row["problem"])
                grams = gram_set(norm, n)
                self.sizes_of.append(len(grams))
                self.verbatim.setdefault(verbatim_key(row["problem"]), []).append(k)
                self.normalized.setdefault(norm, []).append(k)
                for g in grams:
                    self.grams.setdefault(g, []).append(k)
            self.sizes[bench] = count
        self._screen: tuple[Any, Any] | None = None

    def candidates(self, norms: Any) -> Any:
        """A numpy bool mask over normalized texts ``norms`` (a polars Series,
        :func:`mathrecipes.textnorm.normalize_series`): True where :meth:`matches` may find
        something (the text is a benchmark's normalized text, or shares an n-gram hash with
        one); False rows have no match."""
        import numpy as np
        import polars as pl

        if self._screen is None:
            bench_norms = pl.Series(list(self.normalized), dtype=pl.String)
            hashes, _ = gram_hashes(bench_norms, self.n, empty_gram=False)
            self._screen = (pl.Series(np.unique(hashes)), bench_norms)
        grams, bench_norms = self._screen
        out = norms.is_in(bench_norms.implode()).to_numpy().copy()
        if not len(grams):
            return out
        for start in range(0, len(norms), SCREEN_ROWS):
            chunk = norms.slice(start, SCREEN_ROWS)
            hashes, offsets = gram_hashes(chunk, self.n, empty_gram=False)
            found = pl.Series(hashes).is_in(grams.implode()).to_numpy()
            hit = np.zeros(len(hashes) + 1, dtype=np.int64)
            np.cumsum(found, out=hit[1:])
            out[start : start + len(offsets) - 1] |= hit[offsets[1:]] > hit[offsets[:-1]]
        return out

    def matches(self, row_id: str, problem: str, norm: str | None = None) -> list[Match]:
        """The matches of one training problem; ``norm``: its :func:`normalize`, if known."""
        found: dict[int, Match] = {}

        def add(k: int, kind: str, overlap: float, evidence: str) -> None:
            if k not in found:
                bench, bid = self.keys[k]
                found[k] = Match(row_id, bench, bid, kind, round(overlap, 4), evidence)

        for k in self.verbatim.get(verbatim_key(problem), ()):
            add(k, "verbatim", 1.0, verbatim_key(problem)[:200])
        if norm is None:
            norm = normalize(problem)
        for k in self.normalized.get(norm, ()):
            add(k, "normalized", 1.0, norm[:200])
        grams = gram_set(norm, self.n)
        shared: dict[int, int] = {}
        first: dict[int, tuple[str, ...]] = {}
        for g in grams:
            for k in self.grams.get(g, ()):
                shared[k] = shared.get(k, 0) + 1
                if k not in first or g < first[k]:
                    first[k] = g
        for k, count in shared.items():
            overlap = count / max(1, min(len(grams), self.sizes_of[k]))
            if overlap >= self.min_overlap and count > 0:
                add(k, "ngram", overlap, " ".join(first[k]))
        return sorted(found.values(), key=lambda m: (m.benchmark, m.benchmark_id))
