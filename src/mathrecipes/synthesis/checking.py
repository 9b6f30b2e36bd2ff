"""Answer checks for synthesis, by the project's grader (:mod:`mathrecipes.grading`).

A synthesized row is "verified" exactly when evaluation would grade its solution ``correct``
against the gold answer: same extraction (last ``\\boxed{}``, ``####``, answer phrases; no
"last number" fallback), same Math-Verify comparison in worker processes with a hard per-item
time limit. Two answers are "the same" (majority voting, "the final answer changed") when the
grader accepts one, boxed, against the other as gold.

The grader's version is recorded in every shard's manifest. Its source is deliberately not part
of the synthesis code fingerprint: a grader edit re-grades evaluations but does not re-run
teachers (and everything trained on their output); force that with
``snakemake -R synthesize_shard`` when a grader change matters for the kept rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from mathrecipes.grading import GradeItem, GradeSettings, Verdict, grade_items, grader_version


class AnswerChecker:
    """Grades (gold, output) pairs in one batch per call (one worker pool per call)."""

    def __init__(self, settings: GradeSettings | None = None) -> None:
        self.settings = settings or GradeSettings(workers=1)

    @staticmethod
    def version() -> str:
        return grader_version()

    def grade(self, items: Sequence[tuple[str, str, str | None]]) -> list[Verdict]:
        """Verdicts of ``(gold, output, finish_reason)`` items, in order."""
        if not items:
            return []
        batch = [
            GradeItem(key=str(i), gold=gold, completion=output, finish_reason=finish)
            for i, (gold, output, finish) in enumerate(items)
        ]
        return grade_items(batch, self.settings)

    def same(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """For each ``(a, b)`` of extracted answers: does the grader accept ``b`` against ``a``?"""
        verdicts = self.grade([(a, f"\\boxed{{{b}}}", None) for a, b in pairs])
        return [v.verdict == "correct" for v in verdicts]

    def clusters(self, answers: Sequence[str]) -> list[int]:
        """A cluster index per answer: answers the grader finds equal share one (union of
        pairwise matches; identical strings are not graded). Clusters are numbered in order of
        first appearance."""
        return self.many_clusters([answers])[0]

    def many_clusters(self, groups: Sequence[Sequence[str]]) -> list[list[int]]:
        """:meth:`clusters` of several groups with a single grading batch."""
        distinct = [list(dict.fromkeys(s.strip() for s in g)) for g in groups]
        pairs: list[tuple[int, int, int]] = []
        for gi, d in enumerate(distinct):
            pairs += [(gi, i, j) for i in range(len(d)) for j in range(i + 1, len(d))]
        equal = self.same([(distinct[g][i], distinct[g][j]) for g, i, j in pairs])
        parents = [list(range(len(d))) for d in distinct]

        def root(g: int, i: int) -> int:
            while parents[g][i] != i:
                i = parents[g][i]
            return i

        for (g, i, j), eq in zip(pairs, equal, strict=True):
            if eq:
                a, b = root(g, i), root(g, j)
                parents[g][max(a, b)] = min(a, b)
        out = []
        for gi, group in enumerate(groups):
            index = {s: k for k, s in enumerate(distinct[gi])}
            numbering: dict[int, int] = {}
            labels = []
            for s in group:
                r = root(gi, index[s.strip()])
                labels.append(numbering.setdefault(r, len(numbering)))
            out.append(labels)
        return out
