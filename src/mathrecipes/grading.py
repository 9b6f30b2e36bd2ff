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

Policies
--------
The answer-equivalence fields of :class:`GradeSettings` are per-benchmark choices (GRADING.md);
:meth:`GradeSettings.policy_json` is written into every grade row (column ``policy``) so that a
policy change is visible in the outputs.

Audit
-----
With ``audit=True`` (``grade_file(..., disagreements_path=...)``) every item is also graded by
(a) plain Math-Verify, ``verify(parse(gold), parse(completion))`` with Math-Verify's default
extraction on the whole completion (a gold without ``$`` is given as ``$gold$``, the documented
usage: a bare ``\\sqrt{2}`` parses to nothing), in the same workers under the same hard per-item
timeout, and (b) a normalized string match of our extracted answer against the gold; rows where
the three disagree are listed with a category (:func:`disagreement_category`).

Worker processes
----------------
Math-Verify's own ``signal.alarm`` timeouts are disabled in workers (they cannot interrupt
sympy stuck in C code, e.g. the power tower ``5^{5^{5^{5}}}``); the parent's kill is the
guarantee.  Workers are plain ``python -c`` subprocesses talking over
``multiprocessing.connection`` pipes rather than ``multiprocessing`` spawn/forkserver
children: those re-execute the parent's ``__main__`` script in every child, which breaks when
the caller is a Snakemake ``script:`` (top-level code, no ``if __name__ == "__main__"`` guard).
Workers ignore SIGINT (the parent cleans them up), exit on EOF when the parent goes away, and
arm a ``SIGALRM`` backstop (default action: terminate) per item in case the parent died while
they hung.  The parent keeps a few small items queued in each worker's pipe so workers never
wait for it; only the item a worker is running has a deadline, which starts when the worker
finishes the previous one, so every item gets exactly ``timeout_s``.

Verdicts are deterministic (only ``seconds`` and, for items near the limit, the ``timeout``
verdict depend on the machine); results never depend on how items were scheduled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import mathrecipes
from mathrecipes import latex

__all__ = [
    "GRADER_NAME",
    "VERDICTS",
    "GradeItem",
    "GradeSettings",
    "Verdict",
    "disagreement_category",
    "extract_answer",
    "grade_file",
    "grade_items",
    "grade_records",
    "grader_version",
    "string_match",
    "summarize",
]

GRADER_NAME = "mathrecipes"
VERDICTS = ("correct", "incorrect", "no_answer", "timeout", "gold_unparseable")

# How long a worker may take to import Math-Verify and report ready before we give up.
_STARTUP_LIMIT_S = 120.0
# Items queued ahead in a worker's pipe (beyond the one it runs), and the byte cap that keeps
# the parent's sends from ever blocking on a full pipe (Linux pipes hold 64 KiB).
_PIPELINE_DEPTH = 4
_PIPELINE_BYTES = 32_768
# Extra items with the same gold a worker may take beyond the depth (the gold is parsed once).
_GROUP_EXTRA = 8


# --------------------------------------------------------------------------------------------
# Versioning and settings
# --------------------------------------------------------------------------------------------


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


@functools.cache
def grader_version() -> str:
    """``<mathrecipes>+math-verify-<v>+latex2sympy2-<v>+sympy-<v>+grading-<sha8>``.

    The parser (latex2sympy2_extended) and sympy decide verdicts as much as math-verify does, so
    they are part of the version; ``sha8`` hashes this module's source, so any edit changes it.
    """
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:8]
    return (
        f"{mathrecipes.__version__}"
        f"+math-verify-{_dist_version('math-verify')}"
        f"+latex2sympy2-{_dist_version('latex2sympy2_extended')}"
        f"+sympy-{_dist_version('sympy')}"
        f"+grading-{digest}"
    )


_CHOICES = {
    "percent": ("both", "fraction", "number", "mathverify"),
    "mixed_numbers": ("mixed", "product"),
    "truncated": ("extract", "no_answer"),
}
# Fields that say how to run, not how to judge: left out of the recorded policy (a timeout
# shows as the ``timeout`` verdict itself).
_EXECUTION_FIELDS = frozenset({"timeout_s", "workers"})


@dataclass(frozen=True)
class GradeSettings:
    """Grading settings; also the ``grading:`` block of the workflow config.

    Execution: ``timeout_s`` (hard per-item wall limit: parse gold + parse prediction + verify;
    the audit's plain Math-Verify pass gets its own), ``workers`` (worker processes).

    Answer-equivalence policies (per benchmark, see GRADING.md; all recorded with every verdict):

    * ``float_rounding`` / ``numeric_precision``: Math-Verify's float comparison (decimal places).
    * ``rel_tol`` / ``abs_tol``: numeric tolerance for comparisons that involve a decimal
      (``0.6054`` vs ``\\cos^{10}(\\pi/10)``), in place of ``float_rounding``; ``None`` = use
      ``float_rounding``.  Exact values are compared exactly (``10000`` vs ``10001`` never
      "agree within 1e-4"), and nothing is ever rounded to an integer.
    * ``integer_answers``: the benchmark's answers are integers (AIME): an integer-literal gold
      is compared as an integer (``016`` = ``16``); a non-integer decimal is wrong.
      ``modulo`` (needs ``integer_answers``): integers are compared modulo this number.
    * ``percent``: ``"both"`` (default): ``28\\%`` equals ``28`` and ``0.28`` (one side only may
      carry the sign; ``2800`` stays wrong); ``"fraction"``: only ``0.28``; ``"number"``: only
      ``28`` (the sign is dropped); ``"mathverify"``: Math-Verify's own rule (integer
      percentages equal the bare number, decimal ones only the fraction).
    * ``ordered_tuples``: ``None`` (default): decided by the gold's form, as Math-Verify does:
      ``(6,31,-1)`` is ordered, a bare list ``-2, 1`` and a set ``\\{1,2\\}`` are unordered;
      ``True``: bare comma lists are ordered too; ``False``: tuples are unordered too.
    * ``strip_units``: drop unit words and ``\\text{ cm}`` after numbers (``18 dollars`` = 18);
      ``False`` keeps them (physics: ``0.64N`` is not ``0.64``).
    * ``interval_inequality_asymmetry``: ``True`` (Math-Verify's default): a gold inequality
      accepts an interval prediction but a gold interval does not accept an inequality (stops
      models echoing the question); ``False``: both directions.
    * ``mixed_numbers``: ``2\\frac{1}{2}`` read as ``"mixed"`` (2.5, default) or ``"product"``
      (1); either way the row's rule carries ``+mixed_number`` (an ambiguous notation).
    * ``decimal_comma``: ``1,22`` / ``1000,99`` is a decimal comma when the gold is a single
      number and the digit groups are not thousands groups (``1,220`` stays 1220).
    * ``multiple_choice``: a gold that is a choice letter (``A``, ``(C)``, ``\\text{(B)}``) is
      compared by letter with a prediction that starts with one (``(A) 5``, ``A.``).
    * ``answer_regex``: a pattern whose last match (group 1, or the whole match) is the answer,
      tried before the built-in anchors (e.g. ``(?m)^A:\\s*(.+)$`` for "A: 18" solutions).
    * ``truncated``: for a generation that hit its token limit (``finish_reason == "length"``):
      ``"extract"`` grades an anchored answer if there is one (no answer: rule ``truncated``);
      ``"no_answer"`` makes every truncated generation ``no_answer``.
    """

    timeout_s: float = 5.0
    workers: int = 2
    float_rounding: int = 6
    numeric_precision: int = 15
    rel_tol: float | None = None
    abs_tol: float | None = None
    integer_answers: bool = False
    modulo: int | None = None
    percent: str = "both"
    ordered_tuples: bool | None = None
    strip_units: bool = True
    interval_inequality_asymmetry: bool = True
    mixed_numbers: str = "mixed"
    decimal_comma: bool = True
    multiple_choice: bool = True
    answer_regex: str | None = None
    truncated: str = "extract"

    def __post_init__(self) -> None:
        def coerce(name: str, kind: type, ok: Callable[[Any], bool], need: str) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"GradeSettings.{name} must be a number, got {value!r}")
            if kind is int and value != int(value):
                raise ValueError(f"GradeSettings.{name} must be an integer, got {value!r}")
            value = kind(value)
            if not ok(value):
                raise ValueError(f"GradeSettings.{name} must be {need}, got {value!r}")
            object.__setattr__(self, name, value)

        coerce("timeout_s", float, lambda v: v > 0 and math.isfinite(v), "> 0")
        coerce("workers", int, lambda v: v >= 1, ">= 1")
        coerce("float_rounding", int, lambda v: v >= 0, ">= 0")
        coerce("numeric_precision", int, lambda v: v >= 1, ">= 1")
        for name in ("rel_tol", "abs_tol"):
            if getattr(self, name) is not None:
                coerce(name, float, lambda v: v >= 0 and math.isfinite(v), ">= 0 or None")
        if self.modulo is not None:
            coerce("modulo", int, lambda v: v >= 2, ">= 2 or None")
            if not self.integer_answers:
                raise ValueError("GradeSettings.modulo needs integer_answers=True")
        for name in ("integer_answers", "strip_units", "interval_inequality_asymmetry"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"GradeSettings.{name} must be true or false")
        for name in ("decimal_comma", "multiple_choice"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"GradeSettings.{name} must be true or false")
        if self.ordered_tuples is not None and not isinstance(self.ordered_tuples, bool):
            raise ValueError("GradeSettings.ordered_tuples must be true, false or null")
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"GradeSettings.{name} must be one of {', '.join(allowed)}, "
                    f"got {getattr(self, name)!r}"
                )
        if self.answer_regex is not None:
            if not isinstance(self.answer_regex, str):
                raise ValueError("GradeSettings.answer_regex must be a string or None")
            try:
                re.compile(self.answer_regex)
            except re.error as exc:
                raise ValueError(f"GradeSettings.answer_regex does not compile: {exc}") from exc

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GradeSettings:
        """Build from a mapping; ``None`` values mean "default", unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise ValueError(
                f"unknown grading setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**{k: v for k, v in d.items() if v is not None})

    def policy(self) -> dict[str, Any]:
        """The answer-equivalence settings (all but ``timeout_s`` and ``workers``)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in _EXECUTION_FIELDS
        }

    def policy_json(self) -> str:
        """:meth:`policy` as compact JSON with sorted keys (the ``policy`` column)."""
        return json.dumps(self.policy(), sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------------------------
# Answer extraction (parent side, pure regex / string work)
# --------------------------------------------------------------------------------------------

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)
_GSM8K = re.compile(r"####[ \t]*([^\n]*)")
_PHRASE = re.compile(
    r"(?P<final>\bfinal\s+answer\s*(?:is\s*:?|:))"
    r"|(?P<is>\b(?:the\s+)?answer\s+is\s*:?)"
    r"|(?P<colon>\banswer\s*:)",
    re.IGNORECASE,
)
_HOPE = re.compile(r"\s*I hope it is correct.*$", re.IGNORECASE | re.DOTALL)
_SENTENCE_END = re.compile(r"\.(?=\s|$)")
# Between two boxes that belong to one multi-valued answer: short, or a list separator.
_BOX_SEPARATOR = re.compile(r"\b(?:and|or)\b|[,;]")


def extract_answer(
    completion: str,
    *,
    finish_reason: str | None = None,
    answer_regex: str | None = None,
    truncated: str = "extract",
    multi: bool = False,
) -> tuple[str | None, str]:
    """Return ``(answer_text, rule)`` for a completion; ``(None, "none")`` if no anchor.

    Rules, in priority order (within a rule the *last* match wins): ``regex`` (``answer_regex``,
    if given: group 1 of its last match, or the whole match), ``boxed`` (``\\boxed{}`` with
    brace matching, ``\\boxed 5``, ``\\fbox{}``, ``\\framebox{}``; see :mod:`mathrecipes.latex`;
    empty boxes are skipped), ``gsm8k``
    (``#### X``), ``final_answer`` / ``answer_is`` (answer phrases; the one that appears last
    wins).  ``<think>...</think>`` blocks are removed first, as is everything before an
    orphan ``</think>`` (chat templates that put ``<think>`` in the prompt); a ``<think>`` that
    is never closed gives ``(None, "unclosed_think")``.  With ``finish_reason == "length"`` a
    completion without an answer gives ``(None, "truncated")``, and with
    ``truncated="no_answer"`` every such completion does.  With ``multi=True`` (a multi-valued
    gold) adjacent trailing boxes with different contents are joined with ", " (rule
    ``boxed_multi``).  The answer has surrounding ``$...$`` (and ``\\(..\\)``, ``\\[..\\]``) and
    a trailing period removed.
    """
    text = completion or ""
    if "<think>" in text or "</think>" in text:
        text = _THINK_BLOCK.sub(" ", text)
        if "</think>" in text:
            text = text.rsplit("</think>", 1)[1]
        if "<think>" in text:
            return None, "unclosed_think"
    cut_off = finish_reason == "length"
    if cut_off and truncated == "no_answer":
        return None, "truncated"

    if answer_regex:
        answer = _last_regex(text, answer_regex)
        if answer is not None:
            return answer, "regex"
    if multi:
        boxes = _trailing_boxes(text)
        if len(boxes) > 1:
            return ", ".join(boxes), "boxed_multi"
    for finder, rule in ((_last_boxed, "boxed"), (_last_gsm8k, "gsm8k")):
        answer = finder(text)
        if answer is not None:
            return answer, rule
    found = _last_phrase(text)
    if found is not None:
        return found
    return None, "truncated" if cut_off else "none"


@functools.lru_cache(maxsize=16)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _last_regex(text: str, pattern: str) -> str | None:
    rx = _compiled(pattern)
    for m in reversed(list(rx.finditer(text))):
        raw = m.group(1) if rx.groups else m.group(0)
        answer = _clean_answer(_first_clause(raw or ""))
        if answer:
            return answer
    return None


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, content)`` of every box whose cleaned argument is not empty, in text order."""
    out = []
    for start, end, argument in latex.boxes(text):
        content = _clean_answer(argument)
        if content:
            out.append((start, end, content))
    return out


def _last_boxed(text: str) -> str | None:
    if "box" not in text:
        return None
    boxes = _boxes(text)
    return max(boxes, key=lambda b: b[0])[2] if boxes else None


def _trailing_boxes(text: str) -> list[str]:
    """Distinct contents of the last run of boxes that form one answer (``\\boxed{2}, \\boxed{3}``).

    Boxes belong together when the text between them is short (under 10 characters) or under
    70 characters with a list separator; identical neighbours are kept once (Math-Verify #44).
    """
    if "box" not in text:
        return []
    boxes = [b for b in _boxes(text)]
    # Nested boxes (\boxed{\boxed{5}}) count once: keep the outermost.
    flat: list[tuple[int, int, str]] = []
    for b in boxes:
        if flat and b[0] < flat[-1][1]:
            continue
        flat.append(b)
    if not flat:
        return []
    run = [flat[-1]]
    for b in reversed(flat[:-1]):
        between = text[b[1] : run[0][0]].replace("$", "").strip()
        if len(between) < 10 or (len(between) < 70 and _BOX_SEPARATOR.search(between)):
            run.insert(0, b)
        else:
            break
    contents: list[str] = []
    for _, _, c in run:
        if not contents or contents[-1] != c:
            contents.append(c)
    return contents


def _last_gsm8k(text: str) -> str | None:
    if "####" not in text:
        return None
    for m in reversed(list(_GSM8K.finditer(text))):
        answer = _clean_answer(_first_clause(m.group(1)))
        if answer:
            return answer
    return None


def _last_phrase(text: str) -> tuple[str, str] | None:
    for m in reversed(list(_PHRASE.finditer(text))):
        rest = text[m.end() :]
        rule = "final_answer" if m.group("final") else "answer_is"
        # Display math may span lines ("The answer is $$\n9\n$$"); inline math may not.
        head = rest.lstrip(" \t\n*")
        for open_, close in (("$$", "$$"), ("\\[", "\\]")):
            if head.startswith(open_):
                end = head.find(close, len(open_))
                if end != -1:
                    answer = _clean_answer(head[: end + len(close)])
                    if answer:
                        return answer, rule
        line, _, after = rest.partition("\n")
        if not line.strip():  # "Final Answer:\n$$42$$"
            line = next((ln for ln in after.split("\n") if ln.strip()), "")
        answer = _clean_answer(_first_clause(line))
        if answer:
            return answer, rule
    return None


def _first_clause(s: str) -> str:
    """The answer at the start of a phrase tail: leading math, else up to the sentence end."""
    s = s.strip().strip("*").strip()
    for open_, close in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(open_):
            end = _find_unescaped(s, close, len(open_))
            if end != -1:
                return s[: end + len(close)]
            break
    s = _HOPE.sub("", s)
    m = _SENTENCE_END.search(s)
    return (s[: m.start()] if m else s).strip().strip("*")


def _find_unescaped(s: str, sub: str, start: int) -> int:
    i = s.find(sub, start)
    while i > 0 and s[i - 1] == "\\" and sub == "$":
        i = s.find(sub, i + 1)
    return i


def _clean_answer(s: str) -> str:
    s = latex.strip_delimiters(s)
    # A lone leading "$" is a currency sign ("#### $1,234"), not a math delimiter.
    if s.startswith("$") and s.count("$") == 1:
        s = s[1:].strip()
    while s.endswith("."):
        s = s[:-1].rstrip()
    return latex.strip_delimiters(s)


def _gold_answer(gold: str) -> str:
    """The gold answer proper: the last ``\\boxed{}`` when the gold is a whole solution."""
    boxed = _last_boxed(gold)
    return gold if boxed is None else boxed


def _is_multi_valued(gold: str) -> bool:
    """Whether the gold lists several values (``2, 3``; ``\\{1,2\\}``; ``1\\pm\\sqrt2``)."""
    g = _clean_answer(_gold_answer(gold or ""))
    if not g or _GROUPED_NUMBER.fullmatch(g) or _COMMA_GROUPED.fullmatch(g):
        return False
    if "\\pm" in g or "\\mp" in g:
        return True
    if re.search(r"\\text\{\s*(?:and|or)\s*\}|\s(?:and|or)\s", g):
        return True
    if g.startswith("\\{") and "," in g:
        return True
    return len(latex.split_top_level(g)) > 1


# --------------------------------------------------------------------------------------------
# Normalization and answer-shape rules (pure Python; used by workers and the parent)
# --------------------------------------------------------------------------------------------

_GROUP_SEP = r"(?:\\[,;:! ]|~|[ \t])"
_GROUPED_NUMBER = re.compile(rf"[-+]?\d{{1,3}}(?:{_GROUP_SEP}\d{{3}})+(?:\.\d+)?")
_COMMA_GROUPED = re.compile(r"[-+]?[1-9]\d{0,2}(?:(?:,|\{,\})\d{3})+(?:\.\d+)?")
_NUMBER_WITH_WORDS = re.compile(
    r"(?P<num>[-+]?(?:\\?\$)?\d[\d,]*(?:\.\d+)?)\s+(?P<words>[A-Za-z]{2,}(?:\s+[A-Za-z]{2,})*)"
)
# Words after a number that are mathematics (or %), not units ("3 pi", "5 and 7").
_NOT_UNITS = frozenset(
    {"pi", "sqrt", "root", "and", "or", "to", "over", "times", "plus", "minus", "mod", "choose"}
    | {"divided", "by", "of", "in", "is", "ln", "log", "sin", "cos", "tan"}
    | {"percent", "pct", "percentage"}  # left to Math-Verify, which reads them as %
)
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textit|textrm|textnormal|mathrm|mathbf|mbox)\{(.*)\}")
_PLAIN_WORDS = re.compile(r"[A-Za-z]+(?:[ \-'][A-Za-z]+)*")
_INTEGER = re.compile(r"[+-]?\d+")
_PLAIN_INTEGER = re.compile(r"-?\d+")
_INTEGER_LIKE = re.compile(r"[+-]?\d+(?:\.0*)?")
_DECIMAL = re.compile(r"[+-]?\d*\.\d+")
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")
_MIXED = re.compile(r"(-?)(\d+)\s*\\[dtc]?frac\s*(?:\{(\d+)\}\s*\{(\d+)\}|(\d)(\d))")
_BASE = re.compile(r"(\d[0-9A-Za-z]*)_\{?\s*\(?(\d+)\)?\s*\}?")
_CHOICE_GOLD = re.compile(r"\(?([A-J])\)?")
_CHOICE_PRED = re.compile(r"\(?([A-J])\)?(?=$|[\s.:,)\]])")


# LaTeX thousands idioms inside an expression (\frac{12}{5,\!525}, 14{,}916): unambiguous.
_LATEX_THOUSANDS = re.compile(r"(?<=\d)(?:,\\!|\{,\})(?=\d{3}(?!\d))")
# \frac \pi4, \frac ab: brace-less arguments that Math-Verify's own fix garbles.
_BARE_FRAC = re.compile(r"\\([dtc]?frac)\s*(\\[A-Za-z]+|[A-Za-z0-9])\s*(\\[A-Za-z]+|[A-Za-z0-9])")


def _normalize(answer: str, strip_units: bool = True) -> str:
    s = _clean_answer(" ".join(answer.split()))
    if _GROUPED_NUMBER.fullmatch(s):
        s = re.sub(_GROUP_SEP, "", s)
    if "," in s:
        s = _LATEX_THOUSANDS.sub("", s)
    if "frac" in s:
        s = _BARE_FRAC.sub(r"\\\1{\2}{\3}", s)
    if strip_units:
        m = _NUMBER_WITH_WORDS.fullmatch(s)
        if m and not (set(m.group("words").lower().split()) & _NOT_UNITS):
            s = m.group("num")
    return s


def _latex_for_parse(s: str) -> str:
    # Bare answers are wrapped so LatexExtractionConfig sees one math span; text that still
    # holds its own unescaped "$" is handed over as is.
    return s if re.search(r"(?<!\\)\$", s) else f"${s}$"


def _unwrap_text(s: str) -> str:
    s = s.strip()
    while (m := _TEXT_WRAPPER.fullmatch(s)) is not None:
        s = m.group(1).strip()
    return s


def _text_form(s: str) -> str | None:
    """Case-folded words if ``s`` is plain text (``odd``, ``\\text{Evelyn}``), else None."""
    s = _unwrap_text(s)
    if len(s) >= 2 and _PLAIN_WORDS.fullmatch(s):
        return " ".join(s.casefold().split())
    return None


def _choice_letter(s: str, *, gold: bool) -> str | None:
    """The option letter of a multiple-choice answer: a gold is exactly ``A``/``(A)``; a
    prediction starts with one (``(A) 5``, ``A.``, ``\\text{(A)}``)."""
    s = _unwrap_text(s).rstrip(".")
    m = _CHOICE_GOLD.fullmatch(s) if gold else _CHOICE_PRED.match(s)
    return m.group(1) if m else None


def _base_number(s: str) -> tuple[str, int] | None:
    """``("204", 5)`` for ``204_5`` / ``204_{5}`` / ``204_{(5)}`` (digits valid in the base)."""
    m = _BASE.fullmatch(s.strip())
    if not m:
        return None
    digits, base = m.group(1).lower(), int(m.group(2))
    if not 2 <= base <= 36:
        return None
    try:
        int(digits, base)
    except ValueError:
        return None
    return digits.lstrip("0") or "0", base


def _mixed_number(s: str, mode: str) -> str | None:
    """``2\\frac{1}{2}`` rewritten per ``mode`` (``mixed``: 2 + 1/2, ``product``: 2 * 1/2)."""
    m = _MIXED.fullmatch(s.strip())
    if not m:
        return None
    sign, whole = m.group(1), m.group(2)
    num, den = (m.group(3), m.group(4)) if m.group(3) else (m.group(5), m.group(6))
    if mode == "product":
        return f"{sign}{whole}\\cdot\\frac{{{num}}}{{{den}}}"
    return f"{sign}({whole}+\\frac{{{num}}}{{{den}}})"


_SUBSCRIPT = re.compile(r"_\{((?:[^{}]|\{[^{}]*\})*)\}")
_SUBSCRIPT_TEXT = re.compile(r"\\(?:mathrm|text|textrm|rm|mathit|operatorname)\s*\{([^{}]*)\}")
_SUBSCRIPT_CMD = re.compile(r"\\([A-Za-z]+)\s*")
# "a_{n} =", "I_{\max} =", "\Phi(x,y) =", "v_0' =": a name, then the value.
_NAME_EQ = re.compile(
    r"\s*(?:[A-Za-z]|\\[A-Za-z]+)\s*(?:_\{[^{}=]*\}|_[A-Za-z0-9])?\s*(?:\^\{?\\prime\}?|')?"
    r"\s*(?:\([^()=]*\))?\s*=(?!=)(?P<rhs>[^=<>]+)"
)


def _plain_subscripts(s: str) -> str:
    """``I_{\\max}`` -> ``I_{max}``, ``k_{\\mathrm{B}}`` -> ``k_{B}``."""

    def inner(m: re.Match[str]) -> str:
        t = _SUBSCRIPT_TEXT.sub(r"\1", m.group(1))
        return "_{" + _SUBSCRIPT_CMD.sub(r"\1", t) + "}"

    return _SUBSCRIPT.sub(inner, s)


def _named_rhs(g: str) -> str | None:
    """The value of a gold written as ``name = value`` (one ``=``), else None."""
    m = _NAME_EQ.fullmatch(g)
    return m.group("rhs").strip() if m else None


def _single_number(g: str) -> bool:
    return "," not in g and not g.startswith(("(", "[", "\\{", "\\left")) and "\\pm" not in g


# String match (audit): a deliberately simple normalization.
_SM_TEXT = re.compile(r"\\(?:text|textbf|textrm|textnormal|mathrm|mbox)\s*\{([^{}]*)\}")
_SM_THOUSANDS = re.compile(r"(?<=\d)(?:,|\{,\})(?=\d{3}(?!\d))")


def _sm_normalize(s: str) -> str:
    s = _SM_TEXT.sub(r"\1", s)
    s = s.replace("\\$", "").replace("$", "")
    s = re.sub(r"\s+", "", s)
    s = s.rstrip(".")
    s = _SM_THOUSANDS.sub("", s)
    return s.casefold()


def string_match(extracted: str | None, gold: str) -> str:
    """``correct``/``incorrect``/``no_answer``: extracted answer vs gold after stripping ``$``,
    spaces, ``\\text{}``, a trailing period and thousands commas, case-insensitively."""
    if extracted is None:
        return "no_answer"
    a, b = _sm_normalize(extracted), _sm_normalize(_gold_answer(gold or ""))
    return "correct" if a and a == b else "incorrect"


# --------------------------------------------------------------------------------------------
# Worker side
# --------------------------------------------------------------------------------------------

# The numeric-tolerance hook reads this (set per comparison by _Engine): (rel_tol, abs_tol)
# or None for Math-Verify's own float_rounding; "fired" records that the tolerance turned a
# Math-Verify "not equal" into "equal".
_TOLERANCE: dict[str, Any] = {"tol": None, "fired": False, "exact_check": False}


def _install_hooks() -> None:
    """Patch two Math-Verify module globals (both are looked up at call time):

    * ``parser.parse_latex_cached``: a plain integer (``42``, ``-7``) becomes
      ``sympy.Integer`` without the ANTLR parser; the result is identical (tested), it only
      saves time, for our grader and the audit's plain Math-Verify alike;
    * ``grader.sympy_numeric_eq``: through :func:`_tolerant_eq` when a tolerance is active, and
      re-checked by :func:`_exact_close` for our grader.  ``sympy_expr_eq`` calls it for
      nested comparisons too (interval ends, tuple and matrix entries).
    """
    import math_verify.grader as mvg
    import math_verify.parser as mvp

    original = mvg.sympy_numeric_eq
    if getattr(original, "_mathrecipes_hook", False):
        return
    parse_latex = mvp.parse_latex_cached

    def parse_latex_cached(latex: str) -> Any:
        if _PLAIN_INTEGER.fullmatch(latex):
            from sympy import Integer

            return Integer(int(latex))
        return parse_latex(latex)

    parse_latex_cached.__wrapped__ = parse_latex  # type: ignore[attr-defined]
    mvp.parse_latex_cached = parse_latex_cached

    def numeric_eq(a: Any, b: Any, float_rounding: int, numeric_precision: int) -> bool:
        tol = _TOLERANCE["tol"]
        if tol is not None:
            verdict = _tolerant_eq(a, b, tol[0], tol[1], numeric_precision)
            if verdict is not None:
                if verdict and not original(a, b, float_rounding, numeric_precision):
                    _TOLERANCE["fired"] = True
                return verdict
        equal = original(a, b, float_rounding, numeric_precision)
        if equal and _TOLERANCE["exact_check"] and not _exact_close(a, b):
            return False
        return equal

    numeric_eq._mathrecipes_hook = True  # type: ignore[attr-defined]
    mvg.sympy_numeric_eq = numeric_eq


def _tolerant_eq(a: Any, b: Any, rel: float | None, abs_: float | None, prec: int) -> bool | None:
    """Tolerance comparison of two numbers of which at least one is a decimal; None when it
    does not apply (symbols, matrices, two exact values)."""
    from sympy import Basic, Float

    if not (isinstance(a, Basic) and isinstance(b, Basic)):
        return None
    try:
        a, b = a.doit(), b.doit()
        if a.free_symbols or b.free_symbols or not (a.is_number and b.is_number):
            return None
        if not (a.has(Float) or b.has(Float)):
            return None
        x, y = complex(a.evalf(prec)), complex(b.evalf(prec))
    except Exception:
        return None
    if not (math.isfinite(abs(x)) and math.isfinite(abs(y))):
        return None
    limit = max((rel or 0.0) * max(abs(x), abs(y)), abs_ or 0.0)
    # A hair of slack so that 0.003 vs 0.002 at abs_tol 1e-3 is not lost to binary floats.
    return abs(x - y) <= limit * (1 + 1e-9) + 1e-300


def _exact_close(a: Any, b: Any) -> bool:
    """False for two exact numbers that Math-Verify's absolute, chopped comparison calls equal
    although they differ relatively (``1/2004!`` vs ``2/2004!``, both "0" to 15 places)."""
    from sympy import Basic, Float

    try:
        if not (isinstance(a, Basic) and isinstance(b, Basic)):
            return True
        if a.free_symbols or b.free_symbols or a.has(Float) or b.has(Float):
            return True
        x, y = a.evalf(30), b.evalf(30)
        if not (x.is_number and y.is_number):
            return True
        # sympy numbers, not Python floats: 1/2004! underflows a float to 0.
        diff, scale = abs(x - y).evalf(30), max(abs(x).evalf(30), abs(y).evalf(30))
        if not (diff.is_finite and scale.is_finite) or scale == 0:
            return True
        return bool(diff <= scale * Float("1e-12"))
    except Exception:
        return True


class _Engine:
    """Math-Verify wrapped with caches and the grading policies; lives in a worker process."""

    _GOLD_CACHE_MAX = 20_000

    def __init__(self, settings: GradeSettings) -> None:
        import logging

        from latex2sympy2_extended.latex2sympy2 import NormalizationConfig
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

        for name in ("math_verify", "latex2sympy2_extended"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        _install_hooks()
        self.s = settings
        self._parse_fn = parse
        self._verify_fn = verify
        latex = LatexExtractionConfig()
        if not settings.strip_units:
            latex = LatexExtractionConfig(
                normalization_config=dataclasses.replace(latex.normalization_config, units=False)
            )
        assert isinstance(latex.normalization_config, NormalizationConfig)
        self._config = (latex, ExprExtractionConfig())
        tol = (settings.rel_tol, settings.abs_tol)
        self._tol = None if tol == (None, None) else tol
        self.reset()

    def reset(self) -> None:
        # Keyed by the *raw* gold string: a hit means an earlier item of this worker already
        # reported this gold's status to the parent (see _Pool.run's timeout attribution).
        self._gold: dict[str, tuple[bool, str | None]] = {}
        self._parse_cached = functools.lru_cache(maxsize=8192)(self._parse)
        self._judge_cached = functools.lru_cache(maxsize=16384)(self._judge)

    # -- our grader ----------------------------------------------------------------------

    def _parse(self, text: str) -> tuple[Any, ...]:
        if _PLAIN_INTEGER.fullmatch(text):
            # What Math-Verify returns for "$42$" (checked in the tests), without the parser.
            from sympy import Integer

            return (Integer(int(text)), text)
        error: Exception | None = None
        try:
            parsed: tuple[Any, ...] = self._parse_once(text)
        except Exception as exc:
            parsed, error = (), exc
        if all(isinstance(p, str) for p in parsed):
            # latex2sympy rejects commands in subscripts (I_{\max}, R_{\odot}): retry with
            # them spelled as plain letters; both sides of a comparison get the same rewrite.
            plain = _plain_subscripts(text)
            if plain != text:
                with contextlib.suppress(Exception):
                    retried = self._parse_once(plain)
                    if any(not isinstance(p, str) for p in retried):
                        return retried
        if error is not None:
            raise error
        return parsed

    def _parse_once(self, text: str) -> tuple[Any, ...]:
        return tuple(
            self._parse_fn(
                _latex_for_parse(text),
                list(self._config),
                fallback_mode="first_match",
                parsing_timeout=None,
                raise_on_error=True,
            )
        )

    def gold_text(self, gold: str) -> str:
        return _normalize(_gold_answer(gold), self.s.strip_units)

    def _gold_status(self, gold: str) -> tuple[bool, str | None, bool]:
        """``(ok, rule_override, was_cached)``; parsing leaves the result in the parse cache."""
        hit = self._gold.get(gold)
        if hit is not None:
            return (*hit, True)
        entry: tuple[bool, str | None]
        text = self.gold_text(gold)
        if not text:
            entry = (False, None)
        else:
            try:
                parsed = self._parse_cached(text)
            except Exception as exc:
                entry = (False, f"error:{type(exc).__name__}")
            else:
                entry = (any(not isinstance(p, str) for p in parsed), None)
        if len(self._gold) >= self._GOLD_CACHE_MAX:
            self._gold.clear()
        self._gold[gold] = entry
        return (*entry, False)

    def _judge(self, gold_text: str, pred_text: str) -> tuple[str, str | None]:
        """``(verdict, how)`` for a parseable gold; ``how`` is None, ``"tag+tag"`` or
        ``error:*``."""
        s = self.s
        g, p = gold_text, pred_text
        tags: list[str] = []
        if s.multiple_choice:
            letter = _choice_letter(g, gold=True)
            if letter is not None:
                answer = _choice_letter(p, gold=False)
                if answer is not None:
                    return ("correct" if answer == letter else "incorrect"), "mcq"
        gold_base = _base_number(g)
        if gold_base is not None:
            pred_base = _base_number(p)
            if pred_base is None:  # digits without the subscript: the base is the gold's
                bare = p.strip().lower()
                pred_base = (bare.lstrip("0") or "0", gold_base[1]) if bare.isalnum() else None
            same = pred_base is not None and pred_base == gold_base
            return ("correct" if same else "incorrect"), "base"
        pred_base = _base_number(p)
        if pred_base is not None and pred_base[1] != 10:
            p = str(int(pred_base[0], pred_base[1]))
            tags.append("base")
        if (
            s.decimal_comma
            and _DECIMAL_COMMA.fullmatch(p)
            and not _COMMA_GROUPED.fullmatch(p)
            and _single_number(g)
        ):
            p = p.replace(",", ".")
            tags.append("decimal_comma")
        mixed_g, mixed_p = _mixed_number(g, s.mixed_numbers), _mixed_number(p, s.mixed_numbers)
        if mixed_g is not None or mixed_p is not None:
            g, p = mixed_g or g, mixed_p or p
            tags.append("mixed_number")
        if s.integer_answers and _INTEGER.fullmatch(g):
            if _INTEGER_LIKE.fullmatch(p):
                want, got = int(g), int(p.split(".")[0])
                if s.modulo:
                    want, got = want % s.modulo, got % s.modulo
                return ("correct" if want == got else "incorrect"), "+".join([*tags, "integer"])
            if _DECIMAL.fullmatch(p):  # 16.5 for an integer answer; never rounded
                return "incorrect", "+".join([*tags, "integer"])
        verdict, how = self._math_verify(g, p)
        if verdict != "correct":
            gold_words = _text_form(gold_text)
            if gold_words is not None and gold_words == _text_form(pred_text):
                return "correct", "text"
            rhs = _named_rhs(g)
            if rhs is not None and "=" not in p:
                # "I_{\max} = q/\sqrt{2LC}" vs "q/\sqrt{2LC}": Math-Verify's assignment rule,
                # for names it does not see as symbols (a subscripted I is read as i).
                verdict2, how2 = self._math_verify(rhs, p)
                if verdict2 == "correct":
                    verdict, how = verdict2, how2
        if how is not None and how.startswith("error:"):
            return verdict, how
        tags += how.split("+") if how else []
        return verdict, "+".join(tags) or None

    def _math_verify(self, gold_text: str, pred_text: str) -> tuple[str, str | None]:
        try:
            gold = self._parse_cached(gold_text)
            pred = self._parse_cached(pred_text)
        except Exception as exc:
            return "incorrect", f"error:{type(exc).__name__}"
        error = None
        s = self.s
        _TOLERANCE["tol"] = self._tol
        _TOLERANCE["exact_check"] = True
        try:
            for g in gold:
                for p in pred:
                    for gv, pv, tags in self._variants(gold_text, g, p):
                        _TOLERANCE["fired"] = False
                        try:
                            equal = self._verify_fn(
                                gv,
                                pv,
                                float_rounding=s.float_rounding,
                                numeric_precision=s.numeric_precision,
                                allow_set_relation_comp=not s.interval_inequality_asymmetry,
                                timeout_seconds=None,
                                raise_on_error=True,
                            )
                        except Exception as exc:
                            error = error or f"error:{type(exc).__name__}"
                            continue
                        if equal:
                            if _TOLERANCE["fired"]:
                                tags = (*tags, "tolerance")
                            return "correct", "+".join(tags) or None
        finally:
            _TOLERANCE["tol"] = None
            _TOLERANCE["exact_check"] = False
        return "incorrect", error

    def _variants(self, gold_text: str, g: Any, p: Any) -> Iterable[tuple[Any, Any, tuple]]:
        """The (gold, prediction) pairs to compare for one pair of parsed candidates, with the
        tags of the policies that produced them."""
        if isinstance(g, str) or isinstance(p, str):
            yield g, p, ()
            return
        g, p, shape_tags = _shape(g, p, gold_text, self.s.ordered_tuples)
        mode = self.s.percent
        if mode == "mathverify":
            yield g, p, shape_tags
            return
        from math_verify.grader import get_pct_val

        gv, pv = get_pct_val(g), get_pct_val(p)
        if (gv is None) == (pv is None):  # no percent, or on both sides: Math-Verify's rule
            yield g, p, shape_tags
            return
        if mode == "both":  # Math-Verify's own percent rule first (no tag), then ours
            yield g, p, shape_tags
        value = gv if gv is not None else pv
        for alt in _percent_forms(value, mode):
            pair = (alt, p) if gv is not None else (g, alt)
            yield (*pair, (*shape_tags, "percent"))

    def handle(
        self, gold: str, answer: str | None, on_gold_parsed: Callable[[], None]
    ) -> tuple[str, str | None, bool]:
        """``(verdict, how, gold_ok)`` for one item; ``on_gold_parsed`` fires after a gold
        that was not cached has been parsed (so the parent can tell gold from prediction
        timeouts)."""
        ok, how, cached = self._gold_status(gold)
        if not cached:
            on_gold_parsed()
        if not ok:
            return "gold_unparseable", how, False
        if answer is None:
            return "no_answer", None, True
        verdict, how = self._judge_cached(
            self.gold_text(gold), _normalize(answer, self.s.strip_units)
        )
        return verdict, how, True

    # -- plain Math-Verify (the audit) ---------------------------------------------------

    def plain(self, gold: str, completion: str) -> tuple[str, str | None]:
        """``verify(parse(gold), parse(completion))`` with Math-Verify's defaults."""
        _TOLERANCE["tol"] = None
        gold_in = gold if "$" in gold or "\\boxed" in gold else f"${gold}$"
        try:
            g = self._parse_fn(gold_in, parsing_timeout=None)
            p = self._parse_fn(completion, parsing_timeout=None)
            equal = self._verify_fn(g, p, timeout_seconds=None)
        except Exception:
            return "incorrect", None
        extracted = None
        if p:
            extracted = p[-1] if isinstance(p[-1], str) else str(p[0])
            extracted = extracted[:500]
        return ("correct" if equal else "incorrect"), extracted


def _percent_forms(value: Any, mode: str) -> list[Any]:
    from sympy import Mul, Rational

    fraction = Mul(value, Rational(1, 100))
    return {"both": [value, fraction], "fraction": [fraction], "number": [value]}[mode]


def _sequence(x: Any) -> list[Any] | None:
    """The ordered entries of a tuple-like value: ``(a,b,c)``, a bare list, or ``(a,b)`` (which
    sympy reads as an open interval)."""
    from latex2sympy2_extended.sets import FiniteSet
    from sympy import Interval, Tuple

    if isinstance(x, Tuple):
        return list(x.args)
    if isinstance(x, FiniteSet) and hasattr(x, "_unsorted_args"):
        return list(x._unsorted_args)
    if isinstance(x, Interval) and x.left_open and x.right_open:
        return [x.start, x.end]
    return None


def _shape(g: Any, p: Any, gold_text: str, ordered: bool | None) -> tuple[Any, Any, tuple]:
    """Column vector vs tuple, and the ordered/unordered list policies."""
    from latex2sympy2_extended.sets import FiniteSet
    from sympy import FiniteSet as SympyFiniteSet
    from sympy import Matrix, MatrixBase, Tuple

    if isinstance(g, MatrixBase) != isinstance(p, MatrixBase):
        m, other = (g, p) if isinstance(g, MatrixBase) else (p, g)
        if 1 in m.shape and len(m) >= 2:
            entries = _sequence(other)
            if entries is not None and len(entries) == len(m):
                as_matrix = Matrix(m.rows, m.cols, entries)
                if m is g:
                    return g, as_matrix, ("vector",)
                return as_matrix, p, ("vector",)
        return g, p, ()
    if ordered is True and isinstance(g, FiniteSet) and not gold_text.lstrip().startswith("\\{"):
        gs, ps = _sequence(g), _sequence(p)
        if gs is not None and ps is not None and len(gs) == len(ps):
            return Tuple(*gs), Tuple(*ps), ("ordered",)
    if ordered is False and isinstance(g, Tuple):
        ps = _sequence(p)
        if ps is not None and len(ps) == len(g.args):
            return SympyFiniteSet(*g.args), SympyFiniteSet(*ps), ("unordered",)
    return g, p, ()


def _worker_main(read_fd: int, write_fd: int, settings_json: str) -> None:
    """Entry point of a worker process (see ``_BOOTSTRAP``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # backstop: terminate the process
    inbox = Connection(read_fd, writable=False)
    outbox = Connection(write_fd, readable=False)
    settings = GradeSettings(**json.loads(settings_json))
    engine = _Engine(settings)
    # Warm up lazily built regexes and the LaTeX parser so the first item is not charged for
    # it, then forget the warm-up results (the gold cache must only hold reported golds).
    engine.handle("\\frac{1}{2}", "0.5", lambda: None)
    engine.handle("\\text{one}", "1", lambda: None)
    engine.plain("1", "\\boxed{1}")
    engine.reset()
    backstop = max(10, math.ceil(3 * settings.timeout_s + 5))
    outbox.send(("ready", os.getpid()))
    while True:
        try:
            msg = inbox.recv()
        except (EOFError, OSError):
            break
        if msg is None:
            break
        idx, gold, answer, want_ours, completion = msg
        if want_ours:
            signal.alarm(backstop)
            try:
                result = engine.handle(gold, answer, lambda idx=idx: outbox.send(("gold", idx)))
            except Exception as exc:  # a bug outside Math-Verify: still an answer, not a crash
                result = ("incorrect", f"error:{type(exc).__name__}", None)
            signal.alarm(0)
            outbox.send(("done", idx, *result))
        if completion is not None:
            signal.alarm(backstop)
            try:
                plain = engine.plain(gold, completion)
            except Exception:  # pragma: no cover - plain() already catches
                plain = ("incorrect", None)
            signal.alarm(0)
            outbox.send(("mv", idx, *plain))


_BOOTSTRAP = (
    "import sys\n"
    "src = sys.argv[1]\n"
    "if src not in sys.path:\n"
    "    sys.path.insert(0, src)\n"
    "from mathrecipes.grading import _worker_main\n"
    "_worker_main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])\n"
)


# --------------------------------------------------------------------------------------------
# Parent side: the pool
# --------------------------------------------------------------------------------------------

# A task: (item index, grade it with our grader?, run plain Math-Verify on it?)
_Task = tuple[int, bool, bool]


@dataclass
class _Job:
    task: _Task
    idx: int
    gold: str
    phases: list[str]  # what the worker still owes for this item, in order: "ours", "mv"
    size: int  # bytes of the message in the worker's pipe
    sent: float = 0.0  # when the current phase started (from the parent's point of view)
    deadline: float = math.inf  # only the job a worker is running has one
    gold_parsed: bool = False

    def start(self, now: float, timeout_s: float) -> None:
        self.sent = now
        self.deadline = now + timeout_s


def _stderr_target() -> int | None:
    """Where worker stderr goes: the file behind ``sys.stderr`` if any, else fd 2.

    Snakemake scripts here point ``sys.stderr`` at the job's log file (``runlog.start``) without
    touching fd 2; worker tracebacks belong in that log too.
    """
    try:
        sys.stderr.flush()
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None


class _Worker:
    def __init__(self, settings: GradeSettings) -> None:
        cfg = json.dumps(dataclasses.asdict(settings))
        src = str(Path(__file__).resolve().parents[1])
        p2c_r, p2c_w = os.pipe()
        c2p_r, c2p_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, src, str(p2c_r), str(c2p_w), cfg],
                pass_fds=(p2c_r, c2p_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=_stderr_target(),
            )
        except BaseException:
            for fd in (p2c_w, c2p_r):
                os.close(fd)
            raise
        finally:
            os.close(p2c_r)
            os.close(c2p_w)
        self.inbox = Connection(c2p_r, writable=False)
        self.outbox = Connection(p2c_w, readable=False)
        self.started = time.monotonic()
        self.ready = False
        self.jobs: deque[_Job] = deque()  # sent, not finished; the first one is running

    def stop(self) -> None:
        for conn in (self.outbox, self.inbox):
            with contextlib.suppress(OSError):
                conn.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


# Callbacks of _Pool.run
_OnOurs = Callable[[int, str, str | None, bool | None, float], None]
_OnPlain = Callable[[int, str, str | None, float], None]


class _Pool:
    """N worker processes with a few items queued in each; exact per-item deadlines."""

    def __init__(self, settings: GradeSettings, n_workers: int) -> None:
        self.settings = settings
        self.workers: list[_Worker] = []
        try:
            for _ in range(n_workers):
                self.workers.append(_Worker(settings))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        workers, self.workers = self.workers, []
        for w in workers:
            w.stop()

    def _replace(self, w: _Worker) -> None:
        w.stop()
        self.workers[self.workers.index(w)] = _Worker(self.settings)

    def run(
        self,
        queue: deque[_Task],
        prepare: Callable[[_Task], tuple | None],
        on_ours: _OnOurs,
        on_plain: _OnPlain,
        gold_known_ok: Callable[[str], bool],
        group_of: Callable[[_Task], str] | None = None,
    ) -> None:
        """Run every task in ``queue``.

        ``prepare(task)`` is asked right before dispatch and returns the worker message
        ``(idx, gold, answer, want_ours, completion_or_None)``, or None when the caller settled
        the task without a worker.  ``on_ours(i, verdict, how, gold_ok, seconds)`` receives our
        grader's results (``gold_ok`` is None when unknown: timeouts, crashes);
        ``on_plain(i, verdict, extracted, seconds)`` plain Math-Verify's.  A timeout is charged
        to the gold (``how == "gold_timeout"``) only if the worker had not reported parsing it
        and ``gold_known_ok(gold)`` is false.  An item whose grading timed out gets its plain
        Math-Verify pass as a fresh task.  Tasks that follow each other with the same
        ``group_of`` (gold) go to the same worker where possible, so that a gold is parsed
        once.
        """
        timeout_s = self.settings.timeout_s
        self._queue = queue
        self._on_ours, self._on_plain, self._gold_known_ok = on_ours, on_plain, gold_known_ok
        while True:
            for k in range(len(self.workers)):
                w = self.workers[k]
                group = None
                while w.ready and queue:
                    if len(w.jobs) > _PIPELINE_DEPTH and not (
                        group is not None
                        and group_of is not None
                        and len(w.jobs) <= _PIPELINE_DEPTH + _GROUP_EXTRA
                        and group_of(queue[0]) == group
                    ):
                        break
                    task = queue.popleft()
                    msg = prepare(task)
                    if msg is None:
                        continue
                    group = msg[1]
                    data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
                    if w.jobs and sum(j.size for j in w.jobs) + len(data) > _PIPELINE_BYTES:
                        queue.appendleft(task)  # would risk a blocking send: wait for room
                        break
                    try:
                        w.outbox.send_bytes(data)
                    except OSError:  # died: the item was never started, retry it
                        queue.appendleft(task)
                        self._on_death(w)
                        break
                    phases = (["ours"] if msg[3] else []) + (["mv"] if msg[4] is not None else [])
                    job = _Job(task, msg[0], msg[1], phases, len(data))
                    if not w.jobs:
                        job.start(time.monotonic(), timeout_s)
                    w.jobs.append(job)
            busy = [w for w in self.workers if w.jobs]
            if not queue and not busy:
                return

            now = time.monotonic()
            limits = [w.jobs[0].deadline for w in busy]
            limits += [w.started + _STARTUP_LIMIT_S for w in self.workers if not w.ready]
            ready = wait([w.inbox for w in self.workers], max(0.0, min(limits) - now))
            by_conn = {id(w.inbox): w for w in self.workers}
            for conn in ready:
                w = by_conn[id(conn)]
                if w in self.workers:
                    self._receive(w)

            now = time.monotonic()
            for w in list(self.workers):
                if w.jobs and w.jobs[0].deadline <= now:
                    # Take what already arrived (results, the gold-parsed note) first.
                    while w in self.workers and w.jobs and w.inbox.poll(0):
                        self._receive(w)
                    if w not in self.workers or not w.jobs or w.jobs[0].deadline > now:
                        continue
                    self._abandon(w, None)
                elif not w.ready and w.started + _STARTUP_LIMIT_S <= now:
                    raise RuntimeError(
                        f"grading worker did not start within {_STARTUP_LIMIT_S:.0f} s"
                    )

    def _abandon(self, w: _Worker, how: str | None) -> None:
        """Kill ``w`` (timeout: ``how`` None; crash: ``"worker_crash"``): its running job ends
        with ``timeout``, the jobs queued behind it go back to the front of the queue."""
        head, *rest = list(w.jobs)
        w.jobs.clear()
        self._replace(w)  # kill() + wait(), then a fresh worker
        for job in reversed(rest):
            self._queue.appendleft(job.task)
        seconds = time.monotonic() - head.sent
        if head.phases[0] == "mv":
            self._on_plain(head.idx, "timeout", None, seconds)
            return
        if how is None and not (head.gold_parsed or self._gold_known_ok(head.gold)):
            how = "gold_timeout"
        self._on_ours(head.idx, "timeout", how, None, seconds)
        if "mv" in head.phases:
            self._queue.appendleft((head.idx, False, True))

    def _receive(self, w: _Worker) -> None:
        try:
            msg = w.inbox.recv()
        except (EOFError, OSError):
            self._on_death(w)
            return
        kind = msg[0]
        if kind == "ready":
            w.ready = True
            return
        job = w.jobs[0] if w.jobs else None
        if job is None or job.idx != msg[1]:  # pragma: no cover - defensive
            return
        now = time.monotonic()
        if kind == "gold":
            job.gold_parsed = True
            return
        if kind == "done" and job.phases[0] == "ours":
            _, idx, verdict, how, gold_ok = msg
            self._on_ours(idx, verdict, how, gold_ok, now - job.sent)
        elif kind == "mv" and job.phases[0] == "mv":
            _, idx, verdict, extracted = msg
            self._on_plain(idx, verdict, extracted, now - job.sent)
        else:  # pragma: no cover - defensive
            return
        job.phases.pop(0)
        if not job.phases:
            w.jobs.popleft()
            if not w.jobs:
                return
            job = w.jobs[0]
        job.start(now, self.settings.timeout_s)

    def _on_death(self, w: _Worker) -> None:
        if not w.ready:
            code = w.proc.wait()
            raise RuntimeError(
                f"grading worker exited with code {code} during start-up "
                f"({sys.executable} could not import mathrecipes.grading / math_verify?)"
            )
        if w.jobs:
            self._abandon(w, "worker_crash")
        else:
            self._replace(w)


# --------------------------------------------------------------------------------------------
# Public grading API
# --------------------------------------------------------------------------------------------


@dataclass
class GradeItem:
    key: str  # identifies the row, e.g. "problem_id#sample"
    gold: str
    completion: str
    finish_reason: str | None = None  # "length": the generation hit its token limit


@dataclass
class Verdict:
    key: str
    verdict: str
    extracted: str | None
    rule: str
    seconds: float
    # Audit (grade_items(..., audit=True)); None otherwise.
    math_verify: str | None = None  # plain Math-Verify: correct / incorrect / timeout
    math_verify_extracted: str | None = None
    string_match: str | None = None  # correct / incorrect / no_answer


_SPECIAL_HOWS = ("gold_timeout", "worker_crash")


def grade_items(
    items: Sequence[GradeItem],
    settings: GradeSettings,
    progress: bool = False,
    *,
    audit: bool = False,
) -> list[Verdict]:
    """Grade items with a pool of ``settings.workers`` processes; results in input order.

    Extraction runs here; parsing and comparison run in workers under a hard wall-clock limit
    of ``settings.timeout_s`` per item (a worker past its deadline is killed and replaced, the
    item is ``timeout``).  A worker that crashes gives ``timeout`` with rule ``worker_crash``;
    an exception inside Math-Verify gives ``incorrect`` with rule ``error:<ExceptionType>``
    (``gold_unparseable`` if it was the gold that failed).  See the module docstring for every
    verdict and rule.  ``audit=True`` also fills ``math_verify`` (plain Math-Verify on the whole
    completion, same workers, same per-item limit) and ``string_match``.  ``progress=True``
    shows a tqdm bar on stderr.
    """
    n = len(items)
    multi = {g: _is_multi_valued(g) for g in {it.gold for it in items}}
    extracted = [
        extract_answer(
            it.completion,
            finish_reason=it.finish_reason,
            answer_regex=settings.answer_regex,
            truncated=settings.truncated,
            multi=multi[it.gold],
        )
        for it in items
    ]
    results: list[Verdict | None] = [None] * n
    plain: list[tuple[str, str | None] | None] = [None] * n
    # gold string -> (ok, rule override); a known gold settles no-answer items without a worker
    gold_state: dict[str, tuple[bool, str | None]] = {}
    # (gold, answer) -> (verdict, how): identical pairs are graded once
    memo: dict[tuple[str, str], tuple[str, str | None]] = {}
    plain_memo: dict[tuple[str, str], tuple[str, str | None]] = {}
    # (gold, answer) being graded -> its item; tasks with the same pair wait in `parked`
    in_flight: dict[tuple[str, str], int] = {}
    parked: dict[tuple[str, str], list[_Task]] = {}

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc="grading", unit="item", file=sys.stderr, dynamic_ncols=True)

    def finish(i: int, verdict: str, how: str | None, seconds: float) -> None:
        answer, rule = extracted[i]
        if how in _SPECIAL_HOWS or (how and how.startswith("error:")):
            rule = how
        elif how:
            rule = f"{rule}+{how}"
        results[i] = Verdict(items[i].key, verdict, answer, rule, seconds)
        if bar is not None:
            bar.update(1)

    def settle_ours(i: int) -> bool:
        gold, answer = items[i].gold, extracted[i][0]
        state = gold_state.get(gold)
        if state is not None and not state[0]:
            finish(i, "gold_unparseable", state[1], 0.0)
        elif state is not None and answer is None:
            finish(i, "no_answer", None, 0.0)
        elif answer is not None and (gold, answer) in memo:
            finish(i, *memo[gold, answer], 0.0)
        else:
            return False
        return True

    def prepare(task: _Task) -> tuple | None:
        i, want_ours, want_plain = task
        gold, completion = items[i].gold, items[i].completion or ""
        want_ours = want_ours and results[i] is None and not settle_ours(i)
        if want_ours and extracted[i][0] is not None:
            # An identical pair already in a worker: wait for its result (graded once).
            key = (gold, extracted[i][0])
            if in_flight.setdefault(key, i) != i:
                parked.setdefault(key, []).append(task)
                return None
        if want_plain and plain[i] is None:
            hit = plain_memo.get((gold, completion))
            if hit is not None:
                plain[i] = hit
                want_plain = False
        else:
            want_plain = False
        if not (want_ours or want_plain):
            return None
        return (i, gold, extracted[i][0], want_ours, completion if want_plain else None)

    def on_ours(i: int, verdict: str, how: str | None, gold_ok: bool | None, secs: float) -> None:
        gold, answer = items[i].gold, extracted[i][0]
        if verdict == "timeout" and how == "gold_timeout":
            gold_ok = False
            verdict = "gold_unparseable"
        if gold_ok is not None:
            gold_state.setdefault(gold, (gold_ok, None if gold_ok else how))
        if answer is not None and verdict != "gold_unparseable":
            memo.setdefault((gold, answer), (verdict, how))
        if answer is not None and in_flight.get((gold, answer)) == i:
            del in_flight[gold, answer]
            queue.extendleft(reversed(parked.pop((gold, answer), [])))
        finish(i, verdict, how, secs)

    def on_plain(i: int, verdict: str, mv_extracted: str | None, secs: float) -> None:
        plain[i] = (verdict, mv_extracted)
        if verdict != "timeout":
            plain_memo.setdefault((items[i].gold, items[i].completion or ""), plain[i])

    def gold_known_ok(gold: str) -> bool:
        return gold_state.get(gold, (False, None))[0]

    # Answered items first: their results reveal which golds parse, which then settles most
    # no-answer items without a round trip.
    queue: deque[_Task] = deque((i, True, audit) for i in range(n) if extracted[i][0] is not None)
    queue.extend((i, True, audit) for i in range(n) if extracted[i][0] is None)
    try:
        if queue:
            with _Pool(settings, min(settings.workers, len(queue))) as pool:
                pool.run(
                    queue, prepare, on_ours, on_plain, gold_known_ok, lambda t: items[t[0]].gold
                )
    finally:
        if bar is not None:
            bar.close()
    missing = [items[i].key for i in range(n) if results[i] is None]
    if missing or (audit and any(p is None for p in plain)):  # pragma: no cover - defensive
        raise RuntimeError(f"grading lost {len(missing)} item(s)")
    out: list[Verdict] = results  # type: ignore[assignment]
    if audit:
        for i, v in enumerate(out):
            v.math_verify, v.math_verify_extracted = plain[i]  # type: ignore[misc]
            v.string_match = string_match(v.extracted, items[i].gold)
    return out


def summarize(verdicts: Iterable[str]) -> dict[str, Any]:
    """Counts per verdict, ``n`` and ``accuracy = correct / (n - gold_unparseable)``.

    ``accuracy`` is None when no row can be scored.
    """
    counts = dict.fromkeys(VERDICTS, 0)
    for v in verdicts:
        if v not in counts:
            raise ValueError(f"unknown verdict {v!r}; expected one of {', '.join(VERDICTS)}")
        counts[v] += 1
    n = sum(counts.values())
    scored = n - counts["gold_unparseable"]
    return {"n": n, **counts, "accuracy": counts["correct"] / scored if scored else None}


# --------------------------------------------------------------------------------------------
# Audit: disagreements between our grader, plain Math-Verify and string match
# --------------------------------------------------------------------------------------------

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
        same_span = math_verify_extracted is not None and _sm_normalize(
            math_verify_extracted
        ) == _sm_normalize(extracted)
        if not same_span:
            return "extraction: different span"
    g = _sm_normalize(_gold_answer(gold))
    a = _sm_normalize(extracted or "")
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


def _agreement(verdicts: Sequence[Verdict]) -> dict[str, Any]:
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


def _disagreements(
    verdicts: Sequence[Verdict], golds: Sequence[str]
) -> list[tuple[int, dict[str, Any]]]:
    """``(index, row)`` (with ``category``) where ours, plain Math-Verify and string match
    disagree about "correct"."""
    out = []
    for i, (v, gold) in enumerate(zip(verdicts, golds, strict=True)):
        flags = {v.verdict == "correct", v.math_verify == "correct", v.string_match == "correct"}
        if len(flags) == 1:
            continue
        out.append(
            (
                i,
                {
                    "gold": gold,
                    "extracted": v.extracted,
                    "ours": v.verdict,
                    "rule": v.rule,
                    "math_verify": v.math_verify,
                    "math_verify_extracted": v.math_verify_extracted,
                    "string_match": v.string_match,
                    "category": disagreement_category(
                        gold,
                        v.extracted,
                        v.verdict,
                        v.rule,
                        v.math_verify,
                        v.math_verify_extracted,
                        v.string_match,
                    ),
                },
            )
        )
    return out


def _summary(verdicts: Sequence[Verdict], settings: GradeSettings, audit: bool) -> dict[str, Any]:
    summary = summarize(v.verdict for v in verdicts)
    scored = summary["n"] - summary["gold_unparseable"]
    summary["no_answer_rate"] = summary["no_answer"] / scored if scored else None
    summary["truncated"] = sum(v.rule == "truncated" for v in verdicts)
    summary["grader"] = GRADER_NAME
    summary["grader_version"] = grader_version()
    summary["policy"] = settings.policy()
    if audit:
        summary["agreement"] = _agreement(verdicts)
    return summary


# --------------------------------------------------------------------------------------------
# Files and records
# --------------------------------------------------------------------------------------------


def grade_records(
    rows: Iterable[Mapping[str, Any]],
    *,
    prediction_field: str,
    gold_field: str,
    id_field: str | None,
    settings: GradeSettings,
    finish_field: str | None = None,
    audit: bool = False,
    progress: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Grade arbitrary records (a jsonl / parquet of predictions and gold answers).

    Each row needs ``gold_field`` (any value; numbers are written with ``str``, None is an
    empty, unparseable gold) and ``prediction_field`` (the completion; None counts as empty);
    ``id_field`` names the row (default: its position) and ``finish_field`` an optional
    finish reason (``"length"`` = hit the token limit).  Returns one dict per row, in input
    order (``row``, ``id``, ``gold``, ``extracted``, ``verdict``, ``rule``, ``seconds``,
    ``policy``, ``grader``, ``grader_version`` [, ``finish_reason``] [, with ``audit``:
    ``math_verify``, ``math_verify_extracted``, ``string_match``, ``category`` (None where all
    three agree)]) and the summary (:func:`summarize` plus ``no_answer_rate``, ``truncated``,
    ``grader``, ``grader_version``, ``policy`` [, ``agreement``]).
    """
    records = list(rows)
    items = []
    for k, r in enumerate(records):
        for field in (prediction_field, gold_field, id_field, finish_field):
            if field is not None and field not in r:
                raise ValueError(f"row {k}: missing field {field!r}")
        gold = r[gold_field]
        pred = r[prediction_field]
        key = str(r[id_field]) if id_field is not None else str(k)
        finish = r[finish_field] if finish_field is not None else None
        items.append(
            GradeItem(
                key,
                "" if gold is None else str(gold),
                "" if pred is None else str(pred),
                None if finish is None else str(finish),
            )
        )
    verdicts = grade_items(items, settings, progress=progress, audit=audit)
    version, policy = grader_version(), settings.policy_json()
    out = []
    for k, (it, v) in enumerate(zip(items, verdicts, strict=True)):
        row: dict[str, Any] = {
            "row": k,
            "id": it.key,
            "gold": it.gold,
            "extracted": v.extracted,
            "verdict": v.verdict,
            "rule": v.rule,
            "seconds": v.seconds,
            "policy": policy,
            "grader": GRADER_NAME,
            "grader_version": version,
        }
        if finish_field is not None:
            row["finish_reason"] = it.finish_reason
        if audit:
            agree = len(
                {v.verdict == "correct", v.math_verify == "correct", v.string_match == "correct"}
            )
            row["math_verify"] = v.math_verify
            row["math_verify_extracted"] = v.math_verify_extracted
            row["string_match"] = v.string_match
            row["category"] = (
                None
                if agree == 1
                else disagreement_category(
                    it.gold,
                    v.extracted,
                    v.verdict,
                    v.rule,
                    v.math_verify,
                    v.math_verify_extracted,
                    v.string_match,
                )
            )
        out.append(row)
    return out, _summary(verdicts, settings, audit)


def grade_file(
    generations_path: str | Path,
    benchmark_path: str | Path,
    out_path: str | Path,
    settings: Mapping[str, Any] | GradeSettings,
    progress: bool = True,
    disagreements_path: str | Path | None = None,
) -> dict[str, Any]:
    """Grade a generations parquet against a benchmark parquet; write ``out_path``.

    Generations need ``problem_id``, ``sample``, ``completion`` (``finish_reason`` is passed
    through when present and ``"length"`` there marks a truncated generation); the benchmark is
    a canonical record file (gold = ``answer``, joined on ``problem_id == id``).  The output has
    one row per (problem_id, sample), sorted, with columns problem_id, sample, gold, extracted,
    verdict, rule, grader, grader_version, policy, seconds [, finish_reason].

    With ``disagreements_path`` every row is also graded by plain Math-Verify and by string
    match (see the module docstring) and the rows where the three disagree are written there
    (problem_id, sample, gold, extracted, ours, rule, math_verify, math_verify_extracted,
    string_match, category).  Returns :func:`summarize` plus ``no_answer_rate`` (no_answer /
    scored rows), ``truncated``, ``grader``, ``grader_version``, ``policy`` and, with an audit,
    ``agreement`` (fractions of rows where the graders agree about "correct") and
    ``disagreements`` (count).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mathrecipes.records import write_table

    if not isinstance(settings, GradeSettings):
        settings = GradeSettings.from_dict(settings)

    gen = pq.read_table(generations_path)
    need = [c for c in ("problem_id", "sample", "completion") if c not in gen.column_names]
    if need:
        raise ValueError(f"{generations_path}: missing column(s) {', '.join(need)}")
    bench = pq.read_table(benchmark_path)
    need = [c for c in ("id", "answer") if c not in bench.column_names]
    if need:
        raise ValueError(f"{benchmark_path}: missing column(s) {', '.join(need)}")

    gold_of: dict[str, str] = {}
    for pid, answer in zip(
        bench.column("id").to_pylist(), bench.column("answer").to_pylist(), strict=True
    ):
        pid = str(pid)
        answer = "" if answer is None else str(answer)
        if gold_of.setdefault(pid, answer) != answer:
            raise ValueError(f"{benchmark_path}: id {pid!r} appears with different answers")

    has_finish = "finish_reason" in gen.column_names
    rows = list(
        zip(
            [str(p) for p in gen.column("problem_id").to_pylist()],
            gen.column("sample").to_pylist(),
            gen.column("completion").to_pylist(),
            gen.column("finish_reason").to_pylist() if has_finish else [None] * gen.num_rows,
            strict=True,
        )
    )
    unknown = sorted({pid for pid, *_ in rows if pid not in gold_of})
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise ValueError(
            f"{generations_path}: problem_id {unknown[0]!r}{more} not found in benchmark "
            f"{benchmark_path}"
        )
    if any(s is None for _, s, _, _ in rows):
        raise ValueError(f"{generations_path}: null value in column sample")
    rows.sort(key=lambda r: (r[0], int(r[1])))
    for a, b in zip(rows, rows[1:], strict=False):
        if a[0] == b[0] and int(a[1]) == int(b[1]):
            raise ValueError(f"{generations_path}: duplicate row ({a[0]!r}, sample {a[1]})")

    items = [
        GradeItem(
            f"{pid}#{sample}", gold_of[pid], completion or "", None if fr is None else str(fr)
        )
        for pid, sample, completion, fr in rows
    ]
    audit = disagreements_path is not None
    verdicts = grade_items(items, settings, progress=progress, audit=audit)

    version = grader_version()
    columns: dict[str, pa.Array] = {
        "problem_id": pa.array([r[0] for r in rows], pa.string()),
        "sample": pa.array([int(r[1]) for r in rows], pa.int64()),
        "gold": pa.array([it.gold for it in items], pa.string()),
        "extracted": pa.array([v.extracted for v in verdicts], pa.string()),
        "verdict": pa.array([v.verdict for v in verdicts], pa.string()),
        "rule": pa.array([v.rule for v in verdicts], pa.string()),
        "grader": pa.array([GRADER_NAME] * len(rows), pa.string()),
        "grader_version": pa.array([version] * len(rows), pa.string()),
        "policy": pa.array([settings.policy_json()] * len(rows), pa.string()),
        "seconds": pa.array([v.seconds for v in verdicts], pa.float64()),
    }
    if has_finish:
        columns["finish_reason"] = pa.array(
            [r[3] for r in rows], gen.schema.field("finish_reason").type
        )

    summary = _summary(verdicts, settings, audit)
    if audit:
        found = _disagreements(verdicts, [it.gold for it in items])
        keep = [i for i, _ in found]
        report = {
            "problem_id": pa.array([rows[i][0] for i in keep], pa.string()),
            "sample": pa.array([int(rows[i][1]) for i in keep], pa.int64()),
        }
        for name in (
            "gold",
            "extracted",
            "ours",
            "rule",
            "math_verify",
            "math_verify_extracted",
            "string_match",
            "category",
        ):
            report[name] = pa.array([d[name] for _, d in found], pa.string())
        write_table(pa.table(report), disagreements_path)
        summary["disagreements"] = len(found)
        summary["disagreement_categories"] = dict(Counter(d["category"] for _, d in found))
    write_table(pa.table(columns), out_path)
    return summary
