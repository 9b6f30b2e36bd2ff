"""What ``rewrite`` and ``extract`` share: the raw text of a row, the LLM judge with a rubric and
a threshold, and MinHash near-duplicate removal among the rows that passed the judge.

The judge is the entry's ``judge`` teacher spec (any model backend), else its ``teacher``; it gets
``judge_prompt`` (a rubric that asks for an integer score) and its answer's last ``Score: N``
(else the last ``\\boxed{N}``) is the score. Each candidate is one judge request, seeded from the
judge's ``seed`` and the key ``<sample key>/judge``. Rejected: a judge request that failed or was
cut off (``judge_failed``), an answer without a score (``judge_unparseable``), a score below
``min_score`` (``low_score``); the reason quotes the judge's answer. A kept row's
``meta.judge`` holds the judge's ``teacher`` (``describe()``), ``prompt`` (path, sha256),
``sampling``, ``score``, ``min_score`` and ``output``.

Near duplicates (``near_dedup``: ``enabled`` (true), ``threshold`` (0.8), ``num_perm`` (128),
``ngram`` (5)) are found by :func:`mathrecipes.neardup.near_duplicates` among the judged rows of
the shard (on the article for ``rewrite``, on the question for ``extract``): the earliest row id
of a group is kept, the others are rejected as ``near_duplicate`` naming the kept row and the
estimated Jaccard similarity. Like the recipe's near dedup it works within what it sees: two
shards of one entry are not compared with each other (a recipe's ``near_dedup`` does that).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mathrecipes.neardup import near_duplicates
from mathrecipes.synthesis.base import Context, Sample

TEXT_FIELDS = ("problem", "solution", "both")

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
_SCORE = re.compile(r"score\s*(?:\(\s*1\s*(?:-|to)\s*\d+\s*\))?\s*[:=]?\s*\**\s*(-?\d+)", re.I)
_BOXED_INT = re.compile(r"\\boxed\{\s*(-?\d+)\s*\}")


def strip_think(text: str) -> str:
    """``text`` without ``<think>`` blocks (and anything before an orphan ``</think>``)."""
    text = _THINK.sub("", text)
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    return text.strip()


def source_text(row: Mapping[str, str], field: str) -> str:
    """The raw text of an input row: its ``problem``, its ``solution``, or ``both`` (the
    problem, a blank line, the solution; the problem alone when the solution is empty)."""
    if field == "problem":
        return row["problem"].strip()
    if field == "solution":
        return (row.get("solution") or "").strip()
    if field == "both":
        parts = [row["problem"].strip(), (row.get("solution") or "").strip()]
        return "\n\n".join(p for p in parts if p)
    raise ValueError(f"text_field: {field!r} is not one of {', '.join(TEXT_FIELDS)}")


def norm_text(text: str) -> str:
    """Lower case, runs of whitespace as one space: for 'unchanged' and duplicate checks."""
    return " ".join(text.lower().split())


def generate_from_text(
    ctx: Context, rows: Sequence[Mapping[str, str]], field: str, result: Any
) -> list:
    """One teacher request per row on its raw text (``field``; the prompt gets ``text``,
    ``problem``, ``solution`` and ``answer``); a row without text is rejected (``no_text``).
    Returns the ``(sample, values)`` jobs, answered (what ``rewrite`` and ``extract`` share)."""
    jobs = []
    for row in rows:
        s = Sample(row, 0, f"{row['id']}#0", prompt_key="prompt")
        text = source_text(row, field)
        s.extra["text"] = text
        if not text:
            result.rejected.append(ctx.reject(s, f"no_text: the row's {field} is empty"))
            continue
        values = {"text": text, "problem": row["problem"], "solution": row["solution"]}
        jobs.append((s, {**values, "answer": row["answer"]}))
    ctx.generate(jobs)
    return jobs


def parse_score(text: str) -> int | None:
    """The judge's score: the last ``Score: N`` of its answer, else its last ``\\boxed{N}``."""
    text = strip_think(text)
    found = _SCORE.findall(text) or _BOXED_INT.findall(text)
    return int(found[-1]) if found else None


def judge_context(ctx: Context) -> Context:
    """A context whose teacher is the entry's judge (``ctx.judge``, else the teacher), with the
    judge's sampling defaults and seed."""
    spec = ctx.spec.model_copy(update={"teacher": ctx.spec.judge or ctx.spec.teacher})
    judge = ctx.judge if ctx.judge is not None else ctx.teacher
    return Context(ctx.name, spec, judge, ctx.prompts, ctx.checker, progress=ctx.progress)


def judge(
    ctx: Context,
    candidates: Sequence[tuple[Sample, Mapping[str, str]]],
    rejected: list[dict[str, Any]],
) -> list[tuple[Sample, dict[str, Any]]]:
    """Score every ``(sample, placeholder values)`` with the judge; return the passing samples
    with their ``meta.judge``; append the failing ones to ``rejected``. The judge's usage is
    added to ``ctx.usage`` and its ``describe()`` is ``ctx.judge_info``."""
    jctx = judge_context(ctx)
    ctx.judge_info = jctx.teacher_info
    min_score = ctx.spec.min_score
    jobs = [(Sample(s.parent, s.index, f"{s.key}/judge", "judge_prompt"), v) for s, v in candidates]
    jctx.generate(jobs)
    for k, v in jctx.usage.items():
        ctx.usage[k] += v
    passed = []
    for (s, _), (js, _) in zip(candidates, jobs, strict=True):
        quoted = repr(js.text.strip()[-300:])
        failure = js.failure()
        if failure is not None:
            rejected.append(ctx.reject(s, f"judge_failed: {failure}"))
            continue
        score = parse_score(js.text)
        if score is None:
            rejected.append(ctx.reject(s, f"judge_unparseable: no 'Score: N' in {quoted}"))
            continue
        if score < min_score:
            why = f"low_score: judge score {score} < min_score {min_score}; judge said {quoted}"
            rejected.append(ctx.reject(s, why))
            continue
        info = {
            "teacher": jctx.teacher_info,
            "prompt": jctx.prompt_ref("judge_prompt"),
            "sampling": js.sampling,
            "score": score,
            "min_score": min_score,
            "output": js.text.strip(),
        }
        passed.append((s, info))
    return passed


def drop_near_duplicates(
    ctx: Context,
    items: Sequence[tuple[Sample, dict[str, Any]]],
    row_id: Callable[[Sample], str],
    text: Callable[[Sample], str],
    rejected: list[dict[str, Any]],
) -> list[tuple[Sample, dict[str, Any]]]:
    """The items that are no near duplicate of an earlier one (by ``row_id``); the others go to
    ``rejected`` as ``near_duplicate``. ``ctx.near_dedup_removed`` counts them."""
    settings = ctx.spec.near_dedup
    ctx.near_dedup_removed = 0
    if not settings.enabled or not items:
        return list(items)
    by_id = {row_id(s): (s, info) for s, info in items}
    if len(by_id) != len(items):
        raise RuntimeError(f"synthesis {ctx.name}: two candidates share a row id")
    rows = [{"id": i, "text": text(s)} for i, (s, _) in by_id.items()]
    kept, removed = near_duplicates(
        rows,
        threshold=settings.threshold,
        num_perm=settings.num_perm,
        ngram=settings.ngram,
        field="text",
    )
    for dup in removed:
        s, _ = by_id[dup.row_id]
        why = f"near_duplicate: of {dup.duplicate_of} (estimated Jaccard {dup.jaccard})"
        rejected.append(ctx.reject(s, why))
    ctx.near_dedup_removed = len(removed)
    return [by_id[r["id"]] for r in kept]


def judged_unique(
    ctx: Context,
    candidates: Sequence[tuple[Sample, Mapping[str, str]]],
    rejected: list[dict[str, Any]],
    *,
    row_id: Callable[[Sample], str],
    text: Callable[[Sample], str],
) -> list[tuple[Sample, dict[str, Any]]]:
    """The candidates the judge passes (:func:`judge`) that are no near duplicate of an earlier
    one (:func:`drop_near_duplicates`), each with its ``meta.judge``; the others go to
    ``rejected`` with their reason."""
    passed = judge(ctx, candidates, rejected)
    return drop_near_duplicates(ctx, passed, row_id=row_id, text=text, rejected=rejected)


def judged_stats(ctx: Context) -> dict[str, Any]:
    return {
        "judge": getattr(ctx, "judge_info", None),
        "min_score": ctx.spec.min_score,
        "near_dedup": ctx.spec.near_dedup.model_dump(),
        "near_duplicates_removed": getattr(ctx, "near_dedup_removed", 0),
    }
