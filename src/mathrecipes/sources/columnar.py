"""The columnar path of ingest: a batch of a ``canonical`` parquet file adapted and checked as
arrow columns, for every row where that gives what the per-row path gives.

The per-row path (:func:`mathrecipes.ingest.checked_records`: :func:`rename_fields`, the
``canonical`` adapter, :func:`mathrecipes.records.check_record`) costs about 60 us a row in
Python. Here a batch's columns are renamed as ``fields`` says; ``problem``, ``solution`` and
``id`` are stripped in Python only where their first or last character is not printable ASCII
(elsewhere ``str.strip`` changes nothing); ``clean_gold`` runs once per distinct answer, the
``meta`` merge (:func:`mathrecipes.sources.formats.canonical_meta` and ``dumps_meta``) once per
distinct ``meta`` and other columns, ``classify_answer_type`` only on rows without a valid
``answer_type``. A row that fails any of check_record's checks here (empty problem or answer, an
answer type not in ``ANSWER_TYPES``, a ``meta`` that is not a JSON object) is not decided here:
:func:`adapt_batch` returns its position and ingest runs the per-row path on it, so that its
error, quarantine row and message (file and row) are the per-row path's own.

A file whose columns this path does not cover (a ``meta`` struct, a non-string ``problem``, a
float ``id``: see :func:`covered`) goes through the per-row path whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mathrecipes.answers import classify_answer_type, clean_gold
from mathrecipes.records import ANSWER_TYPES, FIELDS, SCHEMA, dumps_meta
from mathrecipes.sources.formats import CANONICAL_FIELDS, canonical_meta

__all__ = ["adapt_batch", "covered", "renamed"]

_TEXT = ("problem", "solution", "answer", "answer_type", "meta")


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _encodable(t: pa.DataType) -> bool:
    """A type whose values are one Python type each, hashable, equal only when the same value
    (floats are not: -0.0 and 0.0, NaNs)."""
    return _is_string(t) or pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_null(t)


def renamed(names: Iterable[str], fields: Mapping[str, str]) -> dict[str, str]:
    """{column after ``fields`` renaming: column in the file}, as
    :func:`mathrecipes.ingest.rename_fields` renames each row (in the file's column order)."""
    out = {n: n for n in names}
    for canonical, column in fields.items():
        if canonical not in FIELDS:
            raise ValueError(
                f"fields: {canonical!r} is not a canonical field ({', '.join(FIELDS)})"
            )
        if column in out:
            out[canonical] = out.pop(column)
    return out


def covered(schema: pa.Schema, fields: Mapping[str, str]) -> bool:
    """Whether :func:`adapt_batch` covers a file of this schema (else the per-row path reads it):
    ``problem``, ``solution``, ``answer_type``, ``meta`` strings, ``id`` and ``answer`` strings
    or integers (each may be absent or all null), unique column names; other columns any type."""
    if len(set(schema.names)) != len(schema.names):
        return False
    cols = renamed(schema.names, fields)
    for field, column in cols.items():
        t = schema.field(column).type
        integral = pa.types.is_integer(t) and field in ("id", "answer")  # str(int) exactly
        if field in _TEXT and not (_is_string(t) or pa.types.is_null(t) or integral):
            return False
        if field == "id" and not (_is_string(t) or pa.types.is_null(t) or integral):
            return False
    return True


def _strings(col: pa.Array | None, n: int) -> pa.Array:
    """``col`` as non-null ``string`` values (``_text``: null is ""); all "" when absent."""
    if col is None or pa.types.is_null(col.type):
        return pa.array([""] * n, pa.string())
    if not pa.types.is_string(col.type):
        col = col.cast(pa.string())
    return col.fill_null("") if col.null_count else col


def _stripped(col: pa.Array) -> pa.Array:
    """``str.strip`` of every value: in Python only where the first or last character is not
    printable ASCII (``!`` to ``~``), the only values whose strip can differ."""
    first = pc.utf8_slice_codeunits(col, 0, 1)
    last = pc.utf8_slice_codeunits(col, -1)
    outside = [pc.or_(pc.less(s, "!"), pc.greater(s, "~")) for s in (first, last)]
    mask = pc.or_(*outside)
    if not pc.any(mask).as_py():
        return col
    values = [v.strip() for v in col.filter(mask).to_pylist()]
    return pc.replace_with_mask(col, mask, pa.array(values, pa.string()))


def _codes(col: pa.Array) -> tuple[np.ndarray, list[Any]]:
    """(code of each value, the distinct values) of an encodable column; null is a value."""
    enc = pc.dictionary_encode(col)
    values = enc.dictionary.to_pylist() + [None]
    codes = enc.indices.fill_null(len(values) - 1).to_numpy(zero_copy_only=False)
    return codes.astype(np.int64), values


def _metas(cols: dict[str, pa.Array], n: int) -> tuple[pa.Array, np.ndarray]:
    """(the ``meta`` string of each row, whether it could be made): ``canonical_meta`` of the
    ``meta`` column over the other columns, once per distinct combination."""
    meta = cols.get("meta")
    extras = {k: v for k, v in cols.items() if k not in CANONICAL_FIELDS}
    keyed = [meta if meta is not None else pa.nulls(n, pa.string())]
    keyed += [v for v in extras.values() if _encodable(v.type)]
    names = [k for k, v in extras.items() if _encodable(v.type)]
    others = {k: v.to_pylist() for k, v in extras.items() if not _encodable(v.type)}
    encoded = [_codes(c) for c in keyed]

    def one(codes: np.ndarray | list[int], row: int | None) -> str | None:
        raw = {k: encoded[j + 1][1][codes[j + 1]] for j, k in enumerate(names)}
        if row is not None:
            raw.update({k: v[row] for k, v in others.items()})
        try:
            return dumps_meta(canonical_meta(encoded[0][1][codes[0]], raw))
        except Exception:  # not a JSON object: the per-row path raises its own error
            return None

    matrix = np.stack([c for c, _ in encoded], axis=1)
    if others:  # values without a cheap key (floats, lists, structs): row by row
        out = [one(matrix[i], i) for i in range(n)]
    else:
        sizes = [len(values) for _, values in encoded]
        if np.prod(np.array(sizes, dtype=float)) < 2**62:  # one code a combination
            radix = np.cumprod([1, *sizes[:-1]]).astype(np.int64)
            keys, inverse = np.unique(matrix @ radix, return_inverse=True)
            combos = [[(k // r) % s for r, s in zip(radix, sizes, strict=True)] for k in keys]
        else:
            combos, inverse = np.unique(matrix, axis=0, return_inverse=True)
        made = [one(c, None) for c in combos]
        out = [made[k] for k in inverse.reshape(-1)]
    ok = np.array([s is not None for s in out], dtype=bool)
    return pa.array([s or "" for s in out], pa.string()), ok


def _answers(col: pa.Array) -> tuple[pa.Array, np.ndarray, list[str | None]]:
    """(the record's answer, whether it is non-empty, clean_gold's value) of each row, with
    clean_gold once per distinct answer."""
    codes, values = _codes(col)
    gold = [clean_gold(v if v is not None else "") for v in values]
    out = [(g or "").strip() for g in gold]
    ok = np.array([s != "" for s in out], dtype=bool)
    return (
        pa.array(out, pa.string()).take(pa.array(codes)),
        ok[codes],
        [gold[k] for k in codes],
    )


def adapt_batch(
    name: str, spec: Any, batch: pa.RecordBatch, start: int
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """The checked records of a batch of a ``canonical`` file (:func:`covered`) whose first row
    is raw row ``start`` of the source: (the records of the rows decided here, in the
    :data:`~mathrecipes.records.SCHEMA`; their positions in the batch; the positions of the rows
    left to the per-row path), positions in increasing order."""
    n = batch.num_rows
    cols = {f: batch.column(c) for f, c in renamed(batch.schema.names, spec.fields).items()}
    cols = {f: c.cast(pa.large_string()) if pa.types.is_string_view(c.type) else c
            for f, c in cols.items()}  # fmt: skip
    problem_raw = _strings(cols.get("problem"), n)
    problem = _stripped(problem_raw)
    solution = _stripped(_strings(cols.get("solution"), n))
    answer, answer_ok, gold = _answers(_strings(cols.get("answer"), n))
    ok = answer_ok & pc.not_equal(problem, "").to_numpy(zero_copy_only=False)

    if spec.answer_type:
        answer_type = pa.array([spec.answer_type] * n, pa.string())
        ok &= spec.answer_type in ANSWER_TYPES
    else:
        answer_type = _strings(cols.get("answer_type"), n)
        valid = pc.is_in(answer_type, value_set=pa.array(ANSWER_TYPES)).to_numpy(
            zero_copy_only=False
        )
        todo = np.flatnonzero(~valid & ok)
        if len(todo):  # the adapter classifies the answer (with the problem as read)
            texts = problem_raw.take(pa.array(todo)).to_pylist()
            types = [
                classify_answer_type(gold[i], problem=t) for i, t in zip(todo, texts, strict=True)
            ]
            mask = np.zeros(n, dtype=bool)
            mask[todo] = True
            answer_type = pc.replace_with_mask(answer_type, pa.array(mask), pa.array(types))
            valid[todo] = [t in ANSWER_TYPES for t in types]
        ok &= valid

    meta, meta_ok = _metas(cols, n)
    ok &= meta_ok

    rid = _stripped(_strings(cols.get("id"), n))
    empty = pc.equal(rid, "").to_numpy(zero_copy_only=False)
    if empty.any():
        fill = [f"{start + i:07d}" for i in np.flatnonzero(empty)]
        rid = pc.replace_with_mask(rid, pa.array(empty), pa.array(fill, pa.string()))
    ids = pc.binary_join_element_wise(f"{name}/", rid, "")

    columns = {
        "id": ids,
        "source": pa.array([name] * n, pa.string()),
        "problem": problem,
        "solution": solution,
        "answer": answer,
        "answer_type": answer_type,
        "meta": meta,
    }
    table = pa.table(columns, schema=SCHEMA)
    if not ok.all():
        table = table.filter(pa.array(ok))
    return table, np.flatnonzero(ok), np.flatnonzero(~ok)
