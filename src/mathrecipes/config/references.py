"""``references``: served models evaluated beside the students (docs/references.md).

A reference is a model that is not trained here (the teacher, a public model) reached through
an OpenAI-compatible server. It answers every benchmark as the students do (the students'
prompt, the generation section's sampling), is graded as they are, and gets its own row in the
tables: no training seed, no delta against the baseline, no verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from mathrecipes.config.teachers import OpenAITeacherSpec

# The student name the tables give every reference (its recipe column is the reference's name).
REFERENCE_STUDENT = "reference"
# The generation settings a reference takes from the config's `generation` section.
SAMPLING = ("n_samples", "temperature", "top_p", "max_new_tokens", "seed", "stop")


class ReferenceSpec(OpenAITeacherSpec):
    """A served model evaluated beside the students: an `openai` teacher spec (the same server
    settings, retries, response cache and key handling) whose sampling defaults to the
    `generation` section's, so it answers as the students do."""

    backend: Literal["openai"] = Field("openai", description="the kind of server (openai only)")
    prompt: Literal["chat", "completion"] = Field(
        "chat",
        description="chat: one user message holding the benchmark's prompt (the students' "
        "`Problem: ...\\nSolution:`, or generation.benchmarks.<name>.prompt), sent to "
        "/chat/completions; completion: that prompt as plain text to /completions (a base model)",
    )
    max_tokens: int | None = Field(
        None, ge=1, description="most tokens of an answer (default: generation.max_new_tokens)"
    )
    temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="sampling temperature (default: generation.temperature)"
    )
    top_p: float | None = Field(
        None, gt=0.0, le=1.0, description="nucleus sampling (default: generation.top_p)"
    )
    seed: int | None = Field(
        None,
        description="each sample's seed is derived from it and the (problem, sample) "
        "(default: generation.seed)",
    )


def generation_for(cfg: Any, benchmark: str) -> dict[str, Any]:
    """The generation settings (:data:`SAMPLING`) a benchmark is answered with.

    The one place references read the `generation` section: per-benchmark generation settings
    re-point this function and nothing else."""
    spec = cfg.generation.for_benchmark(benchmark)
    return {key: getattr(spec, key) for key in SAMPLING}


def reference_job_spec(cfg: Any, name: str, benchmark: str) -> dict[str, Any]:
    """What a reference's answers to one benchmark depend on (its job's params): the model, the
    prompt kind and the effective sampling. Never the server's address, the key's variable or
    the retry settings (they do not change the answers)."""
    ref: ReferenceSpec = cfg.references[name]
    gen = generation_for(cfg, benchmark)

    def pick(own: Any, default: Any) -> Any:
        return default if own is None else own

    spec = {
        "backend": ref.backend,
        "model": ref.model,
        "prompt": ref.prompt,
        "n_samples": gen["n_samples"],
        "max_tokens": pick(ref.max_tokens, gen["max_new_tokens"]),
        "temperature": pick(ref.temperature, gen["temperature"]),
        "top_p": pick(ref.top_p, gen["top_p"]),
        "seed": pick(ref.seed, gen["seed"]),
    }
    if gen["stop"]:  # only when set: a config without stop strings keeps its params
        spec["stop"] = list(gen["stop"])
    return spec


def reference_problems(cfg: Any) -> list[tuple[str, str]]:
    """Cross-references of the `references` section, as (key path, problem) pairs."""
    problems: list[tuple[str, str]] = []
    refs: Mapping[str, ReferenceSpec] = cfg.references
    if not refs:
        return problems
    if REFERENCE_STUDENT in cfg.students:
        problems.append(
            (
                f"students.{REFERENCE_STUDENT}",
                f"the name {REFERENCE_STUDENT!r} is the tables' student of the references: "
                "rename the student",
            )
        )
    for name in sorted(refs):
        if name in cfg.students:
            problems.append(
                (f"references.{name}", f"name already used by students.{name}: rename one")
            )
        for benchmark in sorted(cfg.benchmarks):
            spec = reference_job_spec(cfg, name, benchmark)
            if spec["temperature"] == 0 and spec["n_samples"] > 1:
                key = (
                    f"references.{name}.temperature"
                    if refs[name].temperature is not None
                    else "generation.temperature"
                )
                problems.append(
                    (
                        key,
                        f"{spec['n_samples']} samples per problem (generation.n_samples) need "
                        "temperature > 0: greedy samples are identical",
                    )
                )
                break
    return problems
