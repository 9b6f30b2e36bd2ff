"""The tables as files: ``scores.csv`` (wide, one row per student x recipe x benchmark),
Markdown, LaTeX and HTML (for the Snakemake report), with the line that says what the intervals
cover and how the verdicts were corrected."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

# The metric columns of scores.csv: accuracy keeps the short names (delta_vs_baseline, verdict,
# ...) it always had; every other metric is prefixed with its name (pass@4_lo, bpb_verdict, ...).
FIELDS = (
    "value",
    "lo",
    "hi",
    "interval",
    "delta",
    "delta_lo",
    "delta_hi",
    "p",
    "p_holm",
    "verdict",
)
ACCURACY_NAMES = {
    "value": "accuracy",
    "lo": "accuracy_lo",
    "hi": "accuracy_hi",
    "interval": "interval",
    "delta": "delta_vs_baseline",
    "delta_lo": "delta_lo",
    "delta_hi": "delta_hi",
    "p": "p_value",
    "p_holm": "p_holm",
    "verdict": "verdict",
}
STRING_FIELDS = ("interval", "verdict")
LOWER_IS_BETTER = {"bpb"}


def column(metric: str, field: str) -> str:
    if metric == "accuracy":
        return ACCURACY_NAMES[field]
    return metric if field == "value" else f"{metric}_{field}"


def scores_frame(
    cells: Sequence[Mapping[str, Any]],
    per_seed: pl.DataFrame,
    metrics: Sequence[str],
) -> pl.DataFrame:
    """One row per (student, recipe, benchmark) with every metric's columns, then the counts."""
    keys = sorted({(c["student"], c["recipe"], c["benchmark"]) for c in cells})
    by = {(c["student"], c["recipe"], c["benchmark"], c["metric"]): c for c in cells}
    counts = {
        (r["student"], r["recipe"], r["benchmark"]): r
        for r in per_seed.group_by("student", "recipe", "benchmark")
        .agg(
            samples=(pl.col("samples") / pl.col("problems")).max().ceil().cast(pl.Int64),
            seeds=pl.len(),
            no_answer_rate=pl.col("no_answer_rate").mean(),
            timeouts=pl.col("timeouts").sum(),
            gold_unparseable=pl.col("gold_unparseable").max(),
            train_examples=pl.col("train_examples").max(),
            train_tokens=pl.col("train_tokens").max(),
        )
        .iter_rows(named=True)
    }
    schema: dict[str, Any] = {
        "student": pl.String,
        "recipe": pl.String,
        "benchmark": pl.String,
        "problems": pl.Int64,
        "samples": pl.Int64,
        "seeds": pl.Int64,
    }
    for m in metrics:
        for f in FIELDS:
            schema[column(m, f)] = pl.String if f in STRING_FIELDS else pl.Float64
    schema.update(
        no_answer_rate=pl.Float64,
        timeouts=pl.Int64,
        gold_unparseable=pl.Int64,
        train_examples=pl.Int64,
        train_tokens=pl.Int64,
    )
    rows = []
    for key in keys:
        c = counts.get(key, {})
        first = next((by[(*key, m)] for m in metrics if (*key, m) in by), {})
        row: dict[str, Any] = {
            "student": key[0],
            "recipe": key[1],
            "benchmark": key[2],
            "problems": first.get("problems"),
            "samples": c.get("samples"),
            "seeds": c.get("seeds"),
        }
        for m in metrics:
            cell = by.get((*key, m), {})
            for f in FIELDS:
                row[column(m, f)] = cell.get(f)
        for name in ("no_answer_rate", "timeouts", "gold_unparseable"):
            row[name] = c.get(name)
        row["train_examples"] = c.get("train_examples")
        row["train_tokens"] = c.get("train_tokens")
        rows.append(row)
    return pl.DataFrame(rows, schema=schema, orient="row")


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def _num(x: float | None, signed: bool = False, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _fmt(metric: str):
    return (lambda x, signed=False: _num(x, signed)) if metric == "bpb" else _pct


def cell_text(row: Mapping[str, Any], metric: str, baseline: str, *, tex: bool = False) -> str:
    """``61.2 [58.9, 63.4]`` and, for a recipe other than the baseline,
    `` +3.1 [+1.2, +5.0] better``."""
    f = _fmt(metric)
    value = row.get(column(metric, "value"))
    if value is None:
        return ""
    lo, hi = row.get(column(metric, "lo")), row.get(column(metric, "hi"))
    text = f"{f(value)} [{f(lo)}, {f(hi)}]"
    if row["recipe"] != baseline and row.get(column(metric, "delta")) is not None:
        d, dlo, dhi = (row.get(column(metric, k)) for k in ("delta", "delta_lo", "delta_hi"))
        verdict = row.get(column(metric, "verdict")) or ""
        mark = {"better": "**better**", "worse": "**worse**"}.get(verdict, verdict)
        if tex:
            mark = {"better": r"\textbf{better}", "worse": r"\textbf{worse}"}.get(verdict, verdict)
        text += f" {f(d, True)} [{f(dlo, True)}, {f(dhi, True)}] {mark}"
    return text


def what_intervals_cover(seeds: Sequence[int], alpha: float, family: int | None) -> str:
    if max(seeds, default=1) < 2:
        cover = (
            "they cover problems and samples only: with one training seed the seed-to-seed "
            "variance is unknown, so a verdict says these trained models differ, not that "
            "their recipes would with another seed"
        )
    else:
        cover = (
            "they cover problems, samples and training seeds (the seed variance of a run's "
            "score is pooled over the student's recipes on that benchmark for accuracy, pass@k "
            "and maj@k; bits per byte uses each recipe's own)"
        )
    fam = f" ({family} cells)" if family else ""
    return (
        f"Intervals are 95%; {cover}. Deltas are paired by problem against the baseline "
        "(analytic paired standard error, t quantile); a verdict is **better** or **worse** when "
        f"its Holm-adjusted p-value is at most {alpha:g} across the student's recipe x benchmark "
        f"family per metric{fam}, else inconclusive. A cell's own interval: Wilson (one 0/1 "
        "sample per problem, one seed, small benchmark), percentile bootstrap over problems "
        "(one seed), or t (two or more seeds)."
    )


METRIC_TITLES = {
    "accuracy": "accuracy (%)",
    "bpb": "bits per byte of the reference solutions (lower is better)",
}


def metric_title(metric: str) -> str:
    if metric.startswith("pass@"):
        return f"{metric} (%, unbiased estimator)"
    if metric.startswith("maj@"):
        return f"{metric} (%, majority vote over answers grouped by the grader's equivalence)"
    return METRIC_TITLES.get(metric, metric)


def markdown(
    scores: pl.DataFrame,
    reliability: pl.DataFrame,
    agreement: pl.DataFrame,
    metrics: Sequence[str],
    baseline: str,
    notes: Sequence[str],
    alpha: float,
    references: pl.DataFrame | None = None,
    servers: Mapping[str, Mapping[str, Any]] | None = None,
    contamination: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> str:
    """The students' tables, then the references' (when given), the contamination (recipe ->
    its stats.json ``decontamination`` block, when given), reliability and notes."""
    lines = ["# Results", ""]
    benches = sorted(scores["benchmark"].unique().to_list())
    for student in sorted(scores["student"].unique().to_list()):
        sub = scores.filter(pl.col("student") == student)
        lines += [f"## Student `{student}`", ""]
        for metric in metrics:
            if sub[column(metric, "value")].null_count() == sub.height:
                continue
            lines += [f"### {metric_title(metric)}", ""]
            header = ["recipe", "train examples", *benches]
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
            for recipe in sorted(sub["recipe"].unique().to_list()):
                rr = sub.filter(pl.col("recipe") == recipe)
                by_bench = {r["benchmark"]: r for r in rr.iter_rows(named=True)}
                cells = [f"`{recipe}`" + (" (baseline)" if recipe == baseline else "")]
                cells.append(str(rr["train_examples"][0]))
                cells += [cell_text(by_bench[b], metric, baseline) if b in by_bench else ""
                          for b in benches]  # fmt: skip
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        family = sub.filter(pl.col("recipe") != baseline).height
        lines += [what_intervals_cover(sub["seeds"].to_list(), alpha, family), ""]
    if references is not None and references.height:
        lines += references_markdown(references, metrics, servers or {})
    lines += contamination_markdown(contamination or {})
    lines += reliability_markdown(reliability, agreement)
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines).rstrip("\n") + "\n"


def served_by(server: Mapping[str, Any]) -> str:
    """``model`` at ``endpoint`` (the public URL: never a key)."""
    return f"`{server.get('model', '?')}` at {server.get('base_url', '?')}"


def references_markdown(
    refs: pl.DataFrame, metrics: Sequence[str], servers: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """The references' tables: per metric, one row per served model (no delta, no verdict)."""
    benches = sorted(refs["benchmark"].unique().to_list())
    lines = ["## References (served models, not trained here)", ""]
    for metric in metrics:
        if column(metric, "value") not in refs.columns:
            continue
        if refs[column(metric, "value")].null_count() == refs.height:
            continue
        lines += [f"### {metric_title(metric)}", ""]
        header = ["reference", "model", *benches]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---", "---"] + ["---:"] * len(benches)) + "|")
        for name in sorted(refs["recipe"].unique().to_list()):
            by_bench = {
                r["benchmark"]: r
                for r in refs.filter(pl.col("recipe") == name).iter_rows(named=True)
            }
            cells = [f"`{name}`", served_by(servers.get(name, {}))]
            cells += [cell_text(by_bench[b], metric, "") if b in by_bench else "" for b in benches]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "A reference answers with the students' prompt and sampling and is graded as they are; "
        "its 95% interval covers problems and samples. It is not a recipe: no training seed, no "
        "delta against the baseline, no verdict.",
        "",
    ]
    return lines


METHOD_NAMES = {"verbatim": "verbatim", "normalized": "normalized", "ngram": "n-gram"}


def _methods_text(by_method: Mapping[str, int]) -> str:
    """``verbatim 3, n-gram 7`` (the methods with a row, strongest first, whatever the order of
    the keys: stats.json sorts them)."""
    order = [*METHOD_NAMES, *sorted(set(by_method) - set(METHOD_NAMES))]
    return ", ".join(f"{METHOD_NAMES.get(k, k)} {by_method[k]}" for k in order if by_method.get(k))


def contamination_markdown(blocks: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """The training rows decontamination removed, per recipe x benchmark and per pool, from
    each recipe's ``stats.json`` ``decontamination`` block (``blocks``: recipe -> block, None
    without one); nothing when no recipe has a block."""
    blocks = {r: b for r, b in sorted(blocks.items()) if b}
    if not blocks:
        return []
    lines = ["## Contamination", ""]
    off = [r for r, b in blocks.items() if not b.get("enabled", True)]
    on = {r: b for r, b in blocks.items() if b.get("enabled", True)}
    if off:
        lines += ["Decontamination is off for " + ", ".join(f"`{r}`" for r in off) + ".", ""]
    if not on:
        return lines
    checked = sorted({b for blk in on.values() for b in blk.get("benchmarks", {})})
    if not any(blk.get("rows_removed") for blk in on.values()):
        names = ", ".join(checked) if checked else "none"
        return lines + [
            f"No training row matched a benchmark (checked: {names}).",
            "",
        ]
    lines += [
        "Training rows removed because they matched a benchmark problem, with the method "
        "that matched (a row counts under every benchmark it matched, once per scope, under "
        "its strongest method: verbatim, then normalized, then n-gram; every match is in the "
        "recipe's `contamination.parquet`).",
        "",
    ]
    header = ["recipe", "rows removed", *checked]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for recipe, blk in on.items():
        per = blk.get("by_benchmark")
        cells = [f"`{recipe}`", str(blk.get("rows_removed", 0))]
        for bench in checked:
            if per is None:  # a stats.json from before the breakdown
                cells.append("n/a")
            elif bench not in per:
                cells.append("-")
            elif not per[bench]["rows_removed"]:
                cells.append("0")
            else:
                b = per[bench]
                cells.append(
                    f"{b['rows_removed']} ({_methods_text(b['by_method'])}), "
                    f"{b['benchmark_problems_hit']} problems"
                )
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    pools = [
        (recipe, name, p)
        for recipe, blk in on.items()
        for name, p in (blk.get("by_pool") or {}).items()
        if p["rows_removed"]
    ]
    if pools:
        lines += [
            "Per pool (a dataset, or a synthesis entry whose shards are checked when selected):",
            "",
            "| recipe | pool | rows removed | benchmarks | methods |",
            "|---|---|---:|---|---|",
        ]
        for recipe, name, p in pools:
            kind = f" ({p['type']})" if p.get("type") else ""
            benches = ", ".join(f"{b} {n}" for b, n in p["by_benchmark"].items() if n)
            lines.append(
                f"| `{recipe}` | `{name}`{kind} | {p['rows_removed']} | {benches} | "
                f"{_methods_text(p['by_method'])} |"
            )
        lines.append("")
    return lines


def reliability_markdown(reliability: pl.DataFrame, agreement: pl.DataFrame) -> list[str]:
    if reliability.height == 0:
        return []
    lines = [
        "## Benchmark reliability",
        "",
        "The minimum detectable effect (MDE: the smallest true delta this design detects at "
        "alpha 0.05 with 80% power, in points or bits per byte), the signal-to-noise ratio "
        "(spread of the recipes' scores over one run's noise: seeds when there are two or "
        "more, else the cells' standard error) and where a cell's variance comes from "
        "(problems / samples / seeds, in %; `-` where the design cannot tell: with one sample "
        "per problem the sample noise is inside the problem part, with one seed the seed "
        "variance is unknown).",
        "",
        "| student | benchmark | metric | problems | samples | seeds | MDE | SNR | "
        "problems / samples / seeds |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in reliability.iter_rows(named=True):
        f = _fmt(r["metric"])
        shares = "/".join(
            _pct(r[f"share_{k}"]).replace("n/a", "-") for k in ("problems", "samples", "seeds")
        )
        snr = "n/a" if r["snr"] is None else f"{r['snr']:.2f}"
        lines.append(
            f"| `{r['student']}` | {r['benchmark']} | {r['metric']} | {r['problems']} | "
            f"{r['samples']} | {r['seeds']} | {f(r['mde'])} | {snr} | {shares} % |"
        )
    lines.append("")
    if agreement.height:
        lines += ["Students that order recipe pairs the same way:", ""]
        for r in agreement.iter_rows(named=True):
            lines.append(
                f"- {r['benchmark']}, {r['metric']}: `{r['student_a']}` and `{r['student_b']}` "
                f"agree on {r['same_order']} of {r['recipe_pairs']} recipe pairs "
                f"({_pct(r['share'])}%)"
            )
        lines.append("")
    return lines


def latex(scores: pl.DataFrame, metrics: Sequence[str], baseline: str) -> str:
    benches = sorted(scores["benchmark"].unique().to_list())
    esc = lambda s: str(s).replace("_", r"\_")  # noqa: E731
    lines = [
        r"\begin{tabular}{lll" + "r" * (len(benches) + 1) + "}",
        r"\toprule",
        "student & recipe & metric & examples & " + " & ".join(esc(b) for b in benches) + r" \\",
        r"\midrule",
    ]
    for (student, recipe), rr in sorted(
        scores.group_by(["student", "recipe"], maintain_order=True), key=lambda kv: kv[0]
    ):
        by = {r["benchmark"]: r for r in rr.iter_rows(named=True)}
        for metric in metrics:
            if rr[column(metric, "value")].null_count() == rr.height:
                continue
            cells = [
                esc(cell_text(by[b], metric, baseline, tex=True)).replace("[", "{[}")
                .replace("]", "{]}") if b in by else ""
                for b in benches
            ]  # fmt: skip
            lines.append(
                f"{esc(student)} & {esc(recipe)} & {esc(metric)} & "
                f"{_count(rr['train_examples'][0])} & " + " & ".join(cells) + r" \\"
            )
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _count(x: int | None) -> str:
    return "--" if x is None else str(x)


def html_page(markdown_text: str) -> str:
    """The Markdown tables as a standalone HTML page (the Snakemake report shows it inline)."""
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>mathrecipes results</title>',
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;"
        "margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}</style></head><body>",
    ]
    in_table = False
    for line in markdown_text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-:"):
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                out.append("<table>")
                in_table = True
            out.append("<tr>" + "".join(f"<{tag}>{_inline(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{_inline(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("- "):
            out.append(f"<p>&bull; {_inline(line[2:])}</p>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    if in_table:
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _inline(text: str) -> str:
    import re

    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)
