"""LaTeX answer text: boxes and math delimiters, one behaviour for ingest and grading.

Gold answers at ingest (:mod:`mathrecipes.answers`: the last box of a reference solution) and
model answers at grading (:mod:`mathrecipes.grading.extraction`: the last box of a completion)
are read by the same functions, so a box or a delimiter means the same thing on both sides.
Pure functions on strings (``re`` only).

* Boxes: ``\\boxed``, ``\\fbox`` and ``\\framebox`` (its optional ``[width]`` and
  ``[position]`` arguments skipped). The argument is ``{...}`` with braces matched (escaped
  ``\\{`` ``\\}`` do not count; an unbalanced one, as in a truncated text, is no box) or, after
  a space, one token up to whitespace or ``$`` without a trailing ``.``/``,``/``;``
  (``\\boxed 5.`` is ``5``).
* Math delimiters: ``$$..$$``, ``$..$``, ``\\(..\\)``, ``\\[..\\]`` around the whole text; an
  escaped dollar is not a delimiter (``$5\\$`` stays as it is) and neither are two spans
  (``$a$ and $b$``).
* Braces: an escaped ``\\{`` or ``\\}`` is not a brace (:func:`braces_balanced`); brackets
  (``(``, ``[``, ``{``, ``\\{``, ``\\langle`` and their closers) for lists of values
  (:func:`split_top_level`, :func:`brackets_balanced`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = [
    "BOX_COMMAND",
    "box_argument",
    "boxes",
    "braces_balanced",
    "brackets_balanced",
    "last_boxed",
    "split_top_level",
    "strip_delimiters",
]

BOX_COMMAND = re.compile(r"\\(?:boxed|fbox|framebox)(?![A-Za-z])")
_BOX_TOKEN = re.compile(r"[^\s$]+")
_MATH_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")


def box_argument(text: str, pos: int, *, optional: bool = False) -> tuple[str, int] | None:
    """The argument of a box command that ends at ``pos`` and the index just past it.

    ``{...}`` (brace matched) or, after spaces, one token (``\\boxed 5``); with ``optional``
    (``\\framebox``) up to two ``[...]`` arguments are skipped first. None when there is no
    argument: an unbalanced brace, a command glued to something else (``\\boxed5``).
    """
    j = _skip_blanks(text, pos)
    if optional:
        for _ in range(2):  # \framebox[2cm][c]{...}
            if j < len(text) and text[j] == "[" and (close := text.find("]", j)) != -1:
                j = _skip_blanks(text, close + 1)
    if j < len(text) and text[j] == "{":
        end = _closing_brace(text, j)
        return None if end is None else (text[j + 1 : end], end + 1)
    if j == pos:
        return None
    m = _BOX_TOKEN.match(text, j)
    return (m.group(0).rstrip(".,;"), m.end()) if m else None


def boxes(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, argument)`` of every box in ``text`` with an argument, in text order
    (nested boxes each count; empty arguments are kept: the caller decides what is usable)."""
    out = []
    for m in BOX_COMMAND.finditer(text):
        found = box_argument(text, m.end(), optional=m.group(0) == "\\framebox")
        if found is not None:
            out.append((m.start(), found[1], found[0]))
    return out


def last_boxed(text: str) -> str | None:
    """The argument of the last box in ``text`` that is not blank, stripped of surrounding
    whitespace, otherwise unchanged; None when there is none.

    ``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``; in ``\\boxed{3} ... \\boxed{}`` the
    ``3``; in ``\\boxed{\\boxed{8}}`` the inner ``8``.
    """
    if not text or "box" not in text:
        return None
    for _, _, content in reversed(boxes(text)):
        if content.strip():
            return content.strip()
    return None


def strip_delimiters(s: str) -> str:
    """``s`` stripped of whitespace and of math delimiters around the whole of it, repeatedly
    (``$$x$$``, ``\\[x\\]``, ``$\\(x\\)$`` give ``x``). An escaped closing dollar (``$5\\$``)
    and a text of several spans (``$a$ and $b$``) are left as they are."""
    s = s.strip()
    while True:
        for open_, close in _MATH_DELIMITERS:
            lo, lc = len(open_), len(close)
            if len(s) >= lo + lc and s.startswith(open_) and s.endswith(close):
                if close == "$" and s.endswith("\\$"):
                    continue  # "$5\$": an escaped dollar, not a closing delimiter
                inner = s[lo : len(s) - lc]
                if "$" in close and _UNESCAPED_DOLLAR.search(inner):
                    continue  # "$a$ and $b$": not one math span
                s = inner.strip()
                break
        else:
            return s


def braces_balanced(s: str) -> bool:
    """Whether every ``}`` in ``s`` closes an earlier ``{`` and every ``{`` is closed (escaped
    braces do not count): ``a{b}c`` yes, ``a}{b`` and ``{a`` no."""
    depth = 0
    for _, depth in _brace_depths(s, 0):
        if depth < 0:
            return False
    return depth == 0


def split_top_level(s: str, sep: str = ",") -> list[str]:
    """``s`` split at ``sep`` outside brackets, each part stripped: ``(1,2), \\{3,4\\}, 5``
    gives ``["(1,2)", "\\{3,4\\}", "5"]``.

    Brackets are ``(`` ``[`` ``{`` ``\\{`` ``\\langle``, closed by ``)`` ``]`` ``}`` ``\\}``
    ``\\rangle``; any other command is skipped with the character after its backslash, so the
    comma of the thin space ``\\,`` separates nothing and ``\\(`` opens nothing.
    """
    parts: list[str] = []
    start = 0
    for i, depth in _bracket_depths(s):
        if depth == 0 and s[i] == sep:
            parts.append(s[start:i].strip())
            start = i + 1
    parts.append(s[start:].strip())
    return parts


def brackets_balanced(s: str) -> bool:
    """Whether every closing bracket of ``s`` closes an earlier opening one and every opening
    one is closed (the brackets of :func:`split_top_level`): ``(1,2) \\cup (3,4`` no."""
    depth = 0
    for _, depth in _bracket_depths(s):
        if depth < 0:
            return False
    return depth == 0


def _skip_blanks(text: str, j: int) -> int:
    while j < len(text) and text[j] in " \t":
        j += 1
    return j


def _closing_brace(text: str, j: int) -> int | None:
    """Index of the ``}`` that closes the ``{`` at ``j`` (escaped braces skipped), or None."""
    for i, depth in _brace_depths(text, j):
        if depth == 0:
            return i
    return None


def _brace_depths(text: str, start: int) -> Iterator[tuple[int, int]]:
    """``(index, depth after it)`` of every brace from ``start`` on that is not escaped."""
    depth = 0
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "{}":
            depth += 1 if ch == "{" else -1
            yield i, depth
        i += 1


_OPEN_COMMANDS = ("\\langle", "\\{")
_CLOSE_COMMANDS = ("\\rangle", "\\}")


def _bracket_depths(s: str) -> Iterator[tuple[int, int]]:
    """``(index, depth after it)`` of every token of ``s``: a bracket command, another command
    (its backslash and the next character), or one character."""
    depth = 0
    i = 0
    while i < len(s):
        start = i
        if s.startswith(_OPEN_COMMANDS, i) or s.startswith(_CLOSE_COMMANDS, i):
            opening = s.startswith(_OPEN_COMMANDS, i)
            depth += 1 if opening else -1
            i += 7 if s.startswith(("\\langle", "\\rangle"), i) else 2
        elif s[i] == "\\":
            i += 2
        else:
            if s[i] in "([{":
                depth += 1
            elif s[i] in ")]}":
                depth -= 1
            i += 1
        yield start, depth
