"""How well the tables' intervals and verdicts hold, by simulation (figures; tests/test_stats.py
asserts the default cases).

    python benchmarks/stats_calibration.py [--experiments 1000] [--recipes 3]

The model of tests/test_stats.py: problem difficulty on the logit scale (normal, sd 1.5), a
recipe effect on the logit (the candidate +0.4), a training seed's effect on the logit (normal,
sd --seed-sd values), one 0/1 sample per problem and seed. Prints, per number of problems, seeds
and seed sd, the share of experiments whose 95% paired interval covers the true delta (over
problems and seeds with several seeds; of the two trained models over all problems with one),
and the family-wise error of the Holm verdicts over ten recipes with no true difference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_stats import (  # noqa: E402
    LOGIT_SD,
    TRUE_LOGIT_GAIN,
    _mean_accuracy,
    _population_delta,
    _recipe,
)

from mathrecipes import stats  # noqa: E402


def coverage(problems, seeds, seed_sd, experiments, recipes):
    population = _population_delta(TRUE_LOGIT_GAIN, seed_sd)
    rng = np.random.default_rng(problems * 10 + seeds)
    covered = 0
    for _ in range(experiments):
        theta = rng.normal(0, LOGIT_SD, problems)
        effects: list = []
        gains = [TRUE_LOGIT_GAIN, 0.0] + [0.2] * (recipes - 2)
        tables = [_recipe(rng, theta, g, seeds, seed_sd, effects=effects) for g in gains]
        truth = population
        if seeds == 1:
            truth = float(_mean_accuracy(effects[0])[0] - _mean_accuracy(effects[1])[0])
        est = stats.paired_delta(tables[0], tables[1], *stats.pooled_seed_variance(tables))
        covered += est.lo <= truth <= est.hi
    return covered / experiments


def family_error(problems, seeds, seed_sd, experiments):
    rng = np.random.default_rng(7 + problems + seeds)
    any_verdict = uncorrected = 0
    for _ in range(experiments):
        theta = rng.normal(0, LOGIT_SD, problems)
        tables = [_recipe(rng, theta, 0.0, seeds, seed_sd) for _ in range(11)]
        pooled = stats.pooled_seed_variance(tables)
        ests = [stats.paired_delta(t, tables[0], *pooled) for t in tables[1:]]
        adjusted = stats.holm([e.p for e in ests])
        any_verdict += any(
            stats.verdict(e.value, a) != "inconclusive" for e, a in zip(ests, adjusted, strict=True)
        )
        uncorrected += any(e.p <= 0.05 for e in ests)
    return any_verdict / experiments, uncorrected / experiments


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--experiments", type=int, default=1000)
    ap.add_argument("--recipes", type=int, default=3)
    ap.add_argument("--seed-sd", type=float, nargs="+", default=[0.1, 0.3])
    args = ap.parse_args()
    print(f"coverage of the 95% paired interval ({args.experiments} experiments, "
          f"{args.recipes} recipes pooling the seed variance)")  # fmt: skip
    print("problems  seeds  seed sd  coverage")
    for problems in (500, 30):
        for seeds in (1, 3):
            for sd in args.seed_sd if seeds > 1 else [args.seed_sd[0]]:
                c = coverage(problems, seeds, sd, args.experiments, args.recipes)
                print(f"{problems:8d}  {seeds:5d}  {sd:7.2f}  {100 * c:7.1f}%")
    print("\nten recipes, no true difference: experiments with any better/worse verdict")
    print("problems  seeds  seed sd  Holm     uncorrected")
    for problems, seeds in ((500, 1), (30, 1), (500, 3), (30, 3)):
        sd = 0.0 if seeds == 1 else args.seed_sd[0]
        holm, raw = family_error(problems, seeds, sd, args.experiments)
        print(f"{problems:8d}  {seeds:5d}  {sd:7.2f}  {100 * holm:5.1f}%   {100 * raw:5.1f}%")


if __name__ == "__main__":
    main()
