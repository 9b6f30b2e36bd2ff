"""Synthesis: run one method of one synthesis entry over one shard of its input.

Rows are assigned to shards by a hash of their id (:func:`shard_of`), so a shard's content does not
depend on row order, and shards of one entry can run in parallel or on different machines.
Every input row of the shard ends up either in the shard (kept) or in its rejects file with the
reason; the manifest counts both.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
from tqdm import tqdm

from mathrecipes.records import dumps_meta, loads_meta, read_many, write_records, write_table
from mathrecipes.teachers import make_teacher

log = logging.getLogger(__name__)

REJECT_FIELDS = ("parent_id", "reason", "attempt")


def shard_of(row_id: str, n_shards: int) -> int:
    digest = hashlib.sha256(row_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % n_shards


def synthesize_shard(
    name: str,
    spec: Mapping[str, Any],
    input_paths: Iterable[str | Path],
    shard: int,
    out_path: str | Path,
    rejects_path: str | Path,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    n_shards = int(spec["shards"])
    if not 0 <= shard < n_shards:
        raise ValueError(f"synthesis.{name}: shard {shard} out of range 0..{n_shards - 1}")
    rows = [r for r in read_many(input_paths) if shard_of(r["id"], n_shards) == shard]
    rows.sort(key=lambda r: r["id"])
    method = spec.get("method", "distill")
    if method != "distill":
        raise ValueError(f"synthesis.{name}.method: unknown method {method!r}")
    kept, rejected = _distill(name, spec, rows, progress=progress)
    write_records(kept, out_path)
    table = pa.table(
        {f: [r[f] for r in rejected] for f in REJECT_FIELDS},
        schema=pa.schema([(f, pa.string()) for f in REJECT_FIELDS]),
    )
    write_table(table, rejects_path)
    reasons: dict[str, int] = {}
    for r in rejected:
        key = r["reason"].split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    summary = {
        "input_rows": len(rows),
        "kept": len(kept),
        "rejected": len(rejected),
        "reject_reasons": dict(sorted(reasons.items())),
    }
    log.info("synthesis %s shard %d: %s", name, shard, summary)
    return summary


def _distill(
    name: str, spec: Mapping[str, Any], rows: list[dict[str, str]], *, progress: bool
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Teacher distillation with answer verification: keep rows whose solution checks out."""
    teacher_spec = dict(spec.get("teacher") or {})
    teacher = make_teacher(teacher_spec)
    kept: list[dict[str, str]] = []
    rejected: list[dict[str, str]] = []
    for row in tqdm(rows, desc=f"synthesize {name}", disable=not progress, unit="row"):
        out = teacher.solve(row["problem"], key=row["id"])
        if not out.ok:
            rejected.append({"parent_id": row["id"], "reason": out.reason, "attempt": "0"})
            continue
        if out.answer.strip() != row["answer"].strip():
            rejected.append(
                {
                    "parent_id": row["id"],
                    "reason": f"answer_mismatch: teacher {out.answer!r} != gold {row['answer']!r}",
                    "attempt": "0",
                }
            )
            continue
        parent_meta = loads_meta(row["meta"])
        meta = {
            "parent_id": row["id"],
            "parent_source": row["source"],
            "method": "distill",
            "format": spec.get("format", "structured"),
            "teacher": teacher_spec,
            "verified": True,
            "steps": len(out.steps),
        }
        for key in ("generator", "split", "max_value"):
            if key in parent_meta:
                meta[key] = parent_meta[key]
        kept.append(
            {
                "id": f"{name}/{row['id']}",
                "source": name,
                "problem": row["problem"],
                "solution": out.solution,
                "answer": row["answer"],
                "answer_type": row["answer_type"],
                "meta": dumps_meta(meta),
            }
        )
    return kept, rejected
