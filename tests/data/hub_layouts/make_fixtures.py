"""Write the small Hub-layout fixtures used by tests/test_formats.py.

Each directory mimics one Hugging Face dataset repository: the same file path and format and
the same column names and types as its published schema (dataset card ``dataset_info`` /
files listing), with a handful of rows written for these tests (not copied from the datasets).
Rerun after editing: ``python tests/data/hub_layouts/make_fixtures.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent


def write_parquet(rel: str, rows: list[dict], schema: pa.Schema) -> None:
    path = HERE / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=schema)
    pq.write_table(table, path, compression="zstd")


def write_jsonl(rel: str, rows: list[dict]) -> None:
    path = HERE / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_json(rel: str, rows: list[dict]) -> None:
    path = HERE / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


MESSAGES = pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))


def numinamath() -> None:
    """AI-MO/NuminaMath-CoT: data/train-*.parquet; source, problem, solution, messages."""
    rows = [
        {
            "source": "synthetic_math",
            "problem": "What is the sum of the first $20$ positive odd integers?",
            "solution": "The first $n$ odd integers sum to $n^2$, so the sum is "
            "$20^2 = \\boxed{400}$.",
        },
        {
            "source": "cn_k12",
            "problem": "Solve $\\frac{x}{2} + \\frac{x}{3} = 5$.",
            "solution": "Multiplying by $6$ gives $3x + 2x = 30$, so $x = 6$. "
            "The answer is $\\boxed{x = 6}$.",
        },
        {
            "source": "olympiads",
            "problem": "Prove that $n^3 - n$ is divisible by $6$ for every integer $n$.",
            "solution": "Write $n^3 - n = (n-1)n(n+1)$, a product of three consecutive "
            "integers, which contains a multiple of $2$ and a multiple of $3$. $\\blacksquare$",
        },
        {
            "source": "aops_forum",
            "problem": "Find all real $x$ with $x^2 = 2x + 3$.",
            "solution": "Factor: $(x-3)(x+1)=0$, hence $\\boxed{-1, 3}$.",
        },
    ]
    for r in rows:
        r["messages"] = [
            {"content": r["problem"], "role": "user"},
            {"content": r["solution"], "role": "assistant"},
        ]
    schema = pa.schema(
        [
            ("source", pa.string()),
            ("problem", pa.string()),
            ("solution", pa.string()),
            ("messages", MESSAGES),
        ]
    )
    write_parquet("numinamath/data/train-00000-of-00001.parquet", rows, schema)


def openr1_math() -> None:
    """open-r1/OpenR1-Math-220k (config default): data/train-*.parquet."""
    base = {
        "is_reasoning_complete": [True, True],
        "correctness_llama": None,
        "finish_reasons": None,
    }
    rows = [
        {
            "problem": "A rectangle has perimeter $30$ and area $56$. Find its diagonal.",
            "solution": "Sides $a+b=15$, $ab=56$, so $a^2+b^2=225-112=113$ and the diagonal "
            "is $\\sqrt{113}$.",
            "answer": "\\sqrt{113}",
            "problem_type": "Geometry",
            "question_type": "math-word-problem",
            "source": "olympiads",
            "uuid": "0b7c4f6e-2d1a-5c3e-9f10-1a2b3c4d5e6f",
            "generations": [
                "<think>\nPerimeter 30 gives a+b=15...\n</think>\n\\boxed{\\sqrt{113}}",
                "<think>\nLet the sides be a and b...\n</think>\n\\boxed{\\sqrt{113}}",
            ],
            "correctness_math_verify": [True, True],
            "correctness_count": 2,
        },
        {
            "problem": "3. How many divisors does $360$ have?\n(A) 12 (B) 18 (C) 20 (D) 24 (E) 30",
            "solution": "$360 = 2^3 3^2 5$, so it has $4 \\cdot 3 \\cdot 2 = 24$ divisors: (D).",
            "answer": "D",
            "problem_type": "Number Theory",
            "question_type": "MCQ",
            "source": "amc_aime",
            "uuid": "5e3d2c1b-0a9f-58e7-b6c5-d4e3f2a1b0c9",
            "generations": ["<think>\n360 = 8*45 ...\n</think>\n\\boxed{D}", "no answer"],
            "correctness_math_verify": [True, False],
            "correctness_count": 1,
        },
        {
            "problem": "Prove that there are infinitely many primes.",
            "solution": "Suppose finitely many; their product plus one has a new prime factor.",
            "answer": "proof",
            "problem_type": "Number Theory",
            "question_type": "proof",
            "source": "inequalities",
            "uuid": "9a8b7c6d-5e4f-5a3b-8c2d-1e0f9a8b7c6d",
            "generations": ["<think>\nEuclid.\n</think>\nSee the proof above."],
            "correctness_math_verify": [False],
            "correctness_count": 0,
        },
    ]
    for r in rows:
        r.update(base)
        r["messages"] = [
            {"content": r["problem"], "role": "user"},
            {"content": r["generations"][0], "role": "assistant"},
        ]
    schema = pa.schema(
        [
            ("problem", pa.string()),
            ("solution", pa.string()),
            ("answer", pa.string()),
            ("problem_type", pa.string()),
            ("question_type", pa.string()),
            ("source", pa.string()),
            ("uuid", pa.string()),
            ("is_reasoning_complete", pa.list_(pa.bool_())),
            ("generations", pa.list_(pa.string())),
            ("correctness_math_verify", pa.list_(pa.bool_())),
            ("correctness_llama", pa.list_(pa.bool_())),
            ("finish_reasons", pa.list_(pa.string())),
            ("correctness_count", pa.int64()),
            ("messages", MESSAGES),
        ]
    )
    write_parquet("openr1_math/data/train-00000-of-00001.parquet", rows, schema)


def metamathqa() -> None:
    """meta-math/MetaMathQA: MetaMathQA-395K.json, a JSON array."""
    rows = [
        {
            "query": "Tom buys 3 packs of pens at $4 each and pays with a $20 bill. How much "
            "change does he get?",
            "response": "The pens cost 3 * 4 = $12.\nHe gets 20 - 12 = $8 in change.\n"
            "#### 8\nThe answer is: 8",
            "type": "GSM_Rephrased",
            "original_question": "Tom buys 3 packs of pens for $4 each. He pays with a $20 "
            "bill. How much change does he get?",
        },
        {
            "query": "What is the value of $\\frac{1}{2} + \\frac{1}{3}$?",
            "response": "The common denominator is 6, so the sum is $\\frac{3}{6} + "
            "\\frac{2}{6} = \\boxed{\\frac{5}{6}}$.\nThe answer is: \\frac{5}{6}",
            "type": "MATH_AnsAug",
            "original_question": "What is the value of $\\frac{1}{2} + \\frac{1}{3}$?",
        },
        {
            "query": "If the sum of a number and 7 is 1,007, what is the number?",
            "response": "The number is 1,007 - 7 = 1,000.\nThe answer is: 1,000",
            "type": "GSM_SV",
            "original_question": "What is 1,007 minus 7?",
        },
    ]
    write_json("metamathqa/MetaMathQA-395K.json", rows)


def limo() -> None:
    """GAIR/LIMO: limo.jsonl with question, solution, answer."""
    rows = [
        {
            "question": "Find the remainder when $2^{100}$ is divided by $7$.",
            "solution": "Powers of $2$ modulo $7$ repeat with period $3$: $2, 4, 1$. Since "
            "$100 = 3 \\cdot 33 + 1$, the remainder is $\\boxed{2}$.",
            "answer": "2",
        },
        {
            "question": "Let $x$ satisfy $x + 1/x = 3$. Find $x^2 + 1/x^2$.",
            "solution": "Square: $x^2 + 2 + 1/x^2 = 9$, so the value is $\\boxed{7}$.",
            "answer": "7",
        },
    ]
    write_jsonl("limo/limo.jsonl", rows)


def s1k() -> None:
    """simplescaling/s1K: data/train-00000-of-00001.parquet."""
    rows = [
        {
            "solution": "128",
            "question": "How many ordered pairs of positive integers $(a, b)$ satisfy "
            "$ab = 2^{7}$ with $a \\le 2^{7}$?",
            "cot_type": "math",
            "source_type": "qq8933/AIME_1983_2024",
            "metadata": "{'ID': '2021-I-4', 'Year': 2021, 'Problem Number': 4, 'Part': 'I'}",
        },
        {
            "solution": "Let the roots be $r$ and $s$. Then $r + s = 5$ and $rs = 6$, so "
            "$r^2 + s^2 = 25 - 12 = \\boxed{13}$.",
            "question": "The roots of $x^2 - 5x + 6 = 0$ are $r$ and $s$. Find $r^2 + s^2$.",
            "cot_type": "math",
            "source_type": "AI-MO/NuminaMath-CoT/synthetic_math",
            "metadata": "{'source': 'synthetic_math', 'messages': []}",
        },
        {
            "solution": "The entropy of the gas increases because the number of accessible "
            "microstates grows when the volume doubles, by $nR\\ln 2$ in total, and no heat "
            "is exchanged with the surroundings during the free expansion.",
            "question": "An ideal gas expands freely into vacuum, doubling its volume. "
            "What happens to its entropy?",
            "cot_type": "science",
            "source_type": "daman1209arora/jeebench/phy",
            "metadata": "{'subject': 'phy', 'description': 'JEE Adv', 'index': 7}",
        },
    ]
    for r in rows:
        r["cot"] = None
        r["thinking_trajectories"] = ["Let me think step by step. " * 20]
        r["attempt"] = "Final attempt: " + r["solution"][:40]
    schema = pa.schema(
        [
            ("solution", pa.string()),
            ("question", pa.string()),
            ("cot_type", pa.string()),
            ("source_type", pa.string()),
            ("metadata", pa.string()),
            ("cot", pa.null()),
            ("thinking_trajectories", pa.list_(pa.string())),
            ("attempt", pa.string()),
        ]
    )
    write_parquet("s1k/data/train-00000-of-00001.parquet", rows, schema)


def natural_reasoning() -> None:
    """facebook/natural_reasoning: full.jsonl; question, reference_answer, responses."""
    resp = "Llama-3.3-70B-Instruct"
    rows = [
        {
            "question": "A car travels 150 km in 2.5 hours. What is its average speed in km/h?",
            "reference_answer": "60",
            "responses": [{"response_model": resp, "response": "Speed = 150/2.5 = 60 km/h."}],
        },
        {
            "question": "Explain why the sum of two even integers is even.",
            "reference_answer": "Because 2a + 2b = 2(a + b), which is divisible by 2.",
            "responses": [{"response_model": resp, "response": "Let the integers be 2a, 2b."}],
        },
        {
            "question": "Derive the escape velocity from the surface of a planet of mass M "
            "and radius R.",
            "reference_answer": "",
            "responses": [{"response_model": resp, "response": "Energy conservation gives ..."}],
        },
        {
            "question": "What fraction of a day is 8 hours?",
            "reference_answer": "$\\frac{1}{3}$",
            "responses": [{"response_model": resp, "response": "8/24 = 1/3."}],
        },
    ]
    write_jsonl("natural_reasoning/full.jsonl", rows)


def orca_math() -> None:
    """microsoft/orca-math-word-problems-200k: data/train-00000-of-00001.parquet."""
    rows = [
        {
            "question": "Jungkook has 6 apples and buys 9 more. How many apples does he have?",
            "answer": "Jungkook starts with 6 apples and buys 9 more, so he has 6 + 9 = 15 apples.",
        },
        {
            "question": "A tank holds 1,250 liters and loses 3 liters per minute. How many "
            "liters remain after 2 hours?",
            "answer": "Two hours is 2 * 60 = 120 minutes, so the tank loses 3 * 120 = 360 "
            "liters. The amount left is 1,250 - 360 = 890 liters.",
        },
        {
            "question": "What is 7 divided by 3?",
            "answer": "7 / 3 = 2.3333..., so the result is approximately 2.33 (rounded to 2 "
            "decimal places).",
        },
        {
            "question": "Find the number which, when multiplied by 4, gives 18.",
            "answer": "Let the number be x. Then 4x = 18, so x = 18 / 4 = $\\boxed{4.5}$.",
        },
    ]
    schema = pa.schema([("question", pa.string()), ("answer", pa.string())])
    write_parquet("orca_math/data/train-00000-of-00001.parquet", rows, schema)


def olympiadbench() -> None:
    """Hothan/OlympiadBench: OlympiadBench/<config>/<config>.parquet."""
    common = {
        "context": None,
        "image_1": None,
        "image_2": None,
        "image_3": None,
        "image_4": None,
        "image_5": None,
        "modality": "Text-only",
        "difficulty": "Competition",
        "error": None,
        "question_type": "Open-ended",
        "subject": "Math",
        "language": "English",
    }
    rows = [
        {
            "id": 1606,
            "question": "Compute the number of positive divisors of $2^{4} \\cdot 3^{2}$.",
            "solution": [
                "Each divisor is $2^a 3^b$ with $0 \\le a \\le 4$, $0 \\le b \\le 2$, "
                "so there are $5 \\cdot 3=15$ divisors."
            ],
            "final_answer": ["15"],
            "is_multiple_answer": False,
            "unit": None,
            "answer_type": "Numerical",
            "subfield": "Number Theory",
        },
        {
            "id": 1720,
            "question": "Find all real numbers $x$ such that $x^{2}-5 x+6=0$.",
            "solution": ["Factor as $(x-2)(x-3)=0$."],
            "final_answer": ["$2$", "$3$"],
            "is_multiple_answer": True,
            "unit": None,
            "answer_type": "Numerical",
            "subfield": "Algebra",
        },
        {
            "id": 2453,
            "question": "Determine the set of $x$ with $\\frac{1}{x}<1$.",
            "solution": ["If $x>0$ we need $x>1$; if $x<0$ it always holds."],
            "final_answer": ["$(-\\infty, 0) \\cup(1, \\infty)$"],
            "is_multiple_answer": False,
            "unit": None,
            "answer_type": "Interval",
            "subfield": "Algebra",
        },
        {
            "id": 2599,
            "question": "Find the point $(a, b)$ on $y=x^{2}$ closest to $(0,1)$ with $a>0$.",
            "solution": ["Minimise $a^{2}+(a^{2}-1)^{2}$: $a^{2}=\\frac{1}{2}$."],
            "final_answer": ["$\\left(\\frac{\\sqrt{2}}{2}, \\frac{1}{2}\\right)$"],
            "is_multiple_answer": False,
            "unit": None,
            "answer_type": "Tuple",
            "subfield": "Geometry",
        },
        {
            "id": 2801,
            "question": "A square has diagonal $10$. Find its area.",
            "solution": ["The side is $\\frac{10}{\\sqrt{2}}$, so the area is $50$."],
            "final_answer": ["$50$"],
            "is_multiple_answer": False,
            "unit": "cm^2",
            "answer_type": "Numerical",
            "subfield": "Geometry",
        },
    ]
    for r in rows:
        r.update(common)
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("question", pa.string()),
            ("solution", pa.list_(pa.string())),
            ("final_answer", pa.list_(pa.string())),
            ("context", pa.string()),
            ("image_1", pa.null()),
            ("image_2", pa.null()),
            ("image_3", pa.null()),
            ("image_4", pa.null()),
            ("image_5", pa.null()),
            ("modality", pa.string()),
            ("difficulty", pa.string()),
            ("is_multiple_answer", pa.bool_()),
            ("unit", pa.string()),
            ("answer_type", pa.string()),
            ("error", pa.string()),
            ("question_type", pa.string()),
            ("subfield", pa.string()),
            ("subject", pa.string()),
            ("language", pa.string()),
        ]
    )
    write_parquet(
        "olympiadbench/OlympiadBench/OE_TO_maths_en_COMP/OE_TO_maths_en_COMP.parquet",
        rows,
        schema,
    )


def main() -> None:
    numinamath()
    openr1_math()
    metamathqa()
    limo()
    s1k()
    natural_reasoning()
    orca_math()
    olympiadbench()


if __name__ == "__main__":
    main()
