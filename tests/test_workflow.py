"""The Snakefile end to end on a tiny config, and the rerun rule.

One real run of the whole grid (module fixture), then dry runs after single edits that assert the
exact set of jobs Snakemake schedules. The package is run from a copy (PYTHONPATH) so a test can
edit its source the way a developer would.
"""

from __future__ import annotations

import base64
import json
import re
import shutil

import polars as pl
import pytest
import yaml
from helpers import REPO, TINY, J, documented_folder_hash, planned_jobs, run_snakemake

from mathrecipes.grading import VERDICTS

SYNTH_OPENAI = REPO / "tests" / "configs" / "synth_openai.yaml"

pytestmark = pytest.mark.slow

RECIPES = ("more", "more_third", "better", "mixed")
BENCHES = ("id_test", "ood_test")


def downstream(recipe: str) -> set:
    jobs = {J("train_student", student="nano", recipe=recipe, seed=0)}
    for b in BENCHES:
        jobs.add(J("generate_answers", student="nano", recipe=recipe, seed=0, benchmark=b))
        jobs.add(J("score_likelihood", student="nano", recipe=recipe, seed=0, benchmark=b))
        jobs.add(J("grade_generations", student="nano", recipe=recipe, seed=0, benchmark=b))
    return jobs


TAIL = {J("make_tables"), J("all")}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, pkg_env):
    _, env = pkg_env
    work = tmp_path_factory.mktemp("tiny")
    config = work / "tiny.yaml"
    shutil.copy(TINY, config)
    proc = run_snakemake(work, "--configfile", str(config), "--cores", "2", env=env)
    return work, config, env, proc


def test_end_to_end_outputs(tiny_run):
    work, _, _, _ = tiny_run
    res = work / "results"
    scores = pl.read_csv(res / "tables" / "scores.csv")
    assert scores.height == len(RECIPES) * len(BENCHES)
    assert set(scores["recipe"]) == set(RECIPES) and set(scores["benchmark"]) == set(BENCHES)
    assert scores["accuracy"].is_between(0, 1).all()
    base = scores.filter(pl.col("recipe") == "more")
    assert (base["delta_vs_baseline"] == 0).all()
    # one seed still gets intervals and verdicts (problems and samples only, and it says so)
    assert scores["accuracy_lo"].null_count() == 0 and scores["interval"].null_count() == 0
    others = scores.filter(pl.col("recipe") != "more")
    assert set(others["verdict"]) <= {"better", "worse", "inconclusive"}
    assert others["delta_lo"].null_count() == 0 and others["p_holm"].null_count() == 0
    assert "problems and samples only" in (res / "tables" / "scores.md").read_text()
    reliability = pl.read_csv(res / "tables" / "reliability.csv")
    assert set(reliability["benchmark"]) == set(BENCHES) and "mde" in reliability.columns
    assert (res / "figures" / "accuracy_vs_size.png").stat().st_size > 1000
    assert "`more` (baseline)" in (res / "tables" / "scores.md").read_text()

    stats = json.loads((res / "recipes" / "better" / "stats.json").read_text())
    assert stats["examples"] == 100 and stats["decontamination"]["matches"] == 0
    assert set(stats["decontamination"]["benchmarks"]) == set(BENCHES)
    mixed = json.loads((res / "recipes" / "mixed" / "stats.json").read_text())
    assert [p["quota"] for p in mixed["parts"]] == [20, 80]
    more = set(pl.read_parquet(res / "recipes" / "more" / "train.parquet")["id"])
    third = set(pl.read_parquet(res / "recipes" / "more_third" / "train.parquet")["id"])
    assert third < more and len(third) == round(len(more) * 0.3333333)

    for b in BENCHES:
        grades = pl.read_parquet(res / "grades" / "nano" / "better" / "seed-0" / f"{b}.parquet")
        gens = pl.read_parquet(res / "generations" / "nano" / "better" / "seed-0" / f"{b}.parquet")
        assert (
            grades.height
            == gens.height
            == pl.read_parquet(res / "benchmarks" / f"{b}.parquet").height
        )
        assert set(grades["verdict"]) <= set(VERDICTS)
        grade_dir = res / "grades" / "nano" / "better" / "seed-0"
        audit = pl.read_parquet(grade_dir / f"{b}.disagreements.parquet")
        manifest = json.loads((grade_dir / f"{b}.manifest.json").read_text())
        assert audit.height == manifest["summary"]["disagreements"]
        assert grades["grader_version"].n_unique() == 1

    # nano's window (max_position_embeddings 160) holds the id_test rows' prompts, not always
    # their solutions, and none of the longer ood_test prompts: both truncation paths run
    likelihood_columns = {"problem_id": pl.String, "nll": pl.Float64, "tokens": pl.Int64,
                          "bytes": pl.Int64, "truncated": pl.Boolean}  # fmt: skip
    for r in RECIPES:
        for b in BENCHES:
            path = res / "likelihood" / "nano" / r / "seed-0" / f"{b}.parquet"
            lik = pl.read_parquet(path)
            assert dict(lik.schema) == likelihood_columns, path
            bench = pl.read_parquet(res / "benchmarks" / f"{b}.parquet")
            assert lik["problem_id"].to_list() == sorted(bench["id"])  # every row has a solution
            solutions = dict(zip(bench["id"], bench["solution"], strict=True))
            for pid, nll, tokens, n_bytes, cut in lik.iter_rows():
                full = len(solutions[pid].strip().encode())
                assert (nll > 0) == (tokens > 0) == (n_bytes > 0), (path, pid)
                assert n_bytes == full if not cut else n_bytes < full, (path, pid)
            doc = json.loads((path.parent / f"{b}.manifest.json").read_text())
            summary = doc["summary"]
            assert summary["scored"] == lik.height and summary["left_out"] == 0
            assert summary["truncated"] == lik["truncated"].sum()
            assert summary["bytes"] == lik["bytes"].sum()
            if b == "id_test":
                assert not lik["truncated"].all() and summary["bits_per_byte"] > 0
            assert doc["code_fingerprint"] and doc["params"]["batch_size"] == 32

    ckpt = res / "checkpoints" / "nano" / "better" / "seed-0"
    for f in ("config.json", "model.safetensors", "tokenizer.json", "train_log.jsonl",
              "train_summary.json", "manifest.json"):  # fmt: skip
        assert (ckpt / f).is_file(), f


def test_every_artifact_has_a_manifest_and_cells_trace_back(tiny_run):
    work, _, _, _ = tiny_run
    res = work / "results"
    artifacts = [
        *res.glob("datasets/*[!e].parquet"),
        *res.glob("benchmarks/*.parquet"),
        *res.glob("synth/*/shard-[0-9].parquet"),
        *res.glob("generations/*/*/*/*.parquet"),
        *res.glob("grades/*/*/*/*.parquet"),
        *res.glob("likelihood/*/*/*/*.parquet"),
    ]
    skip = (".quarantine", ".rejects", ".disagreements")  # sidecars listed in the main manifest
    artifacts = [a for a in artifacts if not any(s in a.name for s in skip)]
    assert len(artifacts) > 20
    for a in artifacts:
        m = a.with_name(a.stem + ".manifest.json")
        doc = json.loads(m.read_text())
        assert doc["code_fingerprint"] and doc["versions"]["mathrecipes"]
        assert str(a.relative_to(work)) in doc["outputs"], a
    prov = json.loads((res / "tables" / "provenance.json").read_text())
    cell = prov["nano/better/id_test"]
    assert set(cell["synthesis_shards"]) == {
        "results/synth/distilled/shard-0.parquet",
        "results/synth/distilled/shard-1.parquet",
    }
    assert all(h for h in cell["synthesis_shards"].values())
    seed0 = cell["seeds"]["0"]
    assert list(seed0["checkpoint"].values())[0]
    assert list(seed0["grades"]) == ["results/grades/nano/better/seed-0/id_test.parquet"]


def test_second_run_does_nothing(tiny_run):
    work, config, env, _ = tiny_run
    proc = run_snakemake(work, "--configfile", str(config), "-n", env=env)
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert planned_jobs(proc.stdout) == set()


def _dry_run_after(tiny_run, edit) -> set:
    work, config, env, _ = tiny_run
    raw = yaml.safe_load(config.read_text())
    edit(raw)
    edited = work / "edited.yaml"
    edited.write_text(yaml.safe_dump(raw, sort_keys=False))
    proc = run_snakemake(work, "--configfile", str(edited), "-n", env=env)
    return planned_jobs(proc.stdout)


def test_recipe_volume_edit_reruns_only_that_recipe(tiny_run):
    def edit(raw):
        raw["recipes"]["more_third"]["volume"] = {"fraction": 0.5}

    assert _dry_run_after(tiny_run, edit) == {
        J("select_recipe", recipe="more_third"),
        *downstream("more_third"),
        *TAIL,
    }


def test_teacher_edit_reruns_that_synthesis_and_what_depends_on_it(tiny_run):
    def edit(raw):
        raw["synthesis"]["distilled"]["teacher"]["error_rate"] = 0.2

    assert _dry_run_after(tiny_run, edit) == {
        J("synthesize_shard", synth="distilled", shard=0),
        J("synthesize_shard", synth="distilled", shard=1),
        J("select_recipe", recipe="better"),
        *downstream("better"),
        *TAIL,
    }


def _grading_only() -> set:
    return {
        J("grade_generations", student="nano", recipe=r, seed=0, benchmark=b)
        for r in RECIPES
        for b in BENCHES
    } | TAIL


def test_grader_setting_edit_regrades_only(tiny_run):
    def edit(raw):
        raw["grading"]["timeout_s"] = 7.5

    assert _dry_run_after(tiny_run, edit) == _grading_only()


def test_one_benchmarks_grading_policy_regrades_only_that_benchmark(tiny_run):
    def edit(raw):
        raw["grading"]["benchmarks"] = {"ood_test": {"rel_tol": 1e-4}}

    expected = {
        J("grade_generations", student="nano", recipe=r, seed=0, benchmark="ood_test")
        for r in RECIPES
    }
    assert _dry_run_after(tiny_run, edit) == expected | TAIL


def test_likelihood_setting_edit_rescores_only(tiny_run):
    def edit(raw):
        raw["likelihood"] = {"batch_size": 5}

    expected = {
        J("score_likelihood", student="nano", recipe=r, seed=0, benchmark=b)
        for r in RECIPES
        for b in BENCHES
    }
    assert _dry_run_after(tiny_run, edit) == expected | TAIL


def test_sampling_edit_regenerates_and_regrades_but_does_not_rescore(tiny_run):
    """The likelihood rule reads generation's dtype and attention only."""

    def edit(raw):
        raw["generation"]["max_new_tokens"] = 10

    expected = {
        J(rule, student="nano", recipe=r, seed=0, benchmark=b)
        for rule in ("generate_answers", "grade_generations")
        for r in RECIPES
        for b in BENCHES
    }
    assert _dry_run_after(tiny_run, edit) == expected | TAIL


def test_one_benchmarks_generation_settings_rerun_only_that_benchmark(tiny_run):
    """generation.benchmarks.<name>: sampling keys regenerate and regrade that benchmark only
    (not its likelihood); a prompt template also rescores its likelihood."""

    def sampling(raw):
        raw["generation"]["benchmarks"] = {"id_test": {"n_samples": 2, "temperature": 0.5}}

    def template(raw):
        raw["generation"]["benchmarks"] = {"ood_test": {"prompt": "prompts/eval/default.txt"}}

    def jobs(rules, b):
        return {J(rule, student="nano", recipe=r, seed=0, benchmark=b) for rule in rules
                for r in RECIPES}  # fmt: skip

    evaluation = ("generate_answers", "grade_generations")
    assert _dry_run_after(tiny_run, sampling) == jobs(evaluation, "id_test") | TAIL
    expected = jobs((*evaluation, "score_likelihood"), "ood_test") | TAIL
    assert _dry_run_after(tiny_run, template) == expected


def test_tables_setting_edit_reruns_only_the_tables(tiny_run):
    def edit(raw):
        raw["tables"].update(
            figure_benchmarks=["id_test"], metrics=["accuracy"], alpha=0.01, bootstrap=500, seed=3
        )

    assert _dry_run_after(tiny_run, edit) == TAIL


def test_likelihood_disabled_plans_no_likelihood_jobs(tmp_path, pkg_env):
    """`likelihood.enabled: false`: no score_likelihood job, and the tables get no file."""
    _, env = pkg_env
    raw = yaml.safe_load(TINY.read_text())
    rules = {}
    for enabled in (True, False):
        raw["likelihood"] = {"enabled": enabled}
        config = tmp_path / f"{enabled}.yaml"
        config.write_text(yaml.safe_dump(raw, sort_keys=False))
        proc = run_snakemake(tmp_path, "--configfile", str(config), "-n", env=env)
        rules[enabled] = {rule for rule, _ in planned_jobs(proc.stdout)}
    assert rules[True] - rules[False] == {"score_likelihood"}
    assert rules[False] - rules[True] == set()
    proc = run_snakemake(tmp_path, "--configfile", str(config), "-n", "all_likelihood", env=env)
    assert planned_jobs(proc.stdout) == {J("all_likelihood")}


def test_grading_workers_edit_regrades_nothing(tiny_run):
    def edit(raw):
        raw["grading"]["workers"] = 2

    assert _dry_run_after(tiny_run, edit) == set()


def test_training_hyperparameter_edit_schedules_no_ingest_synthesis_or_selection(tiny_run):
    def edit(raw):
        raw["students"]["nano"]["training"]["lr"] = 1e-3

    expected = set().union(*(downstream(r) for r in RECIPES)) | TAIL
    assert _dry_run_after(tiny_run, edit) == expected


def test_resources_edit_reruns_nothing(tiny_run):
    def edit(raw):
        raw["students"]["nano"]["resources"]["mem_mb"] = 2000

    assert _dry_run_after(tiny_run, edit) == set()


def test_checkpointing_edit_reruns_nothing(tiny_run):
    def edit(raw):
        raw["students"]["nano"]["checkpointing"] = {"every_steps": 7, "every_minutes": 1}

    assert _dry_run_after(tiny_run, edit) == set()


@pytest.mark.heavy  # a minute; test_synthesis_workflow's rerun test checks the same with a server
def test_openai_teacher_connection_edits_rerun_nothing(tmp_path, pkg_env):
    """How an openai teacher's server is reached is not a param: editing it reruns nothing,
    while a sampling edit reruns the entry. The teacher points at a closed port (no server:
    every request fails at once and, with `on_unavailable: reject`, is a rejected row)."""
    _, env = pkg_env
    raw = yaml.safe_load(SYNTH_OPENAI.read_text())
    entry = raw["synthesis"]["distilled"]
    entry["teacher"].update(max_retries=0, on_unavailable="reject")
    raw["synthesis"] = {"distilled": entry}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    run_snakemake(tmp_path, "--configfile", str(config), "--cores", "1", "all_synthesis", env=env)
    shards = {J("synthesize_shard", synth="distilled", shard=k) for k in (0, 1)}
    res = tmp_path / "results" / "synth" / "distilled"
    rejects = pl.concat([pl.read_parquet(res / f"shard-{k}.rejects.parquet") for k in (0, 1)])
    assert rejects.height == 10 * 3 and rejects["reason"].str.starts_with("teacher_error").all()
    manifest = json.loads((res / "shard-0.manifest.json").read_text())
    teacher = manifest["params"]["teacher"]
    assert teacher["model"] == "tiny-teacher" and teacher["temperature"] == 0.8
    assert not set(teacher) & {"base_url", "concurrency", "timeout_s", "cache_dir"}
    assert manifest["operational"]["teacher"]["concurrency"] == 4
    assert manifest["operational"]["teacher"]["timeout_s"] == 60.0

    def dry_run(**teacher_edit) -> set:
        edited = yaml.safe_load(config.read_text())
        edited["synthesis"]["distilled"]["teacher"].update(teacher_edit)
        path = tmp_path / "edited.yaml"
        path.write_text(yaml.safe_dump(edited, sort_keys=False))
        proc = run_snakemake(tmp_path, "--configfile", str(path), "-n", "all_synthesis", env=env)
        return planned_jobs(proc.stdout)

    assert dry_run(concurrency=16) == set()
    assert dry_run(timeout_s=5.5) == set()
    moved = dict(base_url="http://10.0.0.7:8000/v1", api_key_env="TEACHER_KEY", max_retries=9,
                 backoff_s=2.0, on_unavailable="fail", cache_dir=str(tmp_path / "cache"))  # fmt: skip
    assert dry_run(**moved) == set()
    assert dry_run(temperature=0.7) == shards | {J("all_synthesis")}


def test_grader_code_edit_regrades_only(tiny_run, pkg_env):
    src, _ = pkg_env
    grading = src / "mathrecipes" / "grading" / "engine.py"
    original = grading.read_text()
    try:
        grading.write_text(original + "\n# a developer's edit\n")
        assert _dry_run_after(tiny_run, lambda raw: None) == _grading_only()
    finally:
        grading.write_text(original)


@pytest.mark.heavy  # a second whole run: `pytest -m heavy` (not in the default run)
def test_tables_are_byte_identical_across_runs(tiny_run, tmp_path, pkg_env):
    work, config, env, _ = tiny_run
    run_snakemake(tmp_path, "--configfile", str(config), "--cores", "2", env=env)
    for name in ("scores.csv", "per_seed.csv"):
        a = (work / "results" / "tables" / name).read_bytes()
        b = (tmp_path / "results" / "tables" / name).read_bytes()
        assert a == b, name


def test_invalid_config_fails_before_any_job(tmp_path, pkg_env):
    _, env = pkg_env
    raw = yaml.safe_load(TINY.read_text())
    raw["recipes"]["more"]["volume"] = {"fractoin": 0.5}
    raw["students"]["nano"]["training"]["max_steps"] = "ten"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    proc = run_snakemake(tmp_path, "--configfile", str(bad), "--cores", "1", env=env, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config key 'recipes.more.volume.fractoin': unknown key" in out
    assert "config key 'students.nano.training.max_steps'" in out
    assert not (tmp_path / "results").exists()


def test_row_without_answer_fails_the_ingest_job_naming_file_and_row(tmp_path, pkg_env):
    _, env = pkg_env
    data = tmp_path / "data.jsonl"
    data.write_text('{"problem": "What is 2+2?", "answer": "4"}\n{"problem": "What is 3+3?"}\n')
    raw = yaml.safe_load(TINY.read_text())
    raw["datasets"]["bad"] = {"source": "local", "path": str(data), "on_bad_row": "fail"}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    target = "results/datasets/bad.parquet"
    proc = run_snakemake(
        tmp_path, "--configfile", str(cfg), "--cores", "1", target, env=env, check=False
    )
    assert proc.returncode != 0
    log = (tmp_path / "results" / "logs" / "ingest_dataset" / "bad.log").read_text()
    assert f"{data} line 2: missing or empty field(s) answer" in log
    assert not (tmp_path / target).exists()

    raw["datasets"]["bad"]["on_bad_row"] = "quarantine"
    cfg.write_text(yaml.safe_dump(raw))
    run_snakemake(tmp_path, "--configfile", str(cfg), "--cores", "1", target, env=env)
    manifest = json.loads((tmp_path / "results" / "datasets" / "bad.manifest.json").read_text())
    assert manifest["summary"]["rows"] == 1 and manifest["summary"]["quarantined"] == 1


def test_trace_command_lists_the_files_behind_a_cell(tiny_run, capsys):
    from mathrecipes.cli import main

    work, _, _, _ = tiny_run
    prov = str(work / "results" / "tables" / "provenance.json")
    assert main(["trace", "nano/better/id_test", "--provenance", prov]) == 0
    out = capsys.readouterr().out
    assert "results/synth/distilled/shard-1.parquet  sha256:" in out
    assert "results/checkpoints/nano/better/seed-0  sha256:" in out
    assert main(["trace", "nano/nothing/id_test", "--provenance", prov]) == 1
    # the checkpoint's hash shown can be reproduced after the run with the documented command,
    # though Snakemake has added a .snakemake_timestamp to the folder since the job hashed it
    from mathrecipes.provenance import path_sha256

    ckpt = work / "results" / "checkpoints" / "nano" / "better" / "seed-0"
    assert (ckpt / ".snakemake_timestamp").exists()
    cells = json.loads((work / "results" / "tables" / "provenance.json").read_text())
    shown = cells["nano/better/id_test"]["seeds"]["0"]["checkpoint"][
        "results/checkpoints/nano/better/seed-0"
    ]
    assert shown == path_sha256(ckpt) == documented_folder_hash(ckpt)


def test_report_builds_from_the_tiny_run(tiny_run):
    work, config, env, _ = tiny_run
    report = work / "report.html"
    run_snakemake(work, "--configfile", str(config), "--report", str(report), env=env)
    text = report.read_text(errors="replace")
    assert "accuracy_vs_size.png" in text and "scores.csv" in text
    # the tables themselves, as an HTML page the report shows inline (not only a link to a file)
    page = re.search(r'"data_uri": "data:text/html;[^"]*?base64,([^"]+)"', text)
    assert page, "scores.html is not embedded as text/html"
    html = base64.b64decode(page.group(1)).decode()
    assert "<table>" in html and "`more` (baseline)" not in html and "(baseline)" in html


def test_paper_config_dry_runs_offline(tmp_path, pkg_env):
    _, env = pkg_env
    proc = run_snakemake(
        tmp_path, "--configfile", str(REPO / "configs" / "paper.yaml"), "-n", env=env
    )
    jobs = planned_jobs(proc.stdout)
    rules = {}
    for rule, _ in jobs:
        rules[rule] = rules.get(rule, 0) + 1
    # 10 datasets (one of raw text), 10 benchmarks, 7 synthesis entries (distill 16 + 16,
    # structure 4, rephrase 16, weakness 8, rewrite 16, extract 16 shards; their teacher servers
    # are not needed to plan), 11 recipes, 1 student x 3 seeds, 11 x 3 x 10 evaluations; the
    # weakness entry's probe: the baseline student (seed 0) answers and is graded once; the
    # served reference answers each benchmark once (its server is not needed to plan)
    assert rules == {
        "ingest_dataset": 10, "build_benchmark": 10, "synthesize_shard": 92, "select_recipe": 11,
        "train_student": 33, "generate_answers": 330, "score_likelihood": 330,
        "grade_generations": 330, "generate_reference": 10, "grade_reference": 10,
        "make_tables": 1,
        "probe_answers": 1, "probe_grades": 1, "weakness_seeds": 1, "all": 1,
    }  # fmt: skip
    # every one of the ten benchmarks is built, answered and graded (docs/benchmarks.md)
    ten = {
        "math500", "gsm8k", "aime24", "aime25", "amc23", "minerva", "olympiadbench", "svamp",
        "asdiv", "college_math",
    }  # fmt: skip
    for rule in ("build_benchmark", "generate_answers", "grade_generations", "generate_reference"):
        planned = {dict(wc)["benchmark"] for r, wc in jobs if r == rule}
        assert planned == ten, rule
