import copy
from pathlib import Path

import pytest
import yaml

from mathrecipes.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(
    [REPO / "config.yaml", *REPO.glob("configs/*.yaml"), *REPO.glob("tests/configs/*.yaml")]
)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_config_in_the_repo_validates(path):
    load_config(yaml.safe_load(path.read_text()))


@pytest.fixture
def raw():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def _error(raw):
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    return str(info.value)


def test_unknown_key_names_the_key_path(raw):
    raw["recipes"]["better"]["volume"]["fractoin"] = 0.3
    assert "config key 'recipes.better.volume.fractoin': unknown key" in _error(raw)


def test_wrong_type_names_the_key_path(raw):
    raw["students"]["tiny"]["training"]["lr"] = "fast"
    raw["datasets"]["arith"]["n"] = "many"
    msg = _error(raw)
    assert "config key 'students.tiny.training.lr'" in msg and "'fast'" in msg
    assert "config key 'datasets.arith.n'" in msg


def test_unknown_source_and_inner_key_paths(raw):
    bad = copy.deepcopy(raw)
    bad["datasets"]["arith"]["source"] = "hff"
    assert "config key 'datasets.arith.source': unknown source 'hff'" in _error(bad)
    raw["benchmarks"]["arith_test"]["stepz"] = 3
    assert "config key 'benchmarks.arith_test.stepz': unknown key" in _error(raw)


def test_broken_references_are_reported_together(raw):
    raw["recipes"]["better"]["mix"][0]["from"] = "nothing"
    raw["tables"]["baseline"] = "x"
    msg = _error(raw)
    assert "config key 'recipes.better.mix.0.from': 'nothing' is neither" in msg
    assert "config key 'tables.baseline': 'x' is not a recipe" in msg


def test_synthesis_cycle(raw):
    raw["synthesis"]["a"] = {"from": "b"}
    raw["synthesis"]["b"] = {"from": "a"}
    assert "cycle" in _error(raw)


def test_value_rules(raw):
    one = copy.deepcopy(raw)
    one["recipes"]["more"]["volume"] = {"fraction": 0.5, "count": 10}
    assert "config key 'recipes.more.volume': give exactly one of 'fraction' or 'count'" in _error(
        one
    )
    two = copy.deepcopy(raw)
    two["benchmarks"]["arith_test"]["split"] = "train"
    assert "benchmarks.arith_test.split" in _error(two)
    three = copy.deepcopy(raw)
    three["generation"]["n_samples"] = 4
    assert "config key 'generation'" in _error(three)


def test_defaults_fill_in(raw):
    cfg = load_config(raw)
    assert cfg.recipes["more"].decontaminate.ngram == 13
    assert cfg.recipes["more"].dedup is True
    assert cfg.grading.timeout_s == 5.0


def test_cli_validate(tmp_path, capsys, raw):
    from mathrecipes.cli import main

    assert main(["validate", str(REPO / "config.yaml")]) == 0
    assert "3 training run(s), 6 evaluation(s)" in capsys.readouterr().out
    raw["seeds"] = "zero"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(bad)]) == 1
    assert "config key 'seeds'" in capsys.readouterr().err


def test_mix_weights_all_or_none(raw):
    raw["recipes"]["more"]["mix"] = [{"from": "arith", "weight": 1}, {"from": "distilled"}]
    assert "config key 'recipes.more.mix': give a weight on every part or on none" in _error(raw)


def test_grading_policy_errors_name_the_key(raw):
    raw["grading"]["policy"] = {"percnt": "both"}
    assert "config key 'grading.policy.percnt': unknown key" in _error(raw)
    raw["grading"]["policy"] = {"percent": "lenient"}
    assert "config key 'grading.policy.percent': Input should be" in _error(raw)
    raw["grading"]["policy"] = {}
    raw["grading"]["benchmarks"] = {"arith_test": {"rel_tol": -1.0}}
    assert "config key 'grading.benchmarks.arith_test.rel_tol'" in _error(raw)
    raw["grading"]["benchmarks"] = {"arith_test": {"modulo": 1000}}  # needs integer_answers
    assert "config key 'grading.benchmarks.arith_test': modulo needs integer_answers" in _error(raw)


def test_grading_settings_of_a_benchmark(raw):
    from mathrecipes.grading import GradeSettings

    raw["grading"]["policy"] = {"rel_tol": 1.0e-4, "percent": "number"}
    raw["grading"]["benchmarks"] = {"arith_test": {"modulo": 1000, "integer_answers": True}}
    grading = load_config(raw).grading
    base = {"timeout_s": 5.0, "float_rounding": 6, "numeric_precision": 15}
    # the keys given, in GradeSettings' order (the params value of the benchmark's grade jobs)
    assert list(grading.settings_for("arith_hard").items()) == [
        *base.items(),
        ("rel_tol", 1.0e-4),
        ("percent", "number"),
    ]
    assert list(grading.settings_for("arith_test"))[3:] == [
        "rel_tol",
        "percent",
        "integer_answers",
        "modulo",
    ]
    settings = GradeSettings.from_dict(grading.settings_for("arith_test"))
    assert (settings.modulo, settings.percent, settings.timeout_s) == (1000, "number", 5.0)
    # one set of defaults: the config's are GradeSettings'
    assert grading.model_dump(exclude={"policy", "benchmarks"}) == GradeSettings().model_dump(
        include={"timeout_s", "workers", "float_rounding", "numeric_precision"}
    )


def test_tables_metrics_are_checked_against_the_samples_and_the_likelihood_rule():
    raw = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    raw["tables"]["metrics"] = ["accuracy", "pass@4"]
    with pytest.raises(ConfigError, match=r"tables.metrics.*pass@4 needs at least 4 samples"):
        load_config(raw)
    raw["tables"]["metrics"] = ["accuracy", "bpb"]
    raw["likelihood"] = {"enabled": False}
    with pytest.raises(ConfigError, match=r"tables.metrics.*likelihood.enabled"):
        load_config(raw)
    raw["tables"]["metrics"] = ["accuracy", "pass@0"]
    with pytest.raises(ConfigError, match=r"tables.metrics.*unknown metric 'pass@0'"):
        load_config(raw)


def test_a_negative_training_seed_is_a_config_error_naming_the_key():
    raw = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    raw["seeds"] = [0, -1]
    with pytest.raises(
        ConfigError, match=r"config key 'seeds.1': a training seed must be 0 or more"
    ):
        load_config(raw)


def test_a_volume_count_above_the_known_pool_sizes_is_a_config_error():
    """A builtin pool holds at most n rows and a local pool at most its limit: a count the
    weights cannot draw from them fails validation, not selection after ingest and synthesis."""
    raw = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    raw["recipes"]["more"]["volume"] = {"count": 301}  # arith: n 300, taken whole
    raw["recipes"]["mixed"]["volume"] = {"count": 400}  # 0.8 of 400 = 320 > arith's 300
    message = _error(raw)
    assert (
        "config key 'recipes.more.volume.count': 301 rows asked for, but the pools allow at "
        "most 300 (arith: at most 300 rows (builtin n); no weights: the pools whole)" in message
    )
    assert (
        "config key 'recipes.mixed.volume.count': 400 rows asked for, but the pools allow at "
        "most 375 (distilled_prose, weight 0.2: size unknown before the run (a synthesis "
        "output); arith, weight 0.8: at most 300 rows (builtin n), so at most 375 in all)"
        in message
    )
    raw = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    raw["recipes"]["mixed"]["volume"] = {"count": 375}  # exactly what arith allows
    raw["recipes"]["better"]["volume"] = {"count": 10**6}  # a synthesis output: not checked
    load_config(raw)
    raw["datasets"]["local"] = {"source": "local", "path": "x.jsonl", "limit": 50}
    raw["recipes"]["more"]["mix"].append({"from": "local"})
    raw["recipes"]["more"]["volume"] = {"count": 351}
    assert (
        "config key 'recipes.more.volume.count': 351 rows asked for, but the pools allow at "
        "most 350 (arith: at most 300 rows (builtin n); local: at most 50 rows (limit); "
        "no weights: the pools whole)" in _error(raw)
    )
    raw["datasets"]["local"].pop("limit")  # a local file's size is unknown: not checked
    load_config(raw)
