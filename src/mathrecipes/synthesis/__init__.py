"""Synthesis: run one method of one synthesis entry over one shard of its input.

Rows are assigned to shards by a hash of their id (:func:`shard_of`), so a shard's content does not
depend on row order, and shards of one entry can run in parallel or on different machines.
Every input row of the shard ends up either as the parent of kept rows (the shard) or with rows
in its rejects file saying why; the manifest counts both.

Methods (:data:`METHODS`, the config's ``method``), each a function ``method(ctx, rows)``
returning kept and rejected rows (:mod:`mathrecipes.synthesis.base`):

``distill``    k teacher samples per problem, kept by a policy (verified / consistent / all),
               with the pass rate per problem (:mod:`~mathrecipes.synthesis.distill`);
``structure``  a solution rewritten into labelled steps, by rules or by the teacher, rejected if
               its final answer changed (:mod:`~mathrecipes.synthesis.structure`);
``rephrase``   new wordings of the problem with the answer preserved
               (:mod:`~mathrecipes.synthesis.rephrase`);
``rewrite``    a raw text chunk rewritten into a textbook-style article, judged by an LLM with
               a rubric and a threshold, near duplicates removed
               (:mod:`~mathrecipes.synthesis.rewrite`);
``extract``    question / solution pairs extracted from a raw text chunk, each judged, near
               duplicates removed (:mod:`~mathrecipes.synthesis.extract`);
``weakness``   the student's failures on a training split as seeds: their nearest neighbours in
               a pool (embeddings), and teacher-written similar problems kept when independent
               solutions agree (:mod:`~mathrecipes.synthesis.weakness`).

Entries chain (``from:`` another entry), so methods compose: e.g. ``rephrase`` then ``distill``
on the rephrasings, then ``structure`` on the distilled solutions.
"""

from __future__ import annotations

from typing import Any

# The names below live in mathrecipes.synthesis.shards, imported when one is first used: the
# workflow imports synthesis.prompts and synthesis.jobs when it loads (rules/common.smk), and
# the methods pull in pyarrow, sympy (the builtin teacher) and every method module.
EXPORTS = (
    "METHODS",
    "REJECT_FIELDS",
    "REJECT_SCHEMA",
    "AnswerChecker",
    "Context",
    "Method",
    "MethodResult",
    "Prompt",
    "PromptError",
    "load_prompts",
    "prompt_refs",
    "shard_of",
    "synthesize_shard",
)


def __getattr__(name: str) -> Any:
    if name in EXPORTS:
        from mathrecipes.synthesis import shards

        return getattr(shards, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(EXPORTS)
