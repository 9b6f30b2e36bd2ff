"""What a config can detect: the minimum detectable effect of a paired recipe comparison.

Per benchmark, the MDE (accuracy points, two-sided test at alpha 0.05 with power 0.8) of the delta
between two recipes of one student on the configured problems x samples x seeds, from
:mod:`mathrecipes.stats` (:class:`~mathrecipes.stats.VarianceParts`). The variance parts come
from a pilot, an earlier run's grades (:func:`pilot_parts`: every recipe against the baseline,
:func:`~mathrecipes.stats.delta_parts` averaged over the pairs), else from the stated default:
omega^2 = 0.2 between problems for one greedy sample (../shared/design/STATISTICS.md). The
default has no sample or seed part, so with it more seeds or samples buy nothing that can be
shown; a pilot with one seed (or one sample per problem) cannot show it for seeds (samples)
either. Nothing is invented to fill the gap.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mathrecipes.stats import ALPHA, POWER, VarianceParts, delta_parts, min_detectable_effect

DEFAULT_OMEGA2 = 0.2
LEFT_OUT = "gold_unparseable"  # the grader could not read the gold: not a verdict on the model
FACTORS = (2, 4)


@dataclass(frozen=True)
class Pilot:
    """Variance parts measured on an earlier run's grades of one benchmark."""

    parts: VarianceParts
    pairs: int  # recipe-vs-baseline pairs averaged
    students: tuple[str, ...]
    problems: int  # problems every recipe and seed answered
    seeds: int  # fewest seeds of a recipe
    samples: int  # samples per problem (median)


def _seed_of(folder: str) -> int | None:
    try:
        return int(folder.removeprefix("seed-"))
    except ValueError:
        return None


def read_grades(path: Path) -> dict[str, tuple[int, int]]:
    """``problem_id -> (correct samples, graded samples)`` of a grade file, without the rows
    whose gold the grader could not parse."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["problem_id", "sample", "verdict"]).to_pydict()
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for pid, verdict in zip(table["problem_id"], table["verdict"], strict=True):
        if verdict == LEFT_OUT:
            continue
        out[pid][0] += verdict == "correct"
        out[pid][1] += 1
    return {pid: (c, n) for pid, (c, n) in out.items()}


def _tables(runs: dict[int, dict[str, tuple[int, int]]], ids: list[str]):
    """``n x S`` per-problem shares correct and within-problem sample variances."""
    seeds = sorted(runs)
    c = np.array([[runs[s][i][0] for s in seeds] for i in ids], dtype=np.float64)
    n = np.array([[runs[s][i][1] for s in seeds] for i in ids], dtype=np.float64)
    means = c / n
    with np.errstate(invalid="ignore", divide="ignore"):
        within = np.where(n > 1, c * (n - c) / (n * (n - 1)), np.nan)
    return means, within


def pilot_parts(
    results: Path, benchmark: str, baseline: str, students: set[str] | None = None
) -> Pilot | None:
    """The variance parts of ``benchmark`` in an earlier run's grades: per student, every other
    recipe against ``baseline`` on the problems all of them answered, averaged over the pairs.
    ``students``: only these (when the earlier run has any of them). None without a baseline
    and one other recipe, or when every pair differs nowhere (a pilot that scored every
    problem alike, e.g. all wrong, measures no variance)."""
    root = Path(results) / "grades"
    found: dict[str, dict[str, dict[int, dict[str, tuple[int, int]]]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for path in sorted(root.glob(f"*/*/seed-*/{benchmark}.parquet")) if root.is_dir() else []:
        seed = _seed_of(path.parent.name)
        if seed is None:
            continue
        student, recipe = path.parent.parent.parent.name, path.parent.parent.name
        try:
            found[student][recipe][seed] = read_grades(path)
        except (OSError, ValueError, KeyError):
            continue
    usable = {s for s, r in found.items() if baseline in r and len(r) > 1}
    if students and usable & students:
        usable &= students
    parts, used, sizes, seeds, samples = [], [], [], [], []
    for student in sorted(usable):
        recipes = found[student]
        runs = [t for r in recipes.values() for t in r.values()]
        ids = sorted(set.intersection(*(set(t) for t in runs)))
        if len(ids) < 2:
            continue
        base_means, base_within = _tables(recipes[baseline], ids)
        k = int(statistics.median(n for t in recipes[baseline].values() for _, n in t.values()))
        for recipe in sorted(recipes):
            if recipe == baseline:
                continue
            cand_means, cand_within = _tables(recipes[recipe], ids)
            parts.append(delta_parts(cand_means, base_means, cand_within, base_within, samples=k))
        used.append(student)
        sizes.append(len(ids))
        seeds.append(min(len(r) for r in recipes.values()))
        samples.append(k)
    if not parts:
        return None
    if all(p.problem == p.sample == p.seed == 0 for p in parts):
        return None  # every recipe scored alike on every problem: nothing to measure
    mean = VarianceParts(
        problem=float(np.mean([p.problem for p in parts])),
        sample=float(np.mean([p.sample for p in parts])),
        seed=float(np.mean([p.seed for p in parts])),
    )
    return Pilot(mean, len(parts), tuple(used), min(sizes), min(seeds), min(samples))


def mde_points(parts: VarianceParts, problems: float, samples: int, seeds: int) -> float:
    """The MDE in accuracy points (0-100) of a design."""
    var = parts.delta_variance(int(problems), samples, seeds)
    return 100 * min_detectable_effect(var, ALPHA, POWER)


def benchmark_power(
    benchmark: str,
    problems: float | None,
    samples: int,
    seeds: int,
    temperature: float,
    pilot: Pilot | None,
    problems_note: str = "",
) -> dict:
    """The MDE of one benchmark's design and of 2x / 4x the seeds and samples."""
    parts = pilot.parts if pilot else VarianceParts(problem=DEFAULT_OMEGA2)
    row = {
        "benchmark": benchmark,
        "problems": problems,
        "samples": samples,
        "seeds": seeds,
        "variance": {
            "source": "pilot" if pilot else "default",
            "problem": parts.problem,
            "sample": parts.sample,
            "seed": parts.seed,
        },
        "mde_points": None,
        "what_if": [],
    }
    if pilot:
        row["variance"].update(
            pairs=pilot.pairs,
            students=list(pilot.students),
            pilot_problems=pilot.problems,
            pilot_seeds=pilot.seeds,
            pilot_samples=pilot.samples,
        )
    if problems is None:
        row["note"] = problems_note or "problems unknown: no MDE"
    elif problems < 2:
        row["note"] = "fewer than 2 problems: no MDE"
        problems = None
    else:
        row["mde_points"] = mde_points(parts, problems, samples, seeds)
    for change, factor in [("seeds", f) for f in FACTORS] + [("samples", f) for f in FACTORS]:
        new_seeds = seeds * factor if change == "seeds" else seeds
        new_samples = samples * factor if change == "samples" else samples
        entry = {"change": f"{change} x{factor}", "seeds": new_seeds, "samples": new_samples,
                 "mde_points": None}  # fmt: skip
        if change == "samples" and temperature == 0:
            entry["why"] = "greedy decoding (temperature 0): more samples are identical copies"
        elif pilot is None:
            entry["why"] = (
                "no pilot: the default variance has no sample/seed split, so more seeds or "
                "samples buy nothing that can be shown"
            )
        elif change == "seeds" and pilot.seeds < 2:
            entry["why"] = "the pilot has one seed: its seed variance is unknown"
        elif change == "samples" and pilot.samples < 2:
            entry["why"] = "the pilot has one sample per problem: its sample variance is unknown"
        elif problems is None:
            entry["why"] = row.get("note", "problems unknown")
        else:
            entry["mde_points"] = mde_points(parts, problems, new_samples, new_seeds)
        row["what_if"].append(entry)
    return row


__all__ = ["DEFAULT_OMEGA2", "Pilot", "benchmark_power", "mde_points", "pilot_parts", "read_grades"]
