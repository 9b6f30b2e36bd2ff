"""The LaTeX answer module (mathrecipes.latex): one reading of boxes and math delimiters for the
gold answers at ingest and the model answers at grading."""

from __future__ import annotations

import pytest

from mathrecipes import answers, latex
from mathrecipes.grading import extract_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{5}", "5"),
        ("\\fbox{7}", "7"),
        ("or $\\framebox{204}$ minutes", "204"),
        ("\\framebox[2cm]{12}", "12"),  # optional width
        ("\\framebox [1in][c]{9}", "9"),  # width and position
        ("\\boxed{\\frac{\\frac{1}{2}}{3}}", "\\frac{\\frac{1}{2}}{3}"),  # nested braces
        ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),  # escaped braces do not count
        ("\\boxed{\\}}", "\\}"),
        ("\\boxed{a{b}c}", "a{b}c"),
        ("\\boxed{\\$5}", "\\$5"),  # an escaped dollar inside is kept
        ("\\boxed{ 16 }", "16"),
        ("\\boxed 5.", "5"),  # space form: one token, no trailing . , ;
        ("\\boxed 5,", "5"),
        ("$\\boxed 42$", "42"),
        ("first \\boxed{3} then \\fbox{2}", "2"),
        ("\\boxed{2}, \\framebox{3}", "3"),
        ("\\boxed{\\boxed{8}}", "8"),
        ("\\boxed{3} and later an empty \\boxed{ }", "3"),
        ("\\boxed{4} then a cut-off \\boxed{\\frac{1}{", "4"),
        ("\\boxed[2cm]{4}", None),  # only \framebox takes [...]
        ("\\boxed5", None),
        ("\\boxedx", None),
        ("no box here", None),
        ("", None),
    ],
)
def test_last_boxed(text, expected):
    assert latex.last_boxed(text) == expected
    assert answers.last_boxed is latex.last_boxed  # ingest reads gold answers with it


def test_boxes_spans_and_arguments():
    text = "a \\boxed{1} b \\framebox[2cm]{x} c \\fbox 7. d \\boxed{}"
    assert [(text[s:e], arg) for s, e, arg in latex.boxes(text)] == [
        ("\\boxed{1}", "1"),
        ("\\framebox[2cm]{x}", "x"),
        ("\\fbox 7.", "7"),
        ("\\boxed{}", ""),
    ]
    assert latex.box_argument("\\boxed{1", 6) is None  # unbalanced


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$x$", "x"),
        ("  $$x+1$$ ", "x+1"),
        ("\\(x\\)", "x"),
        ("\\[x\\]", "x"),
        ("$\\(x\\)$", "x"),  # repeatedly
        ("$5\\$", "$5\\$"),  # an escaped dollar does not close
        ("$\\$5$", "\\$5"),
        ("\\$5", "\\$5"),
        ("$a$ and $b$", "$a$ and $b$"),  # two spans, not one
        ("$x$.", "$x$."),  # not around the whole text
        ("x", "x"),
    ],
)
def test_strip_delimiters(text, expected):
    assert latex.strip_delimiters(text) == expected


@pytest.mark.parametrize(
    ("completion", "answer", "rule"),
    [
        ("so $\\framebox{204}$ minutes", "204", "boxed"),
        ("\\framebox[2cm]{12}", "12", "boxed"),
        ("\\fbox{7}", "7", "boxed"),
        ("\\boxed{\\frac{\\frac{1}{2}}{3}}", "\\frac{\\frac{1}{2}}{3}", "boxed"),
        ("\\boxed 5,", "5", "boxed"),
        ("\\boxed{$5\\$$}", "5\\$", "boxed"),
        ("The answer is $5\\$", "$5\\$", "answer_is"),  # the escaped dollar stays
    ],
)
def test_grading_reads_answers_as_ingest_does(completion, answer, rule):
    assert extract_answer(completion) == (answer, rule)
    if rule == "boxed":
        assert answers.clean_gold(answers.last_boxed(completion)) == answer
    else:
        assert answers.clean_gold(answer) == answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a{b}c", True), ("{a{b}}", True), ("\\{a", True), ("", True), ("a}{b", False), ("{a", False)],
)
def test_braces_balanced(text, expected):
    assert latex.braces_balanced(text) is expected


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("1, 2", ["1", "2"]),
        ("(1,2), \\{3,4\\}, [5,6], 7", ["(1,2)", "\\{3,4\\}", "[5,6]", "7"]),
        ("\\langle 1, 2\\rangle", ["\\langle 1, 2\\rangle"]),
        ("\\frac{1,2}{3}", ["\\frac{1,2}{3}"]),
        ("0.25\\,\\text{ cm}", ["0.25\\,\\text{ cm}"]),  # a thin space, not a separator
        ("\\(1, 2\\)", ["\\(1", "2\\)"]),  # \( opens nothing
        ("", [""]),
    ],
)
def test_split_top_level(text, parts):
    assert latex.split_top_level(text) == parts
    assert latex.brackets_balanced(text)


def test_brackets_balanced():
    assert not latex.brackets_balanced("1,2) \\cup (3,4")
    assert not latex.brackets_balanced("\\langle 1, 2")
    assert latex.brackets_balanced("(1,2] \\cup \\{3\\}")
