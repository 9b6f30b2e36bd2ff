"""Agreement of mathrecipes.grading (and of plain Math-Verify) with trusted correctness labels.

    python benchmarks/grader_agreement.py [--workers 2] [--show 20]

Data (``$MATHRECIPES_SHARED_DATA``, default ``<repo>/../shared/data``, ``grading/``):

* ``gsm8k_example_model_solutions``: 1319 GSM8K test questions x 4 GPT-3 solutions (5276),
  each with ``is_correct`` (OpenAI's exact match on the final number).  Completion = the
  solution, gold = the text after the last "A:" of ``ground_truth``; the solutions end with
  "A: <answer>", so ours runs with ``answer_regex = (?m)^A:[ \\t]*(.+)$``.  Label = ``is_correct``.
* ``tora_gsm8k``: ToRA-70B and ToRA-Code-34B greedy outputs on GSM8K test (1319 each).
  Completion = the whole tool-integrated trajectory ``code[0]`` (text, program, output and the
  final ``\\boxed{}``), gold = ``gt``.  The files carry no correctness field; the label is ToRA's
  own judgement, ``math_equal(pred[0], gt)`` of ToRA's ``eval/grader.py`` (numbers: relative
  tolerance 1e-4 against gt, gt/100 and gt*100; otherwise string / sympy equality), re-computed
  here: it reproduces the accuracy in the ``.metrics`` files exactly (84.3 and 80.7).
* ``olympiadbench_scoring_examples``: 36 (gold, candidate) pairs labelled equal / not equal;
  ``precision`` (an absolute tolerance) becomes ``abs_tol``; OlympiadBench is graded with
  ``strip_units=False`` (its units are part of the answer: ``0.64N`` is not ``0.64``).

Plain Math-Verify: ``verify(parse(gold), parse(completion))`` with Math-Verify's default
extraction on the whole completion (golds and bare candidate answers without ``$`` are given as
``$...$``), run by the grader's audit pass.  Every disagreement between ours and the label is
printed with a category.  Prints a table; asserts nothing (tests/test_grader_agreement.py does).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mathrecipes.grading import GradeSettings, grade_records

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MATHRECIPES_SHARED_DATA", REPO.parent / "shared" / "data"))
GRADING = SHARED / "grading"

GSM8K_FILE = GRADING / "gsm8k_example_model_solutions" / "example_model_solutions.jsonl"
GSM8K_MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
GSM8K_ANSWER_REGEX = r"(?m)^A:[ \t]*(.+)$"
TORA_MODELS = ("tora-70b-v1.0", "tora-code-34b-v1.0")
TORA_NAME = "test_tora_-1_seed0_t0.0_s0_e1319"
OLYMPIAD_FILE = GRADING / "olympiadbench_scoring_examples" / "scoring_examples.json"
OLYMPIAD_SETTINGS = {"strip_units": False}


@dataclass
class Result:
    name: str
    rows: list[dict[str, Any]]  # grade_records rows + "label", "category" (ours vs label)
    summary: dict[str, Any]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.rows)

    def ours_agreement(self) -> float:
        return sum((r["verdict"] == "correct") == r["label"] for r in self.rows) / self.n

    def plain_agreement(self) -> float:
        return sum((r["math_verify"] == "correct") == r["label"] for r in self.rows) / self.n

    def disagreements(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if (r["verdict"] == "correct") != r["label"]]


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------


def _is_digit(s: Any) -> bool:
    try:
        float(str(s).replace(",", ""))
        return True
    except ValueError:
        return False


def tora_label(pred: Any, gt: str) -> bool:
    """ToRA's ``math_equal(pred, gt)`` (microsoft/ToRA ``src/eval/grader.py``), re-implemented:
    numbers are equal within rel_tol 1e-4 of gt, gt/100 or gt*100; otherwise string equality
    after stripping brackets, then element-wise for bracketed lists, then sympy equality (here
    via latex2sympy2_extended, as sympy's own LaTeX parser needs another ANTLR version)."""
    if _is_digit(pred) and _is_digit(gt):
        p, r = float(str(pred).replace(",", "")), float(str(gt).replace(",", ""))
        return any(math.isclose(x, p, rel_tol=1e-4) for x in (r / 100, r, r * 100))
    if not pred and pred not in (0, False):
        return False
    ref, pre = str(gt).strip(), str(pred).strip()
    strip = str.maketrans("", "", "{}()")
    if pre.translate(strip) == ref.translate(strip):
        return True
    try:
        from latex2sympy2_extended import latex2sympy
        from sympy import N, simplify

        a, b = latex2sympy(pre), latex2sympy(ref)
        if simplify(a - b) == 0:
            return True
        return math.isclose(float(N(a)), float(N(b)), rel_tol=1e-3)
    except Exception:
        return False


# --------------------------------------------------------------------------------------------
# Categories of disagreements (ours vs label)
# --------------------------------------------------------------------------------------------


def _num(s: Any) -> float | None:
    try:
        return float(str(s).replace(",", "").replace("$", "").strip())
    except (TypeError, ValueError):
        return None


def gsm8k_category(r: dict[str, Any]) -> str:
    ext, gold = r["extracted"], r["gold"]
    if r["verdict"] == "no_answer":
        return "no answer line ('A:') in the solution"
    x, g = _num(ext), _num(gold)
    if r["label"] and r["verdict"] != "correct":
        return "ours rejects a label-correct answer"
    if x is not None and g is not None and x != g and math.isclose(x, g, rel_tol=1e-6):
        return "float tolerance: ours accepts a value within 1e-6"
    return "ours accepts a label-incorrect answer: " + r["rule"]


def tora_category(r: dict[str, Any]) -> str:
    pred, gold, ext = r["tora_pred"], r["gold"], r["extracted"]
    p, g, x = _num(pred), _num(gold), _num(ext)
    if r["label"] and p is not None and g is not None and not math.isclose(p, g, rel_tol=1e-4):
        return "label: ToRA's grader accepts gt*100 or gt/100 (percent leniency)"
    if r["verdict"] == "no_answer":
        return "extraction: no anchored answer in the trajectory (ToRA used the program output)"
    if x is not None and p is not None and not math.isclose(x, p, rel_tol=1e-4):
        return "extraction: the boxed answer differs from ToRA's extracted prediction"
    if r["verdict"] == "correct" and not r["label"]:
        return "equivalence: ours accepts what ToRA's grader rejects"
    return "equivalence: ours rejects what ToRA's grader accepts"


# --------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------


def _grade(
    name: str,
    records: list[dict[str, Any]],
    settings: GradeSettings,
    category: Callable[[dict[str, Any]], str],
    audit: bool,
) -> Result:
    t0 = time.perf_counter()
    rows, summary = grade_records(
        records,
        prediction_field="completion",
        gold_field="gold",
        id_field="id",
        settings=settings,
        audit=audit,
    )
    seconds = time.perf_counter() - t0
    for row, rec in zip(rows, records, strict=True):
        row["audit_category"] = row.pop("category", None)
        for k, v in rec.items():
            if k not in ("completion", "gold", "id"):
                row[k] = v
        row["category"] = category(row) if (row["verdict"] == "correct") != row["label"] else None
    return Result(name, rows, summary, seconds)


def gsm8k(workers: int = 2, audit: bool = True) -> Result:
    records = []
    with open(GSM8K_FILE) as fh:
        for k, line in enumerate(fh):
            row = json.loads(line)
            gold = row["ground_truth"].rsplit("A:", 1)[1].strip()
            for model in GSM8K_MODELS:
                records.append(
                    {
                        "id": f"{k}:{model}",
                        "gold": gold,
                        "completion": row[model]["solution"],
                        "label": bool(row[model]["is_correct"]),
                    }
                )
    settings = GradeSettings(workers=workers, answer_regex=GSM8K_ANSWER_REGEX)
    return _grade("gsm8k_example_model_solutions", records, settings, gsm8k_category, audit)


def tora(model: str, workers: int = 2, audit: bool = True) -> Result:
    path = GRADING / "tora_gsm8k" / model / f"{TORA_NAME}.jsonl"
    records = []
    with open(path) as fh:
        for line in fh:
            row = json.loads(line)
            records.append(
                {
                    "id": str(row["idx"]),
                    "gold": row["gt"],
                    "completion": row["code"][0],
                    "tora_pred": row["pred"][0],
                    "label": tora_label(row["pred"][0], row["gt"]),
                }
            )
    result = _grade(
        f"tora_gsm8k/{model}", records, GradeSettings(workers=workers), tora_category, audit
    )
    metrics = (path.with_suffix(".metrics")).read_text()
    m = re.search(r"Mean score: \[([\d.]+)\]", metrics)
    result.extra["tora_metrics_accuracy"] = float(m.group(1)) if m else None
    result.extra["label_accuracy"] = round(100 * sum(r["label"] for r in result.rows) / result.n, 1)
    return result


def olympiad_pairs() -> list[dict[str, Any]]:
    """One dict per (gold, candidate) pair: gold, answer, label, settings overrides, and
    ``unsupported`` (a reason) where the pair needs something GradeSettings cannot express."""
    pairs = []
    for k, item in enumerate(json.loads(OLYMPIAD_FILE.read_text())):
        for j, ans in enumerate(item["Ans"]):
            precision = ans.get("precision")
            if isinstance(precision, list) and len(precision) == 1:
                precision = precision[0]
            overrides: dict[str, Any] = dict(OLYMPIAD_SETTINGS)
            unsupported = None
            if isinstance(precision, list):
                unsupported = "a separate absolute tolerance per list element"
            elif precision is not None:
                overrides["abs_tol"] = float(precision)
            pairs.append(
                {
                    "id": f"{k}.{j}",
                    "gold": item["GT"],
                    "completion": ans["answer"],
                    "label": bool(ans["equal"]),
                    "overrides": overrides,
                    "unsupported": unsupported,
                }
            )
    return pairs


def olympiad(workers: int = 1, audit: bool = True, timeout_s: float = 5.0) -> Result:
    pairs = olympiad_pairs()
    rows_all: list[dict[str, Any]] = []
    groups: dict[str, list[dict[str, Any]]] = {}
    for p in pairs:
        groups.setdefault(json.dumps(p["overrides"], sort_keys=True), []).append(p)
    t0 = time.perf_counter()
    for overrides, group in groups.items():
        settings = GradeSettings(workers=workers, timeout_s=timeout_s, **json.loads(overrides))
        records = [
            {
                "id": p["id"],
                "gold": p["gold"],
                # A bare candidate answer: give it as a boxed answer.
                "completion": _as_answer(p["completion"]),
                "label": p["label"],
                "unsupported": p["unsupported"],
            }
            for p in group
        ]
        result = _grade("olympiadbench", records, settings, olympiad_category, audit)
        rows_all.extend(result.rows)
    order = {p["id"]: k for k, p in enumerate(pairs)}
    rows_all.sort(key=lambda r: order[r["id"]])
    return Result("olympiadbench_scoring_examples", rows_all, {}, time.perf_counter() - t0)


def _as_answer(answer: str) -> str:
    return answer if "\\boxed" in answer else f"\\boxed{{{answer}}}"


def olympiad_category(r: dict[str, Any]) -> str:
    if r["unsupported"]:
        return "unsupported: " + r["unsupported"]
    if r["verdict"] == "timeout":
        return "timeout (the label says not equal; ours makes no claim)"
    if r["verdict"] == "gold_unparseable":
        return "gold unparseable"
    return "equivalence: " + ("ours accepts" if r["verdict"] == "correct" else "ours rejects")


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def run_all(workers: int = 2, audit: bool = True) -> list[Result]:
    return [
        gsm8k(workers, audit),
        *(tora(m, workers, audit) for m in TORA_MODELS),
        olympiad(1, audit),
    ]


def report(results: list[Result], show: int) -> None:
    print(
        f"{'dataset':42s} {'n':>5s} {'ours':>8s} {'plain MV':>9s} {'ours≠label':>10s} "
        f"{'MV≠label':>8s} {'secs':>6s}"
    )
    for r in results:
        mv_bad = sum((x["math_verify"] == "correct") != x["label"] for x in r.rows)
        print(
            f"{r.name:42s} {r.n:5d} {100 * r.ours_agreement():7.2f}% "
            f"{100 * r.plain_agreement():8.2f}% {len(r.disagreements()):10d} {mv_bad:8d} "
            f"{r.seconds:6.1f}"
        )
    for r in results:
        if "tora_metrics_accuracy" in r.extra:
            print(
                f"{r.name}: label accuracy {r.extra['label_accuracy']} "
                f"(ToRA .metrics: {r.extra['tora_metrics_accuracy']})"
            )
    for r in results:
        bad = r.disagreements()
        print(f"\n== {r.name}: {len(bad)} disagreement(s) of ours with the label")
        for cat, k in Counter(x["category"] for x in bad).most_common():
            print(f"   {k:4d}  {cat}")
        for x in bad[:show]:
            print(
                f"   id={x['id']} label={x['label']} ours={x['verdict']} rule={x['rule']} "
                f"gold={x['gold']!r} extracted={x['extracted']!r}"
                + (f" tora_pred={x['tora_pred']!r}" if "tora_pred" in x else "")
                + f"\n      -> {x['category']}"
            )
        mv_bad = [x for x in r.rows if (x["math_verify"] == "correct") != x["label"]]
        print(
            f"   plain Math-Verify vs label: {len(mv_bad)} disagreement(s), by our audit category:"
        )
        for cat, k in Counter(
            x["audit_category"] or "agrees with ours" for x in mv_bad
        ).most_common():
            print(f"   {k:4d}  {cat}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--show", type=int, default=1000, help="disagreements listed per dataset")
    args = ap.parse_args()
    if not GRADING.is_dir():
        raise SystemExit(f"shared grading data not found at {GRADING}")
    report(run_all(args.workers), args.show)


if __name__ == "__main__":
    main()
