"""The grader: final-answer extraction plus Math-Verify, with a hard per-item timeout.

Pipeline for one (gold, completion) pair
-----------------------------------------
1. :func:`extract_answer` locates the final answer in the *completion only* (never the prompt),
   with last-match semantics over anchors in priority order: a user pattern
   (``GradeSettings.answer_regex``, if set), ``\\boxed{}`` / ``\\boxed 5`` / ``\\fbox{}`` /
   ``\\framebox{}`` (read by :mod:`mathrecipes.latex`, as gold answers are at ingest), then
   GSM8K ``#### X``, then answer phrases ("The answer is: X", "The final answer is X", "Final
   Answer: ...", "Answer: X"; display math ``$$..$$`` / ``\\[..\\]`` after a phrase may span
   lines, inline math may not).  ``<think>...</think>`` is stripped first; an unclosed
   ``<think>`` means no answer.  There is deliberately no "last number anywhere" fallback: a
   completion without an anchored answer is ``no_answer``.  When the gold is multi-valued
   (``2, 3``, ``\\{1,2\\}``, ``1 \\pm \\sqrt 2``) adjacent trailing boxes are joined
   (``\\boxed{2}, \\boxed{3}`` -> ``2, 3``, rule ``boxed_multi``); otherwise the last box wins.
2. In a worker process, gold and extracted answer are normalized (surrounding ``$``/``\\(``
   delimiters, a trailing period, digit groups written with spaces such as ``1 000`` or
   ``1\\,000``, plain unit words after a number such as ``18 dollars``; a gold that is a whole
   solution is reduced to its last ``\\boxed{}``), wrapped as ``$...$`` and parsed by
   ``math_verify.parse`` (LaTeX then plain-expression extraction).
3. Answer-shape rules that Math-Verify lacks, each recorded as a ``+tag`` on the rule: multiple
   choice letters (``+mcq``), base subscripts ``204_5`` (``+base``: digits must match and a
   base, if given, too), decimal commas ``1,22`` against a single-number gold (``+decimal_comma``;
   a comma followed by 3-digit groups stays a thousands separator), mixed numbers
   ``2\\frac{1}{2}`` (``+mixed_number``, read per ``GradeSettings.mixed_numbers``), integer
   answers (``+integer``, ``GradeSettings.integer_answers``).
4. ``math_verify.verify`` on every (gold, prediction) pair of parsed candidates, under the
   policies of :class:`GradeSettings` (percent ``+percent``, numeric tolerance ``+tolerance``,
   ordered/unordered lists ``+ordered``/``+unordered``, column vector vs tuple ``+vector``,
   interval vs inequality); any equal pair means ``correct``.
5. Text answers: if Math-Verify said "not equal" but both sides are plain words after
   unwrapping ``\\text{}``-like commands (``\\text{odd}`` vs a bare ``odd``, which sympy reads
   as ``o*d*d``), they are compared case-insensitively; a match is ``correct`` with rule
   suffix ``+text``.  This step can only turn a Math-Verify "not equal" into ``correct``.

Verdicts (:data:`VERDICTS`) and the ``rule`` column
----------------------------------------------------
``rule`` is the extraction rule (``regex``, ``boxed``, ``boxed_multi``, ``gsm8k``,
``final_answer``, ``answer_is``, ``none``, ``unclosed_think``, ``truncated``) plus the ``+tags``
of the equivalence rules that decided, except where noted below.

* ``correct`` / ``incorrect``: decided as above.  An exception raised inside Math-Verify while
  parsing the prediction or comparing is treated as "not equal": ``incorrect`` with rule
  ``error:<ExceptionType>`` (unless another candidate pair compared equal).
* ``no_answer``: extraction found nothing (rule ``none``), the ``<think>`` block never closed
  (``unclosed_think``), or the generation hit its token limit (``finish_reason == "length"``)
  with no answer after its reasoning (``truncated``; with ``truncated="no_answer"`` every
  length-truncated output).  The prediction is not parsed.  The gold is still checked (cached
  per gold string) so that a problem with an unusable gold answer is ``gold_unparseable`` for
  *all* its samples and the accuracy denominator stays consistent.
* ``gold_unparseable``: Math-Verify gets no expression out of the gold answer (empty gold,
  ``\\frac{``, ...).  Rule ``error:<ExceptionType>`` if parsing raised, ``gold_timeout`` if
  parsing the gold alone ran past the time limit.  Never counted as ``incorrect``; accuracy
  leaves these rows out.
* ``timeout``: parsing + comparing ran past ``GradeSettings.timeout_s`` wall seconds; the
  parent killed the worker and started a new one.  A worker that dies on its own (segfault,
  ``os._exit``, OOM kill) while handling an item gives ``timeout`` with rule ``worker_crash``.

Modules (each imports only those above it)
------------------------------------------
* :mod:`~mathrecipes.grading.settings`: :class:`GradeSettings` (the policies, a pydantic model
  the workflow config uses too) and :func:`grader_version`;
* :mod:`~mathrecipes.grading.extraction`: :func:`extract_answer` (boxes read by
  :mod:`mathrecipes.latex`);
* :mod:`~mathrecipes.grading.normalization`: answer normalization and shape rules,
  :func:`string_match`;
* :mod:`~mathrecipes.grading.shortcut`: the pairs whose worker result is known in advance (an
  integer gold against an integer or a decimal), decided in the parent;
* :mod:`~mathrecipes.grading.engine`: Math-Verify in a worker, its hooks, the worker's entry point;
* :mod:`~mathrecipes.grading.pool`: the worker processes and their deadlines;
* :mod:`~mathrecipes.grading.items`: :func:`grade_items`, :func:`summarize`;
* :mod:`~mathrecipes.grading.audit`: :func:`disagreement_category` and the agreement figures;
* :mod:`~mathrecipes.grading.groups`: :func:`answer_groups`, a problem's samples grouped by the
  grader's equivalence (the ``answer_group`` column, for majority voting);
* :mod:`~mathrecipes.grading.files`: :func:`grade_records`, :func:`grade_file`.

The names below are loaded on first use, so that ``mathrecipes.grading.settings`` (which the
config imports) loads neither the pool nor the engine. Math-Verify itself is imported only in
workers.

Verdicts are deterministic (only ``seconds`` and, for items near the limit, the ``timeout``
verdict depend on the machine); results never depend on how items were scheduled, nor on
whether the parent decided an item (:mod:`~mathrecipes.grading.shortcut`: plain numbers against
an integer gold, the same verdict and rule a worker gives) or a worker graded it.  Workers are
started only for the items the parent cannot decide (none when it decides them all).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mathrecipes.grading.audit import disagreement_category
    from mathrecipes.grading.extraction import extract_answer
    from mathrecipes.grading.files import grade_file, grade_records
    from mathrecipes.grading.groups import answer_groups
    from mathrecipes.grading.items import VERDICTS, GradeItem, Verdict, grade_items, summarize
    from mathrecipes.grading.normalization import string_match
    from mathrecipes.grading.settings import GRADER_NAME, GradeSettings, grader_version

__all__ = [
    "GRADER_NAME",
    "VERDICTS",
    "GradeItem",
    "GradeSettings",
    "Verdict",
    "answer_groups",
    "disagreement_category",
    "extract_answer",
    "grade_file",
    "grade_items",
    "grade_records",
    "grader_version",
    "string_match",
    "summarize",
]

# public name -> the module of this package that defines it
_HOME = {
    "GRADER_NAME": "settings",
    "GradeSettings": "settings",
    "grader_version": "settings",
    "extract_answer": "extraction",
    "string_match": "normalization",
    "VERDICTS": "items",
    "GradeItem": "items",
    "Verdict": "items",
    "grade_items": "items",
    "summarize": "items",
    "disagreement_category": "audit",
    "answer_groups": "groups",
    "grade_file": "files",
    "grade_records": "files",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
