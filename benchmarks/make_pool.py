"""A realistic selection pool from the real training files, with planted duplicates.

    python benchmarks/make_pool.py N OUT.parquet [--seed 0]

The base problems are the real rows under ``$MATHRECIPES_SHARED_DATA`` (default
``../shared/data``): MATH train (7,500), GSM8K train (7,473), DeepScaleR MATH answers (7,474) and
AIME 1983-2023 (975). A real corpus of N rows has far more distinct problems than these 23k, so
each distinct pool row is two real problems one after the other with every number redrawn (the
text, its LaTeX and its length stay real; pairs sharing one problem have a Jaccard of about a
third, well below any near-dup threshold). Of the N rows:

* 2% are exact copies of another pool row (same text, or the same after case / spacing changes:
  the same normalized text);
* 10% are near copies: one small edit (a word dropped, replaced or two words swapped), a
  5-word-shingle Jaccard of about 0.7-0.95 depending on the length;
* 0.5% are benchmark problems: MATH-500 and GSM8K test problems as they are, re-spaced,
  lower-cased or with a short preamble (verbatim, normalized and n-gram matches);
* the rest are distinct.

Rows have the project's record schema (:data:`mathrecipes.records.SCHEMA`), ids ``pool/<8 digits>``
in random order (a copy is as likely before its original as after). Seeded: the same N and seed
give the same file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mathrecipes.records import SCHEMA

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MATHRECIPES_SHARED_DATA", REPO.parent / "shared" / "data"))
EXACT, NEAR, BENCH = 0.02, 0.10, 0.005
_NUMBER = re.compile(r"\d+")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def base_problems(shared: Path = SHARED) -> list[tuple[str, str, str]]:
    """(problem, solution, answer) of the real training rows."""
    out = []
    for r in _jsonl(shared / "train/math/train.jsonl"):
        out.append((r["problem"], r["solution"], ""))
    for r in _jsonl(shared / "train/gsm8k/train.jsonl"):
        sol, _, ans = r["answer"].rpartition("####")
        out.append((r["question"], sol.strip(), ans.strip()))
    for name in ("math.json", "aime.json"):
        for r in json.loads((shared / "train/deepscaler" / name).read_text()):
            out.append((r["problem"], r.get("solution") or "", str(r["answer"])))
    return out


def benchmark_problems(shared: Path = SHARED) -> list[tuple[str, str]]:
    """(problem, answer) of MATH-500 and GSM8K test."""
    out = [(r["problem"], r["answer"]) for r in _jsonl(shared / "eval/math500/test.jsonl")]
    for r in _jsonl(shared / "eval/gsm8k/test.jsonl"):
        out.append((r["question"], r["answer"].rpartition("####")[2].strip()))
    return out


def _renumber(text: str, rng: random.Random) -> str:
    return _NUMBER.sub(lambda m: str(rng.randrange(2, 10 ** min(len(m.group()) + 1, 6))), text)


def _near_edit(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    if len(words) < 3:
        return text + " again"
    i = rng.randrange(len(words) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        del words[i]
    elif kind == 1:
        words[i] = rng.choice(("also", "then", "now", "each", "exactly"))
    else:
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def _exact_variant(text: str, rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        return text
    if kind == 1:
        return text.upper()
    return "  " + text.replace(" ", "  ") + " "


def _bench_variant(text: str, rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return text
    if kind == 1:
        return "\n".join(text.split(" "))  # verbatim up to whitespace
    if kind == 2:
        return text.lower()  # normalized
    return "Solve the following problem carefully. " + text  # n-gram overlap


def make_pool(n: int, seed: int = 0, shared: Path = SHARED) -> pa.Table:
    rng = random.Random(seed)
    base = base_problems(shared)
    bench = benchmark_problems(shared)
    n_exact, n_near, n_bench = round(n * EXACT), round(n * NEAR), round(n * BENCH)
    n_unique = n - n_exact - n_near - n_bench
    problems: list[str] = []
    solutions: list[str] = []
    answers: list[str] = []
    for _ in range(n_unique):
        a, b = base[rng.randrange(len(base))], base[rng.randrange(len(base))]
        problems.append(_renumber(a[0] + "\n\n" + b[0], rng))
        solutions.append(a[1] + "\n\n" + b[1])
        answers.append(b[2] or "1")
    kinds = ["unique"] * n_unique
    for count, kind, edit in (
        (n_exact, "exact", _exact_variant),
        (n_near, "near", _near_edit),
    ):
        for _ in range(count):
            k = rng.randrange(n_unique)
            problems.append(edit(problems[k], rng))
            solutions.append(solutions[k])
            answers.append(answers[k])
            kinds.append(kind)
    for _ in range(n_bench):
        text, ans = bench[rng.randrange(len(bench))]
        problems.append(_bench_variant(text, rng))
        solutions.append("")
        answers.append(ans or "1")
        kinds.append("bench")
    order = list(range(n))
    rng.shuffle(order)
    ids = [""] * n
    for slot, k in enumerate(order):
        ids[k] = f"pool/{slot:08d}"
    meta = [json.dumps({"planted": k}) for k in kinds]
    cols = {
        "id": ids,
        "source": ["pool"] * n,
        "problem": problems,
        "solution": solutions,
        "answer": answers,
        "answer_type": ["expression"] * n,
        "meta": meta,
    }
    table = pa.table(cols, schema=SCHEMA)
    return table.take(pa.array(sorted(range(n), key=ids.__getitem__)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help="rows")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t = time.perf_counter()
    table = make_pool(args.n, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, args.out, row_group_size=50_000)
    print(f"{args.out}: {table.num_rows} rows in {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
