"""The figure: a metric against training-set size, one panel per student and benchmark, every
recipe a point with its 95% interval, labelled without overlap, the x axis ticked at the sizes
it plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from mathrecipes.tables.render import column


def _spread(ys: Sequence[float], gap: float, lo: float, hi: float) -> list[float]:
    """Label heights near ``ys``, at least ``gap`` apart, inside [lo, hi] (order kept)."""
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    placed = [0.0] * len(ys)
    last = lo - gap
    for i in order:
        placed[i] = max(ys[i], last + gap)
        last = placed[i]
    overflow = last - hi
    if overflow > 0:  # shift the stack down, keeping the gaps
        for i in order:
            placed[i] -= overflow
    return placed


def _dodge(xs: Sequence[float], step: float = 1.07) -> list[float]:
    """Points at the same size side by side (a log axis: a factor), centred on the size."""
    out = list(xs)
    for x in set(xs):
        same = [i for i, v in enumerate(xs) if v == x]
        for k, i in enumerate(same):
            out[i] = x * step ** (k - (len(same) - 1) / 2)
    return out


def draw(
    scores: pl.DataFrame,
    path: str | Path,
    benchmarks: Sequence[str] | None,
    baseline: str,
    metric: str = "accuracy",
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    benches = sorted(scores["benchmark"].unique().to_list())
    if benchmarks:
        benches = [b for b in benches if b in set(benchmarks)]
    students = sorted(scores["student"].unique().to_list())
    fig, axes = plt.subplots(
        len(students),
        len(benches),
        figsize=(4.8 * len(benches), 3.8 * len(students)),
        squeeze=False,
    )
    value, lo, hi = (column(metric, f) for f in ("value", "lo", "hi"))
    scale = 1.0 if metric == "bpb" else 100.0
    for i, student in enumerate(students):
        for j, bench in enumerate(benches):
            ax = axes[i][j]
            sub = scores.filter(
                (pl.col("student") == student)
                & (pl.col("benchmark") == bench)
                & pl.col(value).is_not_null()
            ).sort("recipe")
            rows = list(sub.iter_rows(named=True))
            sizes = sorted({max(1, r["train_examples"] or 1) for r in rows})
            xs = _dodge([max(1, r["train_examples"] or 1) for r in rows])
            ys = [scale * r[value] for r in rows]
            for r, x, y in zip(rows, xs, ys, strict=True):
                err = None
                if r[lo] is not None and r[hi] is not None:
                    err = [[y - scale * r[lo]], [scale * r[hi] - y]]
                color = "black" if r["recipe"] == baseline else None
                ax.errorbar([x], [y], yerr=err, fmt="o", capsize=3, color=color)
            ymin = min([scale * (r[lo] if r[lo] is not None else r[value]) for r in rows] or [0])
            ymax = max([scale * (r[hi] if r[hi] is not None else r[value]) for r in rows] or [1])
            pad = max(1e-6, 0.15 * (ymax - ymin) or 0.05 * scale)
            ax.set_ylim(ymin - pad, ymax + 2 * pad)
            gap = 0.09 * (ymax - ymin + 3 * pad)
            label_y = _spread(ys, gap, ymin - pad, ymax + 2 * pad)
            for r, x, y, ly in zip(rows, xs, ys, label_y, strict=True):
                name = r["recipe"] + (" (baseline)" if r["recipe"] == baseline else "")
                ax.annotate(
                    name,
                    (x, y),
                    xytext=(x * 1.12, ly),
                    textcoords="data",
                    fontsize=8,
                    va="center",
                    arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6},
                )
            ax.set_xscale("log")
            if sizes:
                ax.set_xlim(min(sizes) / 1.6, max(sizes) * 2.6)
                ax.xaxis.set_major_locator(FixedLocator(sizes))
                ax.xaxis.set_minor_locator(NullLocator())
                ax.set_xticklabels([f"{s:,}" for s in sizes], fontsize=8)
            ax.set_xlabel("training examples")
            ax.set_ylabel("bits per byte" if metric == "bpb" else f"{metric} (%)")
            ax.set_title(f"{student} on {bench}", fontsize=10)
            ax.grid(True, alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)
