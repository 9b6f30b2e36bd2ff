"""Throughput of mathrecipes.grading against plain single-process Math-Verify.

    python benchmarks/bench_grading.py [--sizes 800,5000] [--sets gsm8k,math] [--reps 3]
                                       [--workers 2] [--timeout 5] [--audit] [--no-extras]
    python benchmarks/bench_grading.py --once ours|plain --set gsm8k --n 800

Item sets (the first N items of each, the same items for both graders):

* ``gsm8k``: real model outputs on GSM8K test, round-robin over three files under
  ``<shared data>/grading``: ToRA-70B and ToRA-Code-34B trajectories (gold ``gt``) and the
  GPT-3 solutions of ``gsm8k_example_model_solutions`` (gold: the text after the last "A:" of
  the reference); 7,914 items, cycled (and said so) past that.  Ours runs with
  ``answer_regex = (?m)^A:[ \\t]*(.+)$`` as benchmarks/grader_agreement.py does for the GPT-3
  solutions (no ToRA trajectory has such a line; checked here).
* ``math``: the 5,000 MATH test gold answers (gold = last ``\\boxed{}`` of ``solution`` in
  ``<shared data>/eval/math/test.jsonl``), each graded against itself (``... $\\boxed{gold}$.``)
  and against a perturbed wrong answer (an integer + 1; otherwise the first digit changed, or a
  minus sign added when there is no digit): 10,000 items, interleaved per problem.  Real golds,
  made-up completions.

* ours: :func:`mathrecipes.grading.grade_items` (default policies, ``--workers``), wall time
  including everything it starts (worker processes are started only for the items the parent
  cannot decide itself, see mathrecipes.grading.shortcut);
* plain Math-Verify: ``verify(parse("$gold$"), parse(completion))`` in this process, one item
  after the other, no timeouts (Math-Verify's own signal timeouts off), same items, same order,
  *warm*: its import and first-call set-up are done before the clock starts (their cost, paid
  once per process, is printed separately).

Each (set, N) is timed ``--reps`` times, ours and plain back to back (alternating which goes
first); medians are reported, and the ratio of items/s is taken per repetition.  ``--once``
grades one set once with one grader and exits, for whole-process timing from outside (e.g.
``/usr/bin/time``), where plain Math-Verify pays its import too.

Planted pathological items (power towers that hang sympy) are graded by ours in a separate run
and reported separately, with the time a pool takes to get over one (the killed worker replaced
and the next item graded); plain Math-Verify cannot run them (it would hang).  With ``--audit``
ours is also timed with the disagreement audit on (the extra plain Math-Verify pass).  Prints
figures only; nothing is asserted.  Timings are noisy on a shared machine: read the medians.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import re
import resource
import statistics
import subprocess
import sys
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


GSM8K_ANSWER_REGEX = r"(?m)^A:[ \t]*(.+)$"
TORA = [
    SHARED / "grading" / "tora_gsm8k" / model / "test_tora_-1_seed0_t0.0_s0_e1319.jsonl"
    for model in ("tora-70b-v1.0", "tora-code-34b-v1.0")
]
GPT3 = SHARED / "grading" / "gsm8k_example_model_solutions" / "example_model_solutions.jsonl"
GPT3_MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


def load_gsm8k() -> list[GradeItem]:
    """The real GSM8K outputs, round-robin over the three files."""
    streams = []
    for path in TORA:
        with open(path) as fh:
            rows = [json.loads(line) for line in fh]
        streams.append(
            [GradeItem(f"{path.parent.name}:{r['idx']}", r["gt"], r["code"][0]) for r in rows]
        )
    gpt3 = []
    with open(GPT3) as fh:
        for k, line in enumerate(fh):
            row = json.loads(line)
            gold = row["ground_truth"].rsplit("A:", 1)[1].strip()
            gpt3 += [GradeItem(f"gpt3:{k}:{m}", gold, row[m]["solution"]) for m in GPT3_MODELS]
    streams.append(gpt3)
    trajectories = [it.completion for stream in streams[:2] for it in stream]
    assert not any(re.search(GSM8K_ANSWER_REGEX, c) for c in trajectories)
    out = []
    for k in range(max(map(len, streams))):
        out += [stream[k] for stream in streams if k < len(stream)]
    return out


def take(items: list[GradeItem], n: int) -> tuple[list[GradeItem], str]:
    """The first ``n`` items, cycling (keys marked ``#2``, ...) when there are fewer."""
    out = [
        GradeItem(
            f"{it.key}#{k // len(items) + 1}" if k >= len(items) else it.key, it.gold, it.completion
        )
        for k, it in zip(range(n), itertools.cycle(items))
    ]
    if n <= len(items):
        return out, f"the first {n} of {len(items)}"
    return out, f"{len(items)} real items cycled to {n} (each graded {n / len(items):.1f} times)"


def load_set(name: str, n: int) -> tuple[list[GradeItem], GradeSettings, str]:
    if name == "gsm8k":
        items, how = take(load_gsm8k(), n)
        return (
            items,
            GradeSettings(answer_regex=GSM8K_ANSWER_REGEX),
            (f"{how} real GSM8K outputs (ToRA-70B, ToRA-Code-34B, GPT-3 solutions in turn)"),
        )
    items, _ = take(load_items(-(-n // 2)), n)
    return items, GradeSettings(), f"{-(-n // 2)} MATH test golds x (self, perturbed), {n} items"


def plain_setup_seconds() -> float:
    """A fresh process's import of Math-Verify and its first parse/verify (what the plain
    figures leave out), in a subprocess."""
    code = (
        "import time; t=time.perf_counter(); from math_verify import parse, verify; "
        "verify(parse('$1$', parsing_timeout=None), parse('$1$', parsing_timeout=None)); "
        "print(time.perf_counter()-t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def cpu() -> float:
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def expected(key: str) -> str:
    return "correct" if ":self" in key else "incorrect"


def to_workers(items: list[GradeItem], settings: GradeSettings) -> int:
    """Items the parent cannot decide (an upper bound on what goes to workers)."""
    from mathrecipes.grading import shortcut
    from mathrecipes.grading.extraction import gold_answer
    from mathrecipes.grading.normalization import normalize

    left = 0
    for it in items:
        gold = normalize(gold_answer(it.gold))
        answer = extract_answer(it.completion, answer_regex=settings.answer_regex)[0]
        if answer is None:
            left += not shortcut.gold_ok(gold)
        else:
            left += shortcut.decide(gold, normalize(answer), settings) is None
    return left


def bench(name: str, n: int, reps: int, workers: int, timeout: float) -> dict[str, float]:
    items, settings, how = load_set(name, n)
    settings = settings.model_copy(update={"workers": workers, "timeout_s": timeout})
    ours_s, plain_s, ratios = [], [], []
    ours = plain = None
    for rep in range(reps):
        order = ("ours", "plain") if rep % 2 == 0 else ("plain", "ours")
        for who in order:
            if who == "ours":
                t0 = time.perf_counter()
                ours = grade_items(items, settings)
                ours_s.append(time.perf_counter() - t0)
            else:
                plain, seconds = run_plain(items)
                plain_s.append(seconds)
        ratios.append(plain_s[-1] / ours_s[-1])
    assert ours is not None and plain is not None
    med_o, med_p, med_r = (statistics.median(x) for x in (ours_s, plain_s, ratios))
    counts = Counter(v.verdict for v in ours)
    differ = sum((v.verdict == "correct") != ok for v, ok in zip(ours, plain, strict=True))
    print(f"[{name} {n}] {how}")
    print(
        f"    left to workers: at most {to_workers(items, settings)}; ours' verdicts {dict(counts)}"
    )
    print(
        f"    ours:  median {med_o:.2f}s = {n / med_o:6.0f} items/s  (runs "
        + " ".join(f"{x:.2f}" for x in ours_s)
        + ")"
    )
    print(
        f"    plain: median {med_p:.2f}s = {n / med_p:6.0f} items/s  (runs "
        + " ".join(f"{x:.2f}" for x in plain_s)
        + ")"
    )
    print(
        f"    ours/plain items/s: median {med_r:.2f}x (per rep "
        + " ".join(f"{r:.2f}" for r in ratios)
        + f"); judged differently: {differ}"
    )
    if name == "math":
        wrong = sum(v.verdict != expected(v.key) for v in ours)
        print(f"    ours not as expected (self->correct, wrong->incorrect): {wrong}")
    return {"ours": n / med_o, "plain": n / med_p, "ratio": med_r}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="800,5000", help="comma-separated item counts")
    ap.add_argument("--sets", default="gsm8k,math", help="comma-separated: gsm8k, math")
    ap.add_argument("--reps", type=int, default=3, help="ours/plain timings per set and size")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--audit", action="store_true", help="also time ours with the audit pass")
    ap.add_argument("--no-extras", action="store_true", help="skip start-up and power towers")
    ap.add_argument("--once", choices=("ours", "plain"), help="grade --set once and exit")
    ap.add_argument("--set", default="gsm8k", choices=("gsm8k", "math"))
    ap.add_argument("--n", type=int, default=800)
    args = ap.parse_args()
    if args.once:
        items, settings, _ = load_set(args.set, args.n)
        if args.once == "ours":
            settings = settings.model_copy(update={"workers": args.workers})
            n_correct = sum(v.verdict == "correct" for v in grade_items(items, settings))
        else:
            n_correct = sum(run_plain(items)[0])
        print(f"{args.once}: {len(items)} items, {n_correct} correct")
        return

    settings = GradeSettings(workers=args.workers, timeout_s=args.timeout)
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"ours: {args.workers} workers at most; {args.reps} reps each, medians"
    )
    setup = plain_setup_seconds()
    print(
        f"plain Math-Verify's import + first call in a fresh process (left out of its "
        f"figures below): {setup:.2f}s"
    )
    summary = []
    for name in args.sets.split(","):
        for n in map(int, args.sizes.split(",")):
            summary.append((name, n, bench(name, n, args.reps, args.workers, args.timeout)))
    # "cold": plain Math-Verify as a grading job runs it, in a fresh process that pays its
    # import once (ours pays its workers' imports inside its own figure).
    print("summary (items/s, medians; plain cold = warm time + its import, as a one-off job):")
    for name, n, r in summary:
        cold = n / (n / r["plain"] + setup)
        print(
            f"    {name:5s} {n:6d}: ours {r['ours']:6.0f}  plain warm {r['plain']:6.0f}  "
            f"ours/plain {r['ratio']:.2f}x   plain cold {cold:6.0f}  ours/cold "
            f"{r['ours'] / cold:.2f}x"
        )
    if args.no_extras:
        return
    print(f"pool start-up ({args.workers} workers, all ready): {pool_startup(settings):.2f}s")

    if args.audit:
        items, _, _ = load_set("math", 5000)
        t0 = time.perf_counter()
        audited = grade_items(items, settings, audit=True)
        audit_s = time.perf_counter() - t0
        mv_timeouts = sum(v.math_verify == "timeout" for v in audited)
        print(
            f"ours + audit (math, {len(items)} items): {audit_s:.1f}s = "
            f"{len(items) / audit_s:.0f} items/s; plain-MV timeouts {mv_timeouts}"
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
