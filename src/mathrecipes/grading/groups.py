"""Answer groups: a problem's sampled answers grouped by the grader's equivalence (for maj@k).

:func:`answer_groups` gives every graded sample of a problem a group id (the ``answer_group``
column of a grade file), such that a majority vote over the samples counts ``1/2``, ``0.5`` and
``\\frac{1}{2}`` as one answer, as the grader would.

Rules, per problem (``problem_id``), over its samples in sample order:

* **Voters.** A sample votes when it has an extracted answer and its verdict is ``correct``,
  ``incorrect`` or ``timeout``. Every other sample (``no_answer``, ``gold_unparseable``, a
  ``timeout`` without an extraction, e.g. a crashed worker) gets None and does not vote.
* **The gold's group.** Every ``correct`` sample is in one group, the gold's (all are equivalent
  to the gold). Nothing else is: a sample is in the gold's group exactly when it is ``correct``,
  so maj@k scores a problem right when the largest group is the one of its correct samples.
* **Cheap path.** Other answers with equal normalized strings (:func:`~mathrecipes.grading.
  normalization.normalize`, the text the grader compares) are one answer: one group, no
  comparison.
* **Comparisons.** Each distinct ``incorrect`` answer, in order of first appearance, is compared
  with the *representative* (first answer) of each existing comparable group in group order and
  joins the first it is equivalent to; otherwise it opens a new group. A comparison is one grader
  item with one answer as the gold and the other as the prediction, in the same worker pool,
  with the same settings and per-item hard timeout (``timeout_s``); ``correct`` means equal.
* **Symmetry: either direction.** The grader is not symmetric (a gold inequality ``x \\geq 5``
  accepts the interval ``[5, \\infty)`` but a gold interval rejects the inequality, see
  ``interval_inequality_asymmetry``). Two answers are equivalent when *either* comparison says
  ``correct``: representative as gold first, then, if that one is not ``correct``, the new
  answer as gold. Equivalence is not transitive either; comparing against representatives
  only, in a fixed order, keeps the result deterministic.
* **Timeouts.** A comparison that times out means "not equivalent" (its reverse is not tried).
  A ``timeout`` sample's answer (the grader could not even compare it with the gold) is never
  compared: it groups by normalized string only.

Bounds (the cost stays at most ``2 * max_representatives`` comparisons per distinct incorrect
answer, and at most :data:`MAX_TIMEOUTS` timed-out comparisons per problem):

* a new answer is compared with the representatives of the first ``max_representatives``
  comparable groups only (:data:`MAX_REPRESENTATIVES` by default);
* once a problem had :data:`MAX_TIMEOUTS` timed-out comparisons its remaining answers are not
  compared;
* an answer that opens a new group without having been compared with every existing comparable
  group (either bound) is a *fallback* to string equality, counted in the summary.

Identical comparisons (same two strings, same direction) are asked of a worker once per call.
Group ids are 0, 1, 2, ... in order of first appearance by sample; with one sample per problem
every voter is group 0 and no comparison runs (and no worker starts).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mathrecipes.grading.normalization import normalize
from mathrecipes.grading.settings import GradeSettings

if TYPE_CHECKING:
    from mathrecipes.grading.items import Verdict
    from mathrecipes.grading.pool import Pool

# Comparable groups a new answer is compared with (the first ones, in group order).
MAX_REPRESENTATIVES = 8
# Timed-out comparisons per problem after which its remaining answers are not compared.
MAX_TIMEOUTS = 2

_VOTING = ("correct", "incorrect", "timeout")
_GOLD = -1  # the label of the gold's group


@dataclass
class GroupCounts:
    """What grouping cost: grader comparisons asked for (each direction counts; identical ones
    asked again are answered from the first), those that timed out, and fallbacks (answers that
    opened a group without being compared with every existing comparable group)."""

    comparisons: int = 0
    timeouts: int = 0
    fallbacks: int = 0

    def as_dict(self, max_representatives: int) -> dict[str, int]:
        return {
            "comparisons": self.comparisons,
            "timeouts": self.timeouts,
            "fallbacks": self.fallbacks,
            "max_representatives": max_representatives,
            "max_timeouts": MAX_TIMEOUTS,
        }


@dataclass
class _Problem:
    """The non-gold answers of one problem, placed in groups one at a time."""

    answers: list[tuple[str, bool]]  # distinct answers (raw, comparable) by first appearance
    cap: int
    counts: GroupCounts
    label: list[int] = field(default_factory=list)  # group label of each placed answer
    reps: list[tuple[str, bool]] = field(default_factory=list)  # per label: (raw, comparable)
    todo: deque[int] | None = None  # labels still to compare with the current answer
    skipped: bool = False  # the current answer cannot be compared with every group
    reverse: bool = False  # the current comparison has the new answer as the gold
    timeouts: int = 0

    def next_pair(self) -> tuple[str, str] | None:
        """Place answers until one needs the grader: the ``(gold, prediction)`` to compare, or
        None once every answer is placed."""
        while len(self.label) < len(self.answers):
            raw, comparable = self.answers[len(self.label)]
            if self.todo is None:
                usable = [g for g, (_, c) in enumerate(self.reps) if c] if comparable else []
                self.todo = deque(usable[: self.cap])
                self.skipped = len(usable) > self.cap
            if self.todo and self.timeouts < MAX_TIMEOUTS:
                rep = self.reps[self.todo[0]][0]
                return (raw, rep) if self.reverse else (rep, raw)
            if self.todo or self.skipped:
                self.counts.fallbacks += 1
            self.reps.append((raw, comparable))
            self._place(len(self.reps) - 1)
        return None

    def result(self, verdict: str) -> None:
        """The grader's verdict on the pair :meth:`next_pair` returned."""
        assert self.todo
        self.counts.comparisons += 1
        if verdict == "correct":
            self._place(self.todo[0])
        elif verdict == "timeout" or self.reverse:
            if verdict == "timeout":
                self.counts.timeouts += 1
                self.timeouts += 1
            self.todo.popleft()
            self.reverse = False
        else:
            self.reverse = True

    def _place(self, label: int) -> None:
        self.label.append(label)
        self.todo, self.skipped, self.reverse = None, False, False


def answer_groups(
    problem_ids: Sequence[str],
    verdicts: Sequence[Verdict],
    settings: GradeSettings,
    *,
    pool: Pool | None = None,
    max_representatives: int = MAX_REPRESENTATIVES,
) -> tuple[list[int | None], GroupCounts]:
    """The answer group of each row (None: does not vote) and what grouping cost.

    ``problem_ids[i]`` and ``verdicts[i]`` describe row ``i``; the rows of one problem must be
    in sample order (they need not be adjacent). Comparisons run in ``pool`` (a
    :class:`~mathrecipes.grading.pool.Pool` made with ``settings``), or in a pool started here
    when one is needed and none is given. The rules are in this module's docstring.
    """
    if len(problem_ids) != len(verdicts):
        raise ValueError(f"{len(problem_ids)} problem ids for {len(verdicts)} verdicts")
    if max_representatives < 0:
        raise ValueError(f"max_representatives must be >= 0, got {max_representatives}")
    counts = GroupCounts()
    rows_of: dict[str, list[int]] = {}
    for i, pid in enumerate(problem_ids):
        rows_of.setdefault(pid, []).append(i)

    # Per row: the gold's label, or (problem, index of its distinct answer); None: no vote.
    where: list[tuple[str, int] | int | None] = [None] * len(verdicts)
    problems: dict[str, _Problem] = {}
    for pid, rows in rows_of.items():
        index: dict[str, int] = {}
        answers: list[tuple[str, bool]] = []
        for i in rows:
            v = verdicts[i]
            if v.extracted is None or v.verdict not in _VOTING:
                continue
            if v.verdict == "correct":
                where[i] = _GOLD
                continue
            key = normalize(v.extracted, settings.strip_units)
            k = index.setdefault(key, len(answers))
            if k == len(answers):
                answers.append((v.extracted, False))
            if v.verdict == "incorrect":
                answers[k] = (answers[k][0], True)
            where[i] = (pid, k)
        problems[pid] = _Problem(answers, max_representatives, counts)

    _compare_all(problems, settings, pool)

    out: list[int | None] = [None] * len(verdicts)
    for rows in rows_of.values():
        ids: dict[int, int] = {}
        for i in rows:
            w = where[i]
            if w is None:
                continue
            label = w if isinstance(w, int) else problems[w[0]].label[w[1]]
            out[i] = ids.setdefault(label, len(ids))
    return out, counts


def _compare_all(problems: dict[str, _Problem], settings: GradeSettings, pool: Pool | None) -> None:
    """Place every problem's answers, running the comparisons they need in worker processes."""
    pairs: list[tuple[str, str]] = []  # task index -> (gold, prediction)
    memo: dict[tuple[str, str], str] = {}  # (gold, prediction) -> verdict
    waiting: dict[tuple[str, str], list[_Problem]] = {}  # in a worker -> problems waiting
    queue: deque[tuple[int, bool, bool]] = deque()

    def advance(p: _Problem) -> None:
        while (pair := p.next_pair()) is not None:
            if pair in memo:
                p.result(memo[pair])
                continue
            if pair not in waiting:
                waiting[pair] = []
                queue.append((len(pairs), True, False))
                pairs.append(pair)
            waiting[pair].append(p)
            return

    def prepare(task: tuple[int, bool, bool]) -> tuple:
        gold, pred = pairs[task[0]]
        return (task[0], gold, pred, True, None)

    def on_ours(i: int, verdict: str, how: str | None, gold_ok: bool | None, secs: float) -> None:
        pair = pairs[i]
        memo[pair] = verdict
        for p in waiting.pop(pair):
            p.result(verdict)
            advance(p)

    def on_plain(i: int, verdict: str, extracted: str | None, secs: float) -> None:
        raise AssertionError("answer groups run no plain Math-Verify pass")  # pragma: no cover

    for p in problems.values():
        advance(p)
    if not queue:
        return
    with contextlib.ExitStack() as stack:
        if pool is None:
            from mathrecipes.grading.pool import Pool

            pool = stack.enter_context(Pool(settings, min(settings.workers, len(queue))))
        else:
            pool.ensure(min(settings.workers, len(queue)))
        pool.run(queue, prepare, on_ours, on_plain, lambda gold: False, lambda t: pairs[t[0]][0])
    if waiting:  # pragma: no cover - defensive
        raise RuntimeError(f"answer grouping lost {len(waiting)} comparison(s)")
