"""Wall time and peak memory of the tables stage on a large grid of grades.

    python benchmarks/bench_tables.py [--recipes 50] [--benchmarks 4] [--problems 5000]
                                      [--seeds 1] [--samples 1] [--bootstrap 1000]

Writes one grade file per (recipe, seed, benchmark) in a temporary folder: problem difficulty
on the logit scale, a recipe effect per recipe, a seed effect per training run, one 0/1 verdict
per sample (5% no_answer among the wrong ones; answer groups for maj@k), then times
:func:`mathrecipes.tables.make_tables` on them with the bootstrap on (one seed: every cell's
interval is a bootstrap over problems), figure and all, as the `make_tables` job runs it. The
default, 50 x 4 x 5,000, is one million graded rows. Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from mathrecipes.tables import make_tables


def write_grid(root: Path, recipes: int, benchmarks: int, problems: int, seeds: int,
               samples: int) -> list[dict]:  # fmt: skip
    rng = np.random.default_rng(0)
    entries = []
    for b in range(benchmarks):
        theta = rng.normal(0, 1.5, problems)
        ids = np.array([f"bench{b}/{i:06d}" for i in range(problems)])
        for r in range(recipes):
            gain = rng.normal(0, 0.15)
            for s in range(seeds):
                p = 1 / (1 + np.exp(-(theta + gain + rng.normal(0, 0.1))))
                ok = rng.random((problems, samples)) < p[:, None]
                wrong = np.where(rng.random((problems, samples)) < 0.05, "no_answer", "incorrect")
                verdict = np.where(ok, "correct", wrong).reshape(-1)
                group = np.where(ok, 0, rng.integers(1, 4, (problems, samples))).reshape(-1)
                path = root / f"r{r:02d}-s{s}-b{b}.parquet"
                pl.DataFrame(
                    {
                        "problem_id": np.repeat(ids, samples),
                        "sample": np.tile(np.arange(samples), problems),
                        "verdict": verdict,
                        "answer_group": group,
                    }
                ).write_parquet(path)
                entries.append(
                    {
                        "student": "s",
                        "recipe": f"r{r:02d}",
                        "seed": s,
                        "benchmark": f"bench{b}",
                        "grades": str(path),
                        "checkpoint": str(root / "none"),
                        "train": str(root / "none"),
                        "stats": None,
                        "synth": [],
                        "likelihood": None,
                    }  # fmt: skip
                )
    return entries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipes", type=int, default=50)
    ap.add_argument("--benchmarks", type=int, default=4)
    ap.add_argument("--problems", type=int, default=5000)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        entries = write_grid(root, args.recipes, args.benchmarks, args.problems, args.seeds,
                             args.samples)  # fmt: skip
        rows = args.recipes * args.benchmarks * args.problems * args.seeds * args.samples
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        scores = make_tables(
            entries,
            {"baseline": "r00", "bootstrap": args.bootstrap},
            root / "tables",
            root / "figure.png",
        )
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        verdicts = scores["verdict"].value_counts().sort("verdict").rows()
    print(f"graded rows        {rows:,} ({len(entries)} grade files)")
    print(f"make_tables        {seconds:.1f} s ({rows / seconds:,.0f} rows/s)")
    print(f"peak RSS           {peak / 1024:.0f} MiB (before: {before / 1024:.0f} MiB)")
    print(f"verdicts           {dict(verdicts)}")


if __name__ == "__main__":
    main()
