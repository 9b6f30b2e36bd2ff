"""Teachers: the model (or program) behind a synthesis entry's ``teacher`` and ``judge``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Discriminator, Field, Tag, TypeAdapter, model_validator

from mathrecipes.config.base import Strict


class TeacherSpec(Strict):
    """The programmatic teacher: solves a builtin problem step by step (distill), retells it
    (rephrase); no prompts."""

    backend: Literal["builtin"] = Field("builtin", description="the kind of teacher")
    error_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="probability of an arithmetic slip in a step; step verification catches it "
        "and rejects the row (0: a perfect teacher)",
    )
    seed: int = Field(0, description="the slips' seed (with each row's key)")


class OpenAITeacherSpec(Strict):
    """Any OpenAI-compatible server: vLLM, SGLang, `transformers serve`, hosted APIs."""

    backend: Literal["openai"] = Field(description="the kind of teacher")
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
    max_tokens: int = Field(1024, ge=1, description="most tokens of an answer")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="sampling temperature (0: greedy)")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling")
    seed: int = Field(0, description="each request's seed is derived from it and the row key")
    # how to talk to the server: these do not change the responses (not job params)
    concurrency: int = Field(8, ge=1, le=1024, description="requests in flight at once")
    timeout_s: float = Field(300.0, gt=0, description="seconds per attempt")
    max_retries: int = Field(
        6, ge=0, le=100, description="retries of a connection error, timeout, 429 or 5xx"
    )
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

    backend: Literal["hf"] = Field(description="the kind of teacher")
    model: str = Field(min_length=1, description="a local model folder or a Hub model id")
    revision: str | None = Field(None, description="Hub branch, tag or commit; pin a commit")
    max_new_tokens: int = Field(1024, gt=0, description="most tokens of an answer")
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling")
    batch_size: int = Field(16, gt=0, description="requests per forward batch")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto = bfloat16 on a GPU, float32 on a CPU"
    )
    seed: int = Field(0, description="each request's seed is derived from it and the row key")
    resources: TeacherResources = Field(
        default_factory=TeacherResources,
        description="what the job asks the scheduler for (not a job parameter)",
    )

    # Not what the teacher answers (not job params): they reach the job as resources.
    OPERATIONAL: ClassVar[tuple[str, ...]] = ("resources",)


class VLLMTeacherSpec(Strict):
    """A local model run by vLLM's offline engine (the ``vllm`` extra, a CUDA GPU): a model
    folder or a Hub id. The same prompts as ``hf`` (the tokenizer's chat template), every
    request sampled from its own seed; vLLM batches continuously."""

    backend: Literal["vllm"] = Field(description="the kind of teacher")
    model: str = Field(min_length=1, description="a local model folder or a Hub model id")
    revision: str | None = Field(None, description="Hub branch, tag or commit; pin a commit")
    max_new_tokens: int = Field(1024, gt=0, description="most tokens of an answer")
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling")
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
        default_factory=TeacherResources,
        description="what the job asks the scheduler for (not a job parameter); gpus at least "
        "tensor_parallel_size",
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
_TEACHER: TypeAdapter[Any] = TypeAdapter(AnyTeacherSpec, config=ConfigDict(title="TeacherSpec"))


def teacher_spec(spec: Any) -> TeacherSpec | OpenAITeacherSpec | HFTeacherSpec | VLLMTeacherSpec:
    """A teacher spec of any backend, validated (a spec object is returned as it is)."""
    return _TEACHER.validate_python(dict(spec) if isinstance(spec, Mapping) else spec)
