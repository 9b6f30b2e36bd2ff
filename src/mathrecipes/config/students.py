"""``students``: the models trained on each recipe, and what their jobs ask for."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from mathrecipes.config.base import Strict


class ModelSpec(Strict):
    """The Llama a ``scratch`` student starts from (random weights)."""

    hidden_size: int = Field(128, gt=0, description="width of the residual stream")
    intermediate_size: int = Field(344, gt=0, description="width of the MLP")
    num_hidden_layers: int = Field(4, gt=0, description="transformer layers")
    num_attention_heads: int = Field(4, gt=0, description="attention heads (divide hidden_size)")
    num_key_value_heads: int | None = Field(
        None, description="key/value heads (grouped-query attention; unset: one per head)"
    )
    max_position_embeddings: int = Field(512, gt=0, description="longest sequence in tokens")
    rope_theta: float = Field(10000.0, description="rotary position embedding base")
    tie_word_embeddings: bool = Field(True, description="share input and output embeddings")

    @model_validator(mode="after")
    def _heads(self) -> ModelSpec:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be divisible by num_attention_heads")
        return self


class TokenizerSpec(Strict):
    """The tokenizer a ``scratch`` student trains on its recipe's corpus (digits one per token)."""

    vocab_size: int = Field(1000, ge=64, description="most tokens in the vocabulary (a cap)")
    min_frequency: int = Field(2, ge=1, description="fewest occurrences of a merged token")


class TrainingSpec(Strict):
    """How a student is trained: exactly one of ``max_steps`` and ``epochs``."""

    lr: float = Field(2e-3, gt=0, description="peak learning rate (AdamW)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    warmup_steps: int = Field(50, ge=0, description="linear warmup steps")
    schedule: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="learning-rate schedule after warmup"
    )
    max_steps: int | None = Field(None, gt=0, description="optimizer steps")
    epochs: float | None = Field(None, gt=0, description="passes over the training set")
    tokens_per_step: int = Field(2000, gt=0, description="token budget per optimizer step")
    max_length: int = Field(256, gt=8, description="longer examples are truncated")
    grad_clip: float = Field(1.0, gt=0, description="gradient norm clip")
    log_every: int = Field(50, gt=0, description="log the loss every N steps")
    adam_beta2: float = Field(0.99, gt=0, lt=1, description="AdamW beta2")
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
        Field("auto", description="the attention kernels (auto: sdpa)")
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
        "(every sample counted at max_new_tokens); `mathrecipes plan` uses it only when set "
        "in the config",
    )
    train_tokens_per_s: float | None = Field(
        None,
        gt=0,
        description="training throughput (max_steps x tokens_per_step per second): "
        "`mathrecipes plan` estimates training hours from it when no earlier run calibrates them",
    )
    likelihood_tokens_per_s: float | None = Field(
        None,
        gt=0,
        description="teacher-forced scoring throughput (tokens per second): `mathrecipes plan` "
        "estimates likelihood hours from it when no earlier run calibrates them",
    )


class Checkpointing(Strict):
    """Resumable training state (does not change results, so it is not a job parameter)."""

    every_steps: int = Field(500, ge=0, description="save every N optimizer steps (0: never)")
    every_minutes: float = Field(
        10.0, ge=0, description="also save when this long has passed since the last save (0: off)"
    )


class StudentSpec(Strict):
    """A student model trained on every recipe, once per seed."""

    init: str = Field(
        "scratch",
        description="'scratch' (random Llama + tokenizer trained on the corpus), "
        "a Hugging Face model id, or a local model folder",
    )
    revision: str | None = Field(None, description="Hub branch, tag or commit of init")
    prompt_format: Literal["plain", "chat"] = Field(
        "plain",
        description="how a problem is put to the student, in training and in evaluation alike: "
        "plain = 'Problem: {problem}\\nSolution:'; chat = the tokenizer's chat template (a "
        "Hub or local model that has one; not scratch), the problem as the user message",
    )
    system_prompt: str | None = Field(
        None, description="chat only: a system message before the user message"
    )
    model: ModelSpec = Field(default_factory=ModelSpec, description="scratch only: the model")
    tokenizer: TokenizerSpec = Field(
        default_factory=TokenizerSpec, description="scratch only: the tokenizer"
    )
    training: TrainingSpec = Field(description="how it is trained")
    resources: StudentResources = Field(
        default_factory=StudentResources,
        description="what its training and generation jobs ask the scheduler for (not a job "
        "parameter)",
    )
    checkpointing: Checkpointing = Field(
        default_factory=Checkpointing,
        description="resumable training state (not a job parameter)",
    )

    @model_validator(mode="after")
    def _system_needs_chat(self) -> StudentSpec:
        if self.system_prompt is not None and self.prompt_format != "chat":
            raise ValueError("system_prompt needs prompt_format: chat")
        return self

    def prompt_settings(self) -> dict[str, Any]:
        """The student's prompt format as a job parameter: empty for the default (plain, no
        system prompt), so default configs keep the parameters they had."""
        if self.prompt_format == "plain":
            return {}
        return {"format": self.prompt_format, "system": self.system_prompt}
