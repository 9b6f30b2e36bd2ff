"""From per-sample grades (and per-problem likelihoods) to the numbers of the tables.

Grades are joined on ``problem_id`` across recipes: every metric is a mean over the problems of
a benchmark of a per-problem value, computed per (student, recipe, seed, benchmark), and every
comparison with the baseline recipe is paired problem by problem (:mod:`mathrecipes.stats` has
the methods and their reasons). Rows whose gold could not be parsed (``gold_unparseable``) are
left out and counted.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mathrecipes import stats

# Metrics whose seed variance is each recipe's own, not pooled over the recipes.
UNPOOLED = frozenset({"bpb"})
METRIC = re.compile(r"^(accuracy|bpb|(pass|maj)@([1-9]\d*))$")
LN2 = math.log(2)


@dataclass(frozen=True)
class TableSettings:
    """The ``tables`` section of the config, as the tables stage uses it."""

    baseline: str
    metrics: Sequence[str] | str = "auto"
    alpha: float = stats.ALPHA
    bootstrap: int = 1000
    seed: int = 0
    wilson_below: int = 300

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> TableSettings:
        keys = ("baseline", "metrics", "alpha", "bootstrap", "seed", "wilson_below")
        return cls(**{k: spec[k] for k in keys if k in spec})


@dataclass
class Group:
    """One (student, benchmark): per-problem values of every metric, per recipe."""

    student: str
    benchmark: str
    problems: list[str]
    seeds: list[int]
    samples: int
    # metric -> recipe -> problems x seeds
    values: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    # recipe -> problems x seeds: unbiased within-problem variance of one sample's 0/1 score
    within: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def read_grades(entries: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """Every graded sample of every entry, with the entry's student, recipe, seed, benchmark."""
    frames = []
    for e in entries:
        df = pl.read_parquet(e["grades"])
        if "answer_group" not in df.columns:
            df = df.with_columns(pl.lit(None, pl.Int64).alias("answer_group"))
        frames.append(
            df.select("problem_id", "sample", "verdict", "answer_group").with_columns(
                pl.lit(e["student"]).alias("student"),
                pl.lit(e["recipe"]).alias("recipe"),
                pl.lit(int(e["seed"]), pl.Int64).alias("seed"),
                pl.lit(e["benchmark"]).alias("benchmark"),
            )
        )
    return pl.concat(frames, how="vertical_relaxed")


def per_seed_scores(grades: pl.DataFrame) -> pl.DataFrame:
    """Counts and accuracy per (student, recipe, seed, benchmark)."""
    verdict = pl.col("verdict")
    out = grades.group_by("student", "recipe", "benchmark", "seed").agg(
        samples=pl.len(),
        problems=pl.col("problem_id").n_unique(),
        scored=(verdict != "gold_unparseable").sum(),
        correct=(verdict == "correct").sum(),
        no_answer=(verdict == "no_answer").sum(),
        timeouts=(verdict == "timeout").sum().cast(pl.Int64),
        gold_unparseable=(verdict == "gold_unparseable").sum().cast(pl.Int64),
    )
    scored = pl.col("scored")
    return out.with_columns(
        accuracy=pl.when(scored > 0).then(pl.col("correct") / scored),
        no_answer_rate=pl.when(scored > 0).then(pl.col("no_answer") / scored),
    ).drop("correct", "no_answer")


def resolve_metrics(settings: TableSettings, samples: int, likelihood: bool) -> list[str]:
    """The metrics to report: the configured list, or ``auto`` (accuracy; pass@n and maj@n
    with n > 1 samples per problem; bpb when the likelihood rule ran)."""
    if settings.metrics != "auto":
        return list(settings.metrics)
    metrics = ["accuracy"]
    if samples > 1:
        metrics += [f"pass@{samples}", f"maj@{samples}"]
    if likelihood:
        metrics.append("bpb")
    return metrics


def build_groups(
    grades: pl.DataFrame,
    likelihood: Mapping[tuple[str, str, int, str], str | None],
    metrics: Sequence[str],
) -> list[Group]:
    """Per (student, benchmark), the problems x seeds tables of every metric and recipe."""
    scored = grades.filter(pl.col("verdict") != "gold_unparseable")
    want_maj = [m for m in metrics if m.startswith("maj@")]
    aggs = [
        pl.len().alias("n"),
        (pl.col("verdict") == "correct").sum().alias("c"),
    ]
    if want_maj:
        aggs += [
            pl.col("answer_group").sort_by("sample").alias("groups"),
            (pl.col("verdict") == "correct").sort_by("sample").alias("oks"),
        ]
    per = (
        scored.group_by("student", "benchmark", "recipe", "seed", "problem_id")
        .agg(aggs)
        .sort("student", "benchmark", "recipe", "seed", "problem_id")
    )
    groups = []
    for (student, bench), sub in per.group_by("student", "benchmark", maintain_order=True):
        groups.append(_group(student, bench, sub, likelihood, metrics))
    return groups


def _shared_problems(frames: Mapping[Any, pl.DataFrame], group: Group, what: str) -> list[str]:
    sets = [set(f["problem_id"].to_list()) for f in frames.values()]
    shared = set.intersection(*sets) if sets else set()
    if any(s != shared for s in sets):
        group.notes.append(
            f"{what}: the runs do not all have the same problems; the {len(shared)} they share "
            "are compared"
        )
    return sorted(shared)


def _group(student, bench, sub, likelihood, metrics) -> Group:
    recipes = sorted(sub["recipe"].unique().to_list())
    seeds = sorted(sub["seed"].unique().to_list())
    runs = {(r, s): f for (r, s), f in sub.group_by("recipe", "seed", maintain_order=True)}
    group = Group(student, bench, [], seeds, int(sub["n"].max()))
    group.problems = _shared_problems(runs, group, "grades")
    index = pl.DataFrame({"problem_id": group.problems})
    tables: dict[str, dict[str, list[np.ndarray]]] = {}
    for (recipe, _seed), frame in sorted(runs.items()):
        f = index.join(frame, on="problem_id", how="left")
        n = f["n"].to_numpy().astype(np.int64)
        c = f["c"].to_numpy().astype(np.int64)
        cols: dict[str, np.ndarray] = {}
        for m in metrics:
            if m == "accuracy":
                cols[m] = c / n
            elif m.startswith("pass@"):
                cols[m] = stats.pass_at_k(n, c, int(m.split("@")[1]))
            elif m.startswith("maj@"):
                k = int(m.split("@")[1])
                cols[m] = np.array(
                    [
                        stats.maj_at_k(g, ok, k) if len(g) >= k else math.nan
                        for g, ok in zip(f["groups"].to_list(), f["oks"].to_list(), strict=True)
                    ]
                )
        p = c / n
        cols["_within"] = np.where(n > 1, p * (1 - p) * n / np.maximum(n - 1, 1), 0.0)
        for m, col in cols.items():
            tables.setdefault(m, {}).setdefault(recipe, []).append(col)
    for m, by_recipe in tables.items():
        arrays = {r: np.column_stack(cols) for r, cols in by_recipe.items()}
        if m == "_within":
            group.within = arrays
            continue
        if any(np.isnan(a).any() for a in arrays.values()):
            group.notes.append(f"{m}: fewer samples than k on some problems; metric left out")
            continue
        group.values[m] = arrays
    if "bpb" in metrics:
        _likelihood(group, recipes, likelihood)
    return group


def _likelihood(group: Group, recipes: Sequence[str], files: Mapping) -> None:
    frames = {}
    for r in recipes:
        for s in group.seeds:
            path = files.get((group.student, r, s, group.benchmark))
            if not path or not Path(path).exists():
                group.notes.append("bpb: no likelihood file (likelihood.enabled is false?)")
                return
            # a row whose prompt alone fills the student's window scored nothing (bytes 0)
            frames[(r, s)] = pl.read_parquet(path, columns=["problem_id", "nll", "bytes"]).filter(
                pl.col("bytes") > 0
            )
    if all(f.height == 0 for f in frames.values()):
        group.notes.append(f"bpb: benchmark {group.benchmark} has no reference solutions; skipped")
        return
    problems = _shared_problems(frames, group, "bpb")
    index = pl.DataFrame({"problem_id": problems})
    by_recipe: dict[str, list[np.ndarray]] = {}
    for (r, _s), f in sorted(frames.items()):
        f = index.join(f, on="problem_id", how="left")
        bpb = f["nll"].to_numpy() / LN2 / f["bytes"].to_numpy()
        by_recipe.setdefault(r, []).append(bpb)
    group.values["bpb"] = {r: np.column_stack(cols) for r, cols in by_recipe.items()}


# ------------------------------------------------------------------ cells and reliability


def _bootstrap_seed(settings: TableSettings, *parts: str) -> int:
    return (settings.seed * 1_000_003 + zlib.crc32("/".join(parts).encode())) % 2**32


def cell_rows(groups: Sequence[Group], settings: TableSettings) -> list[dict[str, Any]]:
    """One row per (student, recipe, benchmark, metric): the value, its interval, the paired
    delta against the baseline with its interval, p-value, Holm-adjusted p and verdict."""
    rows: list[dict[str, Any]] = []
    for g in groups:
        for metric, by_recipe in g.values.items():
            rows.extend(_metric_cells(g, metric, by_recipe, settings))
    # Holm across each student's (recipe x benchmark) family, per metric
    families: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if r["recipe"] != settings.baseline:
            families.setdefault((r["student"], r["metric"]), []).append(r)
    for (_, metric), family in families.items():
        adjusted = stats.holm([r["p"] for r in family])
        for r, a in zip(family, adjusted, strict=True):
            r["p_holm"] = None if math.isnan(a) else a
            r["verdict"] = stats.verdict(
                r["delta"] if r["delta"] is not None else 0.0,
                a,
                settings.alpha,
                lower_is_better=metric == "bpb",
            )
    return rows


def _metric_cells(g: Group, metric: str, by_recipe, settings: TableSettings) -> list[dict]:
    recipes = sorted(by_recipe)
    seeds = len(g.seeds)
    # proportions (accuracy, pass@k, maj@k) of one student share a scale: their seed variance
    # is pooled over the recipes; bits per byte does not (a student that never saw the
    # reference format varies by bits, one that did by hundredths): each recipe its own
    pooled = (
        (None, None)
        if metric in UNPOOLED
        else stats.pooled_seed_variance([by_recipe[r] for r in recipes])
    )
    n = next(iter(by_recipe.values())).shape[0]
    binary = metric == "accuracy" and g.samples == 1
    lo_hi: dict[str, tuple[float, float, str]] = {}
    if seeds == 1 and not (binary and n < settings.wilson_below):
        weights = stats.bootstrap_weights(
            n, settings.bootstrap, _bootstrap_seed(settings, g.student, g.benchmark, metric)
        )
        lo, hi = stats.bootstrap_intervals(
            np.column_stack([by_recipe[r] for r in recipes]), weights
        )
        lo_hi = {r: (lo[i], hi[i], "bootstrap") for i, r in enumerate(recipes)}
    out = []
    base = by_recipe.get(settings.baseline)
    for r in recipes:
        y = by_recipe[r]
        value = float(y.mean())
        if r in lo_hi:
            lo, hi, method = lo_hi[r]
        elif seeds == 1:
            lo, hi = stats.wilson(float(y.sum()), n)
            method = "wilson"
        else:
            est = stats.mean_interval(y, *pooled)
            lo, hi, method = est.lo, est.hi, "t"
        row = {
            "student": g.student,
            "recipe": r,
            "benchmark": g.benchmark,
            "metric": metric,
            "problems": n,
            "value": value,
            "lo": float(lo),
            "hi": float(hi),
            "interval": method,
            "delta": None,
            "delta_lo": None,
            "delta_hi": None,
            "p": None,
            "p_holm": None,
            "verdict": "baseline" if r == settings.baseline else "inconclusive",
        }
        if base is not None and r != settings.baseline:
            d = stats.paired_delta(y, base, *pooled)
            row.update(delta=d.value, delta_lo=_num(d.lo), delta_hi=_num(d.hi), p=_num(d.p))
        elif r == settings.baseline:
            row["delta"] = 0.0
        out.append(row)
    return out


def reference_cells(groups: Sequence[Group], settings: TableSettings) -> list[dict[str, Any]]:
    """The cells of served models (references): per (reference, benchmark, metric) the value
    and its own interval, as a recipe's with one seed; no delta, p-value or verdict (a
    reference is not a recipe: nothing is compared with the baseline)."""
    alone = replace(settings, baseline="")  # no reference is anyone's baseline
    rows: list[dict[str, Any]] = []
    for g in groups:
        for metric, by_recipe in g.values.items():
            for row in _metric_cells(g, metric, by_recipe, alone):
                row.update(delta=None, verdict=None)
                rows.append(row)
    return rows


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def reliability_rows(
    groups: Sequence[Group], cells: Sequence[Mapping[str, Any]], settings: TableSettings
) -> list[dict[str, Any]]:
    """Per (student, benchmark, metric): the design as run, its minimum detectable effect, the
    signal-to-noise ratio and the split of a cell's variance into problems, samples and seeds."""
    rows = []
    for g in groups:
        for metric, by_recipe in g.values.items():
            recipes = sorted(by_recipe)
            base = by_recipe.get(settings.baseline)
            seeds = len(g.seeds)
            n = base.shape[0] if base is not None else 0
            samples = g.samples if metric == "accuracy" else 1
            within = g.within if metric == "accuracy" and g.samples > 1 else {}
            parts = [
                stats.delta_parts(
                    by_recipe[r], base, within.get(r), within.get(settings.baseline), samples
                )
                for r in recipes
                if base is not None and r != settings.baseline
            ]
            pooled, _ = stats.pooled_seed_variance([by_recipe[r] for r in recipes])
            row = {
                "student": g.student,
                "benchmark": g.benchmark,
                "metric": metric,
                "problems": n,
                "samples": g.samples,
                "seeds": seeds,
                "recipes": len(recipes),
                "mde": None,
                "snr": None,
                "share_problems": None,
                "share_samples": None,
                "share_seeds": None,
            }
            if parts:
                vp = stats.VarianceParts(
                    problem=float(np.mean([p.problem for p in parts])),
                    sample=float(np.mean([p.sample for p in parts])),
                    seed=float(np.mean([p.seed for p in parts])),
                )
                row["mde"] = stats.min_detectable_effect(vp.delta_variance(n, samples, seeds))
            means = [float(by_recipe[r].mean()) for r in recipes]
            mine = [
                c
                for c in cells
                if (c["student"], c["benchmark"], c["metric"]) == (g.student, g.benchmark, metric)
            ]
            if seeds > 1:
                noise = math.sqrt(pooled)  # one training run's score around its recipe's mean
            else:  # the interval's own width, as a standard error
                noise = float(np.mean([(c["hi"] - c["lo"]) / (2 * stats.z(0.975)) for c in mine]))
            if len(means) > 1 and noise > 0:
                row["snr"] = float(np.std(means, ddof=1)) / noise
            row.update(_variance_shares(by_recipe, within, samples, pooled, seeds))
            rows.append(row)
    return rows


def _variance_shares(by_recipe, within, samples, pooled, seeds) -> dict[str, float]:
    """The variance of a cell's mean, split: problems, samples (within a problem and seed),
    seeds; averaged over recipes, as shares of the total."""
    problem = sample = 0.0
    for r, y in by_recipe.items():
        n = y.shape[0]
        rows = y.mean(axis=1)
        s_part = float(np.mean(within[r])) / (samples * n * y.shape[1]) if r in within else 0.0
        sample += s_part
        problem += max(0.0, float(rows.var(ddof=1)) / n - s_part) if n > 1 else 0.0
    k = len(by_recipe)
    parts = {"problems": problem / k, "samples": sample / k, "seeds": pooled / seeds}
    total = sum(parts.values())
    if total <= 0:
        return {}
    shares = {f"share_{name}": v / total for name, v in parts.items()}
    # not measurable: with one sample the sample noise is inside the problem part; with one
    # seed the seed variance is unknown
    if samples < 2:
        shares["share_samples"] = None
    if seeds < 2:
        shares["share_seeds"] = None
    return shares


def agreement_rows(cells: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """With two or more students over the same recipes: per benchmark and metric, the share of
    recipe pairs that each pair of students orders the same way (DataDecide's decision
    accuracy: whether a small student is a usable proxy for a larger one). A tie counts as an
    order of its own."""
    by: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    for c in cells:
        by.setdefault((c["benchmark"], c["metric"]), {}).setdefault(c["student"], {})[
            c["recipe"]
        ] = c["value"]
    rows = []
    for (bench, metric), students in sorted(by.items()):
        names = sorted(students)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                shared = sorted(set(students[a]) & set(students[b]))
                pairs = [(x, y) for j, x in enumerate(shared) for y in shared[j + 1 :]]
                if not pairs:
                    continue
                same = sum(
                    np.sign(students[a][x] - students[a][y])
                    == np.sign(students[b][x] - students[b][y])
                    for x, y in pairs
                )
                rows.append(
                    {
                        "benchmark": bench,
                        "metric": metric,
                        "student_a": a,
                        "student_b": b,
                        "recipe_pairs": len(pairs),
                        "same_order": int(same),
                        "share": same / len(pairs),
                    }
                )
    return rows
