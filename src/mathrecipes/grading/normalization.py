"""Answer normalization and answer-shape rules (pure Python; used by workers and the parent).

:func:`normalize` rewrites an answer for Math-Verify's parser (surrounding delimiters, a
trailing period, digit groups written with spaces, unit words after a number, brace-less
``\\frac`` arguments); the shape helpers read multiple-choice letters, base subscripts, mixed
numbers, text answers and ``name = value`` golds; :func:`is_multi_valued` tells a gold that lists
several values; :func:`string_match` is the audit's deliberately simple comparison.
"""

from __future__ import annotations

import re

from mathrecipes import latex
from mathrecipes.grading.extraction import clean_answer, gold_answer

_GROUP_SEP = r"(?:\\[,;:! ]|~|[ \t])"
_GROUPED_NUMBER = re.compile(rf"[-+]?\d{{1,3}}(?:{_GROUP_SEP}\d{{3}})+(?:\.\d+)?")
COMMA_GROUPED = re.compile(r"[-+]?[1-9]\d{0,2}(?:(?:,|\{,\})\d{3})+(?:\.\d+)?")
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
_MIXED = re.compile(r"(-?)(\d+)\s*\\[dtc]?frac\s*(?:\{(\d+)\}\s*\{(\d+)\}|(\d)(\d))")
_BASE = re.compile(r"(\d[0-9A-Za-z]*)_\{?\s*\(?(\d+)\)?\s*\}?")
_CHOICE_GOLD = re.compile(r"\(?([A-J])\)?")
_CHOICE_PRED = re.compile(r"\(?([A-J])\)?(?=$|[\s.:,)\]])")


# LaTeX thousands idioms inside an expression (\frac{12}{5,\!525}, 14{,}916): unambiguous.
_LATEX_THOUSANDS = re.compile(r"(?<=\d)(?:,\\!|\{,\})(?=\d{3}(?!\d))")
# \frac \pi4, \frac ab: brace-less arguments that Math-Verify's own fix garbles.
_BARE_FRAC = re.compile(r"\\([dtc]?frac)\s*(\\[A-Za-z]+|[A-Za-z0-9])\s*(\\[A-Za-z]+|[A-Za-z0-9])")


def normalize(answer: str, strip_units: bool = True) -> str:
    s = clean_answer(" ".join(answer.split()))
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


def latex_for_parse(s: str) -> str:
    # Bare answers are wrapped so LatexExtractionConfig sees one math span; text that still
    # holds its own unescaped "$" is handed over as is.
    return s if re.search(r"(?<!\\)\$", s) else f"${s}$"


def _unwrap_text(s: str) -> str:
    s = s.strip()
    while (m := _TEXT_WRAPPER.fullmatch(s)) is not None:
        s = m.group(1).strip()
    return s


def text_form(s: str) -> str | None:
    """Case-folded words if ``s`` is plain text (``odd``, ``\\text{Evelyn}``), else None."""
    s = _unwrap_text(s)
    if len(s) >= 2 and _PLAIN_WORDS.fullmatch(s):
        return " ".join(s.casefold().split())
    return None


def choice_letter(s: str, *, gold: bool) -> str | None:
    """The option letter of a multiple-choice answer: a gold is exactly ``A``/``(A)``; a
    prediction starts with one (``(A) 5``, ``A.``, ``\\text{(A)}``)."""
    s = _unwrap_text(s).rstrip(".")
    m = _CHOICE_GOLD.fullmatch(s) if gold else _CHOICE_PRED.match(s)
    return m.group(1) if m else None


def base_number(s: str) -> tuple[str, int] | None:
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


def mixed_number(s: str, mode: str) -> str | None:
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


def plain_subscripts(s: str) -> str:
    """``I_{\\max}`` -> ``I_{max}``, ``k_{\\mathrm{B}}`` -> ``k_{B}``."""

    def inner(m: re.Match[str]) -> str:
        t = _SUBSCRIPT_TEXT.sub(r"\1", m.group(1))
        return "_{" + _SUBSCRIPT_CMD.sub(r"\1", t) + "}"

    return _SUBSCRIPT.sub(inner, s)


def named_rhs(g: str) -> str | None:
    """The value of a gold written as ``name = value`` (one ``=``), else None."""
    m = _NAME_EQ.fullmatch(g)
    return m.group("rhs").strip() if m else None


def single_number(g: str) -> bool:
    return "," not in g and not g.startswith(("(", "[", "\\{", "\\left")) and "\\pm" not in g


# String match (audit): a deliberately simple normalization.
_SM_TEXT = re.compile(r"\\(?:text|textbf|textrm|textnormal|mathrm|mbox)\s*\{([^{}]*)\}")
_SM_THOUSANDS = re.compile(r"(?<=\d)(?:,|\{,\})(?=\d{3}(?!\d))")


def sm_normalize(s: str) -> str:
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
    a, b = sm_normalize(extracted), sm_normalize(gold_answer(gold or ""))
    return "correct" if a and a == b else "incorrect"


def is_multi_valued(gold: str) -> bool:
    """Whether the gold lists several values (``2, 3``; ``\\{1,2\\}``; ``1\\pm\\sqrt2``)."""
    g = clean_answer(gold_answer(gold or ""))
    if not g or _GROUPED_NUMBER.fullmatch(g) or COMMA_GROUPED.fullmatch(g):
        return False
    if "\\pm" in g or "\\mp" in g:
        return True
    if re.search(r"\\text\{\s*(?:and|or)\s*\}|\s(?:and|or)\s", g):
        return True
    if g.startswith("\\{") and "," in g:
        return True
    return len(latex.split_top_level(g)) > 1
