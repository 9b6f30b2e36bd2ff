"""``rewrite``: a raw text chunk rewritten by the teacher into a textbook-style article
(background, definitions, formulas, a worked example), scored by an LLM judge, near-duplicate
articles removed.

The chunk is the input row's ``text_field``: ``problem`` (default), ``solution`` or ``both``
(problem, blank line, solution). Raw text goes in as a dataset with ``format: text``
(:mod:`mathrecipes.sources.text`: documents or chunks as ``problem``, no answer); a kept row
carries its parent's answer along, so the articles of raw text have none either (the config
then lets only rewrite / extract read them). The teacher gets
``prompt`` (``{text}``, and ``{problem}`` / ``{solution}`` / ``{answer}`` if it wants them), one
request per row (key ``<row id>#0``). Then (:mod:`~mathrecipes.synthesis.judging`) the judge
scores each article with ``judge_prompt`` (``{article}``, ``{text}``), articles scoring below
``min_score`` are rejected, and among the rest near duplicates (MinHash on the article) are
rejected.

Rejected (one row per input row that has no article kept): ``teacher_error``, ``truncated``,
``empty`` (no article in the output), ``unchanged`` (the article is the chunk again),
``no_text`` (the chunk is empty), ``judge_failed``, ``judge_unparseable``, ``low_score``,
``near_duplicate``.

A kept row (id ``<entry>/<parent id>``) has the chunk as ``problem``, the article as
``solution`` and the parent's ``answer`` / ``answer_type`` (``""`` / ``none`` for raw text); its
meta has the usual provenance, ``text_field`` and ``judge`` (teacher, prompt, sampling, score,
min_score, output).
"""

from __future__ import annotations

from mathrecipes.synthesis.base import Context, MethodResult
from mathrecipes.synthesis.judging import (
    generate_from_text,
    judged_stats,
    judged_unique,
    norm_text,
    strip_think,
)


def rewrite(ctx: Context, rows: list[dict[str, str]]) -> MethodResult:
    field = ctx.spec.text_field
    result = MethodResult()
    jobs = generate_from_text(ctx, rows, field, result)

    candidates = []
    for s, _ in jobs:
        article = strip_think(s.text)
        failure = s.failure()
        if failure is None and not article:
            failure = "empty: no article in the output"
        elif failure is None and norm_text(article) == norm_text(s.extra["text"]):
            failure = "unchanged: the article is the source text"
        if failure is not None:
            result.rejected.append(ctx.reject(s, failure))
            continue
        s.extra["article"] = article
        candidates.append((s, {"article": article, "text": s.extra["text"]}))

    kept = judged_unique(
        ctx,
        candidates,
        result.rejected,
        row_id=lambda s: f"{ctx.name}/{s.parent['id']}",
        text=lambda s: s.extra["article"],
    )
    for s, info in kept:
        meta = {"text_field": field, "judge": info}
        result.kept.append(
            ctx.keep(
                s,
                several=False,
                problem=s.extra["text"],
                solution=s.extra["article"],
                answer=s.parent["answer"],
                meta=meta,
            )
        )
    result.kept.sort(key=lambda r: r["id"])
    result.stats.update(judged_stats(ctx))
    return result
