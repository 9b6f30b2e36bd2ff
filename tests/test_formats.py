"""Format adapters (mathrecipes.sources.formats) and answer helpers (mathrecipes.answers).

The shared-data tests read every eval/train file under the shared data directory with its
adapter; run with ``-s`` to see the per-file answer-type distributions and extraction misses.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mathrecipes.answers import (
    classify_answer_type,
    clean_gold,
    format_number,
    gsm8k_final,
    last_boxed,
    last_number,
)
from mathrecipes.records import ANSWER_TYPES, check_record, dumps_meta
from mathrecipes.sources.formats import FORMATS, Format, answer_type_distribution, get_format

HUB = Path(__file__).parent / "data" / "hub_layouts"

# --------------------------------------------------------------------------------------------
# answers.py
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so $x = \\boxed{5}$.", "5"),
        ("$\\boxed{\\frac{1}{2}}$", "\\frac{1}{2}"),
        ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("first \\boxed{3} then \\boxed{2}", "2"),
        ("the answer is \\boxed 5.", "5"),
        ("$\\boxed 42$", "42"),
        ("\\fbox{7}", "7"),
        ("or $\\framebox{204}$ minutes", "204"),
        ("\\framebox[2cm]{12}", "12"),
        ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),
        ("\\boxed{\\text{(C)}}", "\\text{(C)}"),
        ("\\boxed{ 16 }", "16"),
        ("\\boxed{3} and later an empty \\boxed{}", "3"),
        ("\\boxed{4} then a cut-off \\boxed{\\frac{1}{", "4"),
        ("\\boxed{\\boxed{8}}", "8"),
        ("no box here", None),
        ("\\boxedx", None),
        ("", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("She makes 9 * 2 = $<<9*2=18>>18.\n#### 18", "18"),
        ("#### 1,234", "1234"),
        ("#### 7,425,000\n", "7425000"),
        ("#### -3", "-3"),
        ("#### 2.5.", "2.5"),
        ("#### 1\n#### 2", "2"),
        ("####", None),
        ("no marker", None),
    ],
)
def test_gsm8k_final(text, expected):
    assert gsm8k_final(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so he has 6 + 9 = 15 apples.", "15"),
        ("The amount left is 1,250 - 360 = 890 liters.", "890"),
        ("approximately 2.33 (rounded to 2 decimal places).", "2.33"),
        ("it is -4.", "-4"),
        ("the ratio is 3/4.", "3/4"),
        ("the 5th term", None),
        ("no numbers", None),
    ],
)
def test_last_number(text, expected):
    assert last_number(text) == expected


def test_format_number_and_clean_gold():
    assert format_number(27.0) == "27"
    assert format_number(-1.0) == "-1"
    assert format_number(0.5) == "0.5"
    assert format_number(3) == "3"
    assert format_number("025") == "025"
    with pytest.raises(TypeError):
        format_number(True)
    with pytest.raises(ValueError):
        format_number(float("nan"))
    assert clean_gold("$10-4 n$") == "10-4 n"
    assert clean_gold("$y=1-x$.") == "y=1-x"
    assert clean_gold("$\\frac{9}{2} $") == "\\frac{9}{2}"
    assert clean_gold("$a$ and $b$") == "$a$ and $b$"
    assert clean_gold("-\\frac{5}{3}.") == "-\\frac{5}{3}"
    assert clean_gold("30^\\circ.") == "30^\\circ"
    assert clean_gold("No solution.") == "No solution"
    assert clean_gold("\\left\\{x \\right.") == "\\left\\{x \\right."
    assert clean_gold("1, 2, ...") == "1, 2, ..."
    assert clean_gold("3:30 p.m.") == "3:30 p.m."
    assert clean_gold("\\$5") == "\\$5"
    assert clean_gold("  ") is None
    assert clean_gold(None) is None


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # the examples of the brief
        ("016", "integer"),
        ("-3.5", "decimal"),
        ("\\frac{1}{2}", "fraction"),
        ("3/4", "fraction"),
        ("(0,1]", "interval"),
        ("[2, \\infty)", "interval"),
        ("\\{1,2\\}", "set"),
        ("(3, \\frac{\\pi}{2})", "tuple"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "tuple"),
        ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "matrix"),
        ("\\begin{bmatrix} 1 & 0 \\\\ 0 & 1 \\end{bmatrix}", "matrix"),
        ("A", "choice"),
        ("(A)", "choice"),
        ("\\text{(C)}", "choice"),
        ("\\textbf{(E)}", "choice"),
        ("(\\text{E})", "choice"),
        ("\\text{Evelyn}", "text"),
        ("odd", "text"),
        ("No solution", "text"),
        ("\\sqrt{2}", "expression"),
        ("x^2+1", "expression"),
        # numbers with delimiters, units, separators
        ("$27$", "integer"),
        ("7,425,000", "integer"),
        ("10,\\!080", "integer"),
        ("11,\\! 111,\\! 111,\\! 100", "integer"),
        ("14{,}916", "integer"),
        ("\\$32,\\!348", "integer"),
        ("\\$18.90", "decimal"),
        ("28\\%", "integer"),
        ("90^\\circ", "integer"),
        ("15\\mbox{ cm}^2", "integer"),
        ("5.4 \\text{ cents}", "decimal"),
        ("50 gallons", "integer"),
        ("\\text{13}", "integer"),
        (".5", "decimal"),
        ("1.6 \\times 10^{-3}", "decimal"),
        ("4.5e33", "decimal"),
        ("\\dfrac{9}{7}", "fraction"),
        ("\\frac12", "fraction"),
        ("-(1/3)", "fraction"),
        ("2\\frac{1}{2}", "fraction"),
        ("6\\frac15", "fraction"),
        ("204_5", "expression"),
        ("3s^2", "expression"),
        ("6x-5", "expression"),
        ("292i", "expression"),
        ("8\\sqrt{3} \\text { square inches}", "expression"),
        # lists, assignments, intervals
        ("1,-2", "set"),
        ("45^\\circ, 135^\\circ", "set"),
        ("19 \\text{ and }43", "set"),
        ("7, -2, \\text{ and } -5", "set"),
        ("B, C", "set"),
        ("\\text{A,D}", "set"),
        ("x=5", "integer"),
        ("k = \\frac{1}{3}", "fraction"),
        ("x=-2,6", "set"),
        ("x=1, x=e^{2}", "set"),
        ("A=18, B=44 / 3, C=10 / 3", "tuple"),
        ("B=C", "expression"),
        ("x \\in [-2,7]", "interval"),
        ("(-\\infty,-8)\\cup (8,\\infty)", "interval"),
        ("\\{-1\\} \\cup [0,7)", "interval"),
        ("[1, 4]", "interval"),
        ("[1, 2, 3]", "tuple"),
        ("(1,2)", "tuple"),
        ("(6,31,-1)", "tuple"),
        ("\\langle 1, 2 \\rangle", "tuple"),
        ("\\{x \\mid x<0\\}", "set"),
        ("y = 2x + 3", "expression"),
        ("1 \\pm \\sqrt{19}", "expression"),
        ("SRAC=LRAC", "expression"),
        # text
        ("\\text{June 20}", "text"),
        ("\\text{4:30 p.m.}", "text"),
        ("9\\text{ a.m.}", "text"),
        ("3:30 p.m.", "text"),
        ("3:1", "expression"),
        ("Vendor 2", "text"),
        ("6th", "text"),
        ("Ted", "text"),
        ("abc", "expression"),
        ("\\text{M}", "expression"),
        ("5:45", "expression"),
        ("10 \\text{ square feet}", "integer"),
        ("x", "expression"),
        ("It is the plane $2 x+3 y-z=0$", "text"),
        ("", "text"),
    ],
)
def test_classify_answer_type(answer, expected):
    assert classify_answer_type(answer) == expected


def test_classify_uses_problem_context():
    # (a, b) is a point unless the problem asks for an interval.
    assert classify_answer_type("(1,2)") == "tuple"
    assert classify_answer_type("(1,2)", problem="Express your answer in interval notation.") == (
        "interval"
    )
    # "70,110" reads as seventy thousand one hundred ten, unless a comma list was requested.
    assert classify_answer_type("70,110") == "integer"
    assert classify_answer_type("70,110", problem="Enter all solutions, separated by commas.") == (
        "set"
    )


def test_classify_always_returns_a_known_type():
    odd = ["$", "\\", "{", "(", ")", "[1,", "\\boxed{", "$$ $$", "\\text{}", "—", "1/0/2", "∞"]
    for a in odd:
        assert classify_answer_type(a) in ANSWER_TYPES


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

REQUIRED = {
    "canonical",
    "gsm8k",
    "math",
    "math500",
    "minerva",
    "aime",
    "amc",
    "olympiadbench",
    "svamp",
    "asdiv",
    "college_math",
    "numinamath",
    "openr1_math",
    "metamathqa",
    "limo",
    "s1k",
    "natural_reasoning",
    "deepscaler",
    "orca_math",
}


def test_registry():
    assert set(FORMATS) >= REQUIRED
    for name, f in FORMATS.items():
        assert isinstance(f, Format) and f.name == name
        assert f.fields and "\n" not in f.fields
        assert callable(f.adapt)
        assert f.hub_id is None or "/" in f.hub_id
    assert get_format("gsm8k").hub_id == "openai/gsm8k"
    assert get_format("gsm8k").hub_config == "main"
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_format("gsm8k").name = "x"  # type: ignore[misc]


def test_get_format_unknown_lists_the_known_names():
    with pytest.raises(ValueError) as e:
        get_format("nope")
    assert "nope" in str(e.value)
    for name in ("gsm8k", "math500", "orca_math"):
        assert name in str(e.value)


def test_answer_type_distribution():
    rows = [{"answer_type": "integer"}, {"answer_type": "set"}, {"answer_type": "integer"}]
    assert answer_type_distribution(rows) == {"integer": 2, "set": 1}
    assert list(answer_type_distribution(rows)) == ["integer", "set"]


def test_canonical_passes_fields_through():
    fmt = get_format("canonical")
    row = {
        "id": "q7",
        "source": "elsewhere",
        "problem": "1+1?",
        "solution": "2",
        "answer": "2",
        "answer_type": "integer",
        "meta": '{"level": 1}',
        "extra": "x",
    }
    out = fmt.adapt(row, 3)
    assert out == {
        "id": "q7",
        "problem": "1+1?",
        "solution": "2",
        "answer": "2",
        "answer_type": "integer",
        "meta": {"level": 1, "extra": "x", "orig_source": "elsewhere"},
    }
    # No id, no answer_type: the index and the classifier fill in.
    out = fmt.adapt({"problem": "p", "answer": "$\\frac{1}{2}$", "meta": {"a": 1}}, 3)
    assert out["id"] == "0000003"
    assert out["answer"] == "\\frac{1}{2}"
    assert out["answer_type"] == "fraction"
    assert out["meta"] == {"a": 1}


def test_number_answers_from_other_hub_copies():
    svamp = get_format("svamp").adapt(
        {"ID": "chal-1", "Body": "A has 3.", "Question": "How many?", "Answer": "145.0"}, 0
    )
    assert svamp["answer"] == "145" and svamp["answer_type"] == "integer"
    amc = get_format("amc").adapt({"id": 3, "problem": "p", "answer": 2.5}, 0)
    assert amc["answer"] == "2.5" and amc["answer_type"] == "decimal" and amc["id"] == "3"
    # Maxwell-Jia/AIME_2024 style capitalised columns
    aime = get_format("aime").adapt(
        {"ID": "2024-I-1", "Problem": "p", "Solution": "... \\boxed{204}", "Answer": 204}, 0
    )
    assert (aime["id"], aime["answer"], aime["solution"]) == ("2024-I-1", "204", "... \\boxed{204}")
    # no answer column: the solution's box
    aime = get_format("aime").adapt({"problem": "p", "solution": "so $\\boxed{073}$"}, 9)
    assert (aime["id"], aime["answer"]) == ("0000009", "073")


def test_meta_is_json_safe():
    fmt = get_format("olympiadbench")
    row = {
        "id": 5,
        "question": "q",
        "final_answer": ["$1$"],
        "solution": ["s"],
        "image_1": {"bytes": b"\x89PNG", "path": "a.png"},
        "image_2": None,
        "answer_type": "Numerical",
        "is_multiple_answer": False,
        "weird": float("nan"),
        "blob": b"xx",
    }
    out = fmt.adapt(row, 0)
    assert out["meta"]["n_images"] == 1
    assert "image_1" not in out["meta"] and "blob" not in out["meta"]
    assert out["meta"]["weird"] is None
    json.loads(dumps_meta(out["meta"]))


# --------------------------------------------------------------------------------------------
# Real files under the shared data directory
# --------------------------------------------------------------------------------------------

SHARED_FILES = [
    ("eval/math500/test.jsonl", "math500", 500),
    ("eval/math/test.jsonl", "math", 5000),
    ("eval/gsm8k/test.jsonl", "gsm8k", 1319),
    ("eval/gsm8k/test_socratic.jsonl", "gsm8k", 1319),
    ("eval/aime24/test.jsonl", "aime", 30),
    ("eval/amc23/test.jsonl", "amc", 40),
    ("eval/minerva_math/test.jsonl", "minerva", 272),
    ("eval/svamp/test.jsonl", "svamp", 1000),
    ("eval/asdiv/test.jsonl", "asdiv", 2215),
    ("eval/college_math/test.jsonl", "college_math", 2818),
    ("train/gsm8k/train.jsonl", "gsm8k", 7473),
    ("train/math/train.jsonl", "math", 7500),
    ("train/deepscaler/math.json", "deepscaler", 7474),
    ("train/deepscaler/aime.json", "deepscaler", 975),
]

# Rows whose gold answer cannot be extracted, and why (checked so that a change is noticed).
KNOWN_MISSES = {
    # The solution's only box is empty: "\boxed{}" (both are "no primes" answers, i.e. 0).
    "train/math/train.jsonl": {"train/number_theory/7115.json", "train/number_theory/7117.json"},
    # answer is null (886, 1009) or "" (5328, 5330) in the DeepScaleR file.
    "train/deepscaler/math.json": {"0000886", "0001009", "0005328", "0005330"},
}

MIN_EXTRACTION_RATE = 0.995


def read_raw(path: Path) -> list[dict]:
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, list) else data.get("data", [])
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def adapt_file(path: Path, fmt: str) -> list[dict]:
    adapt = get_format(fmt).adapt
    return [adapt(raw, i) for i, raw in enumerate(read_raw(path))]


def misses(rows: list[dict]) -> list[dict]:
    return [r for r in rows if not r["answer"]]


def report_misses(name: str, rows: list[dict]) -> str:
    """One line per row without a gold answer: id and the end of its solution (printed)."""
    lines = [f"{name}: {len(misses(rows))} of {len(rows)} rows without a gold answer"]
    for r in misses(rows):
        tail = (r["solution"] or "<no solution>")[-80:].replace("\n", " ")
        lines.append(f"  {r['id']}: answer_raw={r['meta'].get('answer_raw')!r} ... {tail}")
    return "\n".join(lines)


@pytest.mark.parametrize(("rel", "fmt", "count"), SHARED_FILES, ids=[f[0] for f in SHARED_FILES])
def test_shared_file_loads_with_its_adapter(shared_data, rel, fmt, count):
    path = shared_data / rel
    rows = adapt_file(path, fmt)
    assert len(rows) == count

    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids), "ids must be unique within a file"
    for r in rows:
        assert set(r) == {"id", "problem", "solution", "answer", "answer_type", "meta"}
        assert r["problem"].strip()
        assert r["answer_type"] in ANSWER_TYPES
        assert r["answer"] is None or (isinstance(r["answer"], str) and r["answer"].strip())
        if r["answer"]:
            check_record({**r, "id": f"{fmt}/{r['id']}", "source": fmt}, where=r["id"])
        json.loads(dumps_meta(r["meta"]))

    missed = misses(rows)
    print()
    print(report_misses(rel, rows))
    print(f"{rel}: answer types {answer_type_distribution(rows)}")
    rate = 1 - len(missed) / len(rows)
    assert rate >= MIN_EXTRACTION_RATE, report_misses(rel, rows)
    assert {r["id"] for r in missed} == KNOWN_MISSES.get(rel, set())


def test_shared_answer_type_distributions(shared_data):
    """Print the answer-type distribution of every file (``pytest -s``) and pin a few."""
    dist = {}
    for rel, fmt, _ in SHARED_FILES:
        dist[rel] = answer_type_distribution(adapt_file(shared_data / rel, fmt))
    print()
    for rel, d in dist.items():
        print(f"{rel:36s} {d}")
    for rel in ("eval/gsm8k/test.jsonl", "train/gsm8k/train.jsonl", "eval/aime24/test.jsonl"):
        assert dist[rel] == {"integer": sum(dist[rel].values())}
    assert dist["eval/svamp/test.jsonl"] == {"integer": 1000}
    assert set(dist["eval/math500/test.jsonl"]) == set(ANSWER_TYPES)


def test_known_gold_answers(shared_data):
    m500 = adapt_file(shared_data / "eval/math500/test.jsonl", "math500")
    first = m500[0]
    assert first["answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert first["answer_type"] == "tuple"
    assert first["id"] == "test/precalculus/807.json"
    assert first["meta"]["subject"] == "Precalculus" and first["meta"]["level"] == 2

    raw_aime = read_raw(shared_data / "eval/aime24/test.jsonl")
    aime = adapt_file(shared_data / "eval/aime24/test.jsonl", "aime")
    assert [r["answer"] for r in aime] == [r["answer"] for r in raw_aime]
    assert all(isinstance(r["answer"], str) for r in aime)
    padded = {r["id"]: r["answer"] for r in aime if r["answer"].startswith("0")}
    assert padded and all(len(a) == 3 for a in padded.values())
    assert "025" in padded.values()
    assert aime[0]["id"] == "60" and aime[0]["meta"]["url"].startswith("https://")
    assert "question" not in aime[0]["meta"]  # a duplicate of problem

    amc = adapt_file(shared_data / "eval/amc23/test.jsonl", "amc")
    assert amc[0]["answer"] == "27" and amc[0]["meta"]["answer_raw"] == 27.0
    assert all("." not in r["answer"] for r in amc)

    svamp = adapt_file(shared_data / "eval/svamp/test.jsonl", "svamp")
    assert svamp[0]["answer"] == "145" and svamp[0]["id"] == "chal-777"
    assert svamp[0]["problem"].startswith("There are 87 oranges")
    assert "93 groups. How big is each group of bananas?" in svamp[0]["problem"]

    asdiv = adapt_file(shared_data / "eval/asdiv/test.jsonl", "asdiv")
    assert asdiv[0]["answer"] == "9" and asdiv[0]["answer_type"] == "integer"
    assert asdiv[0]["meta"]["answer_unit"] == "apples"
    assert asdiv[0]["meta"]["answer_raw"] == "9 (apples)"
    assert asdiv[0]["problem"] == (
        "Seven red apples and two green apples are in the basket. "
        "How many apples are in the basket?"
    )
    by_raw = {r["meta"].get("answer_raw", r["answer"]): r for r in asdiv}
    assert by_raw["3:4"]["answer"] == "3/4" and by_raw["3:4"]["answer_type"] == "fraction"
    assert by_raw["5:45"]["answer"] == "5:45" and by_raw["5:45"]["answer_type"] == "text"
    assert by_raw["-(1/3)"]["answer"] == "-1/3"
    assert by_raw["-(1/3)"]["answer_type"] == "fraction"
    assert by_raw["Yes"]["answer_type"] == "text"

    gsm = adapt_file(shared_data / "eval/gsm8k/test.jsonl", "gsm8k")
    assert gsm[0]["answer"] == "18" and gsm[0]["id"] == "0000000"
    assert gsm[0]["solution"].endswith("#### 18")
    assert all("," not in r["answer"] for r in gsm)
    socratic = adapt_file(shared_data / "eval/gsm8k/test_socratic.jsonl", "gsm8k")
    assert [r["answer"] for r in socratic] == [r["answer"] for r in gsm]
    assert socratic[0]["meta"]["style"] == "socratic"

    math_test = adapt_file(shared_data / "eval/math/test.jsonl", "math")
    assert math_test[0]["answer"] == "2" and math_test[0]["id"] == "0"
    assert math_test[0]["meta"]["level"] == "Level 3" and math_test[0]["meta"]["type"] == "Algebra"
    math_train = adapt_file(shared_data / "train/math/train.jsonl", "math")
    assert math_train[0]["id"] == "train/algebra/0.json" and math_train[0]["answer"] == "0"

    minerva = adapt_file(shared_data / "eval/minerva_math/test.jsonl", "minerva")
    assert minerva[0]["answer"] == "1.6" and minerva[0]["answer_type"] == "decimal"

    college = adapt_file(shared_data / "eval/college_math/test.jsonl", "college_math")
    assert college[0]["answer"] == "10-4 n"  # "$10-4 n$" without the dollars
    assert college[0]["id"] == "Beginning_and_Intermediate_Algebra/exercise.0.4.61"

    ds_aime = adapt_file(shared_data / "train/deepscaler/aime.json", "deepscaler")
    assert ds_aime[0]["answer"] == "60" and ds_aime[0]["meta"]["year"] == 1983


# --------------------------------------------------------------------------------------------
# Hub-layout fixtures (datasets not under the shared data directory)
# --------------------------------------------------------------------------------------------

HUB_FILES = {
    "numinamath": "numinamath/data/train-00000-of-00001.parquet",
    "openr1_math": "openr1_math/data/train-00000-of-00001.parquet",
    "metamathqa": "metamathqa/MetaMathQA-395K.json",
    "limo": "limo/limo.jsonl",
    "s1k": "s1k/data/train-00000-of-00001.parquet",
    "natural_reasoning": "natural_reasoning/full.jsonl",
    "orca_math": "orca_math/data/train-00000-of-00001.parquet",
    "olympiadbench": "olympiadbench/OlympiadBench/OE_TO_maths_en_COMP/OE_TO_maths_en_COMP.parquet",
}

# (id, answer, answer_type) per row of each fixture
HUB_EXPECTED = {
    "numinamath": [
        ("0000000", "400", "integer"),
        ("0000001", "x = 6", "integer"),
        ("0000002", None, "text"),  # a proof: no box
        ("0000003", "-1, 3", "set"),
    ],
    "openr1_math": [
        ("0b7c4f6e-2d1a-5c3e-9f10-1a2b3c4d5e6f", "\\sqrt{113}", "expression"),
        ("5e3d2c1b-0a9f-58e7-b6c5-d4e3f2a1b0c9", "D", "choice"),
        ("9a8b7c6d-5e4f-5a3b-8c2d-1e0f9a8b7c6d", None, "text"),  # answer "proof"
    ],
    "metamathqa": [
        ("0000000", "8", "integer"),
        ("0000001", "\\frac{5}{6}", "fraction"),
        ("0000002", "1000", "integer"),
    ],
    "limo": [("0000000", "2", "integer"), ("0000001", "7", "integer")],
    "s1k": [
        ("0000000", "128", "integer"),  # a short solution is the answer
        ("0000001", "13", "integer"),  # boxed
        ("0000002", None, "text"),  # a long solution without a box
    ],
    "natural_reasoning": [
        ("0000000", "60", "integer"),
        ("0000001", "Because 2a + 2b = 2(a + b), which is divisible by 2", "text"),
        ("0000002", None, "text"),
        ("0000003", "\\frac{1}{3}", "fraction"),
    ],
    "orca_math": [
        ("0000000", "15", "integer"),
        ("0000001", "890", "integer"),
        ("0000002", "2.33", "decimal"),
        ("0000003", "4.5", "decimal"),
    ],
    "olympiadbench": [
        ("1606", "15", "integer"),
        ("1720", "2, 3", "set"),
        ("2453", "(-\\infty, 0) \\cup(1, \\infty)", "interval"),
        ("2599", "\\left(\\frac{\\sqrt{2}}{2}, \\frac{1}{2}\\right)", "tuple"),
        ("2801", "50", "integer"),
    ],
}


@pytest.mark.parametrize("name", sorted(HUB_FILES))
def test_hub_layout_fixture(name):
    rows = adapt_file(HUB / HUB_FILES[name], name)
    got = [(r["id"], r["answer"], r["answer_type"]) for r in rows]
    assert got == HUB_EXPECTED[name]
    for r in rows:
        assert r["problem"].strip()
        assert r["answer_type"] in ANSWER_TYPES
        json.loads(dumps_meta(r["meta"]))


def test_hub_meta_keeps_scalars_and_drops_generations():
    r1 = adapt_file(HUB / HUB_FILES["openr1_math"], "openr1_math")
    meta = r1[0]["meta"]
    assert meta["problem_type"] == "Geometry" and meta["question_type"] == "math-word-problem"
    assert meta["source"] == "olympiads" and meta["correctness_count"] == 2
    assert meta["n_generations"] == 2 and meta["n_correct_math_verify"] == 2
    for long in ("generations", "messages", "is_reasoning_complete", "correctness_math_verify"):
        assert long not in meta
    assert r1[2]["meta"]["answer_raw"] == "proof"

    s1 = adapt_file(HUB / HUB_FILES["s1k"], "s1k")
    assert s1[0]["meta"]["cot_type"] == "math"
    assert s1[0]["meta"]["metadata"].startswith("{'ID': '2021-I-4'")
    assert "thinking_trajectories" not in s1[0]["meta"] and "attempt" not in s1[0]["meta"]

    nm = adapt_file(HUB / HUB_FILES["numinamath"], "numinamath")
    assert nm[0]["meta"] == {"source": "synthetic_math"}

    nr = adapt_file(HUB / HUB_FILES["natural_reasoning"], "natural_reasoning")
    assert nr[0]["meta"] == {"n_responses": 1, "response_models": ["Llama-3.3-70B-Instruct"]}
    assert nr[0]["solution"] == ""

    ob = adapt_file(HUB / HUB_FILES["olympiadbench"], "olympiadbench")
    assert ob[4]["meta"]["unit"] == "cm^2"
    assert ob[1]["meta"]["ob_answer_type"] == "Numerical"
    assert ob[0]["meta"]["n_images"] == 0 and "image_1" not in ob[0]["meta"]
    assert ob[0]["solution"].startswith("Each divisor")

    mm = adapt_file(HUB / HUB_FILES["metamathqa"], "metamathqa")
    assert mm[0]["meta"]["type"] == "GSM_Rephrased"
    assert mm[0]["solution"].endswith("The answer is: 8")

    orca = adapt_file(HUB / HUB_FILES["orca_math"], "orca_math")
    assert [r["meta"]["answer_rule"] for r in orca] == ["last_number"] * 3 + ["boxed"]


def test_hub_fixture_through_datasets(tmp_path):
    """The adapters take ``datasets`` rows too (parquet loaded offline from the fixture)."""
    import datasets

    path = HUB / HUB_FILES["olympiadbench"]
    ds = datasets.load_dataset(
        "parquet", data_files=str(path), split="train", cache_dir=str(tmp_path)
    )
    fmt = get_format("olympiadbench")
    rows = [fmt.adapt(row, i) for i, row in enumerate(ds)]
    assert [(r["id"], r["answer"], r["answer_type"]) for r in rows] == HUB_EXPECTED["olympiadbench"]
