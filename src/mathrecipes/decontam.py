"""Decontamination: find training rows that overlap a benchmark.

Two checks, both on the problem text after :func:`mathrecipes.textnorm.normalize`:

* ``exact``: the normalized texts are equal;
* ``ngram``: the two texts share at least one word n-gram (13 words by default, the GPT-3 /
  open-r1 convention). A text shorter than n words is matched by ``exact`` only.

Every match is reported (training id, benchmark, benchmark id, kind, the shared n-gram), and a
training row with any match is removed from the pool.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mathrecipes.textnorm import ngrams, normalize


@dataclass(frozen=True)
class Match:
    train_id: str
    benchmark: str
    benchmark_id: str
    kind: str  # "exact" | "ngram"
    evidence: str


class BenchmarkIndex:
    """Exact-text and n-gram index over the problems of several benchmarks."""

    def __init__(self, benchmarks: Mapping[str, Iterable[Mapping[str, str]]], n: int) -> None:
        self.n = n
        self.exact: dict[str, list[tuple[str, str]]] = {}
        self.grams: dict[tuple[str, ...], list[tuple[str, str]]] = {}
        self.sizes: dict[str, int] = {}
        for bench, rows in sorted(benchmarks.items()):
            count = 0
            for row in rows:
                count += 1
                key = (bench, row["id"])
                norm = normalize(row["problem"])
                self.exact.setdefault(norm, []).append(key)
                for g in set(ngrams(norm.split(), n)):
                    self.grams.setdefault(g, []).append(key)
            self.sizes[bench] = count

    def matches(self, row_id: str, problem: str) -> list[Match]:
        norm = normalize(problem)
        found: dict[tuple[str, str], Match] = {}
        for bench, bid in self.exact.get(norm, ()):
            found[(bench, bid)] = Match(row_id, bench, bid, "exact", norm[:200])
        for g in ngrams(norm.split(), self.n):
            for bench, bid in self.grams.get(g, ()):
                if (bench, bid) not in found:
                    found[(bench, bid)] = Match(row_id, bench, bid, "ngram", " ".join(g))
        return sorted(found.values(), key=lambda m: (m.benchmark, m.benchmark_id))
