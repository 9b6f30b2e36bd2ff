"""The canonical problem record and its parquet I/O.

Every dataset, benchmark, synthesis shard and training set is a parquet file with one schema:

``id``           stable, source-prefixed identifier (``arith-qa/000123``)
``source``       the config name of the dataset / synthesis entry that produced the row
``problem``      the problem statement
``solution``     a worked solution (may be empty)
``answer``       the gold final answer as a string (LaTeX allowed)
``answer_type``  one of :data:`ANSWER_TYPES`
``meta``         a JSON object serialized as a string (subject, level, parent ids, teacher, ...)

``meta`` is stored as a JSON string rather than a parquet struct so that rows from different
sources, whose metadata keys differ, always concatenate.

Raw text (the ``text`` format, :mod:`mathrecipes.sources.text`) has no answer: such a row has
``answer`` ``""`` and ``answer_type`` :data:`NO_ANSWER` (``none``), and nothing else may. Ingest
accepts it only from a ``text`` source (``check_record(..., answerless=True)``); the config
lets only ``rewrite`` and ``extract`` read such a pool, so grading, decontamination and selection
never see one (selection also refuses it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

ANSWER_TYPES = (
    "integer",
    "decimal",
    "fraction",
    "expression",
    "interval",
    "set",
    "tuple",
    "matrix",
    "text",
    "choice",
)

# The answer_type of a row without a gold answer (raw text); not one of ANSWER_TYPES.
NO_ANSWER = "none"

FIELDS = ("id", "source", "problem", "solution", "answer", "answer_type", "meta")

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("problem", pa.string(), nullable=False),
        pa.field("solution", pa.string(), nullable=False),
        pa.field("answer", pa.string(), nullable=False),
        pa.field("answer_type", pa.string(), nullable=False),
        pa.field("meta", pa.string(), nullable=False),
    ]
)


class RecordError(ValueError):
    """A row that does not fit the canonical schema; the message names the file and row."""


def check_record(row: Mapping[str, Any], *, where: str, answerless: bool = False) -> dict[str, str]:
    """Validate one record and return it with ``meta`` serialized.

    ``where`` names the file and row for the error message, e.g. ``"data.jsonl line 7"``.
    ``answerless`` (raw text): the row must have answer_type :data:`NO_ANSWER` and no answer;
    otherwise it needs an answer and one of :data:`ANSWER_TYPES`.
    """
    answer_type = row.get("answer_type") or "text"
    if answer_type == NO_ANSWER and not answerless:
        raise RecordError(
            f"{where}: answer_type {NO_ANSWER!r} (no answer) is for raw text only (format: text)"
        )
    required = ("id", "problem") if answerless else ("id", "problem", "answer")
    missing = [f for f in required if not _nonempty(row.get(f))]
    if missing:
        raise RecordError(f"{where}: missing or empty field(s) {', '.join(missing)}")
    if answerless:
        if answer_type != NO_ANSWER or _nonempty(row.get("answer")):
            raise RecordError(
                f"{where}: a raw text row has answer_type {NO_ANSWER!r} and no answer "
                f"(got {answer_type!r}, {row.get('answer')!r})"
            )
    elif answer_type not in ANSWER_TYPES:
        raise RecordError(
            f"{where}: answer_type {answer_type!r} is not one of {', '.join(ANSWER_TYPES)}"
        )
    meta = row.get("meta") or {}
    if isinstance(meta, str):
        meta_str = meta
        try:
            json.loads(meta_str)
        except json.JSONDecodeError as exc:
            raise RecordError(f"{where}: meta is not valid JSON ({exc})") from exc
    else:
        meta_str = dumps_meta(meta)
    return {
        "id": str(row["id"]),
        "source": str(row.get("source") or ""),
        "problem": str(row["problem"]),
        "solution": str(row.get("solution") or ""),
        "answer": str(row.get("answer") or "").strip(),
        "answer_type": answer_type,
        "meta": meta_str,
    }


def _nonempty(value: Any) -> bool:
    return value is not None and str(value).strip() != ""


def dumps_meta(meta: Mapping[str, Any]) -> str:
    """Serialize metadata deterministically (sorted keys, compact)."""
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def loads_meta(meta: str) -> dict[str, Any]:
    return json.loads(meta) if meta else {}


def has_answer(row: Mapping[str, Any]) -> bool:
    """False for a raw text row (answer_type :data:`NO_ANSWER`)."""
    return row.get("answer_type") != NO_ANSWER


def write_records(rows: Iterable[Mapping[str, Any]], path: str | Path) -> int:
    """Write canonical records (already checked) to ``path``; returns the row count."""
    rows = list(rows)
    columns = {f: [r[f] for r in rows] for f in FIELDS}
    table = pa.table(columns, schema=SCHEMA)
    write_table(table, path)
    return table.num_rows


def write_table(table: pa.Table, path: str | Path) -> None:
    """Write a parquet file atomically and deterministically (no timestamps in the file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd", store_schema=True)
    tmp.replace(path)


def read_records(path: str | Path) -> list[dict[str, str]]:
    """Read a canonical parquet file into a list of dicts, checking the schema."""
    table = pq.read_table(path)
    missing = [f for f in FIELDS if f not in table.column_names]
    if missing:
        raise RecordError(f"{path}: not a canonical record file, missing column(s) {missing}")
    return table.select(list(FIELDS)).to_pylist()


def read_many(paths: Iterable[str | Path]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for p in paths:
        out.extend(read_records(p))
    return out
