"""``mathrecipes plan CONFIG``: what a config will cost and what it can detect, before running.

:func:`build_plan` returns one JSON-able document (its keys: docs/plan.md):

- ``jobs``: the jobs per rule of the config's real Snakemake DAG (:mod:`~mathrecipes.plan.dag`),
  and how many would run now when its results folder exists;
- ``earlier_run``: the results folder the calibration and the pilot grades come from (the
  config's own unless ``--results`` names another);
- ``work``: training tokens, generated tokens, graded items, teacher requests and reference
  solutions, per job and in total (:mod:`~mathrecipes.plan.units`);
- ``estimates``: hours per rule, GPU and CPU, each from an earlier run's measured runtimes
  (:mod:`~mathrecipes.plan.calibration`, which wins), from throughputs in the config, or none;
- ``power``: the minimum detectable effect per benchmark and what more seeds or samples would
  buy and cost (:mod:`~mathrecipes.plan.power`).

Nothing runs and nothing is downloaded; :mod:`~mathrecipes.plan.report` prints the document.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from mathrecipes.config import Config, ConfigError, load_config
from mathrecipes.plan.calibration import Calibration
from mathrecipes.plan.dag import DagError, Job, dry_runs
from mathrecipes.plan.power import FACTORS, benchmark_power, pilot_parts
from mathrecipes.plan.units import (
    GENERATED,
    ITEMS,
    REFERENCES,
    TRAIN,
    Sizes,
    Units,
    config_seconds,
    job_units,
    likelihood_tokens_bound,
    synthesis_entry,
)
from mathrecipes.stats import ALPHA, POWER

SCHEMA = "mathrecipes.plan/1"


class PlanError(ValueError):
    """A config that cannot be planned: missing, unreadable, invalid, or no DAG."""


def read_config(path: str | Path) -> Config:
    """The validated config at ``path``; a :class:`PlanError` names the file and the keys."""
    path = Path(path)
    if not path.is_file():
        raise PlanError(f"{path}: no such config file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise PlanError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise PlanError(f"{path}: expected a mapping of config keys, got {type(raw).__name__}")
    try:
        return load_config(raw)
    except ConfigError as exc:
        raise PlanError(f"{path}: {exc}") from None


class Estimator:
    """Seconds of one job: calibration first, then the config's throughputs, else none."""

    def __init__(self, cfg: Config, calibration: Calibration | None) -> None:
        self.cfg, self.calibration = cfg, calibration

    def seconds(self, job: Job, units: Units) -> tuple[float | None, str, str]:
        """``(seconds, source, detail)``; source is calibration, config, target or none."""
        if job.is_target:
            return 0.0, "target", "a target rule: no work"
        if units.value is not None and self.calibration:
            student = job.wildcards.get("student")
            rate = self.calibration.rate(job.rule, units.kind, student)
            if rate is not None:
                return rate.seconds(units.value), "calibration", rate.model
        seconds, detail = config_seconds(self.cfg, job, units)
        if seconds is not None:
            return seconds, "config", detail
        return None, "none", detail


def _job_entry(cfg: Config, sizes: Sizes, est: Estimator, job: Job) -> dict[str, Any]:
    units = job_units(cfg, sizes, job)
    seconds, source, detail = est.seconds(job, units)
    return {
        "rule": job.rule,
        "wildcards": dict(job.wildcards),
        "gpus": job.gpus,
        "target": job.is_target,
        "unit": units.kind,
        "units": units.value,
        "upper_bound": units.upper_bound,
        "units_note": units.note,
        "seconds": seconds,
        "source": source,
        "source_detail": detail,
    }


def _rule_estimates(counts: dict[str, int], entries: list[dict]) -> dict[str, dict[str, Any]]:
    by_rule: dict[str, list[dict]] = defaultdict(list)
    for e in entries:
        by_rule[e["rule"]].append(e)
    out = {}
    for rule, n in counts.items():
        jobs = by_rule.get(rule, [])
        known = [e for e in jobs if e["seconds"] is not None]
        sources = sorted({e["source"] for e in jobs}) or ["none"]
        gpu = any(e["gpus"] > 0 for e in jobs)
        details = sorted({e["source_detail"] for e in jobs if e["source"] != "target"})
        out[rule] = {
            "jobs": n,
            "estimated_jobs": len(known),
            "gpu": gpu,
            "hours": sum(e["seconds"] for e in known) / 3600 if known else None,
            "gpu_hours": sum(e["seconds"] * e["gpus"] for e in known if e["gpus"]) / 3600,
            "cpu_hours": sum(e["seconds"] for e in known if not e["gpus"]) / 3600,
            "source": sources[0] if len(sources) == 1 else "mixed: " + ", ".join(sources),
            "detail": details,
        }
    return out


def _totals(rules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    missing = [r for r, v in rules.items() if v["estimated_jobs"] < v["jobs"]]
    missing = [r for r in missing if rules[r]["source"] != "target"]
    return {
        "jobs": sum(v["jobs"] for v in rules.values()),
        "gpu_hours": sum(v["gpu_hours"] for v in rules.values()),
        "cpu_hours": sum(v["cpu_hours"] for v in rules.values()),
        "rules_without_estimate": missing,
        "complete": not missing,
    }


def _sum(values: list[float | None]) -> tuple[float, int]:
    """The sum of the known values and how many were unknown."""
    return sum(v for v in values if v is not None), sum(v is None for v in values)


def _work(cfg: Config, sizes: Sizes, jobs: list[Job], entries: list[dict]) -> dict[str, Any]:
    """The work units the report shows: per run / evaluation / entry, and in total."""
    gen, grading = cfg.generation, []
    training, generation, likelihood = [], [], []
    for job, e in zip(jobs, entries, strict=True):
        wc = job.wildcards
        run = {k: wc[k] for k in ("student", "recipe", "seed") if k in wc}
        if e["unit"] == TRAIN:
            training.append({**run, "train_tokens": e["units"], "note": e["units_note"]})
        elif e["unit"] in (GENERATED, ITEMS, REFERENCES):
            name = wc.get("benchmark") or wc.get("probe")
            section = "benchmarks" if "benchmark" in wc else "datasets"
            row = {**run, "benchmark": name, "probe": "probe" in wc,
                   "problems": sizes.rows(section, name or "").value}  # fmt: skip
            gen = cfg.generation.for_benchmark(wc.get("benchmark", ""))
            if e["unit"] == GENERATED:
                row.update(samples=gen.n_samples, max_new_tokens=gen.max_new_tokens,
                           generated_tokens=e["units"], note=e["units_note"])  # fmt: skip
                generation.append(row)
            elif e["unit"] == ITEMS:
                grading.append({**row, "samples": gen.n_samples, "graded_items": e["units"],
                                "note": e["units_note"]})  # fmt: skip
            else:
                bound = likelihood_tokens_bound(cfg, job, Units(REFERENCES, e["units"]))
                likelihood.append({**row, "reference_solutions": e["units"],
                                   "forward_tokens_upper_bound": bound,
                                   "note": "forward tokens are known after ingest; the bound is "
                                   "reference solutions x model.max_position_embeddings"})  # fmt: skip
    synth_names = sorted({j.wildcards["synth"] for j in jobs if j.rule == "synthesize_shard"
                          and j.wildcards.get("synth") in cfg.synthesis})  # fmt: skip
    synthesis = [synthesis_entry(cfg, sizes, n) for n in synth_names]
    total = {}
    for key, rows, col in (
        ("train_tokens", training, "train_tokens"),
        ("generated_tokens", generation, "generated_tokens"),
        ("graded_items", grading, "graded_items"),
        ("reference_solutions", likelihood, "reference_solutions"),
        ("teacher_requests", synthesis, "requests"),
    ):
        value, unknown = _sum([r[col] for r in rows])
        total[key] = {"value": value, "unknown": unknown}
    return {
        "training": training,
        "generation": generation,
        "grading": grading,
        "likelihood": likelihood,
        "synthesis": synthesis,
        "total": total,
        "problems": {
            section: {
                name: {
                    "rows": sizes.rows(section, name).value,
                    "note": sizes.rows(section, name).note,
                }  # fmt: skip
                for name in sorted(getattr(cfg, section))
            }
            for section in ("benchmarks", "datasets")
        },
    }


COST_KEYS = {TRAIN: "train_tokens", GENERATED: "generated_tokens", ITEMS: "graded_items"}


def _what_if_costs(cfg: Config, sizes: Sizes, est: Estimator, jobs: list[Job]) -> list[dict]:
    """What 2x / 4x the seeds (every job of a training run: a probe's seed is fixed) and the
    samples (generation and grading jobs, probes included) would add to the whole config."""
    out = []
    for change, factor in [("seeds", f) for f in FACTORS] + [("samples", f) for f in FACTORS]:
        if change == "samples" and cfg.generation.temperature == 0:
            continue
        extra = dict.fromkeys(["gpu_hours", "cpu_hours", *COST_KEYS.values()], 0.0)
        unknown = dict.fromkeys(["hours", *COST_KEYS.values()], 0)
        for job in jobs:
            units = job_units(cfg, sizes, job)
            if change == "seeds":
                if "seed" not in job.wildcards or "probe" in job.wildcards:
                    continue
                seconds, _, _ = est.seconds(job, units)
                more = None if seconds is None else (factor - 1) * seconds
            else:
                if units.kind not in (GENERATED, ITEMS):
                    continue
                new = Units(units.kind, None if units.value is None else units.value * factor)
                before, after = est.seconds(job, units)[0], est.seconds(job, new)[0]
                more = None if before is None or after is None else after - before
            key = COST_KEYS.get(units.kind)
            if key and units.value is None:
                unknown[key] += 1
            elif key:
                extra[key] += (factor - 1) * units.value
            if more is None:
                unknown["hours"] += 1
            else:
                extra["gpu_hours" if job.gpus else "cpu_hours"] += more * max(job.gpus, 1) / 3600
        out.append({"change": f"{change} x{factor}",
                    **{f"extra_{k}": v for k, v in extra.items()}, "unknown": unknown})  # fmt: skip
    return out


def _job_order(counts: dict[str, int]):
    """Jobs in Snakemake's rule order, then by their wildcards (a stable report)."""
    rank = {rule: i for i, rule in enumerate(counts)}
    return lambda job: (rank.get(job.rule, len(rank)), job.rule, sorted(job.wildcards.items()))


def build_plan(
    config: str | Path,
    results: str | Path | None = None,
    snakefile: str | Path | None = None,
    cwd: str | Path | None = None,
) -> dict[str, Any]:
    """The plan of ``config`` (module docstring). ``results``: an earlier run's results folder
    for the calibration and the pilot grades (default: the config's own ``results``, which is
    also where the plain dry run looks for what would run now). ``cwd``: the workflow's working
    directory, where the config's relative paths (local sources, results) resolve."""
    cwd = Path(cwd or Path.cwd()).resolve()
    config = Path(config)
    cfg = read_config(config)
    own = Path(cfg.results) if Path(cfg.results).is_absolute() else cwd / cfg.results
    earlier = Path(results) if results is not None else own
    earlier = earlier if earlier.is_absolute() else cwd / earlier
    if results is not None and not earlier.is_dir():
        raise PlanError(f"--results {results}: no such folder (an earlier run's results)")
    try:
        forced, pending = dry_runs(
            config.resolve(),
            snakefile=Path(snakefile).resolve() if snakefile else None,
            pending=own.is_dir(),
            cwd=cwd,
        )
    except DagError as exc:
        raise PlanError(f"{config}: {exc}") from None
    forced.jobs.sort(key=_job_order(forced.counts))
    if pending:
        pending.jobs.sort(key=_job_order(forced.counts))
    calibration = Calibration(earlier) if earlier.is_dir() else None
    est = Estimator(cfg, calibration)
    sizes = Sizes(cfg, cwd)
    entries = [_job_entry(cfg, sizes, est, j) for j in forced.jobs]
    rules = _rule_estimates(forced.counts, entries)
    pending_entries = [_job_entry(cfg, sizes, est, j) for j in pending.jobs] if pending else []
    pending_rules = _rule_estimates(pending.counts, pending_entries) if pending else {}
    for rule, v in rules.items():
        p = pending_rules.get(rule)
        v["pending_jobs"] = None if pending is None else (p["jobs"] if p else 0)
        v["pending_hours"] = p["hours"] if p else (None if pending is None else 0.0)
    notes = []
    power_rows = []
    for name in sorted(cfg.benchmarks):
        pilot = pilot_parts(earlier, name, cfg.tables.baseline, set(cfg.students))
        n = sizes.problems(name)
        gen = cfg.generation.for_benchmark(name)
        power_rows.append(benchmark_power(name, n.value, gen.n_samples, len(cfg.seeds),
                                          gen.temperature, pilot, n.note))  # fmt: skip
    if not any(r["variance"]["source"] == "pilot" for r in power_rows):
        notes.append(
            "power: no usable pilot grades in the earlier run (the baseline and another "
            "recipe, not all scored alike): the default omega^2 = 0.2 between problems for one "
            "greedy sample is used"
        )
    return {
        "schema": SCHEMA,
        "config": str(config),
        "results": {"path": cfg.results, "exists": own.is_dir()},
        "earlier_run": {
            "path": str(results if results is not None else cfg.results),
            "exists": earlier.is_dir(),
            "calibrated_rules": sorted({r.rule for r in calibration.pooled()})
            if calibration
            else [],
            "pilot_benchmarks": [
                r["benchmark"] for r in power_rows if r["variance"]["source"] == "pilot"
            ],
        },
        "jobs": {
            "rules": {
                r: {"planned": v["jobs"], "pending": v["pending_jobs"]} for r, v in rules.items()
            },  # fmt: skip
            "total": {"planned": forced.total, "pending": pending.total if pending else None},
        },
        "work": _work(cfg, sizes, forced.jobs, entries),
        "estimates": {
            "rules": rules,
            "total": _totals(rules),
            "pending": {
                "gpu_hours": sum(v["gpu_hours"] for v in pending_rules.values()),
                "cpu_hours": sum(v["cpu_hours"] for v in pending_rules.values()),
            }
            if pending
            else None,
            "calibration": [
                {
                    "rule": r.rule,
                    "unit": r.kind,
                    "jobs": r.jobs,
                    "fixed_s": r.fixed_s,
                    "per_unit_s": r.per_unit_s,
                    "model": r.model,
                }  # fmt: skip
                for r in (calibration.pooled() if calibration else [])
            ],
            "jobs": entries,
        },
        "power": {
            "alpha": ALPHA,
            "power": POWER,
            "baseline": cfg.tables.baseline,
            "benchmarks": power_rows,
            "costs": _what_if_costs(cfg, sizes, est, forced.jobs),
        },
        "notes": notes,
    }


__all__ = ["SCHEMA", "PlanError", "build_plan", "read_config"]
