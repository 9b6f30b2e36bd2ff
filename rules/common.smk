# Validation, wildcard constraints and the input / params functions every rule uses.
# Every config value a job depends on reaches it through params: as a function of wildcards only,
# together with a narrow code fingerprint of the package modules of its stage (see ARCHITECTURE).
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from mathrecipes.config import ConfigError, load_config, plain
from mathrecipes.provenance import code_fingerprint
from mathrecipes.sources import input_files

try:
    CFG = load_config(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

R = CFG.results


def _alternatives(names):
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


wildcard_constraints:
    dataset=_alternatives(CFG.datasets),
    benchmark=_alternatives(CFG.benchmarks),
    synth=_alternatives(CFG.synthesis) or "(?!)",
    recipe=_alternatives(CFG.recipes),
    student=_alternatives(CFG.students),
    seed=r"\d+",
    shard=r"\d+",


# ------------------------------------------------------------------ params (wildcards only)


def dataset_spec(wildcards):
    return plain(CFG.datasets[wildcards.dataset])


def benchmark_spec(wildcards):
    return plain(CFG.benchmarks[wildcards.benchmark])


def synth_spec(wildcards):
    return plain(CFG.synthesis[wildcards.synth])


def recipe_spec(wildcards):
    return plain(CFG.recipes[wildcards.recipe])


def student_spec(wildcards):
    """The student's spec without its resources (they do not change the result)."""
    spec = plain(CFG.students[wildcards.student])
    spec.pop("resources")
    return spec


def generation_spec(wildcards):
    return plain(CFG.generation)


def grading_spec(wildcards):
    """One benchmark's grading settings: editing another benchmark's policy re-grades nothing here."""
    return CFG.grading.settings_for(wildcards.benchmark)


def fingerprint(stage):
    value = code_fingerprint(stage)
    return lambda wildcards: value


# ------------------------------------------------------------------ paths and inputs


def pool_files(name):
    """The parquet files of a dataset or of every shard of a synthesis entry."""
    if name in CFG.datasets:
        return [f"{R}/datasets/{name}.parquet"]
    shards = CFG.synthesis[name].shards
    return [f"{R}/synth/{name}/shard-{k}.parquet" for k in range(shards)]


def synth_lineage(name):
    """Every synthesis shard behind a pool, following chains (for provenance)."""
    files = []
    while name in CFG.synthesis:
        files.extend(pool_files(name))
        name = CFG.synthesis[name].from_
    return files


def recipe_synth_files(recipe):
    files = []
    for part in CFG.recipes[recipe].mix:
        files.extend(synth_lineage(part.from_))
    return files


def recipe_benchmarks(recipe):
    decon = CFG.recipes[recipe].decontaminate
    if not decon.enabled:
        return []
    return sorted(CFG.benchmarks if decon.benchmarks == "all" else decon.benchmarks)


def ingest_inputs(section):
    def inputs(wildcards):
        name = wildcards.get("dataset") or wildcards.get("benchmark")
        return input_files(plain(getattr(CFG, section)[name]))

    return inputs


def synth_inputs(wildcards):
    return pool_files(CFG.synthesis[wildcards.synth].from_)


def select_pool_inputs(wildcards):
    files = []
    for part in CFG.recipes[wildcards.recipe].mix:
        files.extend(pool_files(part.from_))
    return sorted(set(files))


def select_benchmark_inputs(wildcards):
    return [f"{R}/benchmarks/{b}.parquet" for b in recipe_benchmarks(wildcards.recipe)]


def select_pools(wildcards):
    """from-name -> files: a param derived from the config and wildcards only."""
    return {
        part.from_: pool_files(part.from_) for part in CFG.recipes[wildcards.recipe].mix
    }


def select_benchmarks(wildcards):
    return {
        b: f"{R}/benchmarks/{b}.parquet" for b in recipe_benchmarks(wildcards.recipe)
    }


def train_init_inputs(wildcards):
    """A local model folder used as init is an input (editing it retrains)."""
    init = CFG.students[wildcards.student].init
    if init != "scratch" and Path(init).is_dir():
        return [init]
    return []


def student_resource(key):
    return lambda wildcards: getattr(CFG.students[wildcards.student].resources, key)


def grid():
    """Every (student, recipe, seed) of the experiment, in a fixed order (reordering the config
    must not look like a change)."""
    for student in sorted(CFG.students):
        for recipe in sorted(CFG.recipes):
            for seed in sorted(CFG.seeds):
                yield student, recipe, seed


def all_dataset_files():
    return [f"{R}/datasets/{d}.parquet" for d in CFG.datasets] + [
        f"{R}/benchmarks/{b}.parquet" for b in CFG.benchmarks
    ]


def all_synthesis_files():
    return [f for name in CFG.synthesis for f in pool_files(name)]


def all_recipe_files():
    return [f"{R}/recipes/{r}/train.parquet" for r in CFG.recipes]


def all_checkpoint_dirs():
    return [f"{R}/checkpoints/{s}/{r}/seed-{seed}" for s, r, seed in grid()]


def all_generation_files():
    return [
        f"{R}/generations/{s}/{r}/seed-{seed}/{b}.parquet"
        for s, r, seed in grid()
        for b in sorted(CFG.benchmarks)
    ]


def all_grade_files():
    return [
        f"{R}/grades/{s}/{r}/seed-{seed}/{b}.parquet"
        for s, r, seed in grid()
        for b in sorted(CFG.benchmarks)
    ]


def table_entries(wildcards):
    """One entry per table cell and seed, with every file behind it (a param: config only)."""
    entries = []
    for s, r, seed in grid():
        for b in sorted(CFG.benchmarks):
            entries.append(
                {
                    "student": s,
                    "recipe": r,
                    "seed": seed,
                    "benchmark": b,
                    "grades": f"{R}/grades/{s}/{r}/seed-{seed}/{b}.parquet",
                    "generations": f"{R}/generations/{s}/{r}/seed-{seed}/{b}.parquet",
                    "checkpoint": f"{R}/checkpoints/{s}/{r}/seed-{seed}",
                    "train": f"{R}/recipes/{r}/train.parquet",
                    "stats": f"{R}/recipes/{r}/stats.json",
                    "synth": recipe_synth_files(r),
                }
            )
    return entries


def tables_spec(wildcards):
    spec = plain(CFG.tables)
    if spec["figure_benchmarks"] == "all":
        spec["figure_benchmarks"] = sorted(CFG.benchmarks)
    return spec
