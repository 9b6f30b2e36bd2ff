# Validation, wildcard constraints, the path scheme and the input / params / resources functions.
# Every config value a job depends on reaches it through params: as a function of wildcards only,
# together with a narrow code fingerprint of the package modules of its stage (see ARCHITECTURE).
import functools
import itertools
import math
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.iocontainers import Wildcards

from mathrecipes.config import (
    REFERENCE_STUDENT,
    ConfigError,
    StudentSpec,
    load_config,
    plain,
    reference_job_spec,
)
from mathrecipes.config.recipes import pool_settings, settings_key
from mathrecipes.prompting import PromptFormatError, check_template, read_template
from mathrecipes.provenance import code_fingerprint
from mathrecipes.sources import input_files
from mathrecipes.synthesis.prompts import (
    prompt_refs,
    prompt_sha256,
    resolve_prompt_path,
)
from mathrecipes.synthesis.jobs import job_resources, local_models
from mathrecipes.teachers.local import model_files
from mathrecipes.teachers.openai_backend import public_url
from mathrecipes.teachers.operational import ROLES, as_resources, split_operational
from mathrecipes.training.resume import SaveEvery

try:
    CFG = load_config(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

R = CFG.results


def _alternatives(names):
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


def _probed_splits():
    """The training splits that weakness entries probe (rules/weakness.smk)."""
    return {s.probe.dataset for s in CFG.synthesis.values() if s.method == "weakness"}


wildcard_constraints:
    dataset=_alternatives(CFG.datasets),
    benchmark=_alternatives(CFG.benchmarks),
    synth=_alternatives(CFG.synthesis) or "(?!)",
    recipe=_alternatives(CFG.recipes),
    student=_alternatives(CFG.students),
    seed=r"\d+",
    shard=r"\d+",
    pool=_alternatives([*CFG.datasets, *CFG.synthesis]),
    key=r"[0-9a-f]{12}",
    probe=_alternatives(_probed_splits()) or "(?!)",
    reference=_alternatives(CFG.references) or "(?!)",


# ------------------------------------------------------------------ the path scheme
# Where every file of an experiment lives, written once: the rules' output:, log: and benchmark:
# and the helpers below all build their paths from these. A job is named by its wildcards; its
# files lie under <results>/<stage>/ and share a stem (<stem>.parquet, <stem>.manifest.json, ...),
# its log is <results>/logs/<rule>/<job>.log and its runtime record
# <results>/runtime/<rule>/<job>.tsv.

RUN = "{student}/{recipe}/seed-{seed}"  # a training run: a student, a recipe, a seed
EVALUATION = f"{RUN}/{{benchmark}}"  # a training run's checkpoint answering a benchmark
PROBING = f"{RUN}/{{probe}}"  # ... answering the training split a weakness entry probes
SHARD = "{synth}/shard-{shard}"  # one shard of a synthesis entry
# a served model (references.<name>) answering a benchmark: beside the students' runs, under the
# student name the tables give it
REFERENCE_EVALUATION = f"{REFERENCE_STUDENT}/{{reference}}/{{benchmark}}"

DATASET = f"{R}/datasets/{{dataset}}"
BENCHMARK = f"{R}/benchmarks/{{benchmark}}"
SYNTH_SHARD = f"{R}/synth/{SHARD}"
SEEDS = f"{R}/synth/{{synth}}/seeds"  # a weakness entry's seeds
RECIPE = f"{R}/recipes/{{recipe}}"  # a folder: train.parquet, stats.json, ...
# a pool's sharded selection (selection.shards > 1), by the settings that decide what it removes
# (poolsteps.pool_settings; key: their hash): shard-<k>.parquet, kept.parquet, stats.json, ...
SELECTION = f"{R}/selection/{{pool}}/{{key}}"
CHECKPOINT = f"{R}/checkpoints/{RUN}"  # a folder
GENERATIONS = f"{R}/generations/{EVALUATION}"
GRADES = f"{R}/grades/{EVALUATION}"
LIKELIHOOD = f"{R}/likelihood/{EVALUATION}"  # the reference solutions' NLL and bytes
PROBE = f"{R}/probes/{PROBING}"  # a probe's generations and their grades
TABLES = f"{R}/tables"
FIGURES = f"{R}/figures"
TEACHER_CACHE = f"{R}/cache/teachers"  # model teachers' responses (a resource)
REFERENCE_GENERATIONS = f"{R}/generations/{REFERENCE_EVALUATION}"
REFERENCE_GRADES = f"{R}/grades/{REFERENCE_EVALUATION}"
REFERENCE_CACHE = f"{R}/cache/references"  # the references' responses (a resource)


def log_file(rule, job=None):
    """<results>/logs/<rule>/<job>.log, or <results>/logs/<rule>.log for a rule with one job."""
    return f"{R}/logs/{rule}/{job}.log" if job else f"{R}/logs/{rule}.log"


def runtime_file(rule, job=None):
    """The `benchmark:` record (runtime, memory): <results>/runtime/<rule>/<job>.tsv."""
    return f"{R}/runtime/{rule}/{job}.tsv" if job else f"{R}/runtime/{rule}.tsv"


def resume_folder(stage, job):
    """Where a preempted or killed job's finished work waits for its rerun (not an output:
    Snakemake deletes a failed job's outputs); the job deletes it when done."""
    return f"{R}/resume/{stage}/{job}"


# ------------------------------------------------------------------ params (wildcards only)


def dataset_spec(wildcards):
    return plain(CFG.datasets[wildcards.dataset])


def benchmark_spec(wildcards):
    return plain(CFG.benchmarks[wildcards.benchmark])


def synth_spec(wildcards):
    """The entry's spec without the operational settings of its teacher and judge (how an
    openai server is reached, what an hf or vllm model's job asks the scheduler for: they do
    not change the answers); those travel as resources (synth_teacher_setting, synth_resource...).
    """
    spec = plain(CFG.synthesis[wildcards.synth])
    for role in ROLES:  # the teacher, and the judge of the judged methods
        if spec.get(role):
            spec[role], _ = split_operational(spec[role])
    return spec


def recipe_spec(wildcards):
    return plain(CFG.recipes[wildcards.recipe])


def student_spec(wildcards):
    """The student's spec without its resources and checkpointing (they do not change the
    result)."""
    spec = plain(CFG.students[wildcards.student])
    spec.pop("resources")
    spec.pop("checkpointing")
    for key in ("prompt_format", "system_prompt"):  # the defaults: the params of before
        if spec[key] == StudentSpec.model_fields[key].default:
            spec.pop(key)
    return spec


def eval_prompt_spec(wildcards):
    """How a problem is put to the student in an evaluation job: the student's prompt format
    and the benchmark's template (its configured path and sha256) and few-shot draw; empty for
    a plain student without a template (the params of before)."""
    return {
        **CFG.students[wildcards.student].prompt_settings(),
        **benchmark_prompt_spec(wildcards),
    }


def benchmark_prompt_spec(wildcards):
    """The benchmark's template (its configured path and sha256) and few-shot draw, as the
    students and the references see it; empty without them."""
    prompt = {}
    override = CFG.generation.benchmarks.get(wildcards.get("benchmark") or "")
    if override is not None and override.prompt is not None:
        file = eval_prompt_file(wildcards)
        prompt["template"] = {"path": override.prompt, "sha256": prompt_sha256(file)}
    if override is not None and override.few_shot is not None:
        prompt["few_shot"] = plain(override.few_shot)
    return prompt


def generation_spec(wildcards):
    """The benchmark's effective generation settings (generation.benchmarks.<name> in place of
    generation's own; a weakness probe gets generation's own) and, when not the default, the
    prompt (eval_prompt_spec)."""
    return _generation_spec(wildcards.student, wildcards.get("benchmark") or "")


@functools.cache
def _generation_spec(student, benchmark):
    """generation_spec, made once per student and benchmark (the same dict for the jobs of
    every recipe and seed: Snakemake does not change a job's params)."""
    spec = CFG.generation.job_spec(benchmark)
    wildcards = {"student": student, "benchmark": benchmark}
    prompt = eval_prompt_spec(Wildcards(fromdict=wildcards))
    if prompt:
        spec["prompt"] = prompt
    return spec


def reference_spec(wildcards):
    """What a reference's answers depend on: its model, prompt kind and effective sampling
    (not how its server is reached: those travel as resources, reference_setting)."""
    spec = reference_job_spec(CFG, wildcards.reference, wildcards.benchmark)
    template = benchmark_prompt_spec(wildcards)
    if template:
        spec["benchmark_prompt"] = template
    return spec


def likelihood_spec(wildcards):
    """The likelihood settings, the two generation settings the forward pass uses (dtype,
    attention) and the prompt the solutions are scored after: editing sampling or
    max_new_tokens rescores nothing."""
    spec = {
        "batch_size": CFG.likelihood.batch_size,
        "dtype": CFG.generation.dtype,
        "attn_implementation": CFG.generation.attn_implementation,
    }
    prompt = eval_prompt_spec(wildcards)
    if prompt:
        spec["prompt"] = prompt
    return spec


def grading_spec(wildcards):
    """One benchmark's grading settings: editing another benchmark's policy re-grades nothing
    here. A weakness probe's dataset is graded with the default policy."""
    return CFG.grading.settings_for(wildcards.get("benchmark") or "")


def uniform_or(values, lookup):
    """The one value of ``values`` when all are the same (a value, not a function for Snakemake
    to call per job), else ``lookup`` (a function of the wildcards)."""
    first = next(iter(values.values()))
    if all(repr(v) == repr(first) for v in values.values()):
        return first
    return lookup


def grading_params():
    """grading_spec as the param of the grading jobs (the students', the references', the
    probes'): the benchmarks' settings and the default policy, made once."""
    values = {b: CFG.grading.settings_for(b) for b in [*CFG.benchmarks, ""]}
    return uniform_or(values, lambda w: values[w.get("benchmark") or ""])


def generation_params():
    """generation_spec as the param of the generation and probe jobs, made once per student
    and benchmark (a probe: "")."""
    values = {
        (s, b): _generation_spec(s, b)
        for s in CFG.students
        for b in [*CFG.benchmarks, ""]
    }
    return uniform_or(values, generation_spec)


# Many jobs, few distinct values: a param or resource that is the same for every job of a rule
# is given as the value itself, and one that depends on a wildcard as a lookup in a dict made
# once when the workflow loads. Snakemake calls a function once per job and value (a dry run of
# a few thousand jobs spends seconds there); the values are the same either way.


def by_wildcard(values, key):
    """A param or resource whose value depends on wildcard ``key`` only: ``values`` (key's
    value -> the value), as the value itself when every key's is the same (no function for
    Snakemake to call per job), else as a lookup."""
    distinct = {repr(v) for v in values.values()}
    if len(distinct) == 1:
        return next(iter(values.values()))
    return lambda wildcards: values[wildcards[key]]


def by_wildcard_per_attempt(values, key):
    """:func:`by_wildcard` of a request that grows with the attempt (see per_attempt)."""
    distinct = set(values.values())
    if len(distinct) == 1:
        return per_attempt(distinct.pop())
    return lambda wildcards, attempt: values[wildcards[key]] * attempt


def fingerprint(stage):
    """The stage's code fingerprint, a param (the same for every job of the stage)."""
    return code_fingerprint(stage)


def synth_fingerprint():
    """The synthesis code fingerprint; an entry whose teacher or judge runs a local model (hf,
    vllm) also fingerprints the decoding code those backends share with student evaluation
    (editing that reruns only those entries).
    """
    synth, local = code_fingerprint("synthesize"), code_fingerprint("teacher_local")
    values = {
        name: f"{synth}+{local}" if local_models(spec) else synth
        for name, spec in CFG.synthesis.items()
    }
    return by_wildcard(values, "synth")


# ------------------------------------------------------------------ inputs and targets


def pool_files(name):
    """The parquet files of a dataset or of every shard of a synthesis entry."""
    return list(_pool_files(name))


@functools.cache
def _pool_files(name):
    if name in CFG.datasets:
        return tuple(expand(f"{DATASET}.parquet", dataset=name))
    shards = range(CFG.synthesis[name].shards)
    return tuple(expand(f"{SYNTH_SHARD}.parquet", synth=name, shard=shards))


def synth_lineage(name):
    """Every synthesis shard behind a pool, following chains (for provenance); a weakness
    entry adds its seeds and the probe student's grades they come from."""
    files = []
    while name in CFG.synthesis:
        files.extend(pool_files(name))
        if CFG.synthesis[name].method == "weakness":
            files.append(f"{SEEDS}.parquet".format(synth=name))
            files.append(probe_grades_file(name))
        name = CFG.synthesis[name].from_
    return files


def recipe_synth_files(recipe):
    return list(_recipe_synth_files(recipe))


@functools.cache
def _recipe_synth_files(recipe):
    files = []
    for part in CFG.recipes[recipe].mix:
        files.extend(synth_lineage(part.from_))
    return tuple(files)


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
    """The rows an entry's shards read: its pool, or for a weakness entry its seeds (the
    student's failures, each with its neighbours from the pool)."""
    if CFG.synthesis[wildcards.synth].method == "weakness":
        return [f"{SEEDS}.parquet".format(synth=wildcards.synth)]
    return pool_files(CFG.synthesis[wildcards.synth].from_)


def weakness_entries():
    return [n for n, s in CFG.synthesis.items() if s.method == "weakness"]


def probe_of(name):
    """(student, recipe, seed, dataset) of a weakness entry's probe."""
    probe = CFG.synthesis[name].probe
    seed = CFG.seeds[0] if probe.seed is None else probe.seed
    return probe.student, probe.recipe, seed, probe.dataset


def probe_datasets():
    return sorted({probe_of(n)[3] for n in weakness_entries()})


def probe_split(wildcards):
    """The training split (a dataset) a probe run answers."""
    return f"{DATASET}.parquet".format(dataset=wildcards.probe)


def probe_grades_file(name):
    """The probe student's grades a weakness entry's seeds come from."""
    student, recipe, seed, dataset = probe_of(name)
    return f"{PROBE}.grades.parquet".format(
        student=student, recipe=recipe, seed=seed, probe=dataset
    )


def weakness_seeds_spec(wildcards):
    """What the seeds depend on: the pool's name, the resolved probe, the retrieval settings
    (not the teacher, prompts or the writing settings: editing them keeps the seeds)."""
    spec = plain(CFG.synthesis[wildcards.synth])
    student, recipe, seed, dataset = probe_of(wildcards.synth)
    keys = ("from", "neighbours", "min_similarity", "embedder")
    return {
        **{k: spec[k] for k in keys},
        "probe": {**spec["probe"], "seed": seed},
    }


def weakness_seed_inputs(wildcards):
    """A weakness entry's pool, its probe's split and the student's grades on it, and a
    local embedding model folder (editing it recomputes the seeds)."""
    spec = CFG.synthesis[wildcards.synth]
    dataset = probe_of(wildcards.synth)[3]
    inputs = {
        "pool": pool_files(spec.from_),
        "probe": f"{DATASET}.parquet".format(dataset=dataset),
        "grades": probe_grades_file(wildcards.synth),
    }
    if Path(spec.embedder.model).is_dir():
        inputs["embedder"] = spec.embedder.model
    return inputs


def synth_prompt_files(wildcards):
    """{config key: file} of the prompts a synthesis entry reads (none for the builtin teacher),
    found in the working directory, else in the workflow's folder (the shipped prompts/). They
    are inputs, and their sha256 params: editing a prompt reruns the entries that use it.
    """
    spec = plain(CFG.synthesis[wildcards.synth])
    return {
        key: resolve_prompt_path(path, [workflow.basedir])
        for key, path in prompt_refs(spec).items()
    }


def synth_prompt_hashes(wildcards):
    return {key: prompt_sha256(f) for key, f in synth_prompt_files(wildcards).items()}


def synth_teacher_files(wildcards):
    """The files of the local model folders of an entry's hf or vllm teacher and judge are
    inputs: editing one reruns the entry (a folder's own mtime misses files edited in place).
    """
    models = local_models(CFG.synthesis[wildcards.synth]).values()
    folders = sorted({m.model for m in models if Path(m.model).is_dir()})
    return [f for folder in folders for f in model_files(folder)]


def select_pool_inputs(wildcards):
    files = []
    for part in CFG.recipes[wildcards.recipe].mix:
        files.extend(pool_files(part.from_))
    return sorted(set(files))


SELECTION_SHARDS = CFG.selection.shards


@functools.cache
def _selection_jobs():
    """(pool, key) -> the settings of every recipe's pools (sharded selection), and
    (recipe, from) -> key."""
    settings, keys = {}, {}
    for name, spec in CFG.recipes.items():
        values = pool_settings(spec, recipe_benchmarks(name))
        key = settings_key(values, SELECTION_SHARDS)
        for part in spec.mix:
            settings[(part.from_, key)] = values
            keys[(name, part.from_)] = key
    return settings, keys


def selection_folder(recipe, pool):
    key = _selection_jobs()[1][(recipe, pool)]
    return SELECTION.format(pool=pool, key=key)


def selection_settings(wildcards):
    return _selection_jobs()[0][(wildcards.pool, wildcards.key)]


def selection_benchmarks(wildcards):
    """name -> file of the benchmarks a pool's sharded selection checks against."""
    decon = selection_settings(wildcards)["decontaminate"]
    names = decon["benchmarks"] if decon["enabled"] else []
    return {b: f"{BENCHMARK}.parquet".format(benchmark=b) for b in names}


def selection_benchmark_inputs(wildcards):
    return sorted(selection_benchmarks(wildcards).values())


def selection_pool_inputs(wildcards):
    return pool_files(wildcards.pool)


def selection_shard_files(wildcards):
    return expand(
        f"{SELECTION}/shard-{{shard}}.parquet",
        pool=wildcards.pool,
        key=wildcards.key,
        shard=range(SELECTION_SHARDS),
    )


def select_union_inputs(wildcards):
    """The union files of the recipe's pools (none with selection.shards 1: select_recipe
    computes them itself)."""
    if SELECTION_SHARDS == 1:
        return []
    return sorted(
        {
            f"{selection_folder(wildcards.recipe, part.from_)}/{name}"
            for part in CFG.recipes[wildcards.recipe].mix
            for name in (
                "kept.parquet",
                "removed.parquet",
                "contamination.parquet",
                "stats.json",
            )
        }
    )


def select_unions(wildcards):
    """from -> the folder of its sharded selection, or None (selection.shards 1)."""
    if SELECTION_SHARDS == 1:
        return None
    return {
        part.from_: selection_folder(wildcards.recipe, part.from_)
        for part in CFG.recipes[wildcards.recipe].mix
    }


def select_benchmark_inputs(wildcards):
    return expand(f"{BENCHMARK}.parquet", benchmark=recipe_benchmarks(wildcards.recipe))


def select_pools(wildcards):
    """from-name -> files: a param derived from the config and wildcards only."""
    return {
        part.from_: pool_files(part.from_) for part in CFG.recipes[wildcards.recipe].mix
    }


def select_pool_types(wildcards):
    """from-name -> dataset | synthesis (stats.json's contamination per pool)."""
    return {
        part.from_: "dataset" if part.from_ in CFG.datasets else "synthesis"
        for part in CFG.recipes[wildcards.recipe].mix
    }


def select_benchmarks(wildcards):
    return {
        b: f"{BENCHMARK}.parquet".format(benchmark=b)
        for b in recipe_benchmarks(wildcards.recipe)
    }


def eval_prompt_file(wildcards):
    """The benchmark's prompt template file (generation.benchmarks.<name>.prompt), found in the
    working directory, else in the workflow's folder (the shipped prompts/eval/)."""
    override = CFG.generation.benchmarks[wildcards.benchmark]
    return resolve_prompt_path(override.prompt, [workflow.basedir])


def eval_prompt_inputs(wildcards):
    """A benchmark's template file and the dataset its few-shot examples come from: inputs of
    its evaluation jobs (editing the template reruns that benchmark's jobs only)."""
    override = CFG.generation.benchmarks.get(wildcards.get("benchmark") or "")
    inputs = {}
    if override is not None and override.prompt is not None:
        inputs["prompt"] = eval_prompt_file(wildcards)
    if override is not None and override.few_shot is not None:
        inputs["few_shot"] = f"{DATASET}.parquet".format(
            dataset=override.few_shot.from_
        )
    return inputs


def check_eval_templates():
    """Every benchmark's template exists and has the placeholders its few-shot setting needs
    (checked when the workflow loads, before any job)."""
    for name, override in CFG.generation.benchmarks.items():
        if override.prompt is None:
            continue
        key = f"generation.benchmarks.{name}.prompt"
        file = resolve_prompt_path(override.prompt, [workflow.basedir])
        if not Path(file).is_file():
            raise WorkflowError(f"{key}: template file {override.prompt} not found")
        try:
            check_template(
                read_template(file),
                few_shot=override.few_shot is not None,
                key=key,
                path=override.prompt,
            )
        except PromptFormatError as exc:
            raise WorkflowError(str(exc)) from None


check_eval_templates()


def train_init_inputs(wildcards):
    """A local model folder used as init is an input (editing it retrains)."""
    init = CFG.students[wildcards.student].init
    if init != "scratch" and Path(init).is_dir():
        return [init]
    return []


def grid():
    """The wildcards of every training run (student, recipe, seed), each sorted: reordering the
    config must not look like a change."""
    return {
        "student": sorted(CFG.students),
        "recipe": sorted(CFG.recipes),
        "seed": sorted(CFG.seeds),
    }


def all_dataset_files():
    return expand(f"{DATASET}.parquet", dataset=list(CFG.datasets)) + expand(
        f"{BENCHMARK}.parquet", benchmark=list(CFG.benchmarks)
    )


def all_synthesis_files():
    return [f for name in CFG.synthesis for f in pool_files(name)]


def all_recipe_files():
    return expand(f"{RECIPE}/train.parquet", recipe=list(CFG.recipes))


def all_checkpoint_dirs():
    return expand(CHECKPOINT, **grid())


def all_generation_files():
    return expand(f"{GENERATIONS}.parquet", **grid(), benchmark=sorted(CFG.benchmarks))


def all_grade_files():
    return expand(f"{GRADES}.parquet", **grid(), benchmark=sorted(CFG.benchmarks))


def all_likelihood_files():
    """Every likelihood file; none when `likelihood.enabled` is false."""
    if not CFG.likelihood.enabled:
        return []
    return expand(f"{LIKELIHOOD}.parquet", **grid(), benchmark=sorted(CFG.benchmarks))


def all_reference_generation_files():
    return expand(
        f"{REFERENCE_GENERATIONS}.parquet",
        reference=sorted(CFG.references),
        benchmark=sorted(CFG.benchmarks),
    )


def all_reference_grade_files():
    return expand(
        f"{REFERENCE_GRADES}.parquet",
        reference=sorted(CFG.references),
        benchmark=sorted(CFG.benchmarks),
    )


def reference_entries():
    """One table entry per (reference, benchmark): student `reference`, recipe the reference's
    name, no seed, no checkpoint or training set; `reference` names the model and its endpoint
    (the public URL: no credentials), for provenance.json and the tables."""
    entries = []
    for name in sorted(CFG.references):
        ref = CFG.references[name]
        for b in sorted(CFG.benchmarks):
            cell = {"reference": name, "benchmark": b}
            entries.append(
                {
                    "student": REFERENCE_STUDENT,
                    "recipe": name,
                    "seed": None,
                    "benchmark": b,
                    "grades": f"{REFERENCE_GRADES}.parquet".format(**cell),
                    "generations": f"{REFERENCE_GENERATIONS}.parquet".format(**cell),
                    "likelihood": None,
                    "reference": {
                        "backend": ref.backend,
                        "model": ref.model,
                        "base_url": public_url(ref.base_url),
                        "prompt": ref.prompt,
                    },
                }
            )
    return entries


def table_entries(wildcards):
    """One entry per table cell and seed, with every file behind it (a param: config only);
    then one per reference and benchmark (reference_entries)."""
    entries = []
    for s, r, seed in itertools.product(*grid().values()):
        for b in sorted(CFG.benchmarks):
            cell = {"student": s, "recipe": r, "seed": seed, "benchmark": b}
            entries.append(
                {
                    **cell,
                    "grades": f"{GRADES}.parquet".format(**cell),
                    "generations": f"{GENERATIONS}.parquet".format(**cell),
                    "likelihood": (
                        f"{LIKELIHOOD}.parquet".format(**cell)
                        if CFG.likelihood.enabled
                        else None
                    ),
                    "checkpoint": CHECKPOINT.format(**cell),
                    "train": f"{RECIPE}/train.parquet".format(**cell),
                    "stats": f"{RECIPE}/stats.json".format(**cell),
                    "synth": recipe_synth_files(r),
                }
            )
    return entries + reference_entries()


def tables_spec(wildcards):
    spec = plain(CFG.tables)
    if spec["figure_benchmarks"] == "all":
        spec["figure_benchmarks"] = sorted(CFG.benchmarks)
    return spec


# ------------------------------------------------------------------ resources (never params)
# Portable resources only: threads, gpu, cpus_per_gpu, mem_mb, runtime (minutes). Site settings
# (partition, account, GPU model) live in profiles/slurm/profile.yaml. Resources are not params,
# so editing them reruns nothing. Memory and time grow with the attempt: a job retried after it
# ran out of either (`retries` in the SLURM profile) asks for twice as much.

# Rows assumed for a benchmark whose size the config does not give (a file or Hub dataset
# without `limit`).
ASSUMED_BENCHMARK_ROWS = 1000


def per_attempt(base):
    """A fixed request on the first attempt, twice as much on the second, ..."""
    return lambda wildcards, attempt: base * attempt


def student_resources(wildcards):
    return CFG.students[wildcards.student].resources


def student_resource(field):
    """One field of the students' `resources` (cpus, gpus) as a resource or threads."""
    return by_wildcard(
        {name: getattr(s.resources, field) for name, s in CFG.students.items()},
        "student",
    )


def student_cpus_per_gpu():
    """CPUs per GPU so that a GPU job gets the student's `cpus` in all (0: a CPU-only job)."""
    values = {}
    for name, student in CFG.students.items():
        res = student.resources
        values[name] = math.ceil(res.cpus / res.gpus) if res.gpus else 0
    return by_wildcard(values, "student")


def student_checkpointing(key):
    """Resumable-state settings as integer resources (a field of training.resume.SaveEvery:
    `every_steps`, or `every_s` in seconds)."""
    values = {
        name: getattr(SaveEvery.of(s.checkpointing), key)
        for name, s in CFG.students.items()
    }
    return by_wildcard(values, "student")


def student_mem_mb():
    values = {name: s.resources.mem_mb for name, s in CFG.students.items()}
    return by_wildcard_per_attempt(values, "student")


def train_runtime():
    values = {name: s.resources.runtime for name, s in CFG.students.items()}
    return by_wildcard_per_attempt(values, "student")


# A synthesis job without a local model (builtin, openai): 1 CPU, no GPU, 4 GB, 60 minutes.
SYNTH_DEFAULTS = {"gpus": 0, "cpus": 1, "mem_mb": 4000, "runtime": 60}


def synth_resources(name):
    """What a synthesis job asks for: the `resources` of its hf / vllm teacher and judge (the
    larger of each), else SYNTH_DEFAULTS."""
    return job_resources(CFG.synthesis[name]) or SYNTH_DEFAULTS


def synth_resource(field):
    """One field of synth_resources (cpus, gpus) as a resource or threads."""
    return by_wildcard(
        {name: synth_resources(name)[field] for name in CFG.synthesis}, "synth"
    )


def synth_cpus_per_gpu():
    """CPUs per GPU so that a GPU job gets its `cpus` in all (0: a CPU-only job)."""
    values = {}
    for name in CFG.synthesis:
        res = synth_resources(name)
        values[name] = math.ceil(res["cpus"] / res["gpus"]) if res["gpus"] else 0
    return by_wildcard(values, "synth")


def synth_per_attempt(field):
    """mem_mb or runtime of synth_resources, growing with the attempt."""
    values = {name: synth_resources(name)[field] for name in CFG.synthesis}
    return by_wildcard_per_attempt(values, "synth")


# Every entry's teacher and judge operational settings as resources, computed once.
SYNTH_OPERATIONAL = {
    name: {
        key: value
        for role in ROLES
        for key, value in as_resources(
            plain(spec).get(role), TEACHER_CACHE, role
        ).items()
    }
    for name, spec in CFG.synthesis.items()
}


def synth_teacher_setting(name):
    """One operational setting of a synthesis entry's teacher or judge (`teacher_...`,
    `judge_...`) as a resource: integers and strings only, seconds as their decimal string,
    unset as "" (mathrecipes.teachers.operational). `<role>_cache_dir` is the response cache folder: the
    spec's cache_dir, else <results>/cache/teachers."""
    return by_wildcard(
        {synth: settings[name] for synth, settings in SYNTH_OPERATIONAL.items()},
        "synth",
    )


def reference_setting(name):
    """One operational setting of a reference (`reference_base_url`, ...) as a resource (see
    synth_teacher_setting); `reference_cache_dir` is its cache_dir, else <results>/cache/references.
    """

    values = {
        ref: as_resources(plain(spec), REFERENCE_CACHE, "reference")[name]
        for ref, spec in CFG.references.items()
    }
    return by_wildcard(values, "reference")


def reference_runtime(wildcards, attempt):
    """10 minutes, plus every sample taking 30 s, `concurrency` at a time."""
    ref = CFG.references[wildcards.reference]
    n = benchmark_rows(wildcards.benchmark)
    n *= reference_job_spec(CFG, wildcards.reference, wildcards.benchmark)["n_samples"]
    return (10 + math.ceil(n * 30 / ref.concurrency / 60)) * attempt


def benchmark_rows(name):
    """Rows of a benchmark, or of a dataset a weakness probe answers."""
    spec = CFG.benchmarks[name] if name in CFG.benchmarks else CFG.datasets[name]
    if spec.source == "builtin":
        return spec.n
    return spec.limit or ASSUMED_BENCHMARK_ROWS


def eval_samples(wildcards):
    """What one evaluation job generates and grades: benchmark rows x samples per problem."""
    name = wildcards.get("benchmark") or wildcards.get("probe")
    return benchmark_rows(name) * eval_generation(wildcards).n_samples


def eval_generation(wildcards):
    """The effective generation settings of a job's benchmark (a probe: generation's own)."""
    return CFG.generation.for_benchmark(wildcards.get("benchmark") or "")


def generate_runtime(wildcards, attempt):
    """5 minutes to load the model, plus every sample running to max_new_tokens at the
    student's generate_tokens_per_s."""
    tokens = eval_samples(wildcards) * eval_generation(wildcards).max_new_tokens
    rate = student_resources(wildcards).generate_tokens_per_s
    return (5 + math.ceil(tokens / rate / 60)) * attempt


def likelihood_runtime(wildcards, attempt):
    """5 minutes to load the model, plus one benchmark pass at the generation estimate of one
    sample per problem: a teacher-forced forward over a solution costs less than decoding
    max_new_tokens tokens one at a time."""
    tokens = (
        benchmark_rows(wildcards.benchmark) * eval_generation(wildcards).max_new_tokens
    )
    rate = student_resources(wildcards).generate_tokens_per_s
    return (5 + math.ceil(tokens / rate / 60)) * attempt


def grade_threads():
    return CFG.grading.workers


def grade_mem_mb():
    """1 GB for the job plus 500 MB per Math-Verify worker process."""
    return per_attempt(1000 + 500 * CFG.grading.workers)


def grade_runtime(wildcards, attempt):
    """The worst case: every item runs into grading.timeout_s, spread over the workers."""
    seconds = eval_samples(wildcards) * CFG.grading.timeout_s / CFG.grading.workers
    return (5 + math.ceil(seconds / 60)) * attempt
