"""Result tables and the figure, from per-sample grades and per-problem likelihoods.

Inputs are one entry per (student, recipe, seed, benchmark) naming its grade file, likelihood
file (or None), checkpoint, training set and the synthesis shards behind that training set.
Outputs (deterministic for the same inputs: the bootstrap is seeded, so the CSVs are
byte-identical across reruns):

``scores.csv``       one row per (student, recipe, benchmark): per metric the value, its 95%
                     interval and method, the paired delta against the baseline with its
                     interval, p-value, Holm-adjusted p-value and verdict; then no-answer and
                     timeout counts, training examples and tokens
``per_seed.csv``     accuracy (and bits per byte) of every (student, recipe, seed, benchmark)
``reliability.csv``  per (student, benchmark, metric): problems, samples, seeds, the minimum
                     detectable effect, the signal-to-noise ratio, the variance split
``agreement.csv``    with two or more students: how often they order recipe pairs alike
``scores.md``        the tables (recipes x benchmarks per student and metric), what the
                     intervals cover, the training rows decontamination removed (from each
                     recipe's stats.json), the reliability lines; ``scores.tex`` and
                     ``scores.html``
``provenance.json``  for every cell: the grade files, checkpoints, training set and synthesis
                     shards that produced it, with content hashes from their manifests

References (entries with a ``reference`` mapping: a served model, not trained here) are rows of
their own: student ``reference``, recipe the reference's name, no seed; their value and own
interval, no delta or verdict; in ``scores.md`` a section naming each model and endpoint, in
``provenance.json`` the model, endpoint and the grade and generation files. Without references
every file is what it was.

The statistics are in :mod:`mathrecipes.stats` and :mod:`mathrecipes.tables.compute`; why they
are what they are: docs/tables.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from mathrecipes.tables import compute, figure, render
from mathrecipes.tables.compute import TableSettings

__all__ = ["REFERENCE_STUDENT", "TableSettings", "make_tables"]

# The student name of the references' rows (mathrecipes.config.REFERENCE_STUDENT; not imported:
# the tables do not load the config).
REFERENCE_STUDENT = "reference"


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
    settings: TableSettings | Mapping[str, Any] | str,
    out_dir: str | Path,
    figure_path: str | Path,
    figure_benchmarks: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Write the tables and the figure; return the ``scores`` frame.

    Each entry: student, recipe, seed, benchmark, grades (path), likelihood (path or None),
    checkpoint (folder), train (train.parquet), stats (stats.json), synth (shard paths).
    ``settings``: the ``tables`` config section (or just the baseline recipe's name).
    """
    if isinstance(settings, str):
        settings = TableSettings(baseline=settings)
    elif not isinstance(settings, TableSettings):
        settings = TableSettings.of(settings)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    runs = [e for e in entries if not e.get("reference")]
    refs = [e for e in entries if e.get("reference")]
    if refs and any(e["student"] == REFERENCE_STUDENT for e in runs):
        raise ValueError(
            f"a student is named {REFERENCE_STUDENT!r}, the name of the references' rows"
        )
    grades = compute.read_grades(runs)
    per_seed = _per_seed(runs, compute.per_seed_scores(grades))

    samples = int(per_seed.select((pl.col("samples") / pl.col("problems")).max().ceil()).item())
    likelihood = {
        (e["student"], e["recipe"], int(e["seed"]), e["benchmark"]): e.get("likelihood")
        for e in runs
    }
    has_likelihood = any(likelihood.values())
    metrics = compute.resolve_metrics(settings, samples, has_likelihood)
    groups = compute.build_groups(grades, likelihood, metrics)
    cells = compute.cell_rows(groups, settings)
    notes = sorted({f"{g.student} / {g.benchmark}: {n}" for g in groups for n in g.notes})
    ref_cells: list[dict[str, Any]] = []
    if refs:
        ref_grades = compute.read_grades([{**e, "seed": 0} for e in refs])
        per_seed = pl.concat([per_seed, _reference_per_seed(ref_grades)]).sort(
            "student", "recipe", "benchmark", "seed"
        )
        ref_groups = compute.build_groups(ref_grades, {}, [m for m in metrics if m != "bpb"])
        ref_cells = compute.reference_cells(ref_groups, settings)
        notes = sorted({*notes, *(f"{g.benchmark}: {n}" for g in ref_groups for n in g.notes)})
    per_seed.write_csv(out_dir / "per_seed.csv", float_precision=6)

    scores = render.scores_frame(cells + ref_cells, per_seed, metrics)
    if refs:  # a reference has no training seed
        is_ref = pl.col("student") == REFERENCE_STUDENT
        scores = scores.with_columns(
            seeds=pl.when(is_ref).then(None).otherwise(pl.col("seeds")).cast(pl.Int64)
        )
    scores.write_csv(out_dir / "scores.csv", float_precision=6)
    reliability = _frame(compute.reliability_rows(groups, cells, settings), RELIABILITY)
    reliability.write_csv(out_dir / "reliability.csv", float_precision=6)
    agreement = _frame(compute.agreement_rows(cells), AGREEMENT)
    agreement.write_csv(out_dir / "agreement.csv", float_precision=6)

    trained = scores.filter(pl.col("student") != REFERENCE_STUDENT) if refs else scores
    servers = {e["recipe"]: e["reference"] for e in refs}
    md = render.markdown(
        trained, reliability, agreement, metrics, settings.baseline, notes, settings.alpha,
        references=scores.filter(pl.col("student") == REFERENCE_STUDENT) if refs else None,
        servers=servers, contamination=_contamination(runs),
    )  # fmt: skip
    (out_dir / "scores.md").write_text(md)
    (out_dir / "scores.html").write_text(render.html_page(md))
    (out_dir / "scores.tex").write_text(render.latex(scores, metrics, settings.baseline))
    _provenance(runs, out_dir / "provenance.json", refs)
    figure.draw(trained, figure_path, figure_benchmarks, settings.baseline)
    return scores


RELIABILITY = {
    "student": pl.String,
    "benchmark": pl.String,
    "metric": pl.String,
    "problems": pl.Int64,
    "samples": pl.Int64,
    "seeds": pl.Int64,
    "recipes": pl.Int64,
    "mde": pl.Float64,
    "snr": pl.Float64,
    "share_problems": pl.Float64,
    "share_samples": pl.Float64,
    "share_seeds": pl.Float64,
}
AGREEMENT = {
    "benchmark": pl.String,
    "metric": pl.String,
    "student_a": pl.String,
    "student_b": pl.String,
    "recipe_pairs": pl.Int64,
    "same_order": pl.Int64,
    "share": pl.Float64,
}


def _frame(rows: list[dict[str, Any]], schema: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema, orient="row")


PER_SEED_COLUMNS = ["student", "recipe", "seed", "benchmark", "samples", "problems", "scored",
                    "accuracy", "no_answer_rate", "timeouts", "gold_unparseable", "bpb",
                    "train_examples", "train_tokens", "train_steps"]  # fmt: skip


def _per_seed(entries: Sequence[Mapping[str, Any]], scores: pl.DataFrame) -> pl.DataFrame:
    """Per-run scores with the training figures and, when scored, the bits per byte."""
    extra = []
    for e in entries:
        stats = _read_json(e.get("stats"))
        summary = _read_json(Path(e["checkpoint"]) / "train_summary.json")
        bpb = None
        if e.get("likelihood") and Path(e["likelihood"]).exists():
            lk = pl.read_parquet(e["likelihood"], columns=["nll", "bytes"])
            if lk.height:
                bpb = float(lk["nll"].sum()) / math.log(2) / max(1, int(lk["bytes"].sum()))
        extra.append(
            {
                "student": e["student"],
                "recipe": e["recipe"],
                "seed": int(e["seed"]),
                "benchmark": e["benchmark"],
                "bpb": bpb,
                "train_examples": stats.get("examples"),
                "train_tokens": summary.get("train_tokens"),
                "train_steps": summary.get("steps"),
            }
        )
    schema = {
        "student": pl.String,
        "recipe": pl.String,
        "seed": pl.Int64,
        "benchmark": pl.String,
        "bpb": pl.Float64,
        "train_examples": pl.Int64,
        "train_tokens": pl.Int64,
        "train_steps": pl.Int64,
    }
    cols = PER_SEED_COLUMNS
    return (
        scores.join(
            pl.DataFrame(extra, schema=schema), on=["student", "recipe", "seed", "benchmark"]
        )
        .select(cols)
        .sort("student", "recipe", "benchmark", "seed")
    )


def _contamination(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """recipe -> its stats.json ``decontamination`` block (None without one)."""
    out: dict[str, Any] = {}
    for e in entries:
        if e["recipe"] not in out:
            out[e["recipe"]] = _read_json(e.get("stats")).get("decontamination")
    return out


def _reference_per_seed(grades: pl.DataFrame) -> pl.DataFrame:
    """The references' rows of per_seed.csv: no seed, no likelihood, no training figures."""
    nothing = {"bpb": pl.Float64, "train_examples": pl.Int64, "train_tokens": pl.Int64}
    nothing["train_steps"] = pl.Int64
    return (
        compute.per_seed_scores(grades)
        .with_columns(
            pl.lit(None, pl.Int64).alias("seed"),
            *(pl.lit(None, t).alias(c) for c, t in nothing.items()),
        )
        .select(PER_SEED_COLUMNS)
    )


def _provenance(
    entries: Sequence[Mapping[str, Any]],
    path: Path,
    references: Sequence[Mapping[str, Any]] = (),
) -> None:
    cells: dict[str, dict[str, Any]] = {}
    for e in references:  # a served model: what answered, where, and the files
        cells[f"{e['student']}/{e['recipe']}/{e['benchmark']}"] = {
            "student": e["student"],
            "recipe": e["recipe"],
            "benchmark": e["benchmark"],
            "reference": dict(e["reference"]),
            "grades": _manifest_hashes([str(e["grades"])]),
            "generations": _manifest_hashes([str(e["generations"])]),
        }
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
