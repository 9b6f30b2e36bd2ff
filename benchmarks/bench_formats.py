"""Speed of the format adapters (:mod:`mathrecipes.sources.formats`) on the shared data files.

    python benchmarks/bench_formats.py [FILE:FORMAT ...] [--repeat 3]

Without arguments: the MATH test set (5,000 rows, ``eval/math/test.jsonl`` as ``math``) and the
GSM8K test set under ``$MATHRECIPES_SHARED_DATA`` (default ``../shared/data``). Reads each file
once, then times ``adapt(row, i)`` over all its rows (the best of ``--repeat`` passes) and prints
rows, seconds and rows per second. Adapters are meant to be cheap (regexes only) so that ingest
can run them on every row (MATH test set: 0.17 s, 29,000 rows/s, on the 2-core development
machine). Prints figures only; nothing is asserted (tests/test_formats.py checks what the adapters return).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from mathrecipes.sources.formats import get_format
from mathrecipes.sources.local import LocalSource

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MATHRECIPES_SHARED_DATA", REPO.parent / "shared" / "data"))
DEFAULT = ["eval/math/test.jsonl:math", "eval/gsm8k/test.jsonl:gsm8k"]


def read_raw(path: Path, fmt: str) -> list[dict]:
    """The file's raw rows, read as ingest reads them."""
    spec = {"source": "local", "path": str(path), "format": fmt}
    return [raw for _, raw in LocalSource(path.name, spec).rows()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", default=DEFAULT, help="FILE:FORMAT (FILE below SHARED)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for spec in args.files:
        name, _, fmt = spec.rpartition(":")
        path = Path(name) if Path(name).is_absolute() else SHARED / name
        raws = read_raw(path, fmt)
        adapt = get_format(fmt).adapt
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            for i, raw in enumerate(raws):
                adapt(raw, i)
            best = min(best, time.perf_counter() - start)
        rate = len(raws) / best if best else float("inf")
        print(f"{name} ({fmt}): {len(raws)} rows in {best:.3f} s, {rate:,.0f} rows/s")


if __name__ == "__main__":
    main()
