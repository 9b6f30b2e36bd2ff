"""``generation``, ``likelihood``, ``grading`` and ``tables``: how the students are evaluated and
reported."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mathrecipes.config.base import Name, Strict
from mathrecipes.grading.settings import GradePolicy, GradeSettings

# The same pattern as mathrecipes.tables.compute.METRIC (not imported: config stays light).
METRIC = re.compile(r"^(accuracy|bpb|(pass|maj)@([1-9]\d*))$")


class FewShotSpec(Strict):
    """Worked examples shown before each problem of one benchmark (the template's
    ``{examples}``)."""

    from_: Name = Field(
        alias="from",
        description="the dataset (a name in datasets) the examples are drawn from; rows whose "
        "normalized problem equals one of the benchmark's problems are never drawn",
    )
    n: int = Field(4, ge=1, description="examples per prompt (the same ones for every problem)")
    seed: int = Field(0, ge=0, description="seed of the draw")


class BenchmarkGeneration(Strict):
    """One benchmark's generation settings: any key given replaces generation's own for this
    benchmark only (editing it regenerates, regrades and retabulates that benchmark only)."""

    max_new_tokens: int | None = Field(None, gt=0, description="most tokens of an answer")
    stop: list[str] | None = Field(
        None, description="stop strings (replace generation.stop for this benchmark)"
    )
    n_samples: int | None = Field(None, ge=1, description="answers per problem")
    temperature: float | None = Field(None, ge=0, description="sampling temperature (0: greedy)")
    top_p: float | None = Field(None, gt=0, le=1, description="nucleus sampling")
    prompt: str | None = Field(
        None,
        description="a prompt template file (e.g. prompts/eval/boxed.txt; relative: the working "
        "directory, else the workflow's folder) with {problem} and, with few_shot, {examples}; "
        "unset: the student's own training format (docs/evaluation.md)",
    )
    few_shot: FewShotSpec | None = Field(
        None, description="worked examples rendered into the template's {examples}"
    )

    def overrides(self) -> dict[str, Any]:
        """The sampling keys given (not prompt / few_shot)."""
        keys = ("max_new_tokens", "stop", "n_samples", "temperature", "top_p")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


class GenerationSpec(Strict):
    """How every student answers every benchmark (``benchmarks`` overrides it per benchmark)."""

    backend: Literal["hf", "vllm"] = Field(
        "hf", description="hf: transformers, batched; vllm: offline vLLM (optional package)"
    )
    max_new_tokens: int = Field(128, gt=0, description="most tokens of an answer")
    batch_size: int = Field(128, gt=0, description="sequences per batch (vllm: per request chunk)")
    temperature: float = Field(0.0, ge=0, description="sampling temperature (0: greedy)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling")
    n_samples: int = Field(
        1, ge=1, description="answers per problem (more than 1 needs temperature > 0)"
    )
    seed: int = Field(0, description="sampling seed")
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
    stop: list[str] = Field(
        default_factory=list,
        description="stop strings: an answer ends where its text first contains one (cut before "
        "it, finish_reason stop)",
    )
    benchmarks: dict[Name, BenchmarkGeneration] = Field(
        default_factory=dict,
        description="per-benchmark settings: max_new_tokens, stop, n_samples, temperature, "
        "top_p, prompt, few_shot, e.g. aime24: {n_samples: 16, temperature: 0.6}",
    )

    @model_validator(mode="after")
    def _greedy(self) -> GenerationSpec:
        if self.temperature == 0 and self.n_samples > 1:
            raise ValueError("n_samples > 1 needs temperature > 0 (greedy samples are identical)")
        if self.backend == "vllm" and self.attn_implementation != "auto":
            raise ValueError("attn_implementation applies to backend hf only (vLLM picks its own)")
        if any(not s for s in self.stop):
            raise ValueError("stop: an empty stop string would stop every answer at once")
        for name, override in self.benchmarks.items():
            if override.stop is not None and any(not s for s in override.stop):
                raise ValueError(f"benchmarks.{name}.stop: an empty stop string")
            if override.prompt is None and override.few_shot is not None:
                raise ValueError(
                    f"benchmarks.{name}.few_shot needs a prompt template with {{examples}} "
                    f"(benchmarks.{name}.prompt)"
                )
            effective = self.for_benchmark(name, check=False)
            t, n = effective.temperature, effective.n_samples
            if t == 0 and n > 1:
                raise ValueError(
                    f"benchmarks.{name}: n_samples {n} > 1 needs temperature > 0 (greedy "
                    "samples are identical)"
                )
        return self

    def for_benchmark(self, name: str, *, check: bool = True) -> GenerationSpec:
        """The effective settings of one benchmark (``benchmarks`` emptied): generation's own,
        with the benchmark's sampling keys (not prompt / few_shot) in their place."""
        override = self.benchmarks.get(name)
        values = {k: getattr(self, k) for k in type(self).model_fields if k != "benchmarks"}
        if override is not None:
            values.update(override.overrides())
        if not check:
            return type(self).model_construct(**values, benchmarks={})
        return type(self).model_validate(values)

    def job_spec(self, name: str) -> dict[str, Any]:
        """A generation job's spec for one benchmark: :meth:`for_benchmark` as plain values,
        without ``benchmarks``, and without ``stop`` when empty (so a config that sets neither
        has exactly the spec it had before these keys existed, and reruns nothing)."""
        spec = self.for_benchmark(name).model_dump(mode="json", by_alias=True)
        spec.pop("benchmarks")
        if not spec["stop"]:
            spec.pop("stop")
        return spec


class LikelihoodSpec(Strict):
    """The likelihood of each benchmark's reference solutions under every student: the summed
    negative log-likelihood of the solution tokens given the prompt (teacher-forced, as in
    training) and bits per byte (comparable across tokenizers). The dtype and attention
    implementation are `generation`'s (generation.dtype, generation.attn_implementation)."""

    enabled: bool = Field(
        True,
        description="score the reference solutions (benchmark rows with an empty solution are "
        "left out); false: no likelihood jobs and no likelihood columns in the tables",
    )
    batch_size: int = Field(
        32, gt=0, description="sequences per forward pass (prompt + solution, padded)"
    )


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
    """The tables and the figure: which metrics, and how recipes are compared (docs/tables.md).
    Editing any of these reruns the tables only."""

    baseline: Name = Field(description="the recipe the deltas are computed against")
    figure_benchmarks: list[Name] | Literal["all"] = Field(
        "all", description="the benchmarks in the figure: all, or a list of names"
    )
    metrics: list[str] | Literal["auto"] = Field(
        "auto",
        description="the metrics reported: accuracy, pass@k, maj@k (k up to the largest "
        "n_samples of any benchmark; a benchmark with fewer samples leaves the metric out), bpb (bits per byte of the reference solutions, from the "
        "likelihood rule); auto = accuracy, pass@n and maj@n with n > 1 samples, bpb when "
        "likelihood is enabled",
    )
    alpha: float = Field(
        0.05, gt=0, lt=1, description="level of the better / worse verdicts (after Holm)"
    )
    bootstrap: int = Field(
        1000, ge=100, description="bootstrap replicates of a cell's interval (one seed)"
    )
    seed: int = Field(0, ge=0, description="seed of the bootstrap (the tables are reproducible)")
    wilson_below: int = Field(
        300,
        ge=0,
        description="a 0/1 score per problem on fewer problems than this gets a Wilson "
        "interval; more problems, several samples or seeds get the bootstrap or t interval",
    )

    @field_validator("metrics")
    @classmethod
    def _metric_names(cls, value: list[str] | str) -> list[str] | str:
        if value == "auto":
            return value
        if not value:
            raise ValueError("name at least one metric, or auto")
        for name in value:
            if not METRIC.match(name):
                raise ValueError(
                    f"unknown metric {name!r}: accuracy, bpb, pass@k or maj@k (k >= 1)"
                )
        if len(set(value)) != len(value):
            raise ValueError("a metric is listed twice")
        return value
