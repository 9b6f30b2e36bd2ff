"""Work units of a config's jobs, from the config alone (nothing runs, nothing is downloaded).

One :class:`Units` per job of the dry run, by rule and wildcards:

============================  ======================  =========================================
rule                          unit                    count
============================  ======================  =========================================
train_student                 train tokens            max_steps x tokens_per_step (a budget)
generate_answers              generated tokens        problems x samples x max_new_tokens (an
probe_answers                                         upper bound: every sample runs to the end)
grade_generations             graded items            problems x samples
probe_grades
synthesize_shard              teacher requests        pool rows / shards x requests per row
                              (pool rows: no model)
score_likelihood              reference solutions     problems (their tokens: after ingest)
anything else                 jobs                    1 (a fixed cost per job)
============================  ======================  =========================================

Problems: ``n`` of a builtin source, the rows of local files (counted without parsing them;
``limit`` caps), and for a Hub source ``limit`` or unknown. An unknown count is ``None`` with a
note saying why, never a guess.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mathrecipes.config import Config
from mathrecipes.plan.dag import Job

TRAIN = "train_tokens"
GENERATED = "generated_tokens"
ITEMS = "graded_items"
ROWS = "pool_rows"
REQUESTS = "teacher_requests"
REFERENCES = "reference_solutions"
JOBS = "jobs"

UNIT_LABELS = {
    TRAIN: "train tokens",
    GENERATED: "generated tokens",
    ITEMS: "graded items",
    ROWS: "pool rows",
    REQUESTS: "teacher requests",
    REFERENCES: "reference solutions",
    JOBS: "jobs",
}

GENERATION_RULES = {"generate_answers": "benchmark", "probe_answers": "probe"}
GRADING_RULES = {"grade_generations": "benchmark", "probe_grades": "probe"}
LIKELIHOOD_RULES = {"score_likelihood": "benchmark"}


@dataclass(frozen=True)
class Count:
    """A count, or ``None`` when it cannot be known before running, with why."""

    value: float | None
    note: str = ""
    upper_bound: bool = False

    def times(self, factor: float | None, note: str = "") -> Count:
        if self.value is None or factor is None:
            return Count(None, self.note or note, self.upper_bound)
        return Count(self.value * factor, self.note, self.upper_bound)


@dataclass(frozen=True)
class Units:
    """What one job does, in the unit of its rule."""

    kind: str
    value: float | None
    note: str = ""
    upper_bound: bool = False


# ------------------------------------------------------------------ rows of sources


def _file_rows(path: Path, fmt: str) -> int | None:
    """Rows of one local file, counted cheaply (None: a text file cut into chunks later)."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        with path.open("rb") as fh:
            return sum(1 for line in fh if line.strip())
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            return sum(1 for row in csv.DictReader(fh))
    if suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            data = data.get("data", data.get("rows", [data]))
        return len(data)
    if fmt == "text":  # .txt / .md: one document each
        return 1
    raise ValueError(f"{path}: unsupported file type {suffix!r}")


def source_rows(spec: Any, cwd: Path) -> Count:
    """Rows a source yields: exact for builtin and local files (``limit`` caps), ``limit`` or
    unknown for a Hub dataset."""
    if spec.source == "builtin":
        return Count(spec.n)
    if spec.source == "hf":
        if spec.limit:
            return Count(spec.limit, "hf: limit")
        return Count(None, "a Hub dataset without limit: size unknown before ingest")
    from mathrecipes.sources.local import local_input_files

    pattern = spec.path if Path(spec.path).is_absolute() else str(cwd / spec.path)
    files = [Path(f) for f in local_input_files(pattern)]
    missing = [f for f in files if not f.is_file()]
    if not files or missing:
        return Count(None, f"no file at {spec.path}")
    if spec.format == "text" and spec.chunk_chars:
        return Count(None, "text cut into chunks: rows known after ingest")
    try:
        n = sum(_file_rows(f, spec.format) or 0 for f in files)
    except (ValueError, OSError, json.JSONDecodeError) as exc:
        return Count(None, f"could not count rows: {exc}")
    if spec.limit:
        n = min(n, spec.limit)
    return Count(n)


class Sizes:
    """Rows of the config's datasets and benchmarks, each counted once."""

    def __init__(self, cfg: Config, cwd: Path) -> None:
        self.cfg, self.cwd = cfg, cwd
        self._cache: dict[tuple[str, str], Count] = {}

    def rows(self, section: str, name: str) -> Count:
        key = (section, name)
        if key not in self._cache:
            specs = getattr(self.cfg, section)
            if name not in specs:
                self._cache[key] = Count(None, f"{section}.{name} is not in the config")
            else:
                self._cache[key] = source_rows(specs[name], self.cwd)
        return self._cache[key]

    def problems(self, benchmark: str) -> Count:
        return self.rows("benchmarks", benchmark)

    def pool(self, name: str) -> Count:
        """Rows of a pool: a dataset, or a synthesis entry's output (known after it runs)."""
        if name in self.cfg.datasets:
            return self.rows("datasets", name)
        return Count(None, f"{name!r} is a synthesis entry: its rows are known after it runs")


# ------------------------------------------------------------------ synthesis requests


def model_roles(spec: Any) -> dict[str, str]:
    """``{role: backend}`` of the models an entry's job calls (not the builtin teacher)."""
    from mathrecipes.synthesis.jobs import job_models

    models = {r: m.backend for r, m in job_models(spec).items() if m.backend != "builtin"}
    if spec.judged and "judge" not in models and "teacher" in models:
        models["judge"] = models["teacher"]  # the teacher judges
    return models


def requests_per_row(spec: Any) -> Count:
    """Teacher and judge requests per pool row of a synthesis entry that calls a model (see
    the methods in mathrecipes.synthesis): distill ``samples``; structure 1; rephrase
    ``n_rephrasings`` and as many verifying solves; rewrite one article and its judging;
    extract one output and up to ``max_pairs`` judged pairs; weakness, per failure (its seed
    rows), ``similar`` problems each solved ``solutions`` times."""
    m = spec.method
    if m == "distill":
        return Count(spec.samples)
    if m == "structure":
        return Count(1)
    if m == "rephrase":
        n = spec.n_rephrasings
        return Count(2 * n, upper_bound=True) if spec.verify else Count(n)
    if m == "rewrite":
        return Count(2, upper_bound=True)
    if m == "extract":
        return Count(1 + spec.max_pairs, upper_bound=True)
    if m == "weakness":
        return Count(spec.similar * (1 + spec.solutions), upper_bound=True)
    return Count(None, f"method {m}: requests per row not known to the planner")


def synthesis_pool(cfg: Config, sizes: Sizes, name: str) -> Count:
    spec = cfg.synthesis[name]
    if spec.method == "weakness":
        return Count(None, "weakness: its seeds (the probe's failures) are known after probing")
    return sizes.pool(spec.from_)


def synthesis_entry(cfg: Config, sizes: Sizes, name: str) -> dict[str, Any]:
    """One synthesis entry's pool, models and requests (for the report)."""
    spec = cfg.synthesis[name]
    pool = synthesis_pool(cfg, sizes, name)
    roles = model_roles(spec)
    entry: dict[str, Any] = {
        "entry": name,
        "method": spec.method,
        "from": spec.from_,
        "shards": spec.shards,
        "pool_rows": pool.value,
        "pool_note": pool.note,
        "models": roles,
    }
    if not roles:
        why = "builtin teacher" if spec.uses_teacher else "no model (rules or retrieval)"
        entry.update(requests_per_row=0, requests=0, upper_bound=False, local=True,
                     requests_note=why)  # fmt: skip
        return entry
    per_row = requests_per_row(spec)
    total = pool.times(per_row.value)
    entry.update(
        requests_per_row=per_row.value,
        requests=total.value,
        upper_bound=per_row.upper_bound,
        local=False,
        requests_note=total.note or per_row.note,
    )
    return entry


# ------------------------------------------------------------------ per job


def _student(cfg: Config, job: Job) -> Any:
    return cfg.students.get(job.wildcards.get("student", ""))


def job_units(cfg: Config, sizes: Sizes, job: Job) -> Units:
    """The work of one job of the dry run, in its rule's unit (module docstring)."""
    rule, wc = job.rule, job.wildcards
    if rule == "train_student" and _student(cfg, job) is not None:
        tr = _student(cfg, job).training
        if tr.max_steps is None:
            return Units(TRAIN, None, "epochs: the training set's size is known after selection")
        return Units(TRAIN, tr.max_steps * tr.tokens_per_step)
    gen = cfg.generation.for_benchmark(wc.get("benchmark", ""))  # a probe: generation's own
    samples = gen.n_samples
    for rules, kind, factor in (
        (GENERATION_RULES, GENERATED, samples * gen.max_new_tokens),
        (GRADING_RULES, ITEMS, samples),
        (LIKELIHOOD_RULES, REFERENCES, 1),
    ):
        if rule in rules:
            name = wc.get(rules[rule], "")
            section = "benchmarks" if rules[rule] == "benchmark" else "datasets"
            n = sizes.rows(section, name).times(factor)
            return Units(kind, n.value, n.note, upper_bound=kind == GENERATED)
    if rule == "synthesize_shard" and wc.get("synth") in cfg.synthesis:
        spec = cfg.synthesis[wc["synth"]]
        pool = synthesis_pool(cfg, sizes, wc["synth"]).times(1 / spec.shards)
        if not model_roles(spec):
            return Units(ROWS, pool.value, pool.note)
        per_row = requests_per_row(spec)
        n = pool.times(per_row.value)
        return Units(REQUESTS, n.value, n.note or per_row.note, per_row.upper_bound)
    return Units(JOBS, 1)


def likelihood_tokens_bound(cfg: Config, job: Job, units: Units) -> float | None:
    """An upper bound of a likelihood job's forward tokens: reference solutions x the longest
    sequence the model takes (a scratch student's ``model.max_position_embeddings``; the
    likelihood job cuts longer targets). Unknown for a pretrained student (its window is in its
    own config) and before ingest the real count is not known."""
    student = _student(cfg, job)
    if units.value is None or student is None or student.init != "scratch":
        return None
    return units.value * student.model.max_position_embeddings


def config_seconds(cfg: Config, job: Job, units: Units) -> tuple[float | None, str]:
    """Seconds of one job from the throughputs in the config, and the key they came from;
    ``(None, why)`` when the config gives none (a default is not a measurement)."""
    if units.value is None:
        return None, "units unknown"
    student = _student(cfg, job)
    res = student.resources if student is not None else None
    rate, key = None, ""
    if units.kind == TRAIN and res is not None:
        rate, key = res.train_tokens_per_s, "resources.train_tokens_per_s"
    elif units.kind == GENERATED and res is not None:
        if "generate_tokens_per_s" in res.model_fields_set:
            rate, key = res.generate_tokens_per_s, "resources.generate_tokens_per_s"
        else:
            key = "resources.generate_tokens_per_s"
    elif units.kind == REFERENCES and res is not None:
        key = "resources.likelihood_tokens_per_s"
        tokens = likelihood_tokens_bound(cfg, job, units)
        if res.likelihood_tokens_per_s and tokens is not None:
            return tokens / res.likelihood_tokens_per_s, key + " (tokens: an upper bound)"
    elif units.kind == ITEMS:
        rate, key = cfg.plan.grade_items_per_s, "plan.grade_items_per_s"
    elif units.kind == ROWS:
        rate, key = cfg.plan.synth_rows_per_s, "plan.synth_rows_per_s"
    elif units.kind == REQUESTS:
        rate, key = cfg.plan.teacher_requests_per_s, "plan.teacher_requests_per_s"
    if not rate:
        return None, f"{key} not set" if key else "a fixed-cost job: no throughput applies"
    return units.value / rate, key


__all__ = [
    "GENERATED",
    "ITEMS",
    "JOBS",
    "REFERENCES",
    "REQUESTS",
    "ROWS",
    "TRAIN",
    "UNIT_LABELS",
    "Count",
    "Sizes",
    "Units",
    "config_seconds",
    "job_units",
    "likelihood_tokens_bound",
    "model_roles",
    "requests_per_row",
    "source_rows",
    "synthesis_entry",
]
