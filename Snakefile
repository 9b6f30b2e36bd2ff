# mathrecipes: "more data or better data?" for math-reasoning language models.
#
# raw datasets -> synthesized shards -> training sets -> checkpoints -> generations -> grades
# -> tables. See README.md; all logic lives in the mathrecipes package (src/mathrecipes).
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

from mathrecipes.dagspeed import memoize_local_sources

# Snakemake looks up a script rule's source for every job it plans; made once per script here
memoize_local_sources(workflow)


# A config file given with --configfile is a whole experiment and replaces config.yaml;
# --config key=value overrides single keys of whichever file is used.
if not workflow.overwrite_configfiles:

    configfile: Path(workflow.basedir) / "config.yaml"


include: "rules/common.smk"
include: "rules/ingest.smk"
include: "rules/synthesize.smk"
include: "rules/select.smk"
include: "rules/train.smk"
include: "rules/generate.smk"
include: "rules/likelihood.smk"
include: "rules/reference.smk"
include: "rules/weakness.smk"
include: "rules/grade.smk"
include: "rules/tables.smk"


localrules:
    all,
    all_datasets,
    all_synthesis,
    all_recipes,
    all_checkpoints,
    all_generations,
    all_likelihood,
    all_grades,
    all_references,


rule all:
    default_target: True
    input:
        rules.make_tables.output,


rule all_datasets:
    input:
        all_dataset_files(),


rule all_synthesis:
    input:
        all_synthesis_files(),


rule all_recipes:
    input:
        all_recipe_files(),


rule all_checkpoints:
    input:
        all_checkpoint_dirs(),


rule all_generations:
    input:
        all_generation_files(),


rule all_likelihood:
    input:
        all_likelihood_files(),


rule all_grades:
    input:
        all_grade_files(),


rule all_references:
    input:
        all_reference_grade_files(),
