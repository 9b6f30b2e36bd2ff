"""Statistics for comparing recipes honestly: intervals, paired deltas, Holm, pass@k, maj@k, power.

Every metric the tables report is a mean over a benchmark's problems of a per-problem value: the
share of correct samples (accuracy), the unbiased pass@k, maj@k, or the bits per byte of the
reference solution. The unit of evidence is the problem (``../shared/design/STATISTICS.md``): two
recipes answer the same problems, so they are compared **paired**, problem by problem.

A recipe's values form a table ``Y[i, s]``: problem ``i`` (rows, the same problems in the same
order for every recipe of a benchmark), training seed ``s`` (columns); each value is already the
mean over that problem's samples. The model behind the intervals is the crossed random-effects
one, ``Y[i, s] = mu + a(i) + u(s) + e(i, s)``: problems and seeds are both draws from larger
populations, samples are nested inside ``e``. Then

    Var(mean Y) = var(a)/n + var(u)/S + var(e)/(n S)

and for a paired delta (problems shared, seeds not) the problem part is the variance of the
per-problem difference. The estimators are the usual ANOVA ones (:func:`paired_delta`), with a
t quantile and Satterthwaite's degrees of freedom when seeds add their part.

Choices (documented in docs/tables.md):

- **deltas**: the analytic paired standard error, ``sqrt(var(d)/n)`` with ``d`` the per-problem
  difference, plus each recipe's seed variance when there are two or more seeds; a t interval
  and a two-sided p-value;
- **a cell's own interval**: Wilson for a 0/1 score per problem (one seed, one sample) on fewer
  than ``wilson_below`` problems; otherwise the percentile bootstrap over problems (samples
  nested) with one seed, and the same analytic crossed estimate as the deltas with two or more;
- **verdicts**: Holm's step-down correction across a family of cells (a student's recipes x
  benchmarks, per metric); ``better`` / ``worse`` when the adjusted p is at most alpha,
  ``inconclusive`` otherwise;
- **power**: the minimum detectable effect ``(z_{1-alpha/2} + z_{power}) * sqrt(Var(delta))``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _sps

ALPHA = 0.05
POWER = 0.8


def z(q: float) -> float:
    """The standard normal quantile."""
    return float(_sps.norm.ppf(q))


def t_quantile(q: float, df: float) -> float:
    return float(_sps.t.ppf(q, df)) if math.isfinite(df) else z(q)


# ------------------------------------------------------------------ one cell


def wilson(k: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for k successes out of n."""
    if n <= 0:
        return (math.nan, math.nan)
    zz = z(0.5 + level / 2)
    p = k / n
    denom = 1 + zz * zz / n
    centre = (p + zz * zz / (2 * n)) / denom
    half = zz * math.sqrt(p * (1 - p) / n + zz * zz / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_weights(n: int, replicates: int, seed: int) -> np.ndarray:
    """``replicates`` x ``n`` resampling counts (each row a multinomial draw of n problems).

    Shared by every recipe of a benchmark, so their bootstrap means move together; a fixed seed
    makes the tables byte-identical across runs."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=replicates).astype(np.float32)


def bootstrap_intervals(
    values: np.ndarray, weights: np.ndarray, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile intervals of the mean of each column of ``values`` (n problems x m series)."""
    n = values.shape[0]
    means = weights @ values.astype(np.float32) / n  # replicates x m
    lo = np.quantile(means, 0.5 - level / 2, axis=0, method="linear")
    hi = np.quantile(means, 0.5 + level / 2, axis=0, method="linear")
    return lo.astype(np.float64), hi.astype(np.float64)


@dataclass(frozen=True)
class Crossed:
    """The ANOVA pieces of one recipe's ``n x S`` table."""

    n: int
    seeds: int
    mean: float
    row_means: np.ndarray
    seed_part: float  # estimated var(u) (0 with one seed)
    residual: float  # estimated var(e) (0 with one seed)

    @classmethod
    def of(cls, y: np.ndarray) -> Crossed:
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
        n, s = y.shape
        rows = y.mean(axis=1)
        if s < 2 or n < 2:
            return cls(n, s, float(y.mean()), rows, 0.0, 0.0)
        cols = y.mean(axis=0)
        grand = float(y.mean())
        resid = y - rows[:, None] - cols[None, :] + grand
        ms_e = float((resid**2).sum() / ((n - 1) * (s - 1)))
        seed = max(0.0, float(cols.var(ddof=1)) - ms_e / n)
        return cls(n, s, grand, rows, seed, ms_e)


@dataclass(frozen=True)
class Estimate:
    """A mean or a delta with its 95% interval (or the level asked) and a two-sided p-value."""

    value: float
    se: float
    df: float
    lo: float
    hi: float
    p: float


def _estimate(value: float, v_problem: float, n: int, seed_terms: Sequence[tuple[float, int]],
              level: float) -> Estimate:  # fmt: skip
    """t interval for ``value`` with variance ``v_problem`` (df n-1) plus seed terms
    ``(variance, df + 1)``, Satterthwaite's df for the sum."""
    if n < 2 or not math.isfinite(v_problem):
        return Estimate(value, math.nan, math.nan, math.nan, math.nan, math.nan)
    var = v_problem + sum(v for v, _ in seed_terms)
    denom = v_problem**2 / (n - 1) + sum(v**2 / (s - 1) for v, s in seed_terms if s > 1 and v > 0)
    df = var**2 / denom if denom > 0 else float(n - 1)
    se = math.sqrt(var)
    q = t_quantile(0.5 + level / 2, df)
    p = float(2 * _sps.t.sf(abs(value) / se, df)) if se > 0 else float(value == 0)
    return Estimate(value, se, df, value - q * se, value + q * se, p)


def pooled_seed_variance(tables: Sequence[np.ndarray]) -> tuple[float, int]:
    """The seed variance of one seed's mean, pooled over recipes (the same student on the same
    benchmark: one training setup, so one seed variance, as in a one-way ANOVA), with its
    degrees of freedom ``sum(S_r - 1)``. Three seeds of one recipe alone give 2 degrees of
    freedom, too few for a usable t interval; ten recipes give 20."""
    parts = [Crossed.of(y) for y in tables]
    df = sum(c.seeds - 1 for c in parts if c.seeds > 1)
    if df == 0:
        return 0.0, 0
    return sum(c.seed_part * (c.seeds - 1) for c in parts) / df, df


def mean_interval(
    y: np.ndarray, seed_var: float | None = None, seed_df: int | None = None, level: float = 0.95
) -> Estimate:
    """The analytic crossed interval of one recipe's mean (problems, and seeds when S >= 2;
    ``seed_var``/``seed_df``: a pooled seed variance, see :func:`pooled_seed_variance`)."""
    c = Crossed.of(y)
    v_problem = float(c.row_means.var(ddof=1)) / c.n if c.n > 1 else math.nan
    if seed_var is None:
        seed_var, seed_df = c.seed_part, c.seeds - 1
    terms = [(seed_var / c.seeds, (seed_df or 0) + 1)] if c.seeds > 1 else []
    return _estimate(c.mean, v_problem, c.n, terms, level)


def paired_delta(
    cand: np.ndarray,
    base: np.ndarray,
    seed_var: float | None = None,
    seed_df: int | None = None,
    level: float = 0.95,
) -> Estimate:
    """The paired delta ``mean(cand) - mean(base)`` over the same problems (rows, same order).

    Problem part: ``var(d)/n`` with ``d`` the per-problem difference of the seed means (it holds
    the sample noise and the seed x problem noise too); seed part: the seed variance of each
    recipe's mean (seeds are not paired across recipes: they are different trainings), from
    ``seed_var`` with ``seed_df`` degrees of freedom when given (pooled over the recipes), else
    from each recipe's own seeds."""
    c, b = Crossed.of(cand), Crossed.of(base)
    if c.n != b.n:
        raise ValueError(f"paired delta needs the same problems ({c.n} vs {b.n})")
    d = c.row_means - b.row_means
    v_problem = float(d.var(ddof=1)) / c.n if c.n > 1 else math.nan
    if seed_var is None:
        terms = [(c.seed_part / c.seeds, c.seeds), (b.seed_part / b.seeds, b.seeds)]
    elif c.seeds > 1 or b.seeds > 1:
        terms = [(seed_var * (1 / c.seeds + 1 / b.seeds), (seed_df or 0) + 1)]
    else:
        terms = []
    return _estimate(float(d.mean()), v_problem, c.n, terms, level)


# ------------------------------------------------------------------ many cells


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN stays NaN and is not counted in the family)."""
    idx = [i for i, p in enumerate(pvalues) if p is not None and math.isfinite(p)]
    m = len(idx)
    out = [math.nan] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: (pvalues[i], i))):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def verdict(delta: float, p_adjusted: float, alpha: float = ALPHA, lower_is_better: bool = False
            ) -> str:  # fmt: skip
    if p_adjusted is None or not math.isfinite(p_adjusted) or p_adjusted > alpha or delta == 0:
        return "inconclusive"
    gain = -delta if lower_is_better else delta
    return "better" if gain > 0 else "worse"


# ------------------------------------------------------------------ samples


def pass_at_k(n: np.ndarray, c: np.ndarray, k: int) -> np.ndarray:
    """The unbiased pass@k of Chen et al. (2021), ``1 - C(n-c, k) / C(n, k)``, per problem,
    in the numerically stable product form; NaN where fewer than k samples exist."""
    n = np.asarray(n, dtype=np.int64)
    c = np.asarray(c, dtype=np.int64)
    out = np.full(n.shape, np.nan)
    pairs, inverse = np.unique(np.stack([n, c]), axis=1, return_inverse=True)
    values = np.full(pairs.shape[1], np.nan)
    for i, (ni, ci) in enumerate(pairs.T.tolist()):  # few distinct (n, c) pairs
        if ni < k:
            continue
        if ni - ci < k:
            values[i] = 1.0
        else:
            j = np.arange(ni - ci + 1, ni + 1, dtype=np.float64)
            values[i] = 1.0 - float(np.prod(1.0 - k / j))
    if n.size:
        out = values[inverse.reshape(-1)]
    return out


def maj_at_k(groups: Sequence[int | None], correct: Sequence[bool], k: int) -> float:
    """Majority vote over the first ``k`` samples of one problem (in sample order).

    ``groups`` are the grader's equivalence classes (None: no answer, no vote); the vote is
    right when the gold's class (that of any correct sample) wins; a tie between the top
    classes counts as the chance that a fair coin picks the gold's: 1 / (classes tied)."""
    votes: dict[int, int] = {}
    gold = None
    for g, ok in zip(groups[:k], correct[:k], strict=True):
        if g is None:
            continue
        votes[g] = votes.get(g, 0) + 1
        if ok:
            gold = g
    if gold is None or not votes:
        return 0.0
    top = max(votes.values())
    winners = [g for g, v in votes.items() if v == top]
    return 1.0 / len(winners) if gold in winners else 0.0


# ------------------------------------------------------------------ power


@dataclass(frozen=True)
class VarianceParts:
    """Unit variances of a paired delta between two recipes on one benchmark.

    ``problem``: variance across problems of the per-problem difference (one seed, infinitely
    many samples); ``sample``: the two recipes' per-sample variance, summed (a single sample's
    spread around its problem's mean); ``seed``: the two recipes' seed variance of the mean,
    summed (the seed x problem interaction is counted in ``problem``)."""

    problem: float
    sample: float = 0.0
    seed: float = 0.0

    def delta_variance(self, problems: int, samples: int = 1, seeds: int = 1) -> float:
        """Var(delta) for a design of ``problems`` x ``samples`` x ``seeds``."""
        return (
            self.problem / problems + self.sample / (problems * samples * seeds) + self.seed / seeds
        )


def min_detectable_effect(var_delta: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true delta a two-sided test at ``alpha`` detects with ``power``."""
    return (z(1 - alpha / 2) + z(power)) * math.sqrt(var_delta)


def delta_parts(
    cand_means: np.ndarray,
    base_means: np.ndarray,
    cand_within: np.ndarray | None = None,
    base_within: np.ndarray | None = None,
    samples: int = 1,
) -> VarianceParts:
    """Estimate :class:`VarianceParts` from the grades of a run (``n x S`` per-problem means,
    and with several samples the ``n x S`` unbiased within-problem sample variances)."""
    c, b = Crossed.of(cand_means), Crossed.of(base_means)
    d = c.row_means - b.row_means
    seeds = c.seeds
    sample = 0.0
    if samples > 1 and cand_within is not None and base_within is not None:
        sample = float(np.nanmean(cand_within) + np.nanmean(base_within))
    problem = max(0.0, float(d.var(ddof=1)) - sample / (samples * seeds)) if c.n > 1 else math.nan
    return VarianceParts(problem=problem, sample=sample, seed=c.seed_part + b.seed_part)
