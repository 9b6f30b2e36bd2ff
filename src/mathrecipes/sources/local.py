"""The ``local`` source: rows from local jsonl / json / parquet / csv files (globs allowed).

Columns are mapped to canonical fields with ``fields`` ({canonical: column}); the rest of the
row goes to ``meta``. Format adapters for public datasets come later; this source already gives
errors that name the file and line of a malformed row.
"""

from __future__ import annotations

import csv
import glob
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mathrecipes.provenance import file_sha256
from mathrecipes.records import FIELDS


def local_input_files(pattern: str) -> list[str]:
    files = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
    return files


class LocalSource:
    def __init__(self, name: str, spec: Mapping[str, Any]) -> None:
        self.name = name
        self.spec = dict(spec)
        self.files = local_input_files(self.spec["path"])
        if not self.files:
            raise FileNotFoundError(f"{name}.path: no file matches {self.spec['path']!r}")
        for f in self.files:
            if not Path(f).is_file():
                raise FileNotFoundError(f"{name}.path: {f} does not exist")

    def _raw(self, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        suffix = Path(path).suffix.lower()
        if suffix in (".jsonl", ".ndjson"):
            with open(path, encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ValueError(
                            f"{path} line {lineno}: malformed JSON ({exc.msg})"
                        ) from None
                    if not isinstance(obj, dict):
                        raise ValueError(f"{path} line {lineno}: expected a JSON object")
                    yield f"{path} line {lineno}", obj
        elif suffix == ".json":
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if isinstance(data, dict):
                data = data.get("data", data.get("rows", [data]))
            for i, obj in enumerate(data):
                yield f"{path} item {i}", obj
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            for i, obj in enumerate(pq.read_table(path).to_pylist()):
                yield f"{path} row {i}", obj
        elif suffix == ".csv":
            with open(path, newline="", encoding="utf-8") as fh:
                for i, obj in enumerate(csv.DictReader(fh), start=2):
                    yield f"{path} line {i}", obj
        else:
            raise ValueError(
                f"{path}: unsupported file type {suffix!r} (jsonl, json, parquet, csv)"
            )

    def rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        mapping = dict(self.spec.get("fields") or {})
        prefix = self.spec.get("id_prefix") or self.name
        n = 0
        for path in self.files:
            for where, raw in self._raw(path):
                row: dict[str, Any] = {}
                used = set()
                for f in FIELDS:
                    col = mapping.get(f, f)
                    if col in raw:
                        row[f] = raw[col]
                        used.add(col)
                meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
                extra = {k: v for k, v in raw.items() if k not in used}
                meta = {**extra, **meta} if extra else meta
                row["meta"] = meta
                row["id"] = (
                    f"{prefix}/{row['id']}"
                    if row.get("id") not in (None, "")
                    else f"{prefix}/{n:07d}"
                )
                row["source"] = self.name
                row.setdefault("answer_type", self.spec.get("answer_type", "text"))
                n += 1
                yield where, row

    def describe(self) -> dict[str, Any]:
        return {
            "source": "local",
            "path": self.spec["path"],
            "files": {f: file_sha256(f) for f in self.files},
            "fields": self.spec.get("fields") or {},
        }
