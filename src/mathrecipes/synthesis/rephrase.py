"""``rephrase``: new wordings of a problem with its answer preserved (MetaMath-style).

``n_rephrasings`` per problem. A model teacher gets the prompt (``{problem}``, and
``{solution}`` / ``{answer}`` if it wants them) and answers with the rephrased problem only (a
leading "Rephrased question:" label, quotes and ``<think>`` blocks are removed). The builtin
teacher retells a built-in problem with other sentence templates (same numbers and operations).

Rejected: an empty output (``empty``), the original text again (``unchanged``), a rephrasing
equal to an earlier one of the same row (``duplicate``). With ``verify: true`` (the default)
the teacher then solves each rephrasing (model teachers with ``solve_prompt``, by default
distill's prompt) and the grader compares that answer with the row's gold answer (else the
answer of its solution): a mismatch is ``answer_not_preserved``, a failed solve ``unverified``.

A kept row has the rephrased problem, the parent's answer and as solution the verifying solve
(``solution: teacher``) or the parent's solution (``solution: parent``). Its meta has the
rephrasing's prompt and sampling and, when verified, ``solve_prompt`` and ``solve_sampling``.
"""

from __future__ import annotations

import re

from mathrecipes.grading import extract_answer
from mathrecipes.synthesis.base import (
    Context,
    MethodResult,
    Sample,
    gold_of,
    new_text_failure,
    verdict_reason,
)

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
_LABEL = re.compile(
    r"^\s*\**\s*(?:(?:rephrased|rewritten|paraphrased|new)\s+(?:question|problem)"
    r"|rephrased|rephrasing|question|problem)\s*\**\s*:\s*\**\s*",
    re.IGNORECASE,
)
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d"}


def clean_rephrasing(text: str) -> str:
    """The rephrased problem in a model's output: without ``<think>`` blocks, a leading label
    such as "Rephrased question:", surrounding quotes and whitespace."""
    text = _THINK.sub("", text)
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    text = _LABEL.sub("", text.strip(), count=1).strip()
    if len(text) > 1 and _QUOTES.get(text[0]) == text[-1]:
        text = text[1:-1].strip()
    return text


def rephrase(ctx: Context, rows: list[dict[str, str]]) -> MethodResult:
    spec = ctx.spec
    n = spec.n_rephrasings
    verify = spec.verify
    use_solve = spec.solution == "teacher"
    model = ctx.model_teacher
    result = MethodResult()

    samples: list[Sample] = []
    jobs = []
    for row in rows:
        for j in range(n):
            key = f"{row['id']}#{j}"
            s = Sample(row, j, key, prompt_key="prompt" if model else None)
            if model:
                values = {"problem": row["problem"], "solution": row["solution"]}
                jobs.append((s, {**values, "answer": row["answer"]}))
            else:
                out = ctx.teacher.rephrase(row["problem"], key=key)
                s.sampling = {"seed": ctx.teacher.seed, "key": key}
                s.text, s.error = out.text, (None if out.ok else out.reason)
            samples.append(s)
    if model:
        ctx.generate(jobs)

    # Rephrasings worth verifying: finished, non-empty, new, distinct.
    fresh: list[tuple[Sample, str]] = []
    seen: dict[tuple[str, str], int] = {}
    for s in samples:
        row = s.parent
        raw = s.text
        text = clean_rephrasing(raw) if model else raw.strip()
        failure = new_text_failure(s, text, row["problem"], seen, "rephrasing")
        if failure is not None:
            result.rejected.append(ctx.reject(s, failure, output=raw))
            continue
        gold = gold_of(row) or (extract_answer(row["solution"])[0] or "").strip()
        if not gold:
            why = "no_gold: neither a gold answer nor one in the parent solution"
            result.rejected.append(ctx.reject(s, why, output=raw))
            continue
        s.extra.update(rephrased=text, gold=gold)
        fresh.append((s, text))

    solves: dict[int, Sample] = {}
    if verify:
        solve_jobs = []
        for s, text in fresh:
            solve = Sample(s.parent, s.index, f"{s.key}/solve")
            if model:
                solve.prompt_key = "solve_prompt"
                solve_jobs.append((solve, {"problem": text, "solution": "", "answer": ""}))
            else:
                out = ctx.teacher.solve(text, key=solve.key)
                solve.sampling = {"seed": ctx.teacher.seed, "key": solve.key}
                solve.text = out.solution
                if not out.ok:
                    solve.error = out.reason
            solves[id(s)] = solve
        if model:
            ctx.generate(solve_jobs)
        checkable = []
        for s, _ in fresh:
            failure = solves[id(s)].failure()
            if failure is not None:
                result.rejected.append(ctx.reject(s, f"unverified: {failure}"))
            else:
                checkable.append(s)
        verdicts = ctx.checker.grade(
            [(s.extra["gold"], solves[id(s)].text, solves[id(s)].finish_reason) for s in checkable]
        )
        passed = []
        for s, v in zip(checkable, verdicts, strict=True):
            if v.verdict == "correct":
                passed.append(s)
            elif v.verdict == "incorrect":
                why = (
                    f"answer_not_preserved: teacher {v.extracted!r} on the rephrasing "
                    f"!= gold {s.extra['gold']!r}"
                )
                result.rejected.append(ctx.reject(s, why))
            else:
                result.rejected.append(
                    ctx.reject(s, verdict_reason(v.verdict, v.extracted, s.extra["gold"]))
                )
    else:
        passed = [s for s, _ in fresh]

    for s in passed:
        solve = solves.get(id(s))
        meta = {"n_rephrasings": n, "verified": verify}
        if solve is not None:
            meta["solve_prompt"] = ctx.prompt_ref(solve.prompt_key)
            meta["solve_sampling"] = solve.sampling
        solution = solve.text.strip() if (use_solve and solve is not None) else s.parent["solution"]
        result.kept.append(
            ctx.keep(
                s,
                several=n > 1,
                problem=s.extra["rephrased"],
                solution=solution,
                answer=s.extra["gold"],
                meta=meta,
            )
        )
    result.kept.sort(key=lambda r: r["id"])
    return result
