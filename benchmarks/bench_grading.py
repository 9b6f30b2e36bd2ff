"""Throughput of mathrecipes.grading.grade_items and worker-pool start-up time.

    python benchmarks/bench_grading.py [--n 2000] [--workers 2]

Items are distinct simple integer problems ("Step 1: a + b = c\\n\\boxed{c}" vs gold "c",
10% deliberately wrong), so neither the parent's (gold, answer) memo nor the workers' caches
short-circuit the work; a second run repeats one pair to show the memoized path.
"""

from __future__ import annotations

import argparse
import random
import resource
import time

from mathrecipes.grading import GradeItem, GradeSettings, _Pool, grade_items


def pool_startup(settings: GradeSettings, repeats: int = 3) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with _Pool(settings, settings.workers) as pool:
            from multiprocessing.connection import wait

            pending = list(pool.workers)
            while pending:
                for conn in wait([w.inbox for w in pending]):
                    w = next(w for w in pending if w.inbox is conn)
                    assert conn.recv()[0] == "ready"
                    pending.remove(w)
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    settings = GradeSettings(workers=args.workers)

    startup = pool_startup(settings)
    print(
        f"pool start-up ({args.workers} workers, all ready): "
        + ", ".join(f"{t:.2f}s" for t in startup)
    )

    rng = random.Random(0)
    items = []
    for i in range(args.n):
        a, b = rng.randrange(10**6), rng.randrange(10**6)
        c = a + b + (1 if i % 10 == 0 else 0)
        items.append(GradeItem(str(i), str(a + b), f"Step 1: {a} + {b} = {c}\n\\boxed{{{c}}}"))
    t0 = time.perf_counter()
    self0 = resource.getrusage(resource.RUSAGE_SELF)
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    verdicts = grade_items(items, settings)
    dt = time.perf_counter() - t0
    self1 = resource.getrusage(resource.RUSAGE_SELF)
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    parent_cpu = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
    worker_cpu = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    n_ok = sum(v.verdict == "correct" for v in verdicts)
    print(
        f"distinct items: {args.n} in {dt:.2f}s = {args.n / dt:.0f} items/s "
        f"(incl. start-up), correct={n_ok}"
    )
    print(
        f"CPU: parent {parent_cpu / args.n * 1e3:.2f} ms/item, workers "
        f"{worker_cpu / args.n * 1e3:.2f} ms/item (incl. their start-up)"
    )
    mean_item = sum(v.seconds for v in verdicts) / len(verdicts)
    print(f"mean per-item round trip (worker busy time): {mean_item * 1e3:.2f} ms")

    same = [GradeItem(str(i), "7", "Step 1: 3 + 4 = 7\n\\boxed{7}") for i in range(args.n)]
    t0 = time.perf_counter()
    grade_items(same, settings)
    dt = time.perf_counter() - t0
    print(f"identical items: {args.n} in {dt:.2f}s = {args.n / dt:.0f} items/s (memoized)")


if __name__ == "__main__":
    main()
