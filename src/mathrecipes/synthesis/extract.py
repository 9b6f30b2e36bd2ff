"""``extract``: question / solution pairs extracted from a raw text chunk by the teacher, each a
canonical record, scored by an LLM judge, near-duplicate questions removed.

The chunk is the input row's ``text_field`` (``problem`` (default), ``solution`` or ``both``, as
for ``rewrite``; raw text without answers comes as a ``format: text`` dataset, whose chunks the
pairs, with their own answers, make usable in a recipe). The teacher gets ``prompt``
(``{text}``), one request per row (key ``<row id>#0``), and answers in the format
:func:`parse_pairs` reads::

    Question: <a self-contained question>
    Solution: <a worked solution ending in \\boxed{<answer>}>
    Question: ...
    Solution: ...

(labels are case-insensitive, may carry a number, ``Question 2:``, or markdown bold, and need not
start a line; a block without a ``Solution:`` is skipped; ``NONE`` or no block at all: no pair).
A pair's answer is what the grader extracts from its solution (last ``\\boxed{}``, ``####``,
answer phrases: :func:`mathrecipes.grading.extract_answer`), its ``answer_type`` is classified
from it (:func:`mathrecipes.answers.classify_answer_type`). At most ``max_pairs`` pairs per chunk.
Each pair is then judged with ``judge_prompt`` (``{problem}``, ``{solution}``, ``{answer}``,
``{text}``) and near duplicates are removed on the question
(:mod:`~mathrecipes.synthesis.judging`).

Rejected: a chunk whose request failed (``teacher_error``, ``truncated``), whose output has no
parseable pair (``no_pairs``) or which is empty (``no_text``): one row, attempt 0; a pair (attempt
= its index in the output) without a final answer (``no_answer``), with the question of an
earlier pair of the chunk (``duplicate``), over ``max_pairs`` (``surplus``), or failing the judge
(``judge_failed``, ``judge_unparseable``, ``low_score``) or the near dedup (``near_duplicate``).
So every chunk has kept pairs or rejects, and every parsed pair is one kept or one rejected row.

A kept row (id ``<entry>/<parent id>#<pair>``) has the question, solution and extracted answer;
its meta has the usual provenance (``sample`` = the pair's index), ``pair``, ``n_pairs`` (pairs
parsed from the chunk), ``answer_rule``, ``text_field`` and ``judge``.
"""

from __future__ import annotations

import re

from mathrecipes.answers import classify_answer_type
from mathrecipes.grading import extract_answer
from mathrecipes.synthesis.base import Context, MethodResult, Sample
from mathrecipes.synthesis.judging import (
    generate_from_text,
    judged_stats,
    judged_unique,
    norm_text,
    strip_think,
)

_QUESTION = re.compile(r"(?:\*\*)?\bquestion(?:\s+\d+)?\s*(?:\*\*)?\s*:\s*(?:\*\*)?", re.I)
_SOLUTION = re.compile(r"(?:\*\*)?\bsolution(?:\s+\d+)?\s*(?:\*\*)?\s*:\s*(?:\*\*)?", re.I)


def parse_pairs(output: str) -> list[tuple[str, str]]:
    """The ``(question, solution)`` pairs of a teacher's output, in order (see the module
    docstring); blocks missing either part are skipped."""
    text = strip_think(output)
    starts = list(_QUESTION.finditer(text))
    pairs = []
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        block = text[m.end() : end]
        sol = _SOLUTION.search(block)
        if sol is None:
            continue
        question, solution = block[: sol.start()].strip(), block[sol.end() :].strip()
        if question and solution:
            pairs.append((question, solution))
    return pairs


def extract(ctx: Context, rows: list[dict[str, str]]) -> MethodResult:
    max_pairs = ctx.spec.max_pairs
    field = ctx.spec.text_field
    result = MethodResult()
    jobs = generate_from_text(ctx, rows, field, result)

    candidates = []
    for s, _ in jobs:
        failure = s.failure()
        if failure is not None:
            result.rejected.append(ctx.reject(s, failure))
            continue
        pairs = parse_pairs(s.text)
        if not pairs:
            why = "no_pairs: no 'Question: ... Solution: ...' block in the output"
            result.rejected.append(ctx.reject(s, why))
            continue
        seen: dict[str, int] = {}
        for j, (question, solution) in enumerate(pairs):
            p = Sample(s.parent, j, f"{s.key}/pair{j}", prompt_key="prompt", text=s.text)
            p.sampling = s.sampling
            block = f"Question: {question}\nSolution: {solution}"
            answer, rule = extract_answer(solution)
            answer = (answer or "").strip()
            if norm_text(question) in seen:
                why = f"duplicate: same question as pair {seen[norm_text(question)]}"
                result.rejected.append(ctx.reject(p, why, output=block))
                continue
            seen[norm_text(question)] = j
            if j >= max_pairs:
                why = f"surplus: {max_pairs} pair(s) already taken from this chunk (max_pairs)"
                result.rejected.append(ctx.reject(p, why, output=block))
                continue
            if not answer:
                why = "no_answer: no final answer (\\boxed{}) in the pair's solution"
                result.rejected.append(ctx.reject(p, why, output=block))
                continue
            p.extra.update(question=question, solution=solution, answer=answer, rule=rule,
                           n_pairs=len(pairs), text=s.extra["text"])  # fmt: skip
            values = {"problem": question, "solution": solution, "answer": answer}
            candidates.append((p, {**values, "text": s.extra["text"]}))

    kept = judged_unique(
        ctx,
        candidates,
        result.rejected,
        row_id=lambda p: f"{ctx.name}/{p.parent['id']}#{p.index}",
        text=lambda p: p.extra["question"],
    )
    for p, info in kept:
        meta = {
            "pair": p.index,
            "n_pairs": p.extra["n_pairs"],
            "answer_rule": p.extra["rule"],
            "text_field": field,
            "judge": info,
        }
        row = ctx.keep(
            p,
            several=True,
            problem=p.extra["question"],
            solution=p.extra["solution"],
            answer=p.extra["answer"],
            meta=meta,
        )
        row["answer_type"] = classify_answer_type(p.extra["answer"], problem=p.extra["question"])
        result.kept.append(row)
    result.kept.sort(key=lambda r: r["id"])
    result.stats.update(judged_stats(ctx))
    return result
