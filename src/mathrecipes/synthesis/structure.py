"""``structure``: rewrite a solution into explicit, labelled steps ending in a boxed answer.

The structured form (what the rule-based splitter writes and the default prompt asks for)::

    Goal: How many shells does Maya have now?
    Step 1: Maya multiplies the shells by 2.
    Computation: 35 * 2 = 70
    Result: 70
    Step 2: ...
    Final answer: \\boxed{18}

``Computation`` and ``Result`` lines appear for the steps that compute something.

Splitters (``splitter``):

``rules``    no teacher. The goal is the problem's last question (else its last sentence); the
             steps are the solution's lines (or its sentences, for a one-line solution) without
             the final-answer line; a step's computation is its GSM8K calculator annotation
             (``<<48/2=24>>``), else its last equation in inline math, else its last plain
             arithmetic equation; the result is the right-hand side. A solution with no step
             left is rejected (``no_steps``), e.g. an answer-only ``#### 42``.
``teacher``  a model teacher rewrites the solution with the prompt (``{problem}``,
             ``{solution}``, ``{answer}``); an output without a ``Step 1`` label is rejected
             (``unstructured``).

The final answer must not change: the original answer is the solution's own (extracted as the
grader does), else the row's gold answer; the rewritten solution is graded against it and
rejected (``answer_changed``) unless the grader finds them equal. The kept row has the parent's
problem and answer.
"""

from __future__ import annotations

import re

from mathrecipes.grading import extract_answer
from mathrecipes.synthesis.base import Context, MethodResult, Sample, gold_of, verdict_reason

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\\$])")
_CALC = re.compile(r"<<([^<>]*=[^<>]*)>>")
_MATH = re.compile(
    r"\$\$(.+?)\$\$|\$([^$]+)\$|\\\(((?:(?!\\\)).)+)\\\)|\\\[((?:(?!\\\]).)+)\\\]", re.DOTALL
)
_DISPLAY = re.compile(r"\$\$.+?\$\$|\\\[.+?\\\]", re.DOTALL)
_NUMBER = re.compile(r"^[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+|\\[dt]?frac\{-?\d+\}\{\d+\})$")
_PLAIN_EQUATION = re.compile(
    r"((?:\(?-?\d[\d.,]*\)?\s*[-+*/×÷x^]\s*)+\(?-?\d[\d.,]*\)?)\s*=\s*(-?\$?\d[\d.,]*)"
)
_FINAL = re.compile(
    r"^\s*(?:####|\$?\\boxed|\\fbox|(?:so\s+|thus\s+|therefore\s+)?the\s+(?:final\s+)?answer\s+is"
    r"|final\s+answer\s*:|answer\s*:)",
    re.IGNORECASE,
)
_BOXED_FLAT = re.compile(r"\\boxed\{([^{}]*)\}")
_STEP_LABEL = re.compile(r"(?im)^\W*step\s*1\b")


def goal_of(problem: str) -> str:
    """The problem's last question sentence, else its last sentence (the end of a display
    formula ends a sentence too)."""
    text = _DISPLAY.sub(lambda m: m.group(0) + "\n\n", " ".join(problem.split()))
    parts = [p for chunk in text.split("\n\n") for p in _SENTENCE.split(chunk)]
    sentences = [s.strip() for s in parts if s.strip()]
    if not sentences:
        return ""
    questions = [s for s in sentences if s.endswith("?")]
    return questions[-1] if questions else sentences[-1]


def solution_units(solution: str) -> list[str]:
    """The solution's steps: non-empty lines (sentences for a one-line solution), without the
    final-answer-only ones."""
    lines = [ln.strip() for ln in solution.strip().splitlines() if ln.strip()]
    if len(lines) == 1:
        lines = [s.strip() for s in _SENTENCE.split(lines[0]) if s.strip()]
    return [ln for ln in lines if not _FINAL.match(ln)]


def computation_of(unit: str) -> tuple[str, str] | None:
    """``(computation, result)`` of one step, or None."""
    calcs = _CALC.findall(unit)
    if calcs:
        lhs, rhs = calcs[-1].rsplit("=", 1)
        return f"{lhs.strip()} = {rhs.strip()}", rhs.strip()
    text = _CALC.sub("", unit)
    maths = [next(g for g in groups if g) for groups in _MATH.findall(text)]
    maths = [_BOXED_FLAT.sub(r"\1", m).strip() for m in maths if "=" in m]
    if maths:
        # prefer the last equation with a number on its right-hand side
        numeric = [m for m in maths if _NUMBER.match(m.rsplit("=", 1)[1].strip().rstrip(".,"))]
        math = (numeric or maths)[-1]
        return math, math.rsplit("=", 1)[1].strip().rstrip(".,")
    plain = _PLAIN_EQUATION.findall(text)
    if plain:
        lhs, rhs = plain[-1]
        rhs = rhs.rstrip(".,")
        return f"{lhs.strip()} = {rhs}", rhs
    return None


def structure_by_rules(problem: str, solution: str, answer: str) -> tuple[str, int]:
    """The structured form of ``solution`` and its number of steps (0: nothing to structure)."""
    units = solution_units(solution)
    lines = [f"Goal: {goal_of(problem) or 'find the final answer.'}"]
    for i, unit in enumerate(units, start=1):
        found = computation_of(unit)
        text = " ".join(_BOXED_FLAT.sub(r"\1", _CALC.sub("", unit)).split())
        if found is not None and " ".join(text.rstrip(".").split()) == found[0]:
            text = f"Compute {found[0].rsplit('=', 1)[0].strip()}."
        lines.append(f"Step {i}: {text}")
        if found is not None:
            lines += [f"Computation: {found[0]}", f"Result: {found[1]}"]
    lines.append(f"Final answer: \\boxed{{{answer}}}")
    return "\n".join(lines), len(units)


def structure(ctx: Context, rows: list[dict[str, str]]) -> MethodResult:
    splitter = ctx.spec.splitter
    result = MethodResult()
    todo: list[tuple[Sample, str]] = []  # (sample, original answer)
    jobs = []
    for row in rows:
        original = extract_answer(row["solution"])[0] if row["solution"].strip() else None
        original = (original or gold_of(row)).strip()
        if splitter == "teacher":
            s = Sample(row, 0, f"{row['id']}#0", prompt_key="prompt")
        else:
            s = Sample(row, 0, row["id"])
        if not row["solution"].strip():
            result.rejected.append(ctx.reject(s, "no_solution: the row has no solution"))
            continue
        if not original:
            reason = "no_answer: neither the solution nor the row has a final answer"
            result.rejected.append(ctx.reject(s, reason))
            continue
        if splitter == "teacher":
            values = {"problem": row["problem"], "solution": row["solution"], "answer": original}
            jobs.append((s, values))
        else:
            s.text, s.extra["steps"] = structure_by_rules(row["problem"], row["solution"], original)
            if not s.extra["steps"]:
                reason = "no_steps: the solution has no step besides its final answer"
                result.rejected.append(ctx.reject(s, reason))
                continue
        todo.append((s, original))
    if splitter == "teacher":
        ctx.generate(jobs)

    checkable = []
    for s, original in todo:
        failure = s.failure()
        if failure is None and splitter == "teacher" and not _STEP_LABEL.search(s.text):
            failure = "unstructured: no 'Step 1' label in the output"
        if failure is not None:
            result.rejected.append(ctx.reject(s, failure))
        else:
            checkable.append((s, original))
    verdicts = ctx.checker.grade([(o, s.text, s.finish_reason) for s, o in checkable])
    for (s, original), v in zip(checkable, verdicts, strict=True):
        if v.verdict != "correct":
            reason = verdict_reason(v.verdict, v.extracted, original, what="rewritten")
            if v.verdict == "incorrect":
                reason = f"answer_changed: rewritten {v.extracted!r} != original {original!r}"
            result.rejected.append(ctx.reject(s, reason))
            continue
        steps = s.extra.get("steps") or len(re.findall(r"(?im)^\W*step\s*\d+\b", s.text))
        meta = {"splitter": splitter, "steps": steps, "original_answer": original}
        result.kept.append(
            ctx.keep(
                s,
                several=False,
                problem=s.parent["problem"],
                solution=s.text.strip(),
                answer=gold_of(s.parent) or original,
                meta=meta,
            )
        )
    result.kept.sort(key=lambda r: r["id"])
    return result
