"""What every synthesis method shares: the shard's context, samples, kept and rejected rows.

A method is a function ``method(ctx, rows) -> MethodResult``. It gets the shard's input rows
(canonical records, sorted by id) and a :class:`Context` holding its spec, the teacher (a
programmatic teacher such as :class:`~mathrecipes.teachers.BuiltinTeacher`, an
:class:`~mathrecipes.teachers.base.LLMBackend`, or None for a method that needs none), its
prompts and the answer checker; it returns kept rows (canonical records) and rejected rows
(:data:`REJECT_SCHEMA`). Every teacher output it asks for (a :class:`Sample`) ends up as
exactly one kept or one rejected row, so ``kept + rejected`` accounts for every sample, and
every input row is either the parent of a kept row or has rejects saying why not.

Provenance of a kept row, in its ``meta``: ``parent_id``, ``parent_source``, ``root_id`` (the
dataset row at the start of a chain of synthesis entries), ``method``, ``teacher`` (the
backend's ``describe()``: never a secret), ``prompt`` (``{"path", "sha256"}`` or null),
``sampling`` (temperature, top_p, max_tokens and the request's own seed; for the builtin
teacher its seed and key), ``sample`` (which of the samples this is), plus the method's own
fields. A rejected row carries the same provenance as columns, the reason, and the teacher's
output, so a rejection can be inspected.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from mathrecipes.config import HFTeacherSpec, OpenAITeacherSpec, SynthesisSpec, VLLMTeacherSpec
from mathrecipes.records import dumps_meta, loads_meta
from mathrecipes.synthesis.checking import AnswerChecker
from mathrecipes.synthesis.prompts import Prompt
from mathrecipes.teachers.base import GenRequest

REJECT_SCHEMA = pa.schema(
    [
        pa.field("parent_id", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),  # "<kind>: <details>"
        pa.field("attempt", pa.int64(), nullable=False),  # the sample index
        pa.field("method", pa.string(), nullable=False),
        pa.field("teacher", pa.string(), nullable=False),  # JSON of describe(), "null" if none
        pa.field("prompt", pa.string(), nullable=False),  # configured path, "" if none
        pa.field("prompt_sha256", pa.string(), nullable=False),
        pa.field("sampling", pa.string(), nullable=False),  # JSON
        pa.field("output", pa.string(), nullable=False),  # what the teacher wrote ("" if nothing)
    ]
)
REJECT_FIELDS = tuple(REJECT_SCHEMA.names)

# Parent metadata carried into synthesized rows (what the built-in generator records).
INHERITED_META = ("generator", "split", "max_value")


def request_seed(seed: int, key: str) -> int:
    """The seed of one request: a fixed function of the teacher's seed and the request key
    (31 bits, accepted by every API; the same as ``openai_backend.derive_seed``)."""
    digest = hashlib.sha256(f"{seed}|{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


def sampling_defaults(teacher: Any) -> dict[str, Any]:
    """A model teacher spec's sampling settings: ``max_tokens``, ``temperature``, ``top_p``
    (what every request of the entry asks for); none for the builtin teacher."""
    if isinstance(teacher, OpenAITeacherSpec):
        max_tokens = teacher.max_tokens
    elif isinstance(teacher, HFTeacherSpec | VLLMTeacherSpec):
        max_tokens = teacher.max_new_tokens
    else:
        return {}
    return {"max_tokens": max_tokens, "temperature": teacher.temperature, "top_p": teacher.top_p}


def gold_of(row: Mapping[str, str]) -> str:
    """The row's gold answer, "" when it has none."""
    return (row.get("answer") or "").strip()


@dataclass
class Sample:
    """One teacher output for one input row (one request, or one call of a builtin teacher)."""

    parent: dict[str, str]
    index: int  # which sample of this row (the rejects' ``attempt``)
    key: str  # the request / teacher key
    prompt_key: str | None = None  # "prompt", "solve_prompt"; None: no prompt
    text: str = ""
    error: str | None = None  # no usable output: the reason
    flaw: str | None = None  # an output the teacher itself found wrong (builtin step check)
    finish_reason: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        """An output that finished: no error, not cut off at the token limit."""
        return self.error is None and self.finish_reason != "length"

    def failure(self) -> str | None:
        """Why this sample cannot be kept whatever the policy, or None."""
        if self.error is not None:
            return self.error
        if self.finish_reason == "length":
            limit = self.sampling.get("max_tokens")
            return f"truncated: the output hit the token limit ({limit})"
        return None


@dataclass
class MethodResult:
    kept: list[dict[str, str]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


class Context:
    """One shard's run of one synthesis entry: spec, teacher, prompts, checker, usage counts."""

    def __init__(
        self,
        name: str,
        spec: SynthesisSpec,
        teacher: Any,
        prompts: Mapping[str, Prompt],
        checker: AnswerChecker,
        *,
        progress: bool = True,
        judge: Any = None,
    ) -> None:
        self.name = name
        self.spec = spec
        self.method = spec.method
        self.teacher = teacher
        self.teacher_info = teacher.describe() if teacher is not None else None
        # rewrite / extract: the judge backend (None: the teacher judges), see judging.py
        self.judge = judge
        self.judge_info: dict[str, Any] | None = None
        self.near_dedup_removed = 0
        self.prompts = dict(prompts)
        self.checker = checker
        self.progress = progress
        self.usage = {"requests": 0, "cached": 0, "prompt_tokens": 0, "completion_tokens": 0}
        # a model teacher's sampling settings, the request seeds' base (see generate)
        self.defaults = sampling_defaults(spec.teacher)
        self.seed = spec.teacher.seed

    @property
    def model_teacher(self) -> bool:
        """True for an LLM backend (requests and prompts), False for a programmatic teacher."""
        return hasattr(self.teacher, "generate")

    # ------------------------------------------------------------------ model teachers

    def generate(self, jobs: Sequence[tuple[Sample, Mapping[str, str]]]) -> None:
        """Ask the teacher for every ``(sample, placeholder values)`` in one backend call and
        fill in the samples (text, finish reason, error, sampling)."""
        requests = []
        for sample, values in jobs:
            prompt = self.prompts[sample.prompt_key or "prompt"]
            seed = request_seed(self.seed, sample.key)
            sample.sampling = {**self.defaults, "seed": seed}
            requests.append(
                GenRequest(
                    key=sample.key,
                    messages=prompt.render(**values),
                    max_tokens=self.defaults["max_tokens"],
                    temperature=self.defaults["temperature"],
                    top_p=self.defaults["top_p"],
                    seed=seed,
                )
            )
        if not requests:
            return
        results = self.teacher.generate(requests, progress=self.progress)
        if [r.key for r in results] != [q.key for q in requests]:
            raise RuntimeError(f"teacher {self.teacher_info}: results do not match the requests")
        for (sample, _), result in zip(jobs, results, strict=True):
            self.usage["requests"] += 1
            self.usage["cached"] += int(result.cached)
            for k in ("prompt_tokens", "completion_tokens"):
                self.usage[k] += int(result.usage.get(k, 0))
            sample.finish_reason = result.finish_reason
            if result.ok:
                sample.text = result.text
            else:
                sample.error = f"teacher_error: {result.error}"

    # ------------------------------------------------------------------ rows

    def prompt_ref(self, key: str | None) -> dict[str, str] | None:
        prompt = self.prompts.get(key) if key else None
        return prompt.ref() if prompt is not None else None

    def reject(self, sample: Sample, reason: str, output: str | None = None) -> dict[str, Any]:
        ref = self.prompt_ref(sample.prompt_key) or {"path": "", "sha256": ""}
        return {
            "parent_id": sample.parent["id"],
            "reason": reason,
            "attempt": sample.index,
            "method": self.method,
            "teacher": json.dumps(self.teacher_info, sort_keys=True),
            "prompt": ref["path"],
            "prompt_sha256": ref["sha256"],
            "sampling": json.dumps(sample.sampling, sort_keys=True),
            "output": sample.text if output is None else output,
        }

    def provenance(self, sample: Sample) -> dict[str, Any]:
        parent = sample.parent
        parent_meta = loads_meta(parent.get("meta") or "")
        meta: dict[str, Any] = {
            "parent_id": parent["id"],
            "parent_source": parent.get("source", ""),
            "root_id": parent_meta.get("root_id") or parent["id"],
            "method": self.method,
            "teacher": self.teacher_info,
            "prompt": self.prompt_ref(sample.prompt_key),
            "sampling": sample.sampling,
            "sample": sample.index,
        }
        for key in INHERITED_META:
            if key in parent_meta:
                meta[key] = parent_meta[key]
        return meta

    def keep(
        self,
        sample: Sample,
        *,
        several: bool,
        problem: str,
        solution: str,
        answer: str,
        meta: Mapping[str, Any],
    ) -> dict[str, str]:
        """A kept row: id ``<entry>/<parent id>``, with ``#<sample>`` when the method can keep
        several rows per parent (``several``)."""
        parent = sample.parent
        row_id = f"{self.name}/{parent['id']}" + (f"#{sample.index}" if several else "")
        return {
            "id": row_id,
            "source": self.name,
            "problem": problem,
            "solution": solution,
            "answer": answer,
            "answer_type": parent.get("answer_type") or "text",
            "meta": dumps_meta({**self.provenance(sample), **meta}),
        }


def take(
    ctx: Context,
    candidates: Sequence[Sample],
    limit: int,
    make_row: Callable[[Sample], dict[str, str]],
) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """Keep the first ``limit`` candidates with distinct texts; the rest are rejected as
    ``duplicate`` (same text as a kept one) or ``surplus`` (over ``limit``)."""
    kept, rejected, seen = [], [], {}
    for s in candidates:
        norm = " ".join(s.text.split())
        if norm in seen:
            rejected.append(ctx.reject(s, f"duplicate: same output as sample {seen[norm]}"))
        elif len(kept) >= limit:
            rejected.append(ctx.reject(s, f"surplus: {limit} sample(s) already kept for this row"))
        else:
            seen[norm] = s.index
            kept.append(make_row(s))
    return kept, rejected


def new_text_failure(
    sample: Sample,
    text: str,
    original: str,
    seen: dict[tuple[str, str], int],
    what: str,
) -> str | None:
    """Why a text the teacher wrote from a row (a rephrasing, a new problem) cannot be used:
    the sample's own failure, ``empty``, ``unchanged`` (the row's ``original`` text again) or
    ``duplicate`` (the same as an earlier sample of the same row; ``seen`` maps (row id,
    normalised text) to that sample's index and gets this one when it is usable)."""
    failure = sample.failure()
    norm = " ".join(text.lower().split())
    key = (sample.parent["id"], norm)
    if failure is None and not text:
        failure = f"empty: no {what} in the output"
    elif failure is None and norm == " ".join(original.lower().split()):
        failure = f"unchanged: the {what} is the original problem"
    elif failure is None and key in seen:
        failure = f"duplicate: same as {what} {seen[key]}"
    if failure is None:
        seen[key] = sample.index
    return failure


def verdict_reason(verdict: str, extracted: str | None, gold: str, what: str = "teacher") -> str:
    """The reject reason for a grader verdict other than ``correct``."""
    if verdict == "incorrect":
        return f"answer_mismatch: {what} {extracted!r} != gold {gold!r}"
    if verdict == "no_answer":
        return "no_answer: no final answer found in the output"
    if verdict == "gold_unparseable":
        return f"gold_unparseable: the grader cannot read the gold answer {gold!r}"
    if verdict == "timeout":
        return f"grader_timeout: comparing {extracted!r} with {gold!r}"
    return f"{verdict}: {extracted!r} vs gold {gold!r}"
