"""``distill``: ``samples`` (k) teacher solutions per problem, kept by a policy.

Keep policies (``keep``):

``verified``    a sample is kept when the grader finds its final answer equal to the row's gold
                answer (rows without a gold answer are rejected: ``no_gold``);
``consistent``  the samples' final answers are grouped by the grader's equivalence and the
                largest group is the answer, if it is unique and holds at least
                ``min_agreement`` of the k samples; its samples are kept with that answer (the
                row's gold, if any, is not used: re-answering data whose labels are missing or
                unreliable). Others: ``minority``; no unique majority: ``no_consensus``;
``all``         every sample that finished and has an answer (the gold, else its own).

At most ``per_problem`` samples per row are kept (distinct texts, in sample order); the other
passing samples are rejected as ``surplus`` or ``duplicate``, so ``kept + rejected`` is exactly
``rows x k``. A sample that failed (teacher error, cut off at the token limit, a builtin slip
caught by its step check) is rejected under every policy except that ``all`` keeps builtin slips.

Recorded per kept row: ``n_samples`` (k), ``pass_rate`` (share of the k samples the grader
finds equal to the gold answer; null without gold): the row's difficulty for this teacher,
for selection by difficulty later), ``verified`` (this sample matches the gold), and for
``consistent`` ``agreement`` (share of the k samples in the majority) and ``parent_answer``.

Teachers: a model teacher (``openai``, ``hf``, ``vllm``) gets the prompt file with
``{problem}``; the ``builtin`` teacher solves the problem text itself, sample j seeded by the row
id (j = 0, as before k existed) or ``<row id>#j``, so with ``error_rate > 0`` its samples differ
and the pass rate is real.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from mathrecipes.grading import extract_answer
from mathrecipes.synthesis.base import (
    Context,
    MethodResult,
    Sample,
    gold_of,
    take,
    verdict_reason,
)


def _builtin_samples(ctx: Context, rows: list[dict[str, str]], k: int) -> list[list[Sample]]:
    out = []
    for row in tqdm(rows, desc=f"distill {ctx.name}", disable=not ctx.progress, unit="row"):
        samples = []
        for j in range(k):
            key = row["id"] if j == 0 else f"{row['id']}#{j}"
            result = ctx.teacher.solve(row["problem"], key=key)
            s = Sample(row, j, key, sampling={"seed": ctx.teacher.seed, "key": key})
            if result.ok:
                s.text = result.solution
                s.extra["steps"] = len(result.steps)
            elif result.solution:
                s.text, s.flaw = result.solution, result.reason
                s.extra["steps"] = len(result.steps)
            else:
                s.error = result.reason
            samples.append(s)
        out.append(samples)
    return out


def _model_samples(ctx: Context, rows: list[dict[str, str]], k: int) -> list[list[Sample]]:
    out, jobs = [], []
    for row in rows:
        samples = [Sample(row, j, f"{row['id']}#{j}", prompt_key="prompt") for j in range(k)]
        values = {"problem": row["problem"], "solution": row["solution"], "answer": row["answer"]}
        jobs += [(s, values) for s in samples]
        out.append(samples)
    ctx.generate(jobs)
    return out


@dataclass
class Vote:
    label: int | None  # the majority cluster; None without voters
    answer: str  # its most frequent spelling ("" without voters)
    count: int  # samples in it
    why: str | None  # no_consensus reason, None if there is a majority


def vote(answers: Sequence[str], labels: Sequence[int], k: int, min_agreement: float) -> Vote:
    """Majority vote over the final answers of one row's ``k`` samples (only the samples that
    have one vote); ``labels`` are the answers' equivalence clusters
    (:meth:`AnswerChecker.clusters`). The largest cluster wins if it is the only one of its size
    and holds at least ``min_agreement * k`` samples."""
    counts: dict[int, int] = {}
    for lab in labels:
        counts[lab] = counts.get(lab, 0) + 1
    if not counts:
        return Vote(None, "", 0, None)
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    label, top = ranked[0]
    spellings = [a.strip() for a, lab in zip(answers, labels, strict=True) if lab == label]
    answer = max(spellings, key=spellings.count)
    if len(ranked) > 1 and ranked[1][1] == top:
        tied = [answers[labels.index(lab)].strip() for lab, c in ranked if c == top]
        why = f"no_consensus: tie between {', '.join(map(repr, tied))} ({top} of {k} each)"
        return Vote(label, answer, top, why)
    if top / k < min_agreement:
        why = f"no_consensus: {answer!r} from {top} of {k} samples < min_agreement {min_agreement}"
        return Vote(label, answer, top, why)
    return Vote(label, answer, top, None)


def _row(
    ctx: Context, s: Sample, answer: str, meta: dict[str, Any], several: bool
) -> dict[str, str]:
    """The kept row of sample ``s``: the parent's problem, the sample's solution."""
    gold = gold_of(s.parent)
    extra: dict[str, Any] = {"verified": s.extra.get("verdict") == "correct" if gold else None}
    if "steps" in s.extra:
        extra["steps"] = s.extra["steps"]
    if s.flaw:
        extra["flaw"] = s.flaw
    return ctx.keep(
        s,
        several=several,
        problem=s.parent["problem"],
        solution=s.text.strip(),
        answer=answer or (s.extra.get("answer") or "").strip(),
        meta={**meta, **extra},
    )


def distill(ctx: Context, rows: list[dict[str, str]]) -> MethodResult:
    spec = ctx.spec
    k = spec.samples
    keep = spec.keep
    per_problem = spec.per_problem
    min_agreement = spec.min_agreement
    several = per_problem > 1
    builtin = not ctx.model_teacher
    samples = _model_samples(ctx, rows, k) if ctx.model_teacher else _builtin_samples(ctx, rows, k)

    # Final answers: every finished output is extracted; outputs of rows with a gold answer are
    # graded against it (the verdict evaluation would give).
    flat = [s for ss in samples for s in ss if s.usable]
    for s in flat:
        s.extra["answer"] = extract_answer(s.text, finish_reason=s.finish_reason or None)[0]
    graded = [s for s in flat if gold_of(s.parent)]
    verdicts = ctx.checker.grade([(gold_of(s.parent), s.text, s.finish_reason) for s in graded])
    for s, v in zip(graded, verdicts, strict=True):
        s.extra["verdict"] = v.verdict
        s.extra["answer"] = v.extracted
    voting = {}
    if keep == "consistent":
        voters = [
            [s for s in ss if s.usable and not s.flaw and s.extra["answer"]] for ss in samples
        ]
        labels = ctx.checker.many_clusters([[s.extra["answer"] for s in v] for v in voters])
        voting = {id(ss): (v, lab) for ss, v, lab in zip(samples, voters, labels, strict=True)}

    result = MethodResult()
    pass_rates = []
    for row, ss in zip(rows, samples, strict=True):
        gold = gold_of(row)
        passed = [s for s in ss if s.extra.get("verdict") == "correct" and not s.flaw]
        pass_rate = len(passed) / k if gold else None
        if pass_rate is not None:
            pass_rates.append(pass_rate)
        meta: dict[str, Any] = {"keep": keep, "n_samples": k, "pass_rate": pass_rate}
        if builtin:
            meta["format"] = spec.format
        answer = gold
        reasons: dict[int, str] = {}
        for s in ss:
            failure = s.failure()
            if failure is None and s.flaw and keep != "all":
                failure = s.flaw
            if failure is not None:
                reasons[s.index] = failure
        if keep == "verified":
            for s in ss:
                if s.index in reasons:
                    continue
                if not gold:
                    reasons[s.index] = "no_gold: keep: verified needs a gold answer"
                elif s.extra.get("verdict") != "correct":
                    reasons[s.index] = verdict_reason(s.extra["verdict"], s.extra["answer"], gold)
        elif keep == "consistent":
            voters, labels = voting[id(ss)]
            for s in ss:
                if s.index not in reasons and not s.extra.get("answer"):
                    reasons[s.index] = "no_answer: no final answer found in the output"
            v = vote([s.extra["answer"] for s in voters], labels, k, min_agreement)
            for s, lab in zip(voters, labels, strict=True):
                if v.why is not None:
                    reasons[s.index] = v.why
                elif lab != v.label:
                    reasons[s.index] = (
                        f"minority: answer {s.extra['answer']!r}, majority {v.answer!r} "
                        f"({v.count} of {k})"
                    )
            answer = v.answer
            meta.update({"agreement": v.count / k, "parent_answer": gold or None})
        else:  # all
            for s in ss:
                if s.index not in reasons and not (gold or s.extra.get("answer")):
                    reasons[s.index] = "no_answer: no gold and no final answer in the output"

        candidates = [s for s in ss if s.index not in reasons]
        result.rejected += [ctx.reject(s, reasons[s.index]) for s in ss if s.index in reasons]
        kept, surplus = take(
            ctx, candidates, per_problem, lambda s, a=answer, m=meta: _row(ctx, s, a, m, several)
        )
        result.kept += kept
        result.rejected += surplus

    result.stats = {
        "samples": k * len(rows),
        "mean_pass_rate": round(sum(pass_rates) / len(pass_rates), 6) if pass_rates else None,
    }
    return result
