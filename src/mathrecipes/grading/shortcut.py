"""Verdicts the parent can decide without a worker: plain numbers against an integer gold.

A worker spends about a second importing Math-Verify before it grades anything; on a small
file that start-up costs more than the grading.  Most answers to GSM8K-style problems are an
integer gold against an integer or a decimal, and for those the worker's result is known
exactly in advance.  :func:`decide` returns it, ``(verdict, how)`` as
:meth:`~mathrecipes.grading.engine.Engine.handle` would, or None when the pair is not one of
the classes below (the worker grades it, with its hard timeout).  Both texts are the
*normalized* gold and answer (:func:`~mathrecipes.grading.normalization.normalize` of
:func:`~mathrecipes.grading.extraction.gold_answer` and of the extracted answer), as in the
worker.  ASCII digits only, at most :data:`MAX_DIGITS` of them before the point.

Why the worker's result is known (see ``Engine._judge`` and ``Engine._math_verify``):

* The gold is ``-?[0-9]+``: the worker parses it without Math-Verify, as
  ``(Integer(n), text)`` (``Engine._parse``), so it always parses (:func:`gold_ok`).  No
  shape rule applies to it or to a plain number (no choice letter, no base subscript, no
  comma, no ``\\frac``), nor the text rule (no letters) or the ``name = value`` rule (no
  ``=``).
* ``integer_answers``: the worker compares integers (``int``, modulo ``modulo``) when the
  answer is an integer or ``12.0``-like, and calls any other decimal ``incorrect``, before
  Math-Verify; ``how`` is ``integer``.  Decided here for both classes whatever the other
  settings.
* Integer answer, otherwise: ``Integer`` against ``Integer`` is exact in Math-Verify (equal
  values compare equal; unequal ones fail the numeric and the symbolic check, and the text
  candidates differ), and no tolerance applies to two exact numbers: ``correct`` iff the
  integers are equal, ``how`` None, under every policy.
* Decimal answer, otherwise (only without ``rel_tol`` / ``abs_tol``, where a tolerance could
  add ``+tolerance``): the answer parses to a ``Float``.  Equal in value (``160.0``):
  ``Integer - Float`` simplifies to zero, ``correct``.  At least ``max(10**-float_rounding,
  1e-3)`` apart (``14.67`` for 15): neither rounding to ``float_rounding`` places (which moves
  a value by at most half a unit, and a 12-digit decimal is held to better than ``1e-4``) nor
  simplification makes them equal, ``incorrect``.  Closer than that: the worker decides.

tests/test_grading_shortcut.py checks every class against the worker on the real graded
outputs, the benchmark items and edge cases, under several policies.
"""

from __future__ import annotations

import re
from fractions import Fraction

from mathrecipes.grading.settings import GradeSettings

MAX_DIGITS = 12
_INTEGER = re.compile(rf"-?[0-9]{{1,{MAX_DIGITS}}}")
_DECIMAL = re.compile(rf"-?([0-9]{{1,{MAX_DIGITS}}})\.([0-9]+)")
# Closest a decimal may be to the gold for the parent to call it incorrect (see above).
_MIN_GAP = Fraction(1, 1000)


def gold_ok(gold_text: str) -> bool:
    """True when the worker would certainly parse this normalized gold (a plain integer);
    False means "unknown", not "unparseable"."""
    return _INTEGER.fullmatch(gold_text) is not None


def decide(
    gold_text: str, pred_text: str, settings: GradeSettings
) -> tuple[str, str | None] | None:
    """``(verdict, how)`` exactly as the worker would grade the normalized pair, or None."""
    if _INTEGER.fullmatch(gold_text) is None:
        return None
    want = int(gold_text)
    if _INTEGER.fullmatch(pred_text):
        got: int | None = int(pred_text)
    else:
        m = _DECIMAL.fullmatch(pred_text)
        if m is None:
            return None
        # int("-0") == 0; "12.0" is an integer for the integer_answers rule
        got = int(pred_text.split(".")[0]) if not m.group(2).strip("0") else None
    if settings.integer_answers:
        if got is None:
            return "incorrect", "integer"
        if settings.modulo:
            want, got = want % settings.modulo, got % settings.modulo
        return ("correct" if want == got else "incorrect"), "integer"
    if _INTEGER.fullmatch(pred_text):
        return ("correct" if want == got else "incorrect"), None
    if settings.rel_tol is not None or settings.abs_tol is not None:
        return None
    gap = abs(Fraction(pred_text) - want)
    if gap == 0:
        return "correct", None
    if gap >= max(_MIN_GAP, Fraction(1, 10**settings.float_rounding)):
        return "incorrect", None
    return None
