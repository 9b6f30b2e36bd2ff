"""The ``local`` source: rows from local jsonl / json / parquet / csv files (globs allowed).

Rows are yielded as they are, each with the file and line it came from; ingest renames columns
(``fields``) and applies the format adapter. A jsonl line that is not UTF-8, not JSON or not
a JSON object is yielded as a :class:`~mathrecipes.sources.rows.BadRow` with its file and line,
which ingest fails on or quarantines (``on_bad_row``); a json or csv file that cannot be read
fails naming its file and line.
With ``format: text`` a ``.txt`` / ``.md`` file is one row too, the whole file as its text
(:func:`mathrecipes.sources.text.read_text_document`).
"""

from __future__ import annotations

import csv
import glob
import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mathrecipes.config import LocalSource as LocalSpec
from mathrecipes.provenance import file_sha256
from mathrecipes.sources.rows import BadRow
from mathrecipes.sources.text import DEFAULT_TEXT_FIELD, TEXT_SUFFIXES, read_text_document


def local_input_files(pattern: str) -> list[str]:
    files = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
    return files


def decode_utf8(path: str, data: bytes, *, start: int = 0, line: int | None = None) -> str:
    """``data`` as UTF-8 text: the bytes of ``path`` from byte ``start`` on, one line (``line``,
    counted from 1) or the whole file. Bytes that are not UTF-8 fail naming the file, the line
    and the byte's offset in the file (not Python's bare 'codec can't decode')."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = line if line is not None else data.count(b"\n", 0, exc.start) + 1
        raise ValueError(
            f"{path} line {lineno}: not UTF-8: byte 0x{data[exc.start]:02x} at byte offset "
            f"{start + exc.start} of the file ({exc.reason}); save the file as UTF-8"
        ) from None


def _jsonl_rows(path: str) -> Iterator[tuple[str, dict[str, Any] | BadRow]]:
    """The rows of a jsonl file, each with its file and line; a line that is not UTF-8, not
    JSON or not a JSON object is a :class:`BadRow` (ingest fails on it or quarantines it)."""
    with open(path, "rb") as fh:
        offset = 0
        for lineno, raw_line in enumerate(fh, start=1):
            where = f"{path} line {lineno}"
            start, offset = offset, offset + len(raw_line)
            try:
                line = decode_utf8(path, raw_line, start=start, line=lineno)
            except ValueError as exc:
                reason = str(exc).removeprefix(f"{where}: ")
                yield where, BadRow(reason, raw_line.decode("utf-8", "replace").rstrip("\r\n"))
                continue
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                reason = f"malformed JSON ({exc.msg} at column {exc.colno})"
                yield where, BadRow(reason, line)
                continue
            if not isinstance(obj, dict):
                yield where, BadRow(f"expected a JSON object, got {_json_type(obj)}", line)
                continue
            yield where, obj


def parquet_batches(parquet: Any, batch_rows: int) -> Iterator[Any]:
    """The record batches of a ``pyarrow.parquet.ParquetFile``, a row group at a time: one
    ``iter_batches`` over the whole file pre-buffers every row group it has read (the file's
    size in memory by the end)."""
    for group in range(parquet.num_row_groups):
        yield from parquet.iter_batches(batch_size=batch_rows, row_groups=[group])


def parquet_rows(path: str, batch_rows: int = 10_000) -> Iterator[tuple[str, dict[str, Any]]]:
    """The rows of a parquet file, each with its file and row, read ``batch_rows`` at a time."""
    import pyarrow.parquet as pq

    i = 0
    for batch in parquet_batches(pq.ParquetFile(path), batch_rows):
        for obj in batch.to_pylist():
            yield f"{path} row {i}", obj
            i += 1


def _json_type(value: Any) -> str:
    """A JSON value's kind, with its article: 'a list', 'null'."""
    kinds = {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


class LocalSource:
    def __init__(self, name: str, spec: LocalSpec | Mapping[str, Any]) -> None:
        self.name = name
        self.spec = LocalSpec.model_validate(spec)
        self.files = local_input_files(self.spec.path)
        if not self.files:
            raise FileNotFoundError(f"{name}.path: no file matches {self.spec.path!r}")
        for f in self.files:
            if not Path(f).is_file():
                raise FileNotFoundError(f"{name}.path: {f} does not exist")

    def _raw(self, path: str) -> Iterator[tuple[str, dict[str, Any] | BadRow]]:
        suffix = Path(path).suffix.lower()
        if suffix in (".jsonl", ".ndjson"):
            yield from _jsonl_rows(path)
        elif suffix == ".json":
            try:
                data = json.loads(decode_utf8(path, Path(path).read_bytes()))
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"{path} line {exc.lineno} column {exc.colno}: malformed JSON ({exc.msg})"
                ) from None
            if isinstance(data, dict):
                data = data.get("data", data.get("rows", [data]))
            for i, obj in enumerate(data):
                yield f"{path} item {i}", obj
        elif suffix == ".parquet":
            yield from parquet_rows(path)
        elif suffix == ".csv":
            text = io.StringIO(decode_utf8(path, Path(path).read_bytes()), newline="")
            for i, obj in enumerate(csv.DictReader(text), start=2):
                yield f"{path} line {i}", obj
        elif suffix in TEXT_SUFFIXES:
            if self.spec.format != "text":
                raise ValueError(
                    f"{path}: a {suffix} file is one raw text document: read it with format: text"
                )
            field = self.spec.text_field or DEFAULT_TEXT_FIELD
            yield path, read_text_document(path, self.spec.path, field)
        else:
            raise ValueError(
                f"{path}: unsupported file type {suffix!r} (jsonl, json, parquet, csv; "
                f"{', '.join(TEXT_SUFFIXES)} with format: text)"
            )

    def rows(self) -> Iterator[tuple[str, dict[str, Any] | BadRow]]:
        limit = self.spec.limit
        n = 0
        for path in self.files:
            for where, raw in self._raw(path):
                if limit is not None and n >= limit:
                    return
                n += 1
                yield where, raw

    def describe(self) -> dict[str, Any]:
        return {
            "source": "local",
            "path": self.spec.path,
            "files": {f: file_sha256(f) for f in self.files},
            "fields": self.spec.fields,
        }
