"""Answer extraction: the final answer of a completion (parent side, regex and string work).

:func:`extract_answer` looks at the *completion only* (never the prompt), last match wins, over
anchors in priority order: a user pattern (``GradeSettings.answer_regex``), boxes (read by
:mod:`mathrecipes.latex`, as gold answers are at ingest), GSM8K ``#### X``, then answer phrases.
There is deliberately no "last number anywhere" fallback. :func:`clean_answer` and
:func:`gold_answer` are the answer-text clean-ups the rest of the grader shares.
"""

from __future__ import annotations

import functools
import re

from mathrecipes import latex

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
        answer = clean_answer(_first_clause(raw or ""))
        if answer:
            return answer
    return None


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, content)`` of every box whose cleaned argument is not empty, in text order."""
    out = []
    for start, end, argument in latex.boxes(text):
        content = clean_answer(argument)
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
        answer = clean_answer(_first_clause(m.group(1)))
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
                    answer = clean_answer(head[: end + len(close)])
                    if answer:
                        return answer, rule
        line, _, after = rest.partition("\n")
        if not line.strip():  # "Final Answer:\n$$42$$"
            line = next((ln for ln in after.split("\n") if ln.strip()), "")
        answer = clean_answer(_first_clause(line))
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


def clean_answer(s: str) -> str:
    """An answer without surrounding math delimiters, a currency ``$`` or trailing periods."""
    s = latex.strip_delimiters(s)
    # A lone leading "$" is a currency sign ("#### $1,234"), not a math delimiter.
    if s.startswith("$") and s.count("$") == 1:
        s = s[1:].strip()
    while s.endswith("."):
        s = s[:-1].rstrip()
    return latex.strip_delimiters(s)


def gold_answer(gold: str) -> str:
    """The gold answer proper: the last ``\\boxed{}`` when the gold is a whole solution."""
    boxed = _last_boxed(gold)
    return gold if boxed is None else boxed
