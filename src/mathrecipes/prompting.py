"""The prompt format shared by training and generation.

A student is trained on ``format_prompt(problem) + format_target(solution) + eos`` with the loss on
the target only, and evaluated by generating after ``format_prompt(problem)``. Keeping both in one
module means a format change retrains *and* regenerates (both fingerprints include this file).
"""

from __future__ import annotations

from collections.abc import Mapping

PROMPT_TEMPLATE = "Problem: {problem}\nSolution:"


def format_prompt(problem: str) -> str:
    return PROMPT_TEMPLATE.format(problem=problem.strip())


def format_target(record: Mapping[str, str]) -> str:
    """The text the student learns to produce: the solution, or ``#### answer`` when empty."""
    solution = (record.get("solution") or "").strip()
    if not solution:
        solution = f"#### {record['answer']}"
    return " " + solution
