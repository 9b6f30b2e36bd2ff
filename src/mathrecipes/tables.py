"""Result tables and the figure, from per-sample grades.

Inputs are one entry per (student, recipe, seed, benchmark) naming its grade file, checkpoint,
training set and the synthesis shards behind that training set. Outputs (all deterministic for the
same grades, so the CSVs are byte-identical across reruns):

``per_seed.csv``    accuracy of every (student, recipe, seed, benchmark)
``scores.csv``      mean over seeds, 95% t-interval (two or more seeds), delta against the
                    baseline recipe with a paired 95% interval, no-answer and timeout rates,
                    training examples and tokens
``scores.md``       the same as Markdown, one table per student (recipes x benchmarks)
``scores.tex``      the same as a LaTeX tabular
``provenance.json`` for every cell: the grade files, checkpoints, training set and synthesis
                    shards that produced it, with content hashes from their manifests

Accuracy counts every sample (so with n samples per problem it is the mean pass@1), and leaves out
rows whose gold answer could not be parsed (``gold_unparseable``), which are counted separately.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

# Two-sided 95% critical values of Student's t for 1..30 degrees of freedom.
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip


def t975(df: int) -> float:
    if df < 1:
        raise ValueError("needs at least one degree of freedom")
    return _T975[df - 1] if df <= len(_T975) else 1.95996


def mean_ci(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and half-width of the 95% t-interval (None for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t975(n - 1) * sd / math.sqrt(n)


def score_grade_file(path: str | Path) -> dict[str, Any]:
    df = pl.read_parquet(path, columns=["problem_id", "verdict"])
    counts = {v: 0 for v in ("correct", "incorrect", "no_answer", "timeout", "gold_unparseable")}
    for verdict, n in df.group_by("verdict").len().iter_rows():
        counts[verdict] = n
    scored = df.height - counts["gold_unparseable"]
    return {
        "samples": df.height,
        "problems": df["problem_id"].n_unique(),
        "scored": scored,
        "accuracy": counts["correct"] / scored if scored else float("nan"),
        "no_answer_rate": counts["no_answer"] / scored if scored else float("nan"),
        "timeouts": counts["timeout"],
        "gold_unparseable": counts["gold_unparseable"],
    }


def _read_json(path: str | Path | None) -> dict[str, Any]:
    if not path or not Path(path).exists():
        return {}
    return json.loads(Path(path).read_text())


def _manifest_hashes(paths: Sequence[str]) -> dict[str, str | None]:
    from mathrecipes.provenance import manifest_path_for

    out: dict[str, str | None] = {}
    for p in paths:
        doc = _read_json(manifest_path_for(p))
        outputs = doc.get("outputs", {})
        out[p] = outputs.get(p) or (next(iter(outputs.values())) if outputs else None)
    return out


def make_tables(
    entries: Sequence[Mapping[str, Any]],
    baseline: str,
    out_dir: str | Path,
    figure_path: str | Path,
    figure_benchmarks: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Write the tables and the figure; return the ``scores`` frame.

    Each entry: student, recipe, seed, benchmark, grades (path), checkpoint (folder),
    train (train.parquet), stats (stats.json), synth (list of shard paths).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for e in entries:
        score = score_grade_file(e["grades"])
        stats = _read_json(e.get("stats"))
        summary = _read_json(Path(e["checkpoint"]) / "train_summary.json")
        rows.append(
            {
                "student": e["student"],
                "recipe": e["recipe"],
                "seed": int(e["seed"]),
                "benchmark": e["benchmark"],
                **score,
                "train_examples": stats.get("examples"),
                "train_tokens": summary.get("train_tokens"),
                "train_steps": summary.get("steps"),
            }
        )
    per_seed = pl.DataFrame(rows).sort(["student", "recipe", "benchmark", "seed"])
    per_seed.write_csv(out_dir / "per_seed.csv", float_precision=6)

    scores = _aggregate(per_seed, baseline)
    scores.write_csv(out_dir / "scores.csv", float_precision=6)
    (out_dir / "scores.md").write_text(_markdown(scores, baseline))
    (out_dir / "scores.tex").write_text(_latex(scores))
    _provenance(entries, out_dir / "provenance.json")
    _figure(scores, figure_path, figure_benchmarks)
    return scores


def _aggregate(per_seed: pl.DataFrame, baseline: str) -> pl.DataFrame:
    out = []
    keys = per_seed.select("student", "recipe", "benchmark").unique(maintain_order=True)
    acc = {
        (r["student"], r["recipe"], r["benchmark"], r["seed"]): r["accuracy"]
        for r in per_seed.iter_rows(named=True)
    }
    for student, recipe, bench in keys.iter_rows():
        group = per_seed.filter(
            (pl.col("student") == student)
            & (pl.col("recipe") == recipe)
            & (pl.col("benchmark") == bench)
        ).sort("seed")
        seeds = group["seed"].to_list()
        mean, ci = mean_ci(group["accuracy"].to_list())
        delta = delta_ci = None
        base = [acc.get((student, baseline, bench, s)) for s in seeds]
        if all(b is not None for b in base):
            diffs = [a - b for a, b in zip(group["accuracy"].to_list(), base, strict=True)]
            delta, delta_ci = mean_ci(diffs)
        out.append(
            {
                "student": student,
                "recipe": recipe,
                "benchmark": bench,
                "seeds": len(seeds),
                "accuracy": mean,
                "ci95": ci,
                "delta_vs_baseline": delta,
                "delta_ci95": delta_ci,
                "no_answer_rate": group["no_answer_rate"].mean(),
                "timeouts": int(group["timeouts"].sum()),
                "gold_unparseable": int(group["gold_unparseable"].max()),
                "problems": int(group["problems"].max()),
                "train_examples": group["train_examples"].max(),
                "train_tokens": group["train_tokens"].max(),
            }
        )
    schema = {
        "student": pl.String,
        "recipe": pl.String,
        "benchmark": pl.String,
        "seeds": pl.Int64,
        "accuracy": pl.Float64,
        "ci95": pl.Float64,
        "delta_vs_baseline": pl.Float64,
        "delta_ci95": pl.Float64,
        "no_answer_rate": pl.Float64,
        "timeouts": pl.Int64,
        "gold_unparseable": pl.Int64,
        "problems": pl.Int64,
        "train_examples": pl.Int64,
        "train_tokens": pl.Int64,
    }
    return pl.DataFrame(out, schema=schema).sort(["student", "recipe", "benchmark"])


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def _cell(r: Mapping[str, Any], baseline: str) -> str:
    text = _pct(r["accuracy"])
    if r["ci95"] is not None:
        text += f" ± {_pct(r['ci95'])}"
    if r["recipe"] != baseline and r["delta_vs_baseline"] is not None:
        text += f" ({_pct(r['delta_vs_baseline'], signed=True)})"
    return text


def _markdown(scores: pl.DataFrame, baseline: str) -> str:
    lines = [
        "# Results",
        "",
        f"Accuracy in % (mean over seeds; ± 95% interval with two or more seeds; in brackets the "
        f"difference in points against the baseline recipe `{baseline}`).",
        "",
    ]
    benches = sorted(scores["benchmark"].unique().to_list())
    for student in sorted(scores["student"].unique().to_list()):
        sub = scores.filter(pl.col("student") == student)
        lines += [f"## Student `{student}`", ""]
        header = ["recipe", "train examples", "train tokens", *benches]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
        for recipe in sorted(sub["recipe"].unique().to_list()):
            rr = sub.filter(pl.col("recipe") == recipe)
            first = rr.row(0, named=True)
            cells = [f"`{recipe}`" + (" (baseline)" if recipe == baseline else "")]
            cells.append(str(first["train_examples"]))
            cells.append(str(first["train_tokens"]))
            by_bench = {r["benchmark"]: r for r in rr.iter_rows(named=True)}
            for b in benches:
                cells.append(_cell(by_bench[b], baseline) if b in by_bench else "")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    seeds = sorted(set(scores["seeds"].to_list()))
    lines.append(f"Seeds per cell: {', '.join(map(str, seeds))}.")
    return "\n".join(lines) + "\n"


def _latex(scores: pl.DataFrame) -> str:
    benches = sorted(scores["benchmark"].unique().to_list())
    esc = lambda s: str(s).replace("_", r"\_")  # noqa: E731
    lines = [
        r"\begin{tabular}{ll" + "r" * (len(benches) + 1) + "}",
        r"\toprule",
        "student & recipe & examples & " + " & ".join(esc(b) for b in benches) + r" \\",
        r"\midrule",
    ]
    for (student, recipe), rr in sorted(
        scores.group_by(["student", "recipe"], maintain_order=True), key=lambda kv: kv[0]
    ):
        by = {r["benchmark"]: r for r in rr.iter_rows(named=True)}
        cells = []
        for b in benches:
            if b not in by:
                cells.append("")
                continue
            r = by[b]
            c = _pct(r["accuracy"])
            if r["ci95"] is not None:
                c += r" $\pm$ " + _pct(r["ci95"])
            cells.append(c)
        examples = rr["train_examples"][0]
        lines.append(f"{esc(student)} & {esc(recipe)} & {examples} & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _provenance(entries: Sequence[Mapping[str, Any]], path: Path) -> None:
    cells: dict[str, dict[str, Any]] = {}
    for e in sorted(entries, key=lambda e: (e["student"], e["recipe"], e["benchmark"], e["seed"])):
        key = f"{e['student']}/{e['recipe']}/{e['benchmark']}"
        cell = cells.setdefault(
            key,
            {
                "student": e["student"],
                "recipe": e["recipe"],
                "benchmark": e["benchmark"],
                "train": _manifest_hashes([str(e["train"])]),
                "synthesis_shards": _manifest_hashes([str(s) for s in e.get("synth", [])]),
                "seeds": {},
            },
        )
        ckpt = Path(e["checkpoint"])
        cell["seeds"][str(e["seed"])] = {
            "grades": _manifest_hashes([str(e["grades"])]),
            "generations": _manifest_hashes([str(e["generations"])])
            if e.get("generations")
            else {},
            "checkpoint": {
                str(ckpt): _read_json(ckpt / "manifest.json").get("outputs", {}).get(str(ckpt))
            },
        }
    path.write_text(json.dumps(cells, indent=2, sort_keys=True) + "\n")


def _figure(scores: pl.DataFrame, path: str | Path, benchmarks: Sequence[str] | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches = sorted(scores["benchmark"].unique().to_list())
    if benchmarks:
        benches = [b for b in benches if b in set(benchmarks)]
    students = sorted(scores["student"].unique().to_list())
    fig, axes = plt.subplots(
        len(students),
        len(benches),
        figsize=(4.2 * len(benches), 3.4 * len(students)),
        squeeze=False,
    )
    for i, student in enumerate(students):
        for j, bench in enumerate(benches):
            ax = axes[i][j]
            sub = scores.filter((pl.col("student") == student) & (pl.col("benchmark") == bench))
            for r in sub.sort("recipe").iter_rows(named=True):
                x = r["train_examples"] or 0
                y = 100 * r["accuracy"]
                err = 100 * r["ci95"] if r["ci95"] is not None else None
                ax.errorbar([x], [y], yerr=[err] if err is not None else None, fmt="o", capsize=3)
                ax.annotate(
                    r["recipe"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8
                )
            ax.set_xscale("log")
            ax.set_xlabel("training examples")
            ax.set_ylabel("accuracy (%)")
            ax.set_ylim(-2, 102)
            ax.set_title(f"{student} on {bench}", fontsize=10)
            ax.grid(True, alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)
