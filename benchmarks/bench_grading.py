"""Throughput of mathrecipes.grading against plain single-process Math-Verify.

    python benchmarks/bench_grading.py [--problems 5000] [--workers 2] [--timeout 5] [--audit]

Items: the 5,000 MATH test gold answers (gold = last ``\\boxed{}`` of ``solution`` in
``<shared data>/eval/math/test.jsonl``), each graded against itself (``... $\\boxed{gold}$.``)
and against a perturbed wrong answer (an integer + 1; otherwise the first digit changed, or a
minus sign added when there is no digit): 10,000 items, interleaved per problem.

* ours: :func:`mathrecipes.grading.grade_items` (worker processes, hard per-item timeouts,
  default policies), wall time including the pool's start-up;
* plain Math-Verify: ``verify(parse("$gold$"), parse(completion))`` in this process, one item
  after the other, no timeouts (Math-Verify's own signal timeouts off), same items, same order.

Planted pathological items (power towers that hang sympy) are graded by ours in a separate run
and reported separately, with the time a pool takes to get over one (the killed worker replaced
and the next item graded); plain Math-Verify cannot run them (it would hang).  With ``--audit``
ours is also timed with the disagreement audit on (the extra plain Math-Verify pass).  Prints
figures only; nothing is asserted.  Timings are noisy on a shared machine: run it twice.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import time
from collections import Counter, deque
from pathlib import Path

from mathrecipes.grading import GradeItem, GradeSettings, extract_answer, grade_items
from mathrecipes.grading.pool import Pool

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MATHRECIPES_SHARED_DATA", REPO.parent / "shared" / "data"))

PATHOLOGICAL = [
    ("5", "So the value is $\\boxed{5^{5^{5^{5}}}}$."),
    ("10^{10}", "We get $\\boxed{10^{10^{10^{10}}}}$."),
    ("1", "Hence $\\boxed{9^{9^{9^{9}}}}$."),
    ("2", "Thus $\\boxed{2^{2^{2^{2^{2^{2}}}}}}$."),
]


def perturb(gold: str) -> str:
    """A wrong answer close to ``gold``: integer + 1, else its first digit changed (the last
    one may sit in a unit, ``440\\text{ cm}^3``), else ``-gold``."""
    g = gold.strip()
    if re.fullmatch(r"-?\d+", g):
        return str(int(g) + 1)
    digits = [m.start() for m in re.finditer(r"\d", g)]
    if digits:
        k = digits[0]
        d = int(g[k])
        return g[:k] + str(d + 1 if d < 9 else d - 1) + g[k + 1 :]
    return f"-{g}" if not g.startswith("-") else g[1:]


def load_items(n_problems: int) -> list[GradeItem]:
    path = SHARED / "eval" / "math" / "test.jsonl"
    items = []
    with open(path) as fh:
        for k, line in enumerate(fh):
            if k >= n_problems:
                break
            row = json.loads(line)
            gold, rule = extract_answer(row["solution"])
            assert gold is not None and rule == "boxed", row["idx"]
            items.append(GradeItem(f"{k}:self", gold, f"So the answer is $\\boxed{{{gold}}}$."))
            items.append(
                GradeItem(f"{k}:wrong", gold, f"So the answer is $\\boxed{{{perturb(gold)}}}$.")
            )
    return items


def pool_startup(settings: GradeSettings) -> float:
    from multiprocessing.connection import wait

    t0 = time.perf_counter()
    with Pool(settings, settings.workers) as pool:
        pending = list(pool.workers)
        while pending:
            for conn in wait([w.inbox for w in pending]):
                w = next(w for w in pending if w.inbox is conn)
                assert conn.recv()[0] == "ready"
                pending.remove(w)
    return time.perf_counter() - t0


def recovery(settings: GradeSettings) -> float:
    """One worker: seconds from a power tower's ``timeout`` verdict to the next item's (the
    kill, a fresh worker's start-up with its Math-Verify import, and the item)."""
    pairs = [("5", "5^{5^{5^{5}}}"), ("4", "4")]
    stamps: dict[int, float] = {}
    with Pool(settings, 1) as pool:
        pool.run(
            deque([(0, True, False), (1, True, False)]),
            prepare=lambda task: (task[0], *pairs[task[0]], True, None),
            on_ours=lambda i, *result: stamps.setdefault(i, time.perf_counter()),
            on_plain=lambda *result: None,
            gold_known_ok=lambda gold: False,
        )
    return stamps[1] - stamps[0]


def run_plain(items: list[GradeItem]) -> tuple[list[bool], float]:
    from math_verify import parse, verify

    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    # Warm up (imports, regex compilation), as our workers do before they report ready.
    verify(parse("$1$", parsing_timeout=None), parse("$1$", parsing_timeout=None))
    out = []
    t0 = time.perf_counter()
    for it in items:
        gold = parse(f"${it.gold}$", parsing_timeout=None)
        pred = parse(it.completion, parsing_timeout=None)
        out.append(bool(verify(gold, pred, timeout_seconds=None)))
    return out, time.perf_counter() - t0


def cpu() -> float:
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def expected(key: str) -> str:
    return "correct" if key.endswith(":self") else "incorrect"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=2, help="alternating ours/plain timings")
    ap.add_argument("--audit", action="store_true", help="also time ours with the audit pass")
    ap.add_argument("--skip-plain", action="store_true")
    args = ap.parse_args()
    settings = GradeSettings(workers=args.workers, timeout_s=args.timeout)
    items = load_items(args.problems)
    n = len(items)
    print(f"machine: {os.cpu_count()} CPUs; items: {n} ({n // 2} MATH test golds x self/wrong)")
    print(f"pool start-up ({args.workers} workers, all ready): {pool_startup(settings):.2f}s")

    ratios = []
    for rnd in range(1, args.rounds + 1):
        c0, t0 = cpu(), time.perf_counter()
        ours = grade_items(items, settings)
        ours_s, ours_cpu = time.perf_counter() - t0, cpu() - c0
        counts = Counter(v.verdict for v in ours)
        print(
            f"[{rnd}] ours:  {n} items in {ours_s:.1f}s = {n / ours_s:.0f} items/s "
            f"(CPU {ours_cpu:.1f}s, incl. start-up); verdicts {dict(counts)}"
        )
        if rnd == 1:
            slow = sorted(ours, key=lambda v: -v.seconds)[:3]
            wrong = [v for v in ours if v.verdict != expected(v.key)]
            print(
                f"       timeouts {counts['timeout']}; slowest items "
                + ", ".join(f"{v.key} {v.seconds:.2f}s" for v in slow)
            )
            print(f"       not as expected (self->correct, wrong->incorrect): {len(wrong)}")
            for v in wrong[:15]:
                print(f"         {v.key:12s} {v.verdict:16s} {v.rule:20s} {v.extracted!r}")
        if args.skip_plain:
            continue
        c0 = cpu()
        plain, plain_s = run_plain(items)
        plain_cpu = cpu() - c0
        bad = sum(
            ok != (expected(it.key) == "correct") for it, ok in zip(items, plain, strict=True)
        )
        print(
            f"[{rnd}] plain Math-Verify (1 process, no timeouts): {n} items in {plain_s:.1f}s = "
            f"{n / plain_s:.0f} items/s (CPU {plain_cpu:.1f}s); not as expected: {bad}"
        )
        differ = [
            (it.key, v.verdict, ok)
            for it, v, ok in zip(items, ours, plain, strict=True)
            if (v.verdict == "correct") != ok
        ]
        print(
            f"[{rnd}] ours vs plain Math-Verify: {len(differ)} items judged differently {differ[:5]}"
        )
        ratios.append(plain_s / ours_s)
        print(f"[{rnd}] speed-up (items/s ours / plain): {ratios[-1]:.2f}x")
    if ratios:
        print(f"speed-up per round: {', '.join(f'{r:.2f}x' for r in ratios)}")

    if args.audit:
        t0 = time.perf_counter()
        audited = grade_items(items, settings, audit=True)
        audit_s = time.perf_counter() - t0
        mv_timeouts = sum(v.math_verify == "timeout" for v in audited)
        print(
            f"ours + audit: {n} items in {audit_s:.1f}s = {n / audit_s:.0f} items/s "
            f"({audit_s / ours_s:.2f}x the time of the last run of ours alone); "
            f"plain-MV timeouts {mv_timeouts}"
        )

    patho = [GradeItem(f"tower{k}", g, c) for k, (g, c) in enumerate(PATHOLOGICAL)]
    t0 = time.perf_counter()
    res = grade_items(patho, settings)
    print(
        f"planted pathological items (timeout {args.timeout:g}s): {len(patho)} in "
        f"{time.perf_counter() - t0:.1f}s: "
        + ", ".join(f"{v.key} {v.verdict}/{v.rule} {v.seconds:.1f}s" for v in res)
    )
    print(
        f"after a timeout (one worker): killed, replaced and the next item graded in "
        f"{recovery(settings):.2f}s"
    )


if __name__ == "__main__":
    main()
