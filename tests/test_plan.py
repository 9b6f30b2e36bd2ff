"""``mathrecipes plan``: jobs from the real DAG, work units, calibrated hours, power.

Real Snakemake dry runs of the repository's Snakefile (no mocks); one small real run of a cut-down
tiny config (module fixture) for the calibration and the pilot checks. The Hub is never reached
(conftest sets HF_HUB_OFFLINE; the planner's subprocesses set it too).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from helpers import TINY, planned_jobs, run_snakemake

from mathrecipes.cli import main
from mathrecipes.config import load_config
from mathrecipes.plan import PlanError, build_plan
from mathrecipes.plan.calibration import Calibration, measured_seconds
from mathrecipes.plan.dag import Job, parse_dry_run
from mathrecipes.plan.power import benchmark_power, pilot_parts
from mathrecipes.plan.report import render
from mathrecipes.plan.units import (
    GENERATED,
    REFERENCES,
    REQUESTS,
    ROWS,
    Sizes,
    job_units,
    likelihood_tokens_bound,
    synthesis_entry,
)

TOP_KEYS = {"schema", "config", "results", "earlier_run", "jobs", "work", "estimates", "power",
            "notes"}  # fmt: skip


def tiny_raw() -> dict:
    return yaml.safe_load(TINY.read_text())


def write_config(folder: Path, raw: dict, name: str = "config.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# ------------------------------------------------------------------ the DAG, units, arithmetic


@pytest.fixture(scope="module")
def tiny_plan(tmp_path_factory):
    """The plan of the tiny config in an empty folder, and Snakemake's own dry run of it."""
    work = tmp_path_factory.mktemp("plan")
    config = work / "tiny.yaml"
    shutil.copy(TINY, config)
    doc = build_plan(config, cwd=work)
    proc = run_snakemake(work, "-n", "--forceall", "--configfile", str(config))
    return work, config, doc, proc


def test_jobs_per_rule_equal_the_dag(tiny_plan):
    _, _, doc, proc = tiny_plan
    dag = Counter(rule for rule, _ in planned_jobs(proc.stdout))
    assert {r: v["planned"] for r, v in doc["jobs"]["rules"].items()} == dict(dag)
    assert doc["jobs"]["total"] == {"planned": sum(dag.values()), "pending": None}
    assert not doc["results"]["exists"]
    # the parser reads Snakemake's report as the helper does: every job with its wildcards
    jobs = parse_dry_run(proc.stdout).jobs
    assert {(j.rule, tuple(sorted(j.wildcards.items()))) for j in jobs} == planned_jobs(proc.stdout)
    assert {j.rule for j in jobs if j.is_target} == {"all"}
    assert {j.rule for j in jobs if j.gpus} == {
        "train_student",
        "generate_answers",
        "score_likelihood",
    }


def test_token_arithmetic_of_a_builtin_config(tiny_plan):
    _, _, doc, _ = tiny_plan
    work = doc["work"]
    # nano: 6 steps x 1000 tokens per step, 4 recipes x 1 seed
    assert [r["train_tokens"] for r in work["training"]] == [6000] * 4
    assert work["total"]["train_tokens"] == {"value": 24000, "unknown": 0}
    # id_test 24 and ood_test 16 problems, 1 greedy sample, 12 new tokens, 4 runs each
    per = {r["benchmark"]: r["generated_tokens"] for r in work["generation"]}
    assert per == {"id_test": 24 * 12, "ood_test": 16 * 12}
    assert work["total"]["generated_tokens"]["value"] == 4 * (24 + 16) * 12
    assert work["total"]["graded_items"] == {"value": 4 * (24 + 16), "unknown": 0}
    synth = {e["entry"]: e for e in work["synthesis"]}
    assert synth["distilled"]["pool_rows"] == 300 and synth["distilled"]["local"]
    assert synth["distilled"]["requests"] == 0 and synth["distilled_prose"]["pool_rows"] == 120
    # no throughput in the config and nothing measured: no hour is invented
    rules = doc["estimates"]["rules"]
    assert all(v["hours"] is None for r, v in rules.items() if r != "all")
    assert rules["train_student"]["detail"] == ["resources.train_tokens_per_s not set"]
    assert "24 k train tokens" in render(doc)


def test_units_of_sampled_generation_and_model_teachers(tmp_path):
    raw = tiny_raw()
    raw["generation"].update(temperature=0.7, n_samples=4)
    raw["datasets"]["sums"] = {"source": "local", "path": "sums.jsonl", "format": "canonical"}
    raw["datasets"]["hub"] = {"source": "hf", "path": "org/nothing", "format": "gsm8k"}
    raw["synthesis"] = {
        "sampled": {"from": "sums", "method": "distill", "samples": 3, "teacher": {
            "backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1",
            "temperature": 0.8}},
        "reworded": {"from": "hub", "method": "rephrase", "n_rephrasings": 2, "teacher": {
            "backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1",
            "temperature": 1.0}},
        "chained": {"from": "sampled", "method": "distill"},
    }  # fmt: skip
    raw["recipes"] = {"more": {"mix": [{"from": "arith"}]}}
    cfg = load_config(raw)
    (tmp_path / "sums.jsonl").write_text("".join(json.dumps({"i": i}) + "\n" for i in range(6)))
    sizes = Sizes(cfg, tmp_path)
    wc = {"student": "nano", "recipe": "more", "seed": "0", "benchmark": "id_test"}
    gen = job_units(cfg, sizes, Job("generate_answers", wc))
    assert (gen.kind, gen.value, gen.upper_bound) == (GENERATED, 24 * 4 * 12, True)
    assert job_units(cfg, sizes, Job("grade_generations", wc)).value == 24 * 4
    sampled = job_units(cfg, sizes, Job("synthesize_shard", {"synth": "sampled", "shard": "0"}))
    assert (sampled.kind, sampled.value) == (REQUESTS, 6 * 3 / 2)  # 2 shards by default
    entry = synthesis_entry(cfg, sizes, "sampled")
    assert (entry["pool_rows"], entry["requests_per_row"], entry["requests"]) == (6, 3, 18)
    reworded = synthesis_entry(cfg, sizes, "reworded")  # a Hub pool without limit: unknown
    assert reworded["requests"] is None and "Hub" in reworded["pool_note"]
    assert reworded["requests_per_row"] == 4 and reworded["upper_bound"]  # 2 + 2 solves at most
    chained = job_units(cfg, sizes, Job("synthesize_shard", {"synth": "chained", "shard": "1"}))
    assert (chained.kind, chained.value) == (ROWS, None) and "after it runs" in chained.note
    cfg.datasets["hub"].limit = 50
    assert Sizes(cfg, tmp_path).pool("hub").value == 50
    # a likelihood job: its benchmark's reference solutions
    scored = Job("score_likelihood", wc)
    refs = job_units(cfg, sizes, scored)
    assert (refs.kind, refs.value) == (REFERENCES, 24)
    assert likelihood_tokens_bound(cfg, scored, refs) == 24 * 160  # nano's window


# ------------------------------------------------------------------ power


def test_mde_of_the_default_variance():
    """STATISTICS.md: omega^2 0.2, one greedy sample, one seed: 5.6 points on 500 problems, 23
    on 30; without a pilot more seeds or samples buy nothing that can be shown."""
    assert round(benchmark_power("b", 500, 1, 1, 0.0, None)["mde_points"], 1) == 5.6
    assert round(benchmark_power("b", 30, 1, 1, 0.0, None)["mde_points"]) == 23
    row = benchmark_power("b", 500, 1, 3, 0.7, None)
    assert [w["change"] for w in row["what_if"]] == ["seeds x2", "seeds x4", "samples x2", "samples x4"]  # fmt: skip
    assert all(w["mde_points"] is None and "no pilot" in w["why"] for w in row["what_if"])
    greedy = benchmark_power("b", 500, 1, 1, 0.0, None)["what_if"][2]
    assert "greedy" in greedy["why"]
    unknown = benchmark_power("b", None, 1, 1, 0.0, None, "a Hub dataset without limit")
    assert unknown["mde_points"] is None and unknown["note"] == "a Hub dataset without limit"


def write_grades(path: Path, rows: list[tuple[str, int, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pid, sample, verdict = zip(*rows, strict=True)
    pq.write_table(pa.table({"problem_id": list(pid), "sample": list(sample),
                             "verdict": list(verdict)}), path)  # fmt: skip


def test_pilot_variance_from_grade_files(tmp_path):
    """One seed, one sample: the problem part is the variance of the per-problem difference."""
    res = tmp_path / "results"
    base = ["correct", "correct", "incorrect", "incorrect"]
    cand = ["correct", "incorrect", "correct", "incorrect"]  # d = 0, -1, 1, 0
    for recipe, verdicts in (("more", base), ("better", cand)):
        rows = [(f"b/{i}", 0, v) for i, v in enumerate(verdicts)]
        rows.append(("b/9", 0, "gold_unparseable"))  # left out
        write_grades(res / "grades" / "nano" / recipe / "seed-0" / "bench.parquet", rows)
    pilot = pilot_parts(res, "bench", "more", {"nano"})
    assert pilot.parts.problem == pytest.approx(2 / 3)
    assert (pilot.pairs, pilot.problems, pilot.seeds, pilot.samples) == (1, 4, 1, 1)
    row = benchmark_power("bench", 500, 1, 1, 0.0, pilot)
    assert row["variance"]["source"] == "pilot"
    assert row["mde_points"] == pytest.approx(100 * 2.8016 * (2 / 3 / 500) ** 0.5, rel=1e-3)
    assert "one seed" in row["what_if"][0]["why"]
    assert pilot_parts(res, "bench", "absent", {"nano"}) is None  # no baseline: no pilot


def test_pilot_with_seeds_and_samples_prices_more_of_them(tmp_path):
    res = tmp_path / "results"
    for recipe, shift in (("more", 0), ("better", 1)):
        for seed in (0, 1):
            rows = []
            for i in range(20):
                for s in range(4):  # a mix of right and wrong samples per problem
                    ok = (i + s + seed + shift * (i % 3)) % 3 != 0
                    rows.append((f"b/{i}", s, "correct" if ok else "incorrect"))
            write_grades(res / "grades" / "nano" / recipe / f"seed-{seed}" / "bench.parquet", rows)
    pilot = pilot_parts(res, "bench", "more")
    assert (pilot.seeds, pilot.samples) == (2, 4) and pilot.parts.sample > 0
    row = benchmark_power("bench", 200, 4, 2, 0.7, pilot)
    mde = {w["change"]: w["mde_points"] for w in row["what_if"]}
    assert all(v is not None for v in mde.values())
    assert mde["seeds x4"] < mde["seeds x2"] < row["mde_points"]
    assert mde["samples x4"] < mde["samples x2"] < row["mde_points"]


# ------------------------------------------------------------------ a real run: calibration


def small_raw() -> dict:
    """The tiny config cut down to 12 jobs: one dataset, one benchmark, one synthesis shard,
    two recipes."""
    raw = tiny_raw()
    raw["datasets"] = {"arith": raw["datasets"]["arith"]}
    raw["benchmarks"] = {"id_test": raw["benchmarks"]["id_test"]}
    raw["synthesis"] = {"distilled": {**raw["synthesis"]["distilled"], "shards": 1}}
    raw["recipes"] = {k: raw["recipes"][k] for k in ("more", "better")}
    return raw


# Every job but the tables (make_tables draws the figure: not needed here).
TARGETS = ("all_grades", "all_likelihood")


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("plan_run")
    config = write_config(work, small_raw())
    run_snakemake(work, "--configfile", str(config), "--cores", "2", *TARGETS)
    return work, config


@pytest.mark.heavy  # a real 12-job run: `pytest -m heavy`
def test_calibration_from_a_real_run(small_run):
    work, config = small_run
    res = work / "results"
    cal = Calibration(res)
    rates = {(r.rule, r.kind): r for r in cal.pooled()}
    for rule in ("train_student", "generate_answers", "grade_generations", "synthesize_shard"):
        assert any(k[0] == rule and r.model == "fixed + per unit" for k, r in rates.items())
    assert rates[("select_recipe", "jobs")].model == "per job"
    doc = build_plan(config, cwd=work)
    pending = {r: v["pending"] for r, v in doc["jobs"]["rules"].items() if v["pending"]}
    assert doc["results"]["exists"] and pending == {"make_tables": 1, "all": 1}
    # calibrated on its own run, the plan gives back that run's seconds, rule by rule
    measured = measured_seconds(res)
    rules = doc["estimates"]["rules"]
    assert "score_likelihood" in measured
    for rule, (jobs, seconds) in measured.items():
        assert rules[rule]["source"] == "calibration" and rules[rule]["jobs"] == jobs
        assert rules[rule]["hours"] * 3600 == pytest.approx(seconds, rel=1e-6)
    assert doc["estimates"]["total"]["rules_without_estimate"] == ["make_tables"]
    train = rates[("train_student", "train_tokens")]
    assert train.per_unit_s > 0 and train.fixed_s > 0

    # twice the steps: what would run now, and the training estimate for the new budget
    raw = small_raw()
    raw["students"]["nano"]["training"]["max_steps"] = 12
    longer = build_plan(write_config(work, raw, "longer.yaml"), cwd=work)
    pending = {r: v["pending"] for r, v in longer["jobs"]["rules"].items()}
    assert pending["train_student"] == 2 and pending["ingest_dataset"] == 0
    per_job = train.fixed_s + 12 * 1000 * train.per_unit_s
    assert longer["estimates"]["rules"]["train_student"]["hours"] * 3600 == pytest.approx(
        2 * per_job
    )
    assert longer["estimates"]["rules"]["train_student"]["pending_hours"] > 0


@pytest.mark.heavy
def test_throughputs_are_not_job_parameters(small_run):
    """Adding the plan's throughput keys to the run's config reruns nothing."""
    work, _ = small_run
    raw = small_raw()
    raw["students"]["nano"]["resources"].update(train_tokens_per_s=5000, generate_tokens_per_s=99,
                                                likelihood_tokens_per_s=7)  # fmt: skip
    raw["plan"] = {"grade_items_per_s": 10, "synth_rows_per_s": 100, "teacher_requests_per_s": 1}
    config = write_config(work, raw, "throughputs.yaml")
    proc = run_snakemake(work, "-n", *TARGETS, "--configfile", str(config))
    assert planned_jobs(proc.stdout) == set(), proc.stdout[-2000:]


# ------------------------------------------------------------------ the command


def test_json_round_trips_and_config_throughputs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the workflow's working directory: no results folder here
    raw = tiny_raw()
    raw["students"]["nano"]["resources"].update(train_tokens_per_s=2000, generate_tokens_per_s=48)
    raw["plan"] = {"grade_items_per_s": 8}
    raw["benchmarks"]["hub_test"] = {"source": "hf", "path": "org/bench", "split": "test",
                                     "format": "gsm8k"}  # fmt: skip
    config = write_config(tmp_path, raw)
    assert main(["plan", str(config), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == TOP_KEYS and doc["schema"] == "mathrecipes.plan/1"
    assert json.loads(json.dumps(doc)) == doc
    rules = doc["estimates"]["rules"]
    # from the config: 6000 tokens at 2000/s per run; 24 x 12 and 16 x 12 tokens at 48/s
    assert rules["train_student"]["source"] == "config"
    assert rules["train_student"]["gpu_hours"] * 3600 == pytest.approx(4 * 3.0)
    assert rules["generate_answers"]["estimated_jobs"] == 8  # hub_test's 4 are unknown
    assert rules["generate_answers"]["gpu_hours"] * 3600 == pytest.approx(4 * (24 + 16) * 12 / 48)
    assert rules["grade_generations"]["cpu_hours"] * 3600 == pytest.approx(4 * 40 / 8)
    assert rules["select_recipe"]["hours"] is None and rules["select_recipe"]["source"] == "none"
    hub = next(b for b in doc["power"]["benchmarks"] if b["benchmark"] == "hub_test")
    assert hub["problems"] is None and hub["mde_points"] is None and "Hub" in hub["note"]
    assert doc["work"]["total"]["generated_tokens"]["unknown"] == 4
    # the text report is the same document
    assert main(["plan", str(config)]) == 0
    text = capsys.readouterr().out
    assert "Jobs (Snakemake's dry run" in text and "hub_test" in text and "MDE" in text


def test_missing_and_invalid_configs_name_the_problem(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["plan", str(tmp_path / "absent.yaml")]) == 1
    assert "absent.yaml: no such config file" in capsys.readouterr().err
    raw = tiny_raw()
    raw["plan"] = {"grade_items_per_sec": 3}
    raw["students"]["nano"]["resources"]["train_tokens_per_s"] = -1
    assert main(["plan", str(write_config(tmp_path, raw))]) == 1
    err = capsys.readouterr().err
    assert "config key 'plan.grade_items_per_sec': unknown key" in err
    assert "config key 'students.nano.resources.train_tokens_per_s'" in err
    (tmp_path / "bad.yaml").write_text("seeds: [0\n")
    with pytest.raises(PlanError, match="bad.yaml: not valid YAML"):
        build_plan(tmp_path / "bad.yaml")
    with pytest.raises(PlanError, match="--results nowhere: no such folder"):
        build_plan(TINY, results="nowhere", cwd=tmp_path)
