"""Gold-answer helpers shared by ingest code: boxed / GSM8K extraction and answer-type tags.

Pure functions on strings (``re`` only), cheap enough to run on every row of a dataset.

:func:`last_boxed` (from :mod:`mathrecipes.latex`, which grading reads boxes with too) and
:func:`gsm8k_final` pull the gold final answer out of a reference solution;
:func:`classify_answer_type` tags a gold answer with one of
:data:`mathrecipes.records.ANSWER_TYPES` so the grader can pick a comparison policy (set vs
tuple, interval vs point, letter choice, free text). The tag is a heuristic on the LaTeX
string; the policy choices for ambiguous shapes are listed in :func:`classify_answer_type`.
"""

from __future__ import annotations

import re

from mathrecipes.latex import (
    braces_balanced,
    brackets_balanced,
    last_boxed,
    split_top_level,
    strip_delimiters,
)

__all__ = [
    "NUMERIC_TYPES",
    "classify_answer_type",
    "clean_gold",
    "format_number",
    "gsm8k_final",
    "last_boxed",
    "last_number",
]

NUMERIC_TYPES = frozenset({"integer", "decimal", "fraction"})

# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------

_GSM8K = re.compile(r"####[ \t]*([^\n]*)")
_DIGIT_COMMA = re.compile(r"(?<=\d),(?=\d)")


def gsm8k_final(text: str) -> str | None:
    """Text after the last ``#### `` (to the end of that line), thousands commas removed.

    ``"... #### 1,234"`` gives ``"1234"``. A trailing period is dropped. ``None`` when there is
    no ``####`` marker or nothing follows it.
    """
    if not text:
        return None
    found = _GSM8K.findall(text)
    if not found:
        return None
    answer = _DIGIT_COMMA.sub("", found[-1].strip())
    answer = answer.rstrip(".").strip()
    return answer or None


_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?(?![\w])")


def last_number(text: str) -> str | None:
    """The last number written in ``text`` (``1,234`` -> ``1234``; ``-3.5``; ``3/4``).

    Trailing parenthetical remarks (``(rounded to 2 decimal places)``) are ignored, so their
    numbers are not taken for the answer. Digits glued to letters (``x2``, ``5th``) are not
    numbers. ``None`` if there is no number.
    """
    if not text:
        return None
    body = text.rstrip()
    # Drop trailing "(...)" remarks, possibly followed by a period.
    while True:
        stripped = re.sub(r"\([^()]*\)\s*[.!]?\s*$", "", body).rstrip()
        if stripped == body or not stripped:
            break
        body = stripped
    found = _NUMBER.findall(body)
    if not found:
        return None
    return found[-1].replace(",", "").lstrip("+")


def format_number(value: float | int | str) -> str:
    """A number as a gold answer string: ``27.0`` -> ``"27"``, ``0.5`` -> ``"0.5"``.

    Strings are returned stripped, unchanged (``"025"`` stays ``"025"``); ``bool`` is refused.
    """
    if isinstance(value, bool):
        raise TypeError("a boolean is not a numeric answer")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"not a finite number: {value!r}")
        if value.is_integer():
            return str(int(value))
        return repr(value)
    return str(value).strip()


# A final period that belongs to the answer: "\right.", "...", "p.m.", "Mrs."
_KEEP_PERIOD = re.compile(
    r"\\(?:right|left|[bB]igg?[lr]?)\.$|\.\.$|(?:\b[A-Za-z]\.){2}$|\b(?:Mr|Mrs|Ms|Dr|St|etc)\.$"
)


def clean_gold(answer: str | None) -> str | None:
    """Strip whitespace, outer math delimiters and a trailing sentence period.

    ``"$10-4 n$"`` -> ``"10-4 n"``; ``"$y=1-x$."`` -> ``"y=1-x"``; ``"\\(x\\)"`` -> ``"x"``;
    a boxed ``"-\\frac{5}{3}."`` -> ``"-\\frac{5}{3}"``. The period of ``\\right.``, an
    ellipsis ``...`` and abbreviations (``"3:30 p.m."``) are kept. Inner ``$`` spans (``"$a$ and $b$"``) are left alone.
    ``None``/blank gives ``None``.
    """
    if answer is None:
        return None
    s = str(answer).strip()
    if s.endswith("$.") or s.endswith("$,"):
        s = s[:-1].rstrip()
    s = strip_delimiters(s)
    if s.endswith(".") and not _KEEP_PERIOD.search(s):
        s = strip_delimiters(s[:-1].rstrip())
    return s or None


# --------------------------------------------------------------------------------------------
# Answer types
# --------------------------------------------------------------------------------------------

_SPACING = re.compile(r"\\[,;:> ]|~|\\quad|\\qquad")
_SIZING = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![A-Za-z])\s*\.?")
_WRAPPER = r"\\(?:text|textbf|textit|textrm|textsf|textnormal|mbox|mathrm|mathbf|operatorname)"
_WHOLE_WRAPPER = re.compile(rf"^{_WRAPPER}\s*\{{(.*)\}}$", re.DOTALL)
_WRAPPED_UNIT = re.compile(rf"{_WRAPPER}\s*\{{\s*([^{{}}]*?)\s*\}}(\^\{{?\d\}}?)?")
_AND = re.compile(r"\s*\\(?:text|mbox|textnormal|textrm)\s*\{\s*(?:and|or)\s*\}\s*")
_CLOCK = re.compile(
    r"^\d{1,2}(?::\d{2}){1,2}\s*(?:[ap]\.?\s?m\.?|[AP]M)?$|^\d{1,2}\s*(?:[ap]\.\s?m\.?|[AP]M)$"
)
_CHOICE = re.compile(r"^\(?\s*([A-E])\s*\)?$")
_TEXT_WORDS = re.compile(r"^[A-Za-z][A-Za-z'’\-.,;:!? ]*$")
_SHORT_WORDS = frozenset(
    {"odd", "yes", "no", "all", "none", "both", "true", "false", "neither", "even", "any"}
)
_MATH_WORDS = frozenset(
    {"sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "lim", "max", "min"}
    | {"arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "det", "mod", "gcd", "lcm"}
)

_INT = re.compile(r"^[-+]?\d+$")
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(?:(?:,|\{,\}|\\,)\d{3})+(?:\.\d+)?$")
_DECIMAL = re.compile(r"^[-+]?(?:\d+\.\d*|\.\d+)$")
_SCIENTIFIC = re.compile(
    r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)\s*(?:(?:\\times|\\cdot|\*|x)\s*10\s*\^\s*\{?\s*[-+]?\s*\d+\s*\}?"
    r"|[eE][-+]?\d+)$"
)
_FRACTION = re.compile(
    r"^[-+]?(?:"
    r"\\frac\s*\{\s*[-+]?\d+\s*\}\s*\{\s*[-+]?\d+\s*\}"  # \frac{1}{2}
    r"|\\frac\s*\d\s*\d"  # \frac12
    r"|\\frac\s*\d\s*\{\s*\d+\s*\}|\\frac\s*\{\s*\d+\s*\}\s*\d"  # \frac1{2}, \frac{1}2
    r"|\d+\s*/\s*\d+"  # 3/4
    r"|\(\s*[-+]?\d+\s*/\s*\d+\s*\)"  # (1/3)
    r"|\d+\s*\\frac\s*\{\s*\d+\s*\}\s*\{\s*\d+\s*\}"  # 2\frac{1}{2} (mixed number)
    r"|\d+\s*\\frac\s*\d\s*\d"  # 6\frac15 (mixed, malformed)
    r")$"
)
_UNIT_WORDS = re.compile(
    r"^(?P<num>[-+]?[\d.,{}]*\d)\s+(?P<unit>[A-Za-z]{2,}(?:[ /\-][A-Za-z]+)*\.?(?:\^\{?\d\}?)?)$"
)
_ASSIGN = re.compile(
    r"^\s*([A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?|\\[A-Za-z]+)\s*(?:=|\\approx|\\in(?![A-Za-z]))\s*(.+)$"
)
_INTERVAL_HINT = re.compile(r"interval", re.IGNORECASE)


def classify_answer_type(answer: str, *, problem: str | None = None) -> str:
    """Tag a gold answer (a LaTeX string) with one of ``records.ANSWER_TYPES``.

    ``problem`` (optional) is the problem text, used only to settle two ambiguities (below).
    Math delimiters, ``\\left``/``\\right``, ``\\dfrac``/``\\tfrac`` and LaTeX spacing are
    normalised first. Decisions, in order (first match wins):

    - ``text``: prose, i.e. two or more words of three letters or more outside math with a
      space between them (``"No solution"``, ``"It is the plane $2x+3y-z=0$"``, also when
      the sentence contains a matrix); a value with a unit (``"10 \\text{ square feet}"``)
      is not prose.
    - ``matrix``: any ``pmatrix``/``bmatrix``/``vmatrix``/``matrix``/``array`` environment
      (MATH column vectors are matrices).
    - ``choice``: one letter A-E, optionally ``(A)``, ``\\text{(A)}``, ``\\textbf{(A)}``,
      ``(\\text{E})``. Lists of letters (``"A, C"``: "enter the letters of all correct
      options") are a ``set``; other single capitals (``\\text{M}``, a point) ``expression``.
    - ``text``: a whole ``\\text{...}`` of words (``\\text{Evelyn}``, ``\\text{June 20}``), a
      time of day (``"4:30 p.m."``, ``9\\text{ a.m.}``; a bare ``"3:1"`` is an
      ``expression``: ratio or time cannot be told apart).
    - numbers, after dropping ``$``/``\\$``, ``%``, ``^\\circ`` and units (``\\text{ cm}``,
      ``\\mbox{ cm}^2``, ``\\mathrm{~m}``, trailing words as in ``"50 gallons"``):
      ``integer`` (``"016"``, ``"7,425,000"``, ``"10,\\!080"``, ``"14{,}916"``; a comma
      followed by exactly three digits and no space is a thousands separator, so ``"70,110"``
      is an integer, unless ``problem`` says "separated by commas", while ``"70, 110"`` is a
      set), ``decimal`` (also ``"1.6 \\times 10^{-3}"`` and ``"2e-5"``), ``fraction``
      (``\\frac{1}{2}``, ``\\frac12``, ``3/4``, ``-(1/3)``, and the mixed number
      ``2\\frac{1}{2}``, which is 5/2). Percentages and degrees keep the type of their number.
      Digits with a base subscript (``204_5``) are ``expression``, so nothing int()s them.
    - ``text``: plain words (``odd``, ``neither``, ``Ted``), labels without mathematics
      (``"Vendor 2"``, ``"6th"``). Single letters and short lowercase letter strings (``x``,
      ``ab``, ``abc``) stay ``expression``.
    - An assignment ``x = 5`` / ``k \\approx 11`` / ``x \\in [a, b]`` is typed by its
      right-hand side (``"x=-2,6"`` is a ``set``); several assignments are a ``tuple``
      (``"A=18, B=44/3"``), or a ``set`` when they all name the same unknown
      (``"x=1, x=e^{2}"``).
    - ``interval``: a bracketed pair whose brackets differ (``(0,1]``), or that contains
      ``\\infty``, or ``[a, b]`` with two square brackets; unions with ``\\cup`` of such parts
      (or of ``\\{..\\}``). ``(a, b)`` with two parentheses is a ``tuple`` (a point) unless
      ``problem`` mentions "interval" ("Express your answer in interval notation"), then an
      ``interval``.
    - ``set``: ``\\{...\\}`` (also set-builder notation), or a top-level comma list
      (``"1, -2"``: "enter all solutions separated by commas"; also lists of tuples).
    - ``tuple``: parentheses (or ``\\langle..\\rangle``) around a comma list that is not an
      interval, e.g. ``"(3, \\frac{\\pi}{2})"``; ``[1, 2, 3]`` (three or more entries).
    - anything else (``\\sqrt{2}``, ``3\\pi``, ``x^2+1``, ``1 \\pm \\sqrt{5}``, equations):
      ``expression``. An empty answer is ``text``.
    """
    s = _prepare(answer)
    if not s:
        return "text"
    return _classify(s, problem, depth=0)


def _prepare(answer: str) -> str:
    s = str(answer).strip()
    s = s.replace("\\$", "\x00")  # escaped dollar: currency, not a math delimiter
    if s.endswith("$.") or s.endswith("$,"):
        s = s[:-1]
    s = strip_delimiters(s)
    return s.replace("\x00", "\\$").strip()


def _normalize(s: str) -> str:
    s = re.sub(r",\s*\\!\s*", "{,}", s)  # "1,\!000": the LaTeX thousands separator
    s = s.replace("\\!", "")
    s = _AND.sub(",", s)
    s = re.sub(r",\s*,", ",", s)
    s = re.sub(r"\\[dtc]frac(?![A-Za-z])", r"\\frac", s)
    s = s.replace("\\displaystyle", "")
    s = _SIZING.sub("", s)
    s = _SPACING.sub(" ", s)
    s = re.sub(r"\s+", " ", s).strip()
    while s.endswith(".") and not re.search(r"\d\.$", s):
        s = s[:-1].rstrip()
    return s


def _classify(raw: str, problem: str | None, depth: int) -> str:
    if _is_prose(raw):
        return "text"
    if re.search(r"\\begin\{(?:[pbvBV]?matrix|smallmatrix|array)\}", raw):
        return "matrix"
    # Remaining "$" are inline math inside an otherwise mathematical answer: drop them.
    s = _normalize(re.sub(r"(?<!\\)\$", " ", raw))
    if not s:
        return "text"

    if _is_choice(s):
        return "choice"
    m = _WHOLE_WRAPPER.match(s)
    if m and braces_balanced(m.group(1)):
        inner = m.group(1).strip()
        if _is_choice(inner):
            return "choice"
        if _is_words(inner) or (re.search(r"[A-Za-z]{3,}", inner) and "\\" not in inner):
            return "text"  # \text{June 20}, \text{4:30 p.m.}
        if depth < 3:
            return _classify(inner, problem, depth + 1)

    if _CLOCK.match(_strip_wrappers(s)) and not re.fullmatch(r"\d+:\d+", s):
        return "text"  # a time of day: "4:30 p.m.", "9\text{ a.m.}"; a bare "3:1" is not
    number_type = _number_type(s, problem)
    if number_type:
        return number_type

    if _is_words(s) or _is_label(s):
        return "text"

    parts = split_top_level(s, ",")
    assigned = [_ASSIGN.match(p) for p in parts]
    if len(parts) >= 2 and all(assigned) and not any("=" in m.group(2) for m in assigned):
        names = {m.group(1) for m in assigned}
        # "x=1, x=e^2": the solutions of one unknown; "A=18, B=44/3": named values.
        return "set" if len(names) == 1 else "tuple"
    am = _ASSIGN.match(s)
    rhs = ""
    if am and depth < 3 and len(parts) < 2:
        rhs = am.group(2).strip()
    elif am and len(parts) >= 2 and depth < 3:  # "x = -2, 6"
        rhs = s[am.start(2) :].strip()
    if rhs and "=" not in rhs:
        kind = _classify(rhs, problem, depth + 1)
        return "expression" if kind == "choice" else kind  # "B=C" is not a letter choice

    structured = _structure_type(s, problem)
    if structured:
        return structured
    return "expression"


def _is_choice(s: str) -> bool:
    t = s.strip()
    t = re.sub(r"\\(?:textbf|text|mathrm|mathbf)\s*\{([^{}]*)\}", r"\1", t)
    return bool(_CHOICE.match(t.strip()))


def _is_words(s: str) -> bool:
    """Plain words (no digits, no LaTeX), long enough not to be a product of variables."""
    t = s.strip()
    if not t or not _TEXT_WORDS.match(t):
        return False
    words = re.findall(r"[A-Za-z]+", t)
    if len(words) >= 2 and any(len(w) >= 2 for w in words) and " " in t:
        return True  # several words ("A, C", single letters only, is a list of choices)
    w = words[0] if words else ""
    # "Ted", "Red" (a capitalised word) and "odd" are words; "abc" may be a product.
    return len(w) >= 4 or w.lower() in _SHORT_WORDS or bool(re.fullmatch(r"[A-Z][a-z]{2}", w))


def _is_label(s: str) -> bool:
    """Plain text with digits but no mathematics: "Vendor 2", "6th", "February 3rd"."""
    if "\\" in s or re.search(r"[=^_+*/<>{}]", s):
        return False
    if re.fullmatch(r"\d+(?:st|nd|rd|th)", s.strip()):
        return True
    return any(len(w) >= 4 and w.lower() not in _MATH_WORDS for w in re.findall(r"[A-Za-z]+", s))


def _is_prose(s: str) -> bool:
    """Sentences: at least two real words (3+ letters, not LaTeX commands) outside math."""
    outside = re.sub(r"\$\$.*?\$\$|(?<!\\)\$.*?(?<!\\)\$", " ", s, flags=re.DOTALL)
    outside = re.sub(rf"{_WRAPPER}\s*\{{([^{{}}]*)\}}", r" \1 ", outside)
    outside = re.sub(r"\\[A-Za-z]+", " ", outside)
    words = [
        w
        for w in re.findall(r"(?<![A-Za-z_^{])[A-Za-z]{3,}(?![A-Za-z])", outside)
        if w.lower() not in _MATH_WORDS
    ]
    if len(words) < 2 or not re.search(r"[A-Za-z]{2,}[\s,.;:!?]+\(?[A-Za-z]{2,}", outside):
        return False  # "SRAC=LRAC" is an equation between symbols, not a sentence
    # "10 \text{ square feet}", "8\sqrt{3} \text{ square inches}": a value with a unit.
    core = _strip_units(_normalize(re.sub(r"(?<!\\)\$", " ", s)))
    core = re.sub(r"\\[A-Za-z]+", " ", core)
    return any(w.lower() not in _MATH_WORDS for w in re.findall(r"[A-Za-z]{3,}", core))


def _strip_wrappers(s: str) -> str:
    return re.sub(rf"{_WRAPPER}\s*\{{([^{{}}]*)\}}", r"\1", s).strip()


def _number_type(s: str, problem: str | None = None) -> str | None:
    t = _strip_units(s)
    if not t:
        return None
    if re.search(r"\d_\{?\d", t):  # 204_5: a base subscript
        return None
    if problem and "," in t and re.search(r"separated by commas", problem, re.IGNORECASE):
        return None  # a list of answers, not a thousands separator
    if re.search(r",\s", t):
        return None  # "45, 135": a list; thousands separators have no space after them
    t = t.replace(" ", "")
    while len(t) > 2 and t[0] == "{" and t[-1] == "}" and braces_balanced(t[1:-1]):
        t = t[1:-1]
    if _INT.match(t) or _THOUSANDS.match(t) and "." not in t:
        return "integer"
    if _THOUSANDS.match(t) or _DECIMAL.match(t):
        return "decimal"
    if _SCIENTIFIC.match(t):
        return "decimal"
    if _FRACTION.match(t):
        return "fraction"
    return None


def _strip_units(s: str) -> str:
    t = s.replace("\\$", "").replace("\\%", "").replace("%", "")
    t = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|°", "", t)
    t = re.sub(r"\\text\s*\{\s*(?:and|or)\s*\}", ",", t)

    def unwrap(m: re.Match[str]) -> str:
        content = m.group(1).replace("~", " ").strip()
        if re.fullmatch(r"[-+]?[\d.,/ ]+", content):  # \text{13}: a number, keep it
            return content
        if re.fullmatch(r"[A-Za-z][A-Za-z .²³/\-]*", content) or content == "":
            return " "  # a unit
        return m.group(0)

    t = _WRAPPED_UNIT.sub(unwrap, t)
    t = t.strip()
    um = _UNIT_WORDS.match(t)
    if um and not re.search(r"\\|[A-Za-z]", um.group("num")):
        unit = um.group("unit").strip()
        if not re.fullmatch(r"[eE][-+]?\d+", unit) and unit.lower() not in _MATH_WORDS:
            t = um.group("num")
    return t.strip()


def _enclosing(s: str) -> tuple[str, str, str] | None:
    """``(open, inner, close)`` when ``s`` is one bracketed group from first to last char."""
    if s.startswith("\\{") and s.endswith("\\}"):
        open_, close, inner = "\\{", "\\}", s[2:-2]
    elif s.startswith("\\langle") and s.endswith("\\rangle"):
        open_, close, inner = "<", ">", s[7:-7]
    elif len(s) >= 2 and s[0] in "([" and s[-1] in ")]":
        open_, close, inner = s[0], s[-1], s[1:-1]
    else:
        return None
    # The opening bracket must close at the very end: "(1,2) \cup (3,4)" is not one group.
    return (open_, inner, close) if brackets_balanced(inner) else None


def _interval_like(s: str) -> bool:
    g = _enclosing(s)
    if not g or g[0] not in "([" or g[2] not in ")]":
        return False
    parts = split_top_level(g[1], ",")
    return len(parts) == 2 and all(parts)


def _structure_type(s: str, problem: str | None) -> str | None:
    if "\\cup" in s:
        pieces = [p.strip() for p in re.split(r"\\cup", s)]
        if all(_interval_like(p) or _enclosing(p) and _enclosing(p)[0] == "\\{" for p in pieces):
            return "interval"
    g = _enclosing(s)
    if g:
        open_, inner, close = g
        parts = split_top_level(inner, ",")
        if open_ == "\\{":
            return "set"
        if open_ == "<":
            return "tuple"
        if len(parts) >= 2 and all(parts):
            if len(parts) == 2:
                if open_ != {")": "(", "]": "["}[close]:
                    return "interval"
                if "\\infty" in inner:
                    return "interval"
                if open_ == "[":
                    return "interval"
                if problem and _INTERVAL_HINT.search(problem):
                    return "interval"
            return "tuple"
    parts = split_top_level(s, ",")
    if len(parts) >= 2 and all(parts):
        return "set"
    return None
