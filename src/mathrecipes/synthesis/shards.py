"""Running one shard of a synthesis entry: the methods (:data:`METHODS`), the prompts an entry
reads (:func:`load_prompts`) and :func:`synthesize_shard`; re-exported by
:mod:`mathrecipes.synthesis` (see its docstring), which imports this module when first used."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from mathrecipes.config import LOCAL_TEACHER_TAGS, SynthesisSpec
from mathrecipes.records import loads_meta, read_many, write_records, write_table
from mathrecipes.synthesis.base import REJECT_FIELDS, REJECT_SCHEMA, Context, MethodResult
from mathrecipes.synthesis.checking import AnswerChecker
from mathrecipes.synthesis.distill import distill
from mathrecipes.synthesis.extract import extract
from mathrecipes.synthesis.jobs import job_models
from mathrecipes.synthesis.prompts import (
    REQUIRED_PLACEHOLDERS,
    Prompt,
    PromptError,
    prompt_refs,
)
from mathrecipes.synthesis.rephrase import rephrase
from mathrecipes.synthesis.rewrite import rewrite
from mathrecipes.synthesis.structure import structure
from mathrecipes.synthesis.weakness import weakness

log = logging.getLogger(__name__)

Method = Callable[[Context, list[dict[str, str]]], MethodResult]
METHODS: dict[str, Method] = {
    "distill": distill,
    "structure": structure,
    "rephrase": rephrase,
    "rewrite": rewrite,
    "extract": extract,
    "weakness": weakness,
}


def shard_of(row_id: str, n_shards: int) -> int:
    digest = hashlib.sha256(row_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % n_shards


def load_prompts(
    name: str,
    spec: SynthesisSpec | Mapping[str, Any],
    files: Mapping[str, str | Path] | None,
    expected_sha256: Mapping[str, str | None] | None = None,
) -> dict[str, Prompt]:
    """The entry's prompts by key, read from ``files`` (key -> file, as the rule resolved them)
    and checked for the placeholders the method needs. A hash that differs from
    ``expected_sha256`` (the job's parameter) means the file changed after the job was planned:
    an error, so that rows never record a prompt they were not made with."""
    spec = SynthesisSpec.model_validate(spec)
    refs = prompt_refs(spec)
    files = dict(files or {})
    prompts = {}
    for key, path in refs.items():
        prompt = Prompt.load(files.get(key, path), path=path)
        prompt.require(*REQUIRED_PLACEHOLDERS[spec.method, key], key=f"synthesis.{name}.{key}")
        want = (expected_sha256 or {}).get(key)
        if want is not None and want != prompt.sha256:
            raise PromptError(
                f"synthesis.{name}.{key} {path}: sha256 {prompt.sha256[:12]} differs from the "
                f"planned {want[:12]}: the file changed during the run; run again"
            )
        prompts[key] = prompt
    return prompts


def synthesize_shard(
    name: str,
    spec: SynthesisSpec | Mapping[str, Any],
    input_paths: Iterable[str | Path],
    shard: int,
    out_path: str | Path,
    rejects_path: str | Path,
    *,
    progress: bool = True,
    prompt_files: Mapping[str, str | Path] | None = None,
    prompt_sha256: Mapping[str, str | None] | None = None,
    threads: int | None = None,
    cache_dir: str | Path | None = None,
    teacher: Any = None,
    judge: Any = None,
) -> dict[str, Any]:
    """Run ``spec``'s method over shard ``shard`` of the rows in ``input_paths``; write the kept
    rows to ``out_path`` and the rejected ones to ``rejects_path``; return the summary.

    ``spec`` is the entry (a :class:`~mathrecipes.config.SynthesisSpec`, or a mapping for one
    with the teacher's operational settings put back: :func:`~mathrecipes.teachers.operational.
    with_operational`). ``prompt_files`` maps the spec's prompt keys to the files to read
    (default: the configured paths); ``cache_dir`` is where a model teacher caches its responses
    (resume inside a shard); ``teacher`` overrides the backend built from the spec's
    ``teacher``, ``judge`` the one built from its ``judge`` (rewrite, extract; without either
    the teacher judges).
    """
    spec = SynthesisSpec.model_validate(spec)
    n_shards = spec.shards
    if not 0 <= shard < n_shards:
        raise ValueError(f"synthesis.{name}: shard {shard} out of range 0..{n_shards - 1}")
    method = spec.method
    _require_packages(name, spec, {"teacher": teacher, "judge": judge})
    rows = [r for r in read_many(input_paths) if shard_of(r["id"], n_shards) == shard]
    rows.sort(key=lambda r: r["id"])
    prompts = load_prompts(name, spec, prompt_files, prompt_sha256)
    if teacher is None and spec.uses_teacher and rows:
        key = f"synthesis.{name}.teacher"
        teacher = _make_teacher(spec.teacher, threads, cache_dir, key=key)
    if judge is None and spec.judged and spec.judge is not None and rows:
        judge = _make_teacher(spec.judge, threads, cache_dir, key=f"synthesis.{name}.judge")
    checker = AnswerChecker()
    ctx = Context(name, spec, teacher, prompts, checker, progress=progress, judge=judge)
    result = METHODS[method](ctx, rows)

    write_records(result.kept, out_path)
    write_table(pa.Table.from_pylist(result.rejected, schema=REJECT_SCHEMA), rejects_path)
    reasons: dict[str, int] = {}
    for r in result.rejected:
        key = r["reason"].split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    parents = {r["id"] for r in rows}
    kept_parents = {_parent_id(r) for r in result.kept}
    summary = {
        "method": method,
        "input_rows": len(rows),
        "kept": len(result.kept),
        "rejected": len(result.rejected),
        "reject_reasons": dict(sorted(reasons.items())),
        "parents_kept": len(kept_parents & parents),
        "parents_without_kept_row": len(parents - kept_parents),
        **result.stats,
        "teacher": ctx.teacher_info,
        "prompts": {k: p.ref() for k, p in prompts.items()},
        "usage": ctx.usage if ctx.model_teacher else None,
        "grader": checker.version(),
    }
    log.info(
        "synthesis %s shard %d: %d input rows, %d kept, %d rejected %s",
        name,
        shard,
        len(rows),
        len(result.kept),
        len(result.rejected),
        summary["reject_reasons"],
    )
    return summary


def _parent_id(row: Mapping[str, str]) -> str:
    return loads_meta(row["meta"])["parent_id"]


def _require_packages(name: str, spec: SynthesisSpec, given: Mapping[str, Any]) -> None:
    """Fail before any work when a model the job builds needs a package that is missing
    (vllm, an optional extra); the error names ``synthesis.<name>.<role>.backend``."""
    for role, model in job_models(spec).items():
        if model.backend == "vllm" and given.get(role) is None:
            from mathrecipes.teachers.vllm_backend import require_package

            require_package(f"synthesis.{name}.{role}.backend")


def _make_teacher(teacher_spec: Any, threads: int | None, cache_dir: Any, key: str) -> Any:
    """The backend of a teacher (or judge) spec; ``key`` names it in configuration errors."""
    from mathrecipes.teachers import make_teacher

    if teacher_spec.backend == "builtin":
        return make_teacher(teacher_spec)
    if threads and teacher_spec.backend in LOCAL_TEACHER_TAGS:
        import torch

        torch.set_num_threads(threads)
    return make_teacher(teacher_spec, cache_dir=cache_dir, key=key)


__all__ = [
    "METHODS",
    "REJECT_FIELDS",
    "REJECT_SCHEMA",
    "AnswerChecker",
    "Context",
    "MethodResult",
    "Prompt",
    "PromptError",
    "load_prompts",
    "prompt_refs",
    "shard_of",
    "synthesize_shard",
]
