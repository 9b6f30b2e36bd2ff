"""References (served models evaluated beside the students): config checks, the job spec, and
their rows in the tables, on hand-made grade files. The server runs in
tests/test_references_workflow.py (heavy)."""

import json

import numpy as np
import polars as pl
import pytest
import yaml
from helpers import TINY
from test_tables import _entry, _grades

from mathrecipes.config import ConfigError, load_config, reference_job_spec
from mathrecipes.tables import make_tables


def tiny(**references) -> dict:
    raw = yaml.safe_load(TINY.read_text())
    raw["references"] = references
    return raw


def served(**kw) -> dict:
    return {"model": "org/model", "base_url": "http://127.0.0.1:8000/v1", **kw}


def problems(raw) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(raw)
    return str(err.value)


def test_a_reference_samples_as_generation_does_unless_it_says_otherwise():
    raw = tiny(gpt=served(api_key_env="SOME_KEY", concurrency=3), own=served(max_tokens=64))
    raw["generation"].update(temperature=0.7, top_p=0.9, n_samples=2, seed=5)
    cfg = load_config(raw)
    assert reference_job_spec(cfg, "gpt", "id_test") == {
        "backend": "openai",
        "model": "org/model",
        "prompt": "chat",
        "n_samples": 2,
        "max_tokens": 12,  # generation.max_new_tokens
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 5,
    }
    assert reference_job_spec(cfg, "own", "id_test")["max_tokens"] == 64
    # how the server is reached is not what the job depends on
    spec = reference_job_spec(cfg, "gpt", "id_test")
    assert not {"base_url", "api_key_env", "concurrency", "cache_dir"} & set(spec)


def test_a_reference_answers_with_the_benchmarks_own_sampling_template_and_stop(tmp_path):
    from mathrecipes.served import build_backend, requests_for

    raw = tiny(gpt=served())
    raw["generation"]["benchmarks"] = {
        "id_test": {"n_samples": 3, "temperature": 0.6, "stop": ["\n\nProblem:"]}
    }
    cfg = load_config(raw)
    spec = reference_job_spec(cfg, "gpt", "id_test")
    assert (spec["n_samples"], spec["temperature"], spec["stop"]) == (3, 0.6, ["\n\nProblem:"])
    assert "stop" not in reference_job_spec(cfg, "gpt", "ood_test")  # params kept when unset
    template = tmp_path / "boxed.txt"
    template.write_text("Q: {problem}\nPut the answer in \\boxed{}.\n")
    spec["benchmark_prompt"] = {"template": {"path": "boxed.txt", "sha256": "x"}}
    records = [{"id": "p/0", "problem": " What is 2 + 2? "}]
    backend = build_backend("gpt", spec, {"base_url": "http://127.0.0.1:9/v1"}, tmp_path)
    reqs = requests_for(backend, records, spec, prompt_file=str(template))
    assert [r.key for r in reqs] == ["p/0#0", "p/0#1", "p/0#2"]
    assert {r.messages[-1][1] for r in reqs} == {"Q: What is 2 + 2?\nPut the answer in \\boxed{}."}
    assert {r.stop for r in reqs} == {("\n\nProblem:",)} and len({r.seed for r in reqs}) == 3
    # without a template: the students' plain prompt, word for word
    from mathrecipes.prompting import format_prompt

    spec.pop("benchmark_prompt")
    (plain_req, *_) = requests_for(backend, records, spec)
    assert plain_req.messages[-1][1] == format_prompt(records[0]["problem"])


def test_reference_config_errors_name_the_key():
    assert "config key 'references.gpt.base_url': required key is missing" in problems(
        tiny(gpt={"model": "m"})
    )
    assert "config key 'references.gpt.model': required key is missing" in problems(
        tiny(gpt={"base_url": "http://x/v1"})
    )
    assert "references.gpt.base_url" in problems(tiny(gpt=served(base_url="127.0.0.1:8000")))
    assert "config key 'references.gpt.api_key_env'" in problems(
        tiny(gpt=served(api_key_env="sk-not-a-name!"))
    )
    assert "config key 'references.gpt.backend'" in problems(tiny(gpt=served(backend="hf")))
    assert "config key 'references.gpt.temprature': unknown key" in problems(
        tiny(gpt=served(temprature=0.5))
    )


def test_a_reference_is_named_apart_from_the_students():
    msg = problems(tiny(nano=served()))  # nano is the tiny config's student
    assert "config key 'references.nano': name already used by students.nano" in msg
    raw = tiny(gpt=served())
    raw["students"]["reference"] = raw["students"]["nano"]
    assert "config key 'students.reference'" in problems(raw)
    load_config(tiny())  # without references a student may be called anything
    raw = tiny()
    raw["students"]["reference"] = raw["students"]["nano"]
    load_config(raw)


def test_greedy_samples_of_a_reference_are_refused():
    raw = tiny(gpt=served(temperature=0.0))
    raw["generation"].update(temperature=0.7, n_samples=4)
    assert "config key 'references.gpt.temperature'" in problems(raw)


# ------------------------------------------------------------------ the tables


def _runs(tmp_path):
    rng = np.random.default_rng(1)
    entries = []
    for recipe, solved in (("more", 12), ("better", 20)):
        for bench in ("b", "c"):
            correct = set(rng.choice(30, solved, replace=False).tolist())
            g = tmp_path / f"g-{recipe}-{bench}.parquet"
            _grades(g, ["correct" if i in correct else "incorrect" for i in range(30)])
            entries.append(_entry(tmp_path, recipe, 0, g, bench=bench))
    return entries


def _references(tmp_path):
    entries = []
    for name, solved in (("teacher", 27), ("more", 3)):  # a reference may share a recipe's name
        for bench in ("b", "c"):
            g = tmp_path / f"ref-{name}-{bench}.parquet"
            _grades(g, ["correct"] * solved + ["incorrect"] * (30 - solved))
            entries.append(
                {"student": "reference", "recipe": name, "seed": None, "benchmark": bench,
                 "grades": str(g), "generations": None, "likelihood": None,
                 "reference": {"backend": "openai", "model": f"org/{name}",
                               "base_url": "http://127.0.0.1:8000/v1", "prompt": "chat"}}
            )  # fmt: skip
    return entries


def test_a_reference_is_a_row_of_its_own_and_changes_no_other(tmp_path):
    runs = _runs(tmp_path)
    without = tmp_path / "without"
    make_tables(runs, "more", without, tmp_path / "a.png")
    scores = make_tables(runs + _references(tmp_path), "more", tmp_path / "t", tmp_path / "b.png")

    # the students' rows are byte for byte what they are without references
    before = (without / "scores.csv").read_text().splitlines()
    after = (tmp_path / "t" / "scores.csv").read_text().splitlines()
    assert before == [line for line in after if not line.startswith("reference,")]
    for name in ("reliability.csv", "agreement.csv"):
        assert (without / name).read_bytes() == (tmp_path / "t" / name).read_bytes()

    refs = scores.filter(pl.col("student") == "reference")
    assert sorted(refs["recipe"].unique().to_list()) == ["more", "teacher"]
    t = refs.filter((pl.col("recipe") == "teacher") & (pl.col("benchmark") == "b")).row(
        0, named=True
    )
    assert t["accuracy"] == pytest.approx(0.9) and t["accuracy_lo"] < 0.9 < t["accuracy_hi"]
    assert t["interval"] == "wilson" and t["problems"] == 30 and t["samples"] == 1
    # no training seed, no delta, no verdict, no training set
    for col in ("seeds", "delta_vs_baseline", "delta_lo", "p_value", "p_holm", "verdict",
                "train_examples", "train_tokens"):  # fmt: skip
        assert t[col] is None, col
    # the reference named like the baseline recipe is not the baseline
    assert refs.filter(pl.col("recipe") == "more")["verdict"].null_count() == 2

    per_seed = pl.read_csv(tmp_path / "t" / "per_seed.csv")
    ref_rows = per_seed.filter(pl.col("student") == "reference")
    assert ref_rows.height == 4 and ref_rows["seed"].null_count() == 4

    md = (tmp_path / "t" / "scores.md").read_text()
    assert "## References (served models, not trained here)" in md
    assert "| `teacher` | `org/teacher` at http://127.0.0.1:8000/v1 | 90.0 [" in md
    assert "Student `reference`" not in md
    prov = json.loads((tmp_path / "t" / "provenance.json").read_text())
    cell = prov["reference/teacher/b"]
    assert cell["reference"] == {"backend": "openai", "model": "org/teacher",
                                 "base_url": "http://127.0.0.1:8000/v1", "prompt": "chat"}  # fmt: skip
    assert set(cell["grades"]) == {str(tmp_path / "ref-teacher-b.parquet")}
    assert "\\toprule" in (tmp_path / "t" / "scores.tex").read_text()


def test_a_student_named_reference_beside_references_is_refused(tmp_path):
    runs = [{**e, "student": "reference"} for e in _runs(tmp_path)]
    with pytest.raises(ValueError, match="named 'reference'"):
        make_tables(runs + _references(tmp_path), "more", tmp_path / "t", tmp_path / "f.png")
