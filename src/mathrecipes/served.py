"""A served model answers a benchmark: the ``generate_reference`` job (docs/references.md).

A reference (``references.<name>`` in the config) is a model that is not trained here, behind an
OpenAI-compatible server. It answers every problem of a benchmark ``n_samples`` times with the
students' prompt (:func:`mathrecipes.prompting.format_prompt`): as one user message
(``prompt: chat``) or as plain text to ``/completions`` (``prompt: completion``). The requests go
through the ``openai`` teacher backend (:class:`~mathrecipes.teachers.openai_backend.OpenAIBackend`):
concurrency, retries with backoff, the durable response cache, and the API key read from the
environment variable the config names (sent in a header, written nowhere).

Each sample is a request keyed ``<problem_id>#<sample>``; its seed is derived from the
reference's seed and that key, so a rerun asks for exactly the same samples. A job killed or
failed mid-benchmark (server gone: :class:`TeacherUnavailable`) writes nothing, but every answer
it received is in the cache: the rerun sends only the missing requests.

The output is the generation contract of the students (:data:`mathrecipes.generation.
OUTPUT_SCHEMA`), one row per (problem, sample), sorted, with:

``n_prompt_tokens`` / ``n_completion_tokens``  the server's ``usage`` counts, -1 where it gave none
                                               (the server's tokenizer, not a student's)
``finish_reason``  ``eos`` (the API's ``stop``), ``length`` or what else the server says;
                   ``error`` for a request the server refused (a 4xx other than 401/403/404) or,
                   with ``on_unavailable: reject``, one that still failed after the retries: its
                   completion is empty and grades as no answer
``seconds``        the call's wall time shared over the samples sent (0 for a cached answer)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from mathrecipes.generation import OUTPUT_SCHEMA
from mathrecipes.prompting import eval_format
from mathrecipes.records import read_records, write_table
from mathrecipes.teachers.base import GenRequest
from mathrecipes.teachers.openai_backend import OpenAIBackend, TeacherConfigError

log = logging.getLogger(__name__)

UNKNOWN_TOKENS = -1  # a token count the server's usage did not give
FINISH = {"stop": "eos"}  # the API's finish reasons in the students' words


def sample_key(problem_id: str, sample: int) -> str:
    """A sample's request key; its seed is derived from it (so a rerun samples the same)."""
    return f"{problem_id}#{sample}"


def build_backend(
    name: str, spec: Mapping[str, Any], settings: Mapping[str, Any], cache_dir: str | Path
) -> OpenAIBackend:
    """The backend for a reference: its job spec (:func:`mathrecipes.config.reference_job_spec`)
    and its operational settings (base_url, api_key_env, concurrency, ..., cache_dir)."""
    teacher = {
        "backend": "openai",
        "model": spec["model"],
        "max_tokens": spec["max_tokens"],
        "temperature": spec["temperature"],
        "top_p": spec["top_p"],
        "seed": spec["seed"],
        **settings,
    }
    try:
        return OpenAIBackend(teacher, cache_dir=cache_dir)
    except TeacherConfigError as exc:
        raise TeacherConfigError(f"references.{name}: {exc}") from None


def requests_for(
    backend: OpenAIBackend,
    records: list[dict[str, str]],
    spec: Mapping[str, Any],
    *,
    prompt_file: str | None = None,
    few_shot_file: str | None = None,
) -> list[GenRequest]:
    """One request per (problem, sample), in benchmark order. The text is the students' plain
    prompt, or the benchmark's template (``generation.benchmarks.<name>.prompt``, with its
    few-shot examples) as the students' user message is; the benchmark's stop strings are sent."""
    fmt = eval_format(
        spec.get("benchmark_prompt"),
        [r["problem"] for r in records],
        prompt_file=prompt_file,
        few_shot_file=few_shot_file,
        key="benchmark_prompt",
    )
    extra = {"stop": list(spec["stop"])} if spec.get("stop") else {}
    out = []
    for rec in records:
        text = fmt.user_text(rec["problem"])
        for k in range(int(spec["n_samples"])):
            key = sample_key(rec["id"], k)
            if spec["prompt"] == "chat":
                out.append(backend.request(key, messages=[("user", text)], **extra))
            else:
                out.append(backend.request(key, prompt=text, **extra))
    return out


def answer_benchmark(
    name: str,
    benchmark_path: str | Path,
    out_path: str | Path,
    spec: Mapping[str, Any],
    settings: Mapping[str, Any],
    *,
    cache_dir: str | Path,
    prompt_file: str | None = None,
    few_shot_file: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Write the reference's answers to a benchmark (the generation contract) and return a
    summary for the manifest: the server as described (no key), the request counts."""
    start = time.monotonic()
    records = read_records(benchmark_path)
    backend = build_backend(name, spec, settings, cache_dir)
    requests = requests_for(
        backend, records, spec, prompt_file=prompt_file, few_shot_file=few_shot_file
    )
    try:
        results = backend.generate(requests, progress=progress)
    except TeacherConfigError as exc:
        raise TeacherConfigError(f"references.{name}: {exc}") from None
    summary = backend.last_summary
    sent = max(1, summary.sent) if summary else 1
    share = (summary.seconds / sent) if summary else 0.0
    rows = []
    errors = 0
    for req, res in zip(requests, results, strict=True):
        problem_id, sample = req.key.rsplit("#", 1)
        if not res.ok:
            errors += 1
            log.warning("reference %s: sample %s failed: %s", name, req.key, res.error)
        rows.append(
            {
                "problem_id": problem_id,
                "sample": int(sample),
                "prompt": req.prompt if req.prompt is not None else req.messages[-1][1],
                "completion": res.text if res.ok else "",
                "n_prompt_tokens": res.usage.get("prompt_tokens", UNKNOWN_TOKENS),
                "n_completion_tokens": res.usage.get("completion_tokens", UNKNOWN_TOKENS),
                "finish_reason": FINISH.get(res.finish_reason, res.finish_reason)
                if res.ok
                else "error",
                "seconds": 0.0 if res.cached else share,
            }
        )
    rows.sort(key=lambda r: (r["problem_id"], r["sample"]))
    write_table(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA), out_path)
    out = {
        "server": backend.describe(),
        "requests": summary.as_dict() if summary else {},
        "rows": len(rows),
        "problems": len(records),
        "errors": errors,
        "seconds": round(time.monotonic() - start, 3),
    }
    log.info("reference %s: %s", name, out)
    return out
