"""The statistics behind the tables, checked by simulation against known truths.

Simulated grades follow the model of docs/tables.md: problem difficulty on the logit scale
(normal, sd 1.5), a recipe effect on the logit, a training seed's effect on the logit (normal,
sd 0.1: about 2.4 accuracy points at 50%, the size Madaan et al. 2024 measure across seeds), one
0/1 sample per problem and seed. Every simulation is seeded, so the figures are reproducible.
"""

from __future__ import annotations

import functools
import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from mathrecipes import stats

LOGIT_SD = 1.5
SEED_SD = 0.1
TRUE_LOGIT_GAIN = 0.4


def _sig(x):
    return 1 / (1 + np.exp(-x))


def _population_delta(gain: float, seed_sd: float) -> float:
    rng = np.random.default_rng(12345)
    theta = rng.normal(0, LOGIT_SD, 4_000_000)
    u1, u2 = rng.normal(0, seed_sd, (2, theta.size))
    return float(np.mean(_sig(theta + gain + u1) - _sig(theta + u2)))


def _recipe(rng, theta, gain, seeds, seed_sd=SEED_SD, effects=None):
    u = rng.normal(0, seed_sd, seeds)
    if effects is not None:
        effects.append(gain + u)
    return rng.binomial(1, _sig(theta[:, None] + gain + u[None, :])).astype(float)


@functools.cache
def _accuracy_curve() -> tuple[np.ndarray, np.ndarray]:
    theta = np.random.default_rng(54321).normal(0, LOGIT_SD, 200_000)
    grid = np.linspace(-1.5, 1.5, 301)
    return grid, np.array([_sig(theta + g).mean() for g in grid])


def _mean_accuracy(logit_shift: np.ndarray) -> np.ndarray:
    """The accuracy over the problem population of a model shifted by ``logit_shift``."""
    return np.interp(logit_shift, *_accuracy_curve())


@pytest.mark.parametrize(("problems", "seeds"), [(500, 1), (500, 3), (30, 1), (30, 3)])
def test_paired_interval_covers_the_true_delta(problems, seeds):
    """1,000 experiments: a candidate, the baseline and a third recipe (the default grid has
    three; the seed variance is pooled over them); the 95% interval of candidate - baseline
    must cover the true delta in 93-97% of them. With three seeds the truth is the delta over
    problems and seeds; with one seed the interval covers problems and samples only (the table
    says so), and the truth is the delta of the two trained models over all problems."""
    population = _population_delta(TRUE_LOGIT_GAIN, SEED_SD)
    rng = np.random.default_rng(problems * 10 + seeds)
    covered = 0
    for _ in range(1000):
        theta = rng.normal(0, LOGIT_SD, problems)
        effects: list[np.ndarray] = []
        cand, base, other = (
            _recipe(rng, theta, g, seeds, effects=effects) for g in (TRUE_LOGIT_GAIN, 0, 0.2)
        )
        truth = population
        if seeds == 1:
            truth = float(_mean_accuracy(effects[0])[0] - _mean_accuracy(effects[1])[0])
        est = stats.paired_delta(cand, base, *stats.pooled_seed_variance([cand, base, other]))
        covered += est.lo <= truth <= est.hi
    assert 930 <= covered <= 970, covered


@pytest.mark.parametrize(("problems", "seeds"), [(500, 1), (30, 1), (500, 3)])
def test_holm_keeps_false_verdicts_at_alpha_in_a_ten_cell_family(problems, seeds):
    """No true difference: ten recipes against one baseline, 1,000 experiments. The share of
    experiments with any better/worse verdict (the family-wise error) stays at or below 5%, and
    without the correction it would not. With one seed an interval covers problems only, so
    "no difference" means the trained models do not differ (no seed effect); with three, the
    recipes do not differ while every training differs by its seed."""
    seed_sd = SEED_SD if seeds > 1 else 0.0
    rng = np.random.default_rng(7 + problems + seeds)
    any_verdict = uncorrected_any = cells = 0
    for _ in range(1000):
        theta = rng.normal(0, LOGIT_SD, problems)
        tables = [_recipe(rng, theta, 0.0, seeds, seed_sd) for _ in range(11)]
        pooled = stats.pooled_seed_variance(tables)
        ests = [stats.paired_delta(t, tables[0], *pooled) for t in tables[1:]]
        adjusted = stats.holm([e.p for e in ests])
        verdicts = [stats.verdict(e.value, a) for e, a in zip(ests, adjusted, strict=True)]
        flagged = sum(v != "inconclusive" for v in verdicts)
        any_verdict += flagged > 0
        cells += flagged
        uncorrected_any += any(e.p <= 0.05 for e in ests)
    assert any_verdict <= 50, any_verdict
    assert cells <= 0.05 * 10_000
    assert uncorrected_any > 150  # the family needs the correction: ~30-40% uncorrected


def test_one_seed_interval_is_the_paired_t_interval():
    cand = np.array([1, 1, 0, 1, 0, 1, 1, 0.0])
    base = np.array([0, 1, 0, 0, 0, 1, 0, 0.0])
    d = cand - base
    est = stats.paired_delta(cand, base)
    se = d.std(ddof=1) / math.sqrt(d.size)
    assert est.value == pytest.approx(d.mean())
    assert est.se == pytest.approx(se) and est.df == pytest.approx(d.size - 1)
    assert est.hi - est.value == pytest.approx(stats.t_quantile(0.975, 7) * se)


def test_seed_variance_widens_the_interval():
    rng = np.random.default_rng(0)
    theta = rng.normal(0, 1.5, 200)
    a = _recipe(rng, theta, 0.0, 3, seed_sd=0.5)
    b = _recipe(rng, theta, 0.0, 3, seed_sd=0.5)
    problems_only = stats.paired_delta(a.mean(axis=1), b.mean(axis=1))
    with_seeds = stats.paired_delta(a, b, *stats.pooled_seed_variance([a, b]))
    assert with_seeds.se > problems_only.se
    assert with_seeds.df < problems_only.df


def test_holm_adjusts_step_down():
    assert stats.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    adjusted = stats.holm([0.02, math.nan])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1])


def test_verdicts():
    assert stats.verdict(0.03, 0.01) == "better"
    assert stats.verdict(-0.03, 0.01) == "worse"
    assert stats.verdict(0.03, 0.2) == "inconclusive"
    assert stats.verdict(-0.1, 0.001, lower_is_better=True) == "better"
    assert stats.verdict(0.1, math.nan) == "inconclusive"


def test_wilson_matches_the_formula_and_stays_inside_zero_one():
    lo, hi = stats.wilson(0, 30)
    assert lo == 0 and 0.10 < hi < 0.12  # the rule of three's neighbour, not [0, 0]
    lo, hi = stats.wilson(15, 30)
    assert lo == pytest.approx(0.3315, abs=1e-4) and hi == pytest.approx(0.6685, abs=1e-4)


def _brute_pass_at_k(n, c, k):
    samples = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return Fraction(sum(any(samples[i] for i in s) for s in subsets), len(subsets))


def test_pass_at_k_equals_enumeration_of_every_subset():
    cases = [(n, c, k) for n in range(1, 8) for c in range(n + 1) for k in range(1, n + 1)]
    n, c, k = (np.array(x) for x in zip(*cases, strict=True))
    for kk in range(1, 8):
        rows = k == kk
        got = stats.pass_at_k(n[rows], c[rows], kk)
        want = [
            float(_brute_pass_at_k(ni, ci, kk)) for ni, ci in zip(n[rows], c[rows], strict=True)
        ]
        assert got == pytest.approx(want)
    assert math.isnan(stats.pass_at_k(np.array([2]), np.array([1]), 3)[0])


def test_maj_at_k_votes_by_equivalence_group_not_by_string():
    # "1/2", "0.5" and "\frac{1}{2}" are one group (1); the gold's group is 0
    groups = [1, 0, 1, 1, None]
    correct = [False, True, False, False, False]
    assert stats.maj_at_k(groups, correct, 5) == 0.0  # three equivalent wrong answers win
    assert stats.maj_at_k(groups, correct, 2) == 0.5  # one vote each: a tie of two groups
    assert stats.maj_at_k([0, 0, 2, None], [True, True, False, False], 4) == 1.0
    assert stats.maj_at_k([None, None], [False, False], 2) == 0.0
    # grouped by string instead, the three wrong answers would split and the gold would win
    strings = ["1/2", "3", "0.5", "\\frac{1}{2}"]
    by_string = {s: i for i, s in enumerate(dict.fromkeys(strings))}
    assert stats.maj_at_k([by_string[s] for s in strings], [False, True, False, False], 4) == 0.25


def test_minimum_detectable_effect_matches_the_field_figures():
    parts = stats.VarianceParts(problem=0.2)
    assert 100 * stats.min_detectable_effect(parts.delta_variance(500)) == pytest.approx(
        5.6, abs=0.1
    )
    assert 100 * stats.min_detectable_effect(parts.delta_variance(30)) == pytest.approx(
        22.9, abs=0.2
    )
    noisy = stats.VarianceParts(problem=0.1, sample=0.2, seed=0.001)
    assert noisy.delta_variance(500, samples=4) < noisy.delta_variance(500, samples=1)
    assert noisy.delta_variance(500, seeds=2) < noisy.delta_variance(500, seeds=1)


def test_delta_parts_recover_a_known_split():
    rng = np.random.default_rng(3)
    n, k, s = 4000, 8, 3
    theta = rng.normal(0, 1.5, n)
    p = _sig(theta)[:, None] + np.zeros((1, s))
    cand = rng.binomial(k, np.clip(p + 0.05, 0, 1)) / k
    base = rng.binomial(k, p) / k
    within_c = cand * (1 - cand) * k / (k - 1)
    within_b = base * (1 - base) * k / (k - 1)
    parts = stats.delta_parts(cand, base, within_c, within_b, samples=k)
    true_sample = 2 * float(np.mean(p * (1 - p)))
    assert parts.sample == pytest.approx(true_sample, rel=0.05)
    assert parts.seed == pytest.approx(0.0, abs=1e-4)


def test_bootstrap_is_seeded_and_brackets_the_mean():
    values = np.random.default_rng(0).binomial(1, 0.4, (800, 2)).astype(float)
    w1 = stats.bootstrap_weights(800, 500, seed=1)
    w2 = stats.bootstrap_weights(800, 500, seed=1)
    assert np.array_equal(w1, w2)
    lo, hi = stats.bootstrap_intervals(values, w1)
    means = values.mean(axis=0)
    assert (lo < means).all() and (means < hi).all()
    wilson = stats.wilson(values[:, 0].sum(), 800)
    assert hi[0] - lo[0] == pytest.approx(wilson[1] - wilson[0], rel=0.15)
