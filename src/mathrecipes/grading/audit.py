"""The audit: where our grader, plain Math-Verify and string match disagree.

With an audit every item is also graded by (a) plain Math-Verify, ``verify(parse(gold),
parse(completion))`` with Math-Verify's default extraction on the whole completion (a gold
without ``$`` is given as ``$gold$``, the documented usage: a bare ``\\sqrt{2}`` parses to
nothing), in the same workers under the same hard per-item timeout, and (b) a normalized string
match of our extracted answer against the gold; rows where the three disagree are listed with a
category (:func:`disagreement_category`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mathrecipes.grading.extraction import gold_answer
from mathrecipes.grading.items import Verdict
from mathrecipes.grading.normalization import sm_normalize

_UNIT_HINT = re.compile(
    r"\\(?:text|mbox|textnormal|mathrm)\s*\{\s*[A-Za-z]|\^\\circ|\\circ|°|[A-Za-z]{2,}\s*$"
)


def _plain_number(s: str) -> float | None:
    t = s.replace("{,}", "").replace(",", "").replace("\\$", "").replace("$", "").strip()
    try:
        return float(t)
    except ValueError:
        return None


def disagreement_category(
    gold: str,
    extracted: str | None,
    ours: str,
    rule: str,
    math_verify: str | None,
    math_verify_extracted: str | None,
    string_match: str | None,
) -> str:
    """A short ``"kind: detail"`` label for a row where the graders disagree.

    Kinds: ``gold`` (unusable gold), ``timeout``, ``extraction`` (the graders looked at different
    parts of the completion), ``policy`` (a GradeSettings policy decided), ``format`` (same value
    written differently), ``equivalence`` (a mathematical judgement differs).
    """
    if ours == "gold_unparseable":
        return "gold: unparseable"
    if ours == "timeout" or math_verify == "timeout":
        return "timeout: " + ("ours" if ours == "timeout" else "math-verify")
    if ours == "no_answer":
        detail = {"unclosed_think": "unclosed think", "truncated": "truncated output"}
        return "extraction: " + detail.get(rule, "no anchor")
    tags = set(rule.split("+")[1:])
    for tag, label in (
        ("percent", "policy: percent"),
        ("tolerance", "policy: numeric tolerance"),
        ("integer", "policy: integer answers"),
        ("mixed_number", "policy: mixed number"),
        ("ordered", "policy: ordered tuples"),
        ("unordered", "policy: unordered tuples"),
        ("mcq", "format: multiple-choice letter"),
        ("base", "format: base subscript"),
        ("decimal_comma", "format: decimal comma"),
        ("vector", "format: vector vs tuple"),
        ("text", "format: text answer"),
    ):
        if tag in tags:
            return label
    if rule.startswith("boxed_multi"):
        return "extraction: multiple boxes"
    if rule.startswith("error:"):
        return "equivalence: parse error"
    ours_ok = ours == "correct"
    mv_ok = math_verify == "correct"
    if math_verify is not None and ours_ok != mv_ok and extracted is not None:
        same_span = math_verify_extracted is not None and sm_normalize(
            math_verify_extracted
        ) == sm_normalize(extracted)
        if not same_span:
            return "extraction: different span"
    g = sm_normalize(gold_answer(gold))
    a = sm_normalize(extracted or "")
    if ours_ok and string_match != "correct":
        raw = (extracted or "").replace(" ", "")
        if re.search(r"\d(?:,|\{,\}|\\,|\\!|\s)\d{3}", extracted or "") and _plain_number(
            raw.replace("\\,", "").replace("\\!", "")
        ) == _plain_number(g):
            return "format: thousands separator"
        if re.search(r"%|percent|\bpct\b", (extracted or "") + gold):
            return "format: percent sign"
        if "\\$" in (extracted or "") or "$" in (extracted or ""):
            return "format: currency"
        if _UNIT_HINT.search(extracted or ""):
            return "format: units"
        x, y = _plain_number(a), _plain_number(g)
        if x is not None and y is not None and x == y:
            return "format: number notation"  # 016 vs 16, 1000.0 vs 1000
        if x is not None or y is not None:
            return "equivalence: numeric"  # 0.5 vs \frac{1}{2}
        return "equivalence: symbolic"
    if not ours_ok and string_match == "correct":
        return "equivalence: ours rejects a string match"
    if ours_ok and not mv_ok:
        return "equivalence: ours accepts, math-verify rejects"
    if mv_ok and not ours_ok:
        return "equivalence: math-verify accepts, ours rejects"
    return "other"


def agreement(verdicts: Sequence[Verdict]) -> dict[str, Any]:
    n = len(verdicts)
    ours = [v.verdict == "correct" for v in verdicts]
    mv = [v.math_verify == "correct" for v in verdicts]
    sm = [v.string_match == "correct" for v in verdicts]

    def frac(a: list[bool], b: list[bool]) -> float | None:
        return sum(x == y for x, y in zip(a, b, strict=True)) / n if n else None

    return {
        "n": n,
        "ours_vs_math_verify": frac(ours, mv),
        "ours_vs_string_match": frac(ours, sm),
        "math_verify_vs_string_match": frac(mv, sm),
        "math_verify_accuracy": sum(mv) / n if n else None,
        "string_match_accuracy": sum(sm) / n if n else None,
        "math_verify_timeouts": sum(v.math_verify == "timeout" for v in verdicts),
    }


def category(v: Verdict, gold: str) -> str | None:
    """:func:`disagreement_category` of an audited verdict, or None where ours, plain
    Math-Verify and string match agree about "correct"."""
    if len({v.verdict == "correct", v.math_verify == "correct", v.string_match == "correct"}) == 1:
        return None
    return disagreement_category(
        gold,
        v.extracted,
        v.verdict,
        v.rule,
        v.math_verify,
        v.math_verify_extracted,
        v.string_match,
    )


def disagreements(
    verdicts: Sequence[Verdict], golds: Sequence[str]
) -> list[tuple[int, dict[str, Any]]]:
    """``(index, row)`` (with ``category``) where ours, plain Math-Verify and string match
    disagree about "correct"."""
    out = []
    for i, (v, gold) in enumerate(zip(verdicts, golds, strict=True)):
        found = category(v, gold)
        if found is None:
            continue
        row = {
            "gold": gold,
            "extracted": v.extracted,
            "ours": v.verdict,
            "rule": v.rule,
            "math_verify": v.math_verify,
            "math_verify_extracted": v.math_verify_extracted,
            "string_match": v.string_match,
            "category": found,
        }
        out.append((i, row))
    return out
