"""Sharded selection through Snakemake (heavy): the tiny config's recipes with
``selection.shards: 3`` are byte for byte those of ``shards: 1``; the pool jobs are shared by
the recipes that remove the same rows, and a recipe's seed reruns its select_recipe only."""

from __future__ import annotations

import pytest
import yaml
from helpers import TINY, J, planned_jobs, run_snakemake

pytestmark = pytest.mark.heavy

RECIPES = ("more", "more_third", "mixed")
FILES = ("train.parquet", "removed.parquet", "contamination.parquet", "stats.json")
NEAR = {"enabled": True, "threshold": 0.8, "num_perm": 128, "ngram": 5}


def _config(work, shards: int):
    raw = yaml.safe_load(TINY.read_text())
    raw["selection"] = {"shards": shards}
    for name in RECIPES:
        raw["recipes"][name]["near_dedup"] = NEAR
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path, raw


def _targets():
    return [f"results/recipes/{r}/train.parquet" for r in RECIPES]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, pkg_env):
    _, env = pkg_env
    out = {}
    for shards in (1, 3):
        work = tmp_path_factory.mktemp(f"shards{shards}")
        config, raw = _config(work, shards)
        run_snakemake(work, "--configfile", str(config), "--cores", "2", *_targets(), env=env)
        out[shards] = (work, config, raw, env)
    return out


def test_sharded_recipes_equal_the_single_jobs(runs):
    for recipe in RECIPES:
        for f in FILES:
            one = (runs[1][0] / "results/recipes" / recipe / f).read_bytes()
            three = (runs[3][0] / "results/recipes" / recipe / f).read_bytes()
            assert one == three, (recipe, f)
    # one set of pool jobs per pool and settings: arith's are shared by the three recipes
    sel = runs[3][0] / "results/selection"
    assert sorted(p.name for p in sel.iterdir()) == ["arith", "distilled_prose"]
    (arith,) = list((sel / "arith").iterdir())
    assert sorted(p.name for p in arith.glob("shard-*.parquet")) == [
        f"shard-{k}.parquet" for k in range(3)
    ]
    assert (arith / "kept.manifest.json").exists()
    assert not (runs[1][0] / "results/selection").exists()


def test_a_seed_edit_reruns_only_select_recipe(runs):
    work, _, raw, env = runs[3]
    raw = {**raw, "recipes": {**raw["recipes"]}}
    raw["recipes"]["more"] = {**raw["recipes"]["more"], "seed": 7}
    edited = work / "edited.yaml"
    edited.write_text(yaml.safe_dump(raw, sort_keys=False))
    proc = run_snakemake(work, "--configfile", str(edited), "-n", *_targets(), env=env)
    assert planned_jobs(proc.stdout) == {J("select_recipe", recipe="more")}
