"""Verdicts the parent can decide without a worker: plain numbers against an integer gold.

A worker spends about a second importing Math-Verify before it grades anything; on a small
file that start-up costs more than the grading.  Most answers to GSM8K-style problems are an
integer gold against an integer or a decimal, and for those the worker's result is known
exactly in advance.  :func:`decide` returns it, ``(verdict, how)`` as
:meth:`~mathrecipes.grading.engine.Engine.handle` would, or None when the pair is not one of
the classes below (the worker grades it, with its hard timeout).  Both texts are the
*normalized* gold and answer (:func:`~mathrecipes.grading.normalization.normalize` of
:func:`~mathrecipes.grading.extraction.gold_answer` and of the extracted answer), as in the
worker.  Integers are ``-?[0-9]+`` or written with thousands commas (``-?1,234,567``),
decimals ``-?[0-9]+.[0-9]+``; ASCII digits only, at most :data:`MAX_DIGITS` before the point.

Why the worker's result is known (see ``Engine._judge`` and ``Engine._math_verify``):

* The gold is an integer: the worker parses a plain one without Math-Verify, as
  ``(Integer(n), text)`` (``Engine._parse``), and Math-Verify's parser reads one with commas
  as ``Integer(n)`` too (its number rule drops the commas), so it always parses
  (:func:`gold_ok`).  No shape rule applies to it or to the answers here (no choice letter,
  no base subscript, no ``\\frac``; a comma-grouped number is never a decimal comma), nor
  the text rule (no letters) or the ``name = value`` rule (no ``=``).
* ``integer_answers``, gold and answer without commas: the worker compares integers
  (``int``, modulo ``modulo``) when the answer is an integer or ``12.0``-like, and calls any
  other decimal ``incorrect``, before Math-Verify; ``how`` is ``integer``.
* Integer answer, otherwise (commas on either side skip the integer rule): ``Integer``
  against ``Integer`` is exact in Math-Verify (equal values compare equal; unequal ones fail
  the numeric and the symbolic check, and the text candidates differ), and no tolerance
  applies to two exact numbers: ``correct`` iff the integers are equal, ``how`` None, under
  every policy.
* Decimal answer, otherwise (only without ``rel_tol`` / ``abs_tol``, where a tolerance could
  add ``+tolerance``): the answer parses to a ``Float``.  Equal in value (``160.0``):
  ``Integer - Float`` simplifies to zero, ``correct``.  At least ``max(10**-float_rounding,
  1e-3)`` apart (``14.67`` for 15): neither rounding to ``float_rounding`` places (which moves
  a value by at most half a unit, and a 12-digit decimal is held to better than ``1e-4``) nor
  simplification makes them equal, ``incorrect``.  Closer than that: the worker decides.

The comma and decimal classes rest on how Math-Verify's parser reads numbers:
tests/test_grading_shortcut.py checks every class against the worker's own code under
several policies, and both paths against each other on real graded outputs.
"""

from __future__ import annotations

import re
from fractions import Fraction

from mathrecipes.grading.settings import GradeSettings

MAX_DIGITS = 12
_INTEGER = re.compile(rf"-?[0-9]{{1,{MAX_DIGITS}}}")
_GROUPED = re.compile(r"-?[1-9][0-9]{0,2}(?:,[0-9]{3}){1,3}")
_DECIMAL = re.compile(rf"-?([0-9]{{1,{MAX_DIGITS}}})\.([0-9]+)")
# Closest a decimal may be to the gold for the parent to call it incorrect (see above).
_MIN_GAP = Fraction(1, 1000)


def _integer(text: str) -> tuple[int, bool] | None:
    """``(value, written with commas)`` of an integer answer, else None."""
    if _INTEGER.fullmatch(text):
        return int(text), False
    if _GROUPED.fullmatch(text):
        return int(text.replace(",", "")), True
    return None


def gold_ok(gold_text: str) -> bool:
    """True when the worker would certainly parse this normalized gold (an integer); False
    means "unknown", not "unparseable"."""
    return _integer(gold_text) is not None


def decide(
    gold_text: str, pred_text: str, settings: GradeSettings
) -> tuple[str, str | None] | None:
    """``(verdict, how)`` exactly as the worker would grade the normalized pair, or None."""
    gold = _integer(gold_text)
    if gold is None:
        return None
    want, gold_commas = gold
    pred = _integer(pred_text)
    decimal = None if pred is not None else _DECIMAL.fullmatch(pred_text)
    if pred is None and decimal is None:
        return None
    if settings.integer_answers and not gold_commas and not (pred and pred[1]):
        if pred is not None:
            got: int | None = pred[0]
        else:  # int("-0") == 0; "12.0" is an integer for this rule
            got = int(decimal.group(1)) * (-1 if pred_text.startswith("-") else 1)
            got = got if not decimal.group(2).strip("0") else None
        if got is None:
            return "incorrect", "integer"
        if settings.modulo:
            want, got = want % settings.modulo, got % settings.modulo
        return ("correct" if want == got else "incorrect"), "integer"
    if pred is not None:
        return ("correct" if want == pred[0] else "incorrect"), None
    if settings.rel_tol is not None or settings.abs_tol is not None:
        return None
    gap = abs(Fraction(pred_text) - want)
    if gap == 0:
        return "correct", None
    if gap >= max(_MIN_GAP, Fraction(1, 10**settings.float_rounding)):
        return "incorrect", None
    return None
