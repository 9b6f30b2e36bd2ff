"""Ingest: a configured source to a canonical parquet file, with bad rows failed or quarantined."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mathrecipes.config import BuiltinSource, HFSource, LocalSource, source_spec
from mathrecipes.records import FIELDS, RecordError, check_record, dumps_meta, write_records
from mathrecipes.sources import open_source
from mathrecipes.sources.rows import BadRow

log = logging.getLogger(__name__)

QUARANTINE_FIELDS = ("where", "reason", "row")
SourceSpec = BuiltinSource | LocalSource | HFSource


def ingest(
    name: str,
    spec: Any,
    out_path: str | Path,
    quarantine_path: str | Path,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Read every row of the source, check it and write the canonical parquet.

    ``spec`` is the ``datasets`` / ``benchmarks`` entry (a source spec of :mod:`mathrecipes.config`
    or a mapping for one). Its ``on_bad_row``: ``fail`` raises on the first bad row (naming file and row);
    ``quarantine`` writes bad rows to ``quarantine_path`` with the reason and counts them: its
    columns are ``QUARANTINE_FIELDS``, ``where`` (file and line or row), ``reason`` and ``row``
    (the raw row as JSON; a line the source could not read, a
    :class:`~mathrecipes.sources.rows.BadRow`, as its text).
    Duplicate ids always fail: they would break provenance. A ``text`` source
    (:mod:`mathrecipes.sources.text`) gives answerless rows, one per document or chunk.
    """
    spec = source_spec(spec)
    source = open_source(name, spec)
    policy = spec.on_bad_row
    good: list[dict[str, str]] = []
    bad: list[dict[str, str]] = []
    first_seen: dict[str, str] = {}
    rows = tqdm(source.rows(), desc=f"ingest {name}", disable=not progress, unit="row")
    for index, (where, raw) in enumerate(rows):
        if isinstance(raw, BadRow):  # a line the source could not read: not JSON, not UTF-8
            if policy == "fail":
                raise RecordError(f"{name} (on_bad_row: fail): {where}: {raw.reason}")
            bad.append({"where": where, "reason": raw.reason, "row": raw.text})
            continue
        try:
            recs = checked_records(name, spec, raw, index, where)
        except RecordError as exc:
            if policy == "fail":
                raise RecordError(f"{name} (on_bad_row: fail): {exc}") from None
            bad.append({"where": where, "reason": str(exc), "row": dumps_meta(_jsonable(raw))})
            continue
        for rec in recs:
            if rec["id"] in first_seen:
                raise RecordError(
                    f"{where}: duplicate id {rec['id']!r} (first at {first_seen[rec['id']]})"
                )
            first_seen[rec["id"]] = where
            good.append(rec)
    if not good:
        raise RecordError(f"{name}: no valid rows ({len(bad)} quarantined)")
    n = write_records(good, out_path)
    _write_quarantine(bad, quarantine_path)
    if bad:
        log.warning("%s: %d bad row(s) quarantined in %s", name, len(bad), quarantine_path)
    types: dict[str, int] = {}
    for r in good:
        types[r["answer_type"]] = types.get(r["answer_type"], 0) + 1
    return {
        "rows": n,
        "quarantined": len(bad),
        "answer_types": dict(sorted(types.items())),
        "source": source.describe(),
    }


def rename_fields(raw: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    """Apply ``fields`` ({canonical field: column in the data}) to a raw row."""
    out = dict(raw)
    for canonical, column in fields.items():
        if canonical not in FIELDS:
            raise ValueError(
                f"fields: {canonical!r} is not a canonical field ({', '.join(FIELDS)})"
            )
        if column in out:
            out[canonical] = out.pop(column)
    return out


def is_text_source(spec: SourceSpec) -> bool:
    """A source read with the ``text`` format: its rows have no answer."""
    return not isinstance(spec, BuiltinSource) and spec.format == "text"


def checked_records(
    name: str, spec: SourceSpec, raw: Mapping[str, Any], index: int, where: str
) -> list[dict[str, str]]:
    """The checked canonical records of one raw row (several: the chunks of a document);
    a :class:`RecordError` names ``where``."""
    try:
        adapted = to_records(name, spec, raw, index)
    except RecordError as exc:
        raise RecordError(f"{where}: {exc}") from None
    answerless = is_text_source(spec)
    if len(adapted) == 1:
        return [check_record(adapted[0], where=where, answerless=answerless)]
    return [
        check_record(r, where=f"{where} chunk {k}", answerless=answerless)
        for k, r in enumerate(adapted)
    ]


def to_records(
    name: str, spec: SourceSpec, raw: Mapping[str, Any], index: int
) -> list[dict[str, Any]]:
    """One raw row to its canonical records (not yet checked): one, or for a ``text`` source
    with ``chunk_chars`` the document's chunks."""
    if not is_text_source(spec):
        return [to_canonical(name, spec, raw, index)]
    from mathrecipes.sources.text import DEFAULT_TEXT_FIELD, text_records

    row = rename_fields(raw, spec.fields)
    field = spec.text_field or DEFAULT_TEXT_FIELD
    docs = text_records(row, index, field=field, chunk_chars=spec.chunk_chars)
    return [_prefixed(name, spec, doc, index) for doc in docs]


def to_canonical(name: str, spec: SourceSpec, raw: Mapping[str, Any], index: int) -> dict[str, Any]:
    """One raw row to a canonical record (not yet checked) with the dataset's id prefix."""
    if isinstance(spec, BuiltinSource):
        return dict(raw)
    from mathrecipes.sources.formats import get_format

    row = rename_fields(raw, spec.fields)
    adapted = dict(get_format(spec.format).adapt(row, index))
    return _prefixed(name, spec, adapted, index)


def _prefixed(
    name: str, spec: LocalSource | HFSource, adapted: dict[str, Any], index: int
) -> dict[str, Any]:
    rid = adapted.get("id")
    adapted["id"] = f"{name}/{rid if rid not in (None, '') else f'{index:07d}'}"
    adapted["source"] = name
    if spec.answer_type:
        adapted["answer_type"] = spec.answer_type
    return adapted


def _jsonable(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {
        str(k): (v if isinstance(v, (str, int, float, bool, type(None), dict, list)) else str(v))
        for k, v in raw.items()
    }


def _write_quarantine(rows: list[dict[str, str]], path: str | Path) -> None:
    import pyarrow as pa

    from mathrecipes.records import write_table

    schema = pa.schema([(f, pa.string()) for f in QUARANTINE_FIELDS])
    write_table(pa.table({f: [r[f] for r in rows] for f in QUARANTINE_FIELDS}, schema=schema), path)
