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
(a copy is as likely before its original as after), written in id order a row group at a time
(every row is made from its own seed, so memory does not grow with N: 10M rows take about
10 minutes of one core and ~6 GB of disk). Seeded: the same N and seed give the same file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

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


def _row_rng(seed: int, g: int) -> random.Random:
    """The generator of pool row ``g`` (its own, so any row can be made alone)."""
    return random.Random(seed * 1_000_003_001 + g)


class _Maker:
    """Pool row ``g`` (``0 <= g < n``) made on demand: the first ``n_unique`` are distinct rows,
    then the exact copies, the near copies and the benchmark problems; a copy remakes its
    original from that row's own seed, so no row is kept in memory."""

    def __init__(self, n: int, seed: int, shared: Path) -> None:
        self.seed = seed
        self.base = base_problems(shared)
        self.bench = benchmark_problems(shared)
        n_exact, n_near, n_bench = round(n * EXACT), round(n * NEAR), round(n * BENCH)
        self.n_unique = n - n_exact - n_near - n_bench
        self.bounds = (self.n_unique, self.n_unique + n_exact, self.n_unique + n_exact + n_near)

    def unique(self, g: int) -> tuple[str, str, str]:
        rng = _row_rng(self.seed, g)
        a, b = self.base[rng.randrange(len(self.base))], self.base[rng.randrange(len(self.base))]
        return _renumber(a[0] + "\n\n" + b[0], rng), a[1] + "\n\n" + b[1], b[2] or "1"

    def row(self, g: int) -> tuple[str, str, str, str]:
        """(problem, solution, answer, kind) of row ``g``."""
        if g < self.n_unique:
            return (*self.unique(g), "unique")
        rng = _row_rng(self.seed, g)
        if g < self.bounds[2]:
            kind, edit = ("exact", _exact_variant) if g < self.bounds[1] else ("near", _near_edit)
            problem, solution, answer = self.unique(rng.randrange(self.n_unique))
            return edit(problem, rng), solution, answer, kind
        text, ans = self.bench[rng.randrange(len(self.bench))]
        return _bench_variant(text, rng), "", ans or "1", "bench"


def pool_batches(
    n: int, seed: int = 0, shared: Path = SHARED, batch_rows: int = 50_000
) -> Iterator[pa.RecordBatch]:
    """The pool in id order, ``batch_rows`` rows at a time: ids ``pool/<slot>``, and the row
    at each slot drawn by a seeded permutation (a copy is as likely before its original as
    after). Memory: the permutation (8 bytes a row) and one batch."""
    maker = _Maker(n, seed, shared)
    order = np.random.default_rng(seed).permutation(n)
    for start in range(0, n, batch_rows):
        slots = range(start, min(start + batch_rows, n))
        rows = [maker.row(int(g)) for g in order[slots.start : slots.stop]]
        cols = {
            "id": [f"pool/{s:08d}" for s in slots],
            "source": ["pool"] * len(rows),
            "problem": [r[0] for r in rows],
            "solution": [r[1] for r in rows],
            "answer": [r[2] for r in rows],
            "answer_type": ["expression"] * len(rows),
            "meta": [json.dumps({"planted": r[3]}) for r in rows],
        }
        yield pa.record_batch(cols, schema=SCHEMA)


def make_pool(n: int, seed: int = 0, shared: Path = SHARED) -> pa.Table:
    """The whole pool as one table (small pools; :func:`write_pool` streams)."""
    return pa.Table.from_batches(list(pool_batches(n, seed, shared)), schema=SCHEMA)


def write_pool(n: int, out: Path, seed: int = 0, shared: Path = SHARED) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with pq.ParquetWriter(tmp, SCHEMA) as writer:
        batches = pool_batches(n, seed, shared)
        for batch in tqdm(batches, total=-(-n // 50_000), unit="batch", desc=out.name):
            writer.write_batch(batch, row_group_size=50_000)
    tmp.replace(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help="rows")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t = time.perf_counter()
    write_pool(args.n, args.out, args.seed)
    print(f"{args.out}: {args.n} rows in {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
