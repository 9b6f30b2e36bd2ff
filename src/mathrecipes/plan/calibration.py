"""Seconds per unit of work, measured by an earlier run (its results folder).

Every compute rule writes a Snakemake ``benchmark:`` record, ``<results>/runtime/<rule>/<job>.tsv``
(a header, then ``s  h:m:s  max_rss ...``: the job's wall seconds). Dividing by what the job did
(the units of :mod:`mathrecipes.plan.units`, read back from its outputs) gives seconds per unit.
A job is split in two where its outputs say how long its real work took: a fixed part (start-up,
loading, saving: the record minus the work) and a part per unit (the work over the units):

====================  ===================================  ====================================
rule                  units measured                        work seconds
====================  ===================================  ====================================
train_student         steps x tokens_per_step (checkpoint   train_loop_s (train_summary.json)
                      manifest and train_summary.json)
generate_answers,     rows x max_new_tokens (the plan's     generate_s (manifest summary)
probe_answers         upper bound, the same unit)
grade_generations,    rows of the grade file                the grader's seconds per item,
probe_grades                                                summed (one worker's time)
synthesize_shard      requests sent (usage, cached ones     wall_time_s (manifest)
                      left out), or input_rows without a
                      model
score_likelihood      rows of the manifest summary          forward_s (manifest summary)
anything else         1 job                                 (none: seconds per job)
====================  ===================================  ====================================

Rates are kept per (rule, unit, student) and pooled per (rule, unit); a job of the new config
takes its student's rate when the earlier run had that student, else the pooled one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mathrecipes.plan.units import GENERATED, ITEMS, JOBS, REFERENCES, REQUESTS, ROWS, TRAIN

STUDENT_RULES = {
    "train_student",
    "generate_answers",
    "probe_answers",
    "grade_generations",
    "probe_grades",
    "score_likelihood",
}


@dataclass(frozen=True)
class Measured:
    """One job of the earlier run: its record's seconds, its units and its work seconds."""

    rule: str
    job: str
    seconds: float
    kind: str
    units: float | None
    work_s: float | None = None

    @property
    def student(self) -> str | None:
        return self.job.split("/")[0] if self.rule in STUDENT_RULES else None


@dataclass(frozen=True)
class Rate:
    """seconds of a job = fixed_s + units x per_unit_s."""

    rule: str
    kind: str
    student: str | None
    jobs: int
    fixed_s: float
    per_unit_s: float
    model: str  # "fixed + per unit", "per unit" or "per job"

    def seconds(self, units: float) -> float:
        return self.fixed_s + units * self.per_unit_s


def read_runtime(path: Path) -> float | None:
    """The mean ``s`` of a benchmark record (one row per repeat), None when unreadable."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    if len(lines) < 2:
        return None
    header = lines[0].split("\t")
    if "s" not in header:
        return None
    col = header.index("s")
    values = []
    for line in lines[1:]:
        parts = line.split("\t")
        try:
            values.append(float(parts[col]))
        except (IndexError, ValueError):
            continue
    return sum(values) / len(values) if values else None


def runtime_records(results: Path) -> list[tuple[str, str, float]]:
    """``(rule, job, seconds)`` of every record under ``<results>/runtime``."""
    root = results / "runtime"
    out = []
    for path in sorted(root.rglob("*.tsv")) if root.is_dir() else []:
        rel = path.relative_to(root).with_suffix("")
        parts = rel.parts
        rule, job = (parts[0], "/".join(parts[1:])) if len(parts) > 1 else (parts[0], "")
        seconds = read_runtime(path)
        if seconds is not None:
            out.append((rule, job, seconds))
    return out


def measured_seconds(results: Path) -> dict[str, tuple[int, float]]:
    """``rule -> (jobs, summed seconds)`` of an earlier run's runtime records."""
    totals: dict[str, list[float]] = defaultdict(list)
    for rule, _, s in runtime_records(results):
        totals[rule].append(s)
    return {rule: (len(v), sum(v)) for rule, v in sorted(totals.items())}


def _json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _parquet_sum(path: Path, column: str | None) -> float | None:
    """The sum of a column of a parquet file (its rows when ``column`` is None)."""
    import pyarrow.parquet as pq

    try:
        if column is None:
            return float(pq.ParquetFile(path).metadata.num_rows)
        table = pq.read_table(path, columns=[column])
    except (OSError, ValueError, KeyError):
        return None
    import pyarrow.compute as pc

    value = pc.sum(table.column(column)).as_py()
    return float(value or 0)


def _train(results: Path, job: str) -> tuple[str, float | None, float | None]:
    folder = results / "checkpoints" / job
    summary = _json(folder / "train_summary.json") or {}
    manifest = _json(folder / "manifest.json") or {}
    per_step = ((manifest.get("params") or {}).get("training") or {}).get("tokens_per_step")
    units = None
    if summary.get("steps") and per_step:
        units = float(summary["steps"] * per_step)
    elif summary.get("padded_tokens_seen"):
        units = float(summary["padded_tokens_seen"])
    return TRAIN, units, summary.get("train_loop_s")


def _generation(stem: Path) -> tuple[str, float | None, float | None]:
    """The same unit the plan counts for a new config: rows x max_new_tokens (an upper bound;
    dividing by the tokens actually generated instead would price every planned token, most of
    which a student that stops early never generates, at the rate of a real one: about 3x too
    high on the default run). Without the params, the tokens generated."""
    manifest = _json(Path(f"{stem}.manifest.json")) or {}
    summary = manifest.get("summary") or {}
    max_new = (manifest.get("params") or {}).get("max_new_tokens")
    rows = summary.get("n_rows")
    if max_new and rows:
        units = float(rows * max_new)
    else:
        units = _parquet_sum(Path(f"{stem}.parquet"), "n_completion_tokens")
    return GENERATED, units, summary.get("generate_s")


def _grades(parquet: Path) -> tuple[str, float | None, float | None]:
    """Items graded, and the grader's own seconds per item summed (the rest of the job, the
    worker pool's start-up included, is its fixed part)."""
    return ITEMS, _parquet_sum(parquet, None), _parquet_sum(parquet, "seconds")


def _synthesis(results: Path, job: str) -> tuple[str, float | None, float | None]:
    manifest = _json(results / "synth" / f"{job}.manifest.json") or {}
    summary = manifest.get("summary") or {}
    usage = summary.get("usage")
    if usage:
        units = float(usage.get("requests", 0) - usage.get("cached", 0))
        return REQUESTS, units, manifest.get("wall_time_s")
    rows = summary.get("input_rows")
    return ROWS, (float(rows) if rows is not None else None), manifest.get("wall_time_s")


def _likelihood(results: Path, job: str) -> tuple[str, float | None, float | None]:
    """Reference solutions (the summary's rows, else the benchmark's) and the forward passes'
    seconds."""
    summary = (_json(results / "likelihood" / f"{job}.manifest.json") or {}).get("summary") or {}
    rows = summary.get("rows")
    if rows is None:
        benchmark = job.rsplit("/", 1)[-1]
        bench = _json(results / "benchmarks" / f"{benchmark}.manifest.json") or {}
        rows = (bench.get("summary") or {}).get("rows")
    return REFERENCES, (float(rows) if rows is not None else None), summary.get("forward_s")


def measure(results: Path, rule: str, job: str) -> tuple[str, float | None, float | None]:
    """``(unit kind, units, work seconds)`` of one job of the earlier run, from its outputs."""
    if rule == "train_student":
        return _train(results, job)
    if rule == "generate_answers":
        return _generation(results / "generations" / job)
    if rule == "probe_answers":
        return _generation(results / "probes" / job)
    if rule == "grade_generations":
        return _grades(results / "grades" / f"{job}.parquet")
    if rule == "probe_grades":
        return _grades(results / "probes" / f"{job}.grades.parquet")
    if rule == "synthesize_shard":
        return _synthesis(results, job)
    if rule == "score_likelihood":
        return _likelihood(results, job)
    return JOBS, 1.0, None


def measurements(results: Path) -> list[Measured]:
    return [
        Measured(rule, job, s, *measure(results, rule, job))
        for rule, job, s in runtime_records(results)
    ]


def fit(rule: str, kind: str, student: str | None, jobs: list[Measured]) -> Rate | None:
    """The rate of a group of jobs (one rule, one unit kind); None when no job measured units."""
    usable = [j for j in jobs if j.units is not None and (j.units > 0 or kind == JOBS)]
    if not usable:
        return None
    if kind == JOBS:
        mean = sum(j.seconds for j in usable) / len(usable)
        return Rate(rule, kind, student, len(usable), 0.0, mean, "per job")
    split = [j for j in usable if j.work_s is not None]
    if split:
        units = sum(j.units for j in split)
        fixed = sum(max(0.0, j.seconds - j.work_s) for j in split) / len(split)
        per_unit = sum(min(j.work_s, j.seconds) for j in split) / units
        return Rate(rule, kind, student, len(split), fixed, per_unit, "fixed + per unit")
    units = sum(j.units for j in usable)
    return Rate(rule, kind, student, len(usable), 0.0, sum(j.seconds for j in usable) / units,
                "per unit")  # fmt: skip


class Calibration:
    """The rates of an earlier run's results folder."""

    def __init__(self, results: Path) -> None:
        self.results = Path(results)
        self.jobs = measurements(self.results)
        groups: dict[tuple[str, str, str | None], list[Measured]] = defaultdict(list)
        for j in self.jobs:
            groups[(j.rule, j.kind, None)].append(j)
            if j.student is not None:
                groups[(j.rule, j.kind, j.student)].append(j)
        self.rates: dict[tuple[str, str, str | None], Rate] = {}
        for key, jobs in groups.items():
            rate = fit(*key, jobs)
            if rate is not None:
                self.rates[key] = rate

    def __bool__(self) -> bool:
        return bool(self.rates)

    def rate(self, rule: str, kind: str, student: str | None) -> Rate | None:
        return self.rates.get((rule, kind, student)) or self.rates.get((rule, kind, None))

    def pooled(self) -> list[Rate]:
        return [
            r for (_, _, s), r in sorted(self.rates.items(), key=lambda kv: kv[0][:2]) if s is None
        ]


__all__ = [
    "Calibration",
    "Measured",
    "Rate",
    "fit",
    "measure",
    "measured_seconds",
    "read_runtime",
    "runtime_records",
]
