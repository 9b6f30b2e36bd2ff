"""Row helpers shared by the format adapters (:mod:`mathrecipes.sources.formats`) and the
``text`` format (:mod:`mathrecipes.sources.text`): a raw row's id and its unused fields as
JSON-safe ``meta``; :class:`BadRow`, a row a source could not read."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ID_FIELDS", "BadRow", "jsonable", "rest_meta", "row_id"]


@dataclass(frozen=True)
class BadRow:
    """What a source yields in place of a raw row it could not read (a jsonl line that is not
    JSON, not a JSON object or not UTF-8): ingest fails on it or quarantines it, by the
    source's ``on_bad_row``, like a row the adapter rejects. ``text`` is the line as it is
    (bytes that are not UTF-8 replaced by U+FFFD), the quarantine file's ``row``."""

    reason: str
    text: str


# A row's own id: the first of these fields that holds a value.
ID_FIELDS = ("unique_id", "id", "ID", "uuid", "idx")


def row_id(raw: Mapping[str, Any], index: int, keys: Iterable[str] = ID_FIELDS) -> str:
    """The first non-empty of ``keys`` (an integral float without its ``.0``), else ``index``
    zero-padded to 7 digits."""
    for k in keys:
        v = raw.get(k)
        if v is not None and not isinstance(v, bool) and str(v).strip() != "":
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            return str(v).strip()
    return f"{index:07d}"


def jsonable(value: Any) -> tuple[bool, Any]:
    """``(keep, value)``: JSON-safe copy of a meta value; images/bytes are not kept."""
    if value is None or isinstance(value, (str, bool, int)):
        return True, value
    if isinstance(value, float):
        return True, (None if math.isnan(value) or math.isinf(value) else value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return False, None
    if isinstance(value, Mapping):
        if "bytes" in value and "path" in value:  # a datasets Image struct
            return False, None
        out = {}
        for k, v in value.items():
            keep, jv = jsonable(v)
            if keep:
                out[str(k)] = jv
        return True, out
    if isinstance(value, (list, tuple)):
        items = []
        for v in value:
            keep, jv = jsonable(v)
            if keep:
                items.append(jv)
        return True, items
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        try:
            return jsonable(value.item())
        except (TypeError, ValueError):
            pass
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy array
        return jsonable(value.tolist())
    return False, None  # PIL images and other objects


def rest_meta(
    raw: Mapping[str, Any], used: Iterable[str | None], drop: Iterable[str] = ()
) -> dict[str, Any]:
    """The fields of ``raw`` not in ``used`` (``None`` entries ignored) nor ``drop``, JSON-safe
    (:func:`jsonable`): what an adapter keeps in a record's ``meta``."""
    skip = {u for u in used if u} | set(drop)
    meta: dict[str, Any] = {}
    for k, v in raw.items():
        if k in skip:
            continue
        keep, jv = jsonable(v)
        if keep:
            meta[str(k)] = jv
    return meta
