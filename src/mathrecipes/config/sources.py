"""``datasets`` and ``benchmarks``: where rows come from (see :mod:`mathrecipes.sources`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from mathrecipes.config.base import Strict

# Keys every source kind that reads rows through a format adapter has (local, hf), and the
# bad-row policy of every kind: declared once, used with their defaults in each class.
Format = Annotated[str, Field(description="format adapter, see sources/formats.py")]
Fields = Annotated[
    dict[str, str],
    Field(description="canonical field -> column in the rows read, applied before the adapter"),
]
AnswerType = Annotated[str | None, Field(description="override the adapter's answer type")]
TextField = Annotated[
    str | None,
    Field(min_length=1, description="format text: the column holding the text (text)"),
]
ChunkChars = Annotated[
    int | None,
    Field(
        ge=50,
        description="format text: cut documents into chunks of at most this many characters "
        "on paragraph boundaries (ids <doc id>#<k>); unset: one row per document",
    ),
]
Limit = Annotated[int | None, Field(gt=0, description="read only the first rows")]
OnBadRow = Annotated[
    Literal["fail", "quarantine"],
    Field(
        description="a row the adapter or the canonical schema rejects (or a jsonl line that is "
        "not JSON or not UTF-8): fail the job naming its file and row, or quarantine it "
        "(<name>.quarantine.parquet, counted in the manifest)"
    ),
]


class BuiltinSource(Strict):
    """Procedural multi-step arithmetic word problems (ground truth by construction)."""

    source: Literal["builtin"] = Field(description="the kind of source")
    generator: Literal["arithmetic"] = Field("arithmetic", description="the problem generator")
    split: Literal["train", "test"] = Field(
        "train",
        description="train and test problems are disjoint by construction; a benchmark must be "
        "test",
    )
    style: Literal["answer_only", "prose", "structured"] = Field(
        "answer_only",
        description="the solution: answer_only ('#### 42'), prose (a short worded solution) or "
        "structured (one line per step with its computation, '58 + 1 = 59', then \\boxed{59}: "
        "a reference solution for the likelihood rule)",
    )
    n: int = Field(gt=0, description="number of problems")
    seed: int = Field(0, description="generator seed")
    min_steps: int = Field(2, ge=1, le=12, description="fewest operations in a problem")
    max_steps: int = Field(4, ge=1, le=12, description="most operations in a problem")
    max_value: int = Field(
        100, ge=10, description="every operand, intermediate result and answer is below this"
    )
    on_bad_row: OnBadRow = "fail"

    @model_validator(mode="after")
    def _steps(self) -> BuiltinSource:
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps ({self.min_steps}) > max_steps ({self.max_steps})")
        return self


class LocalSource(Strict):
    """Rows from local jsonl / json / parquet / csv files (globs allowed) through a format adapter;
    with format text also whole .txt / .md files."""

    source: Literal["local"] = Field(description="the kind of source")
    path: str = Field(
        min_length=1,
        description="a file or a glob, relative to the working directory (jsonl, json, parquet, "
        "csv; with format text also .txt and .md files, each one document)",
    )
    format: Format = "canonical"
    fields: Fields = {}
    answer_type: AnswerType = None
    text_field: TextField = None
    chunk_chars: ChunkChars = None
    limit: Limit = None
    on_bad_row: OnBadRow = "fail"


class HFSource(Strict):
    """A Hugging Face ``datasets`` dataset (Hub id or local folder) through a format adapter."""

    source: Literal["hf"] = Field(description="the kind of source")
    path: str = Field(
        min_length=1,
        description="Hub dataset id, or a local folder laid out like a Hub dataset repository",
    )
    name: str | None = Field(None, description="dataset config name")
    split: str = Field("train", description="the split to read")
    revision: str | None = Field(
        None,
        description="branch, tag or commit; pin a commit (the manifest records the commit it "
        "resolved to)",
    )
    data_files: str | list[str] | dict[str, str | list[str]] | None = Field(
        None, description="passed to datasets.load_dataset as it is"
    )
    streaming: bool = Field(False, description="stream the rows instead of downloading")
    format: Format
    fields: Fields = {}
    answer_type: AnswerType = None
    text_field: TextField = None
    chunk_chars: ChunkChars = None
    limit: Limit = None
    on_bad_row: OnBadRow = "fail"


SourceSpec = Annotated[BuiltinSource | LocalSource | HFSource, Field(discriminator="source")]
SOURCE_TAGS = ("builtin", "local", "hf")
_SOURCE: TypeAdapter[Any] = TypeAdapter(SourceSpec, config=ConfigDict(title="SourceSpec"))


def source_spec(spec: Any) -> BuiltinSource | LocalSource | HFSource:
    """A source spec of any kind, validated (a spec object is returned as it is)."""
    return _SOURCE.validate_python(dict(spec) if isinstance(spec, Mapping) else spec)


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
