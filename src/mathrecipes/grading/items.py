"""Grading items: :class:`GradeItem` in, :class:`Verdict` out, in input order.

:func:`grade_items` extracts answers here and grades them in a
:class:`~mathrecipes.grading.pool.Pool` of workers; identical (gold, answer) pairs are graded
once, and a gold known to be unparseable settles its other items without a worker.
:func:`summarize` counts verdicts.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mathrecipes.grading import shortcut
from mathrecipes.grading.extraction import extract_answer, gold_answer
from mathrecipes.grading.normalization import is_multi_valued, normalize, string_match
from mathrecipes.grading.pool import Pool, Task
from mathrecipes.grading.settings import GradeSettings

VERDICTS = ("correct", "incorrect", "no_answer", "timeout", "gold_unparseable")


@dataclass
class GradeItem:
    """One (gold, completion) pair to grade."""

    key: str  # identifies the row, e.g. "problem_id#sample"
    gold: str
    completion: str
    finish_reason: str | None = None  # "length": the generation hit its token limit


@dataclass
class Verdict:
    """The grade of one item (:data:`VERDICTS`, rules: see :mod:`mathrecipes.grading`)."""

    key: str
    verdict: str
    extracted: str | None
    rule: str
    seconds: float
    # Audit (grade_items(..., audit=True)); None otherwise.
    math_verify: str | None = None  # plain Math-Verify: correct / incorrect / timeout
    math_verify_extracted: str | None = None
    string_match: str | None = None  # correct / incorrect / no_answer


_SPECIAL_HOWS = ("gold_timeout", "worker_crash")


def grade_items(
    items: Sequence[GradeItem],
    settings: GradeSettings,
    progress: bool = False,
    *,
    audit: bool = False,
    pool: Pool | None = None,
    shortcuts: bool = True,
) -> list[Verdict]:
    """Grade items with a pool of ``settings.workers`` processes; results in input order.

    Extraction runs here; parsing and comparison run in workers under a hard wall-clock limit
    of ``settings.timeout_s`` per item (a worker past its deadline is killed and replaced, the
    item is ``timeout``).  A worker that crashes gives ``timeout`` with rule ``worker_crash``;
    an exception inside Math-Verify gives ``incorrect`` with rule ``error:<ExceptionType>``
    (``gold_unparseable`` if it was the gold that failed).  See :mod:`mathrecipes.grading` for
    every verdict and rule.  ``audit=True`` also fills ``math_verify`` (plain Math-Verify on
    the whole completion, same workers, same per-item limit) and ``string_match``.
    ``progress=True`` shows a tqdm bar on stderr.  ``pool``: run in this
    :class:`~mathrecipes.grading.pool.Pool` (made with ``settings``, left open for the caller's
    next run) instead of one started and closed here.

    Pairs whose result is known without Math-Verify (an integer gold against an integer or a
    decimal, :mod:`~mathrecipes.grading.shortcut`) are decided here, with the same verdict and
    rule a worker gives; ``shortcuts=False`` sends them to workers too.  Workers are started only
    for what is left: none when nothing is, else one per item up to ``settings.workers``.
    """
    n = len(items)
    multi = {g: is_multi_valued(g) for g in {it.gold for it in items}}
    extracted = [
        extract_answer(
            it.completion,
            finish_reason=it.finish_reason,
            answer_regex=settings.answer_regex,
            truncated=settings.truncated,
            multi=multi[it.gold],
        )
        for it in items
    ]
    results: list[Verdict | None] = [None] * n
    plain: list[tuple[str, str | None] | None] = [None] * n
    # gold string -> (ok, rule override); a known gold settles no-answer items without a worker
    gold_state: dict[str, tuple[bool, str | None]] = {}
    # (gold, answer) -> (verdict, how): identical pairs are graded once
    memo: dict[tuple[str, str], tuple[str, str | None]] = {}
    plain_memo: dict[tuple[str, str], tuple[str, str | None]] = {}
    # (gold, answer) being graded -> its item; tasks with the same pair wait in `parked`
    in_flight: dict[tuple[str, str], int] = {}
    parked: dict[tuple[str, str], list[Task]] = {}

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc="grading", unit="item", file=sys.stderr, dynamic_ncols=True)

    def finish(i: int, verdict: str, how: str | None, seconds: float) -> None:
        answer, rule = extracted[i]
        if how in _SPECIAL_HOWS or (how and how.startswith("error:")):
            rule = how
        elif how:
            rule = f"{rule}+{how}"
        results[i] = Verdict(items[i].key, verdict, answer, rule, seconds)
        if bar is not None:
            bar.update(1)

    def settle_ours(i: int) -> bool:
        gold, answer = items[i].gold, extracted[i][0]
        state = gold_state.get(gold)
        if state is not None and not state[0]:
            finish(i, "gold_unparseable", state[1], 0.0)
        elif state is not None and answer is None:
            finish(i, "no_answer", None, 0.0)
        elif answer is not None and (gold, answer) in memo:
            finish(i, *memo[gold, answer], 0.0)
        else:
            return False
        return True

    def prepare(task: Task) -> tuple | None:
        i, want_ours, want_plain = task
        gold, completion = items[i].gold, items[i].completion or ""
        want_ours = want_ours and results[i] is None and not settle_ours(i)
        if want_ours and extracted[i][0] is not None:
            # An identical pair already in a worker: wait for its result (graded once).
            key = (gold, extracted[i][0])
            if in_flight.setdefault(key, i) != i:
                parked.setdefault(key, []).append(task)
                return None
        if want_plain and plain[i] is None:
            hit = plain_memo.get((gold, completion))
            if hit is not None:
                plain[i] = hit
                want_plain = False
        else:
            want_plain = False
        if not (want_ours or want_plain):
            return None
        return (i, gold, extracted[i][0], want_ours, completion if want_plain else None)

    def on_ours(i: int, verdict: str, how: str | None, gold_ok: bool | None, secs: float) -> None:
        gold, answer = items[i].gold, extracted[i][0]
        if verdict == "timeout" and how == "gold_timeout":
            gold_ok = False
            verdict = "gold_unparseable"
        if gold_ok is not None:
            gold_state.setdefault(gold, (gold_ok, None if gold_ok else how))
        if answer is not None and verdict != "gold_unparseable":
            memo.setdefault((gold, answer), (verdict, how))
        if answer is not None and in_flight.get((gold, answer)) == i:
            del in_flight[gold, answer]
            queue.extendleft(reversed(parked.pop((gold, answer), [])))
        finish(i, verdict, how, secs)

    def on_plain(i: int, verdict: str, mv_extracted: str | None, secs: float) -> None:
        plain[i] = (verdict, mv_extracted)
        if verdict != "timeout":
            plain_memo.setdefault((items[i].gold, items[i].completion or ""), plain[i])

    def gold_known_ok(gold: str) -> bool:
        return gold_state.get(gold, (False, None))[0]

    if shortcuts:
        gold_texts: dict[str, str] = {}
        for i, it in enumerate(items):
            t0 = time.perf_counter()
            gold_text = gold_texts.get(it.gold)
            if gold_text is None:
                gold_text = gold_texts[it.gold] = normalize(
                    gold_answer(it.gold), settings.strip_units
                )
                if shortcut.gold_ok(gold_text):
                    gold_state[it.gold] = (True, None)
            answer = extracted[i][0]
            if answer is None or settle_ours(i):
                continue
            decided = shortcut.decide(gold_text, normalize(answer, settings.strip_units), settings)
            if decided is not None:
                memo[it.gold, answer] = decided
                finish(i, *decided, time.perf_counter() - t0)

    # Answered items first: their results reveal which golds parse, which then settles most
    # no-answer items without a round trip.
    order = [i for i in range(n) if extracted[i][0] is not None]
    order += [i for i in range(n) if extracted[i][0] is None]
    queue: deque[Task] = deque()
    for i in order:
        if results[i] is None and not settle_ours(i):
            queue.append((i, True, audit))
        elif audit:
            queue.append((i, False, True))
    try:
        if queue:
            with contextlib.ExitStack() as stack:
                left = sum(want_ours for _, want_ours, _ in queue) or len(queue)
                # as many workers as items, up to settings.workers: one item that hangs must
                # not hold up the others for its whole time limit
                size = min(settings.workers, left)
                if pool is None:
                    pool = stack.enter_context(Pool(settings, size, settings.workers))
                else:
                    pool.ensure(size)
                pool.run(
                    queue, prepare, on_ours, on_plain, gold_known_ok, lambda t: items[t[0]].gold
                )
    finally:
        if bar is not None:
            bar.close()
    missing = [items[i].key for i in range(n) if results[i] is None]
    if missing or (audit and any(p is None for p in plain)):  # pragma: no cover - defensive
        raise RuntimeError(f"grading lost {len(missing)} item(s)")
    out: list[Verdict] = results  # type: ignore[assignment]
    if audit:
        for i, v in enumerate(out):
            v.math_verify, v.math_verify_extracted = plain[i]  # type: ignore[misc]
            v.string_match = string_match(v.extracted, items[i].gold)
    return out


def summarize(verdicts: Iterable[str]) -> dict[str, Any]:
    """Counts per verdict, ``n`` and ``accuracy = correct / (n - gold_unparseable)``.

    ``accuracy`` is None when no row can be scored.
    """
    counts = dict.fromkeys(VERDICTS, 0)
    for v in verdicts:
        if v not in counts:
            raise ValueError(f"unknown verdict {v!r}; expected one of {', '.join(VERDICTS)}")
        counts[v] += 1
    n = sum(counts.values())
    scored = n - counts["gold_unparseable"]
    return {"n": n, **counts, "accuracy": counts["correct"] / scored if scored else None}
