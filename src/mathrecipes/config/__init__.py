"""The config schema, validated before any job runs.

The Snakefile calls :func:`load_config` on the merged Snakemake config. Unknown keys and wrong
types fail with a message that names the full key path (``recipes.better.volume.fraction``).
Every section is a pydantic model with ``extra="forbid"``; defaults live here and nowhere else.

One module per section: :mod:`~mathrecipes.config.sources` (``datasets``, ``benchmarks``),
:mod:`~mathrecipes.config.teachers` and :mod:`~mathrecipes.config.synthesis` (``synthesis``),
:mod:`~mathrecipes.config.recipes`, :mod:`~mathrecipes.config.students`,
:mod:`~mathrecipes.config.evaluation` (``generation``, ``likelihood``, ``grading``,
``tables``), :mod:`~mathrecipes.config.references` (``references``),
:mod:`~mathrecipes.config.planning` (``plan``); the whole config and its cross-references in
:mod:`~mathrecipes.config.experiment`. Every name is importable from here.
"""

from mathrecipes.config.base import NAME_RE, ConfigError, Name, Strict, plain, slug
from mathrecipes.config.evaluation import (
    GenerationSpec,
    GradingSpec,
    LikelihoodSpec,
    TablesSpec,
)
from mathrecipes.config.experiment import Config, load_config, validate_source
from mathrecipes.config.planning import PlanSpec
from mathrecipes.config.recipes import (
    Decontamination,
    MixPart,
    NearDedup,
    RecipeSpec,
    RowFilters,
    SelectionSpec,
    Volume,
)
from mathrecipes.config.references import (
    REFERENCE_STUDENT,
    ReferenceSpec,
    generation_for,
    reference_job_spec,
)
from mathrecipes.config.sources import (
    SOURCE_TAGS,
    BuiltinSource,
    HFSource,
    LocalSource,
    SourceSpec,
    source_problems,
    source_spec,
)
from mathrecipes.config.students import (
    Checkpointing,
    ModelSpec,
    StudentResources,
    StudentSpec,
    TokenizerSpec,
    TrainingSpec,
)
from mathrecipes.config.synthesis import (
    METHOD_SPECS,
    METHOD_TAGS,
    AnySynthesisSpec,
    DistillSpec,
    EmbedderSpec,
    ExtractSpec,
    JudgedSpec,
    RephraseSpec,
    RewriteSpec,
    StructureSpec,
    SynthesisSpec,
    SynthNearDedup,
    WeaknessProbe,
    WeaknessSeedsSpec,
    WeaknessSpec,
)
from mathrecipes.config.teachers import (
    LOCAL_TEACHER_TAGS,
    TEACHER_TAGS,
    AnyTeacherSpec,
    HFTeacherSpec,
    OpenAITeacherSpec,
    TeacherResources,
    TeacherSpec,
    VLLMTeacherSpec,
    teacher_spec,
)

__all__ = [
    "LOCAL_TEACHER_TAGS",
    "METHOD_SPECS",
    "METHOD_TAGS",
    "NAME_RE",
    "REFERENCE_STUDENT",
    "SOURCE_TAGS",
    "TEACHER_TAGS",
    "AnySynthesisSpec",
    "AnyTeacherSpec",
    "BuiltinSource",
    "Checkpointing",
    "Config",
    "ConfigError",
    "Decontamination",
    "DistillSpec",
    "EmbedderSpec",
    "ExtractSpec",
    "GenerationSpec",
    "GradingSpec",
    "HFSource",
    "HFTeacherSpec",
    "JudgedSpec",
    "LikelihoodSpec",
    "LocalSource",
    "MixPart",
    "ModelSpec",
    "Name",
    "NearDedup",
    "OpenAITeacherSpec",
    "PlanSpec",
    "RecipeSpec",
    "ReferenceSpec",
    "RephraseSpec",
    "RewriteSpec",
    "RowFilters",
    "SelectionSpec",
    "SourceSpec",
    "Strict",
    "StudentResources",
    "StructureSpec",
    "StudentSpec",
    "SynthNearDedup",
    "SynthesisSpec",
    "TablesSpec",
    "TeacherResources",
    "TeacherSpec",
    "TokenizerSpec",
    "TrainingSpec",
    "VLLMTeacherSpec",
    "Volume",
    "WeaknessProbe",
    "WeaknessSeedsSpec",
    "WeaknessSpec",
    "generation_for",
    "load_config",
    "reference_job_spec",
    "plain",
    "slug",
    "teacher_spec",
    "source_problems",
    "source_spec",
    "validate_source",
]
