"""The parent's shortcut (mathrecipes.grading.shortcut) gives exactly the worker's verdicts.

Edge cases are checked against the worker's own code (``Engine.handle``, in this process: plain
numbers cannot hang) under several policies; real graded outputs (ToRA and GPT-3 GSM8K
solutions, MATH golds as in benchmarks/bench_grading.py) are graded twice, with and without the
shortcut, and must agree on every verdict, rule and extracted answer.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from helpers import require

from mathrecipes.grading import GradeItem, GradeSettings, extract_answer, grade_items, shortcut
from mathrecipes.grading.extraction import gold_answer
from mathrecipes.grading.normalization import normalize
from mathrecipes.grading.pool import Pool

GOLDS = ["0", "-0", "016", "42", "-7", "123456789012", "5,600", "-1,000,000"]
ANSWERS = [
    *["0", "-0", "0.0", "-0.0", "0.001", "0.0005", "16", "16.0", "016.00", "15.999", "16.001"],
    *["15.9999999", "16.5", "15.5", "14.67", "42", "042", "42.0", "41.9999999", "42.000001"],
    *["41.5", "-7", "-7.0", "7", "7.0", "-6.999", "123456789012", "123456789012.0"],
    *["123456789012.5", "123456789013", "123456789011.9999", "123,456,789,012"],
    *["5,600", "5600", "5,601", "5600.0", "5599.5", "-1,000,000", "-1000000", "1,000,000"],
]
POLICIES = [
    {},
    {"integer_answers": True},
    {"integer_answers": True, "modulo": 10},
    {"float_rounding": 0},
    {"float_rounding": 2, "numeric_precision": 3},
    {"float_rounding": 12},
    {"rel_tol": 1e-4},
    {"abs_tol": 0.5, "strip_units": False, "percent": "fraction", "ordered_tuples": True},
]


@pytest.mark.parametrize("policy", POLICIES, ids=[json.dumps(p) for p in POLICIES])
def test_shortcut_agrees_with_the_worker(policy):
    from mathrecipes.grading.engine import Engine

    settings = GradeSettings(**policy)
    engine = Engine(settings)
    decided = 0
    for gold, answer in itertools.product(GOLDS, ANSWERS):
        got = shortcut.decide(gold, answer, settings)
        if got is None:
            continue
        decided += 1
        verdict, how, gold_ok = engine.handle(gold, answer, lambda: None)
        assert gold_ok and shortcut.gold_ok(gold)
        assert got == (verdict, how), (policy, gold, answer)
    # Every integer pair is decided, and most decimals unless a tolerance is set.
    integers = sum(a.replace(",", "").lstrip("-").isdigit() for a in ANSWERS)
    tolerance = policy.get("rel_tol") is not None or policy.get("abs_tol") is not None
    assert decided >= len(GOLDS) * (integers if tolerance else len(ANSWERS) // 2)


def test_shortcut_declines_what_it_cannot_know():
    s = GradeSettings()
    for gold, answer in [
        ("16", "15.9999999"),  # close to the gold: rounding decides
        ("\\frac{1}{2}", "0.5"),
        ("0.5", "0.5"),  # a decimal gold
        ("16", "1,22"),  # a decimal comma
        ("1,000", "1,000.5"),
        ("16", "1,6000"),
        ("1,0000", "10000"),
        ("16", "16\\%"),
        ("16", "\u0661\u0666"),  # non-ASCII digits
        ("1234567890123", "1234567890123"),  # more than MAX_DIGITS
        ("5", "5^{5^{5^{5}}}"),
    ]:
        assert shortcut.decide(gold, answer, s) is None, (gold, answer)
    assert shortcut.decide("16", "16.5", GradeSettings(rel_tol=0.1)) is None
    assert not shortcut.gold_ok("\\frac{1}{2}") and not shortcut.gold_ok("")


def _real_items(root: Path, every: int) -> list[tuple[str, list[GradeItem], dict]]:
    """Every ``every``-th item of each real file (MATH: every ``4 * every``-th problem), in
    two sets with the settings their benchmarks use."""
    default = []
    name = "test_tora_-1_seed0_t0.0_s0_e1319.jsonl"
    for model in ("tora-70b-v1.0", "tora-code-34b-v1.0"):
        with open(root / "grading" / "tora_gsm8k" / model / name) as fh:
            rows = [json.loads(line) for line in fh][::every]
        default += [GradeItem(f"{model}:{r['idx']}", r["gt"], r["code"][0]) for r in rows]
    path = root / "grading" / "gsm8k_example_model_solutions" / "example_model_solutions.jsonl"
    items = []
    with open(path) as fh:
        for k, line in enumerate(fh):
            if k % every:
                continue
            row = json.loads(line)
            gold = row["ground_truth"].rsplit("A:", 1)[1].strip()
            for model in ("6b_finetuning", "175b_verification"):
                items.append(GradeItem(f"{k}:{model}", gold, row[model]["solution"]))
    gsm8k = ("gsm8k_solutions", items, {"answer_regex": r"(?m)^A:[ \t]*(.+)$"})
    with open(root / "eval" / "math" / "test.jsonl") as fh:
        for k, line in enumerate(fh):
            if k % (4 * every):
                continue
            gold = extract_answer(json.loads(line)["solution"])[0] or ""
            # the gold against itself, against gold + 1 / gold.5, and as a decimal
            for answer in (gold, f"{gold}+1", f"{gold}.5", f"{gold}.0"):
                default.append(GradeItem(f"math{k}:{answer}", gold, f"So $\\boxed{{{answer}}}$."))
    return [("tora_gsm8k+math_golds", default, {}), gsm8k]


def test_verdicts_unchanged_on_real_outputs(shared_data):
    root = shared_data
    require((root / "grading" / "tora_gsm8k").is_dir(), f"the graded outputs under {root}")
    require((root / "eval" / "math" / "test.jsonl").is_file(), f"the MATH test set under {root}")
    for name, items, policy in _real_items(root, every=24):
        settings = GradeSettings(workers=2, **policy)
        golds = {it.gold: normalize(gold_answer(it.gold)) for it in items}
        answers = [
            extract_answer(it.completion, answer_regex=settings.answer_regex) for it in items
        ]
        shortcut_class = sum(
            a is not None and shortcut.decide(golds[it.gold], normalize(a), settings) is not None
            for it, (a, _) in zip(items, answers, strict=True)
        )
        assert shortcut_class >= len(items) // 4, name  # the sample exercises the shortcut
        with Pool(settings, settings.workers) as pool:
            fast = grade_items(items, settings, pool=pool)
            slow = grade_items(items, settings, pool=pool, shortcuts=False)
        got = [(v.key, v.verdict, v.rule, v.extracted) for v in fast]
        want = [(v.key, v.verdict, v.rule, v.extracted) for v in slow]
        assert got == want, name


def test_no_worker_starts_when_the_parent_decides_everything(monkeypatch):
    from mathrecipes.grading import pool as pool_module

    def no_pool(*args, **kwargs):
        raise AssertionError("a worker pool was started")

    monkeypatch.setattr(pool_module.Pool, "__init__", no_pool)
    items = [
        GradeItem("int", "18", "So she makes $\\boxed{18}$ dollars."),
        GradeItem("decimal", "3", "#### 3.0"),
        GradeItem("wrong", "1,600", "The answer is 1,500."),
        GradeItem("none", "7", "no anchored answer here"),
    ]
    got = [(v.verdict, v.rule) for v in grade_items(items, GradeSettings())]
    assert got == [
        ("correct", "boxed"),
        ("correct", "gsm8k"),
        ("incorrect", "answer_is"),
        ("no_answer", "none"),
    ]
    assert all(v.seconds > 0 for v in grade_items(items[:1], GradeSettings()))
