"""``plan``: throughput figures `mathrecipes plan` estimates hours from (docs/plan.md).

Read by the planner only: no rule reads this section, so it is never a job parameter or a
resource, and editing it reruns nothing. A student's training, generation and likelihood
throughputs are under ``students.<name>.resources``; the figures here are those of the jobs
that belong to no student. An earlier run's measured runtimes (``mathrecipes plan --results``)
take precedence over every figure given here."""

from __future__ import annotations

from pydantic import Field

from mathrecipes.config.base import Strict


class PlanSpec(Strict):
    """Throughputs of the jobs that belong to no student; unset: no estimate from the config."""

    grade_items_per_s: float | None = Field(
        None, gt=0, description="graded samples per second of one grading job (all its workers)"
    )
    synth_rows_per_s: float | None = Field(
        None,
        gt=0,
        description="pool rows per second of a synthesis job that calls no model (builtin "
        "teacher, rule-based splitter, retrieval only)",
    )
    teacher_requests_per_s: float | None = Field(
        None,
        gt=0,
        description="teacher and judge requests per second of a synthesis job that calls a "
        "model (openai, hf, vllm)",
    )
