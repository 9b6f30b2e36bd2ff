"""The programmatic ``builtin`` teacher.

It reads a built-in arithmetic word problem *as text* (it never sees the generating program),
recovers the start value and the operations from the sentence templates, and writes a structured
solution: one line per step with the explicit computation and a final ``\\boxed{}`` answer. Every
step is verified with sympy before the solution is returned.

``error_rate`` makes it an imperfect teacher: with that probability a step result is off by a
small amount (an arithmetic slip, as a language-model teacher makes). Slips are caught by step
verification, and the synthesis stage rejects the row and records why. The slips are drawn from a
generator seeded by ``seed`` and the row key, so they are reproducible.

``rephrase`` tells the same problem with other sentence templates (same person, item, numbers and
operations), so a rephrasing keeps its answer by construction. The ``structure`` method needs no
teacher from here: its rule-based splitter works on any solution text.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from typing import Any

import sympy

from mathrecipes.builtin.arithmetic import (
    QUESTION,
    START,
    STEP,
    SYMBOL,
    apply,
    sentence_patterns,
)

_SENTENCE_END = re.compile(r"(?<=[.?])\s+")


@dataclass
class Step:
    left: int
    op: str
    right: int
    result: int

    def render(self) -> str:
        return f"{self.left} {SYMBOL[self.op]} {self.right} = {self.result}"


@dataclass
class TeacherOutput:
    ok: bool
    solution: str = ""
    answer: str = ""
    steps: list[Step] = field(default_factory=list)
    reason: str = ""


@dataclass
class Rephrasing:
    ok: bool
    text: str = ""
    reason: str = ""


def parse_problem(problem: str) -> tuple[int, list[tuple[str, int]]]:
    """Recover (start value, [(op, operand), ...]) from a built-in problem text.

    Raises ValueError naming the sentence that matches no template.
    """
    story = parse_story(problem)
    return story.start, story.ops


@dataclass
class Story:
    """What a built-in problem text says: who, what, the start value and the operations."""

    name: str
    item: str
    start: int
    ops: list[tuple[str, int]]

    def render(self, rng: random.Random) -> str:
        """The story told with templates drawn from ``rng`` (same numbers, same answer)."""
        fields = {"name": self.name, "item": self.item}
        sentences = [rng.choice(START).format(x=self.start, **fields)]
        sentences += [rng.choice(STEP[op]).format(x=x, **fields) for op, x in self.ops]
        sentences.append(rng.choice(QUESTION).format(**fields))
        return " ".join(sentences)


def parse_story(problem: str) -> Story:
    """Recover the :class:`Story` of a built-in problem text; ValueError names the sentence
    that matches no template."""
    sentences = [s for s in _SENTENCE_END.split(problem.strip()) if s]
    patterns = sentence_patterns()
    start: int | None = None
    ops: list[tuple[str, int]] = []
    who: tuple[str, str] | None = None
    for i, sentence in enumerate(sentences):
        for kind, _template, regex in patterns:
            m = regex.match(sentence)
            if not m:
                continue
            groups = m.groupdict()
            pair = (groups.get("name"), groups.get("item"))
            if who is None:
                who = pair
            elif pair != who:
                raise ValueError(f"sentence {i + 1} is about {pair}, not {who}: {sentence!r}")
            if kind == "start":
                if i != 0:
                    raise ValueError(f"sentence {i + 1} restarts the story: {sentence!r}")
                start = int(groups["x"])
            elif kind == "question":
                if i != len(sentences) - 1:
                    raise ValueError(f"question before the end: {sentence!r}")
            else:
                ops.append((kind, int(groups["x"])))
            break
        else:
            raise ValueError(f"sentence {i + 1} matches no template: {sentence!r}")
    if start is None or who is None:
        raise ValueError("no start sentence")
    if not ops:
        raise ValueError("no operation sentence")
    return Story(who[0], who[1], start, ops)


def verify_step(step: Step) -> bool:
    """Check ``left op right == result`` with sympy's exact arithmetic."""
    left, right = sympy.Integer(step.left), sympy.Integer(step.right)
    exact = {
        "add": lambda: left + right,
        "sub": lambda: left - right,
        "mul": lambda: left * right,
        "div": lambda: left / right,
    }[step.op]()
    return exact == sympy.Integer(step.result)


class BuiltinTeacher:
    name = "builtin"

    def __init__(self, error_rate: float = 0.0, seed: int = 0) -> None:
        self.error_rate = error_rate
        self.seed = seed

    def _rng(self, key: str) -> random.Random:
        digest = hashlib.sha256(f"{self.seed}|{key}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def describe(self) -> dict[str, Any]:
        """Provenance: the teacher's settings (what ``teacher:`` in the config says)."""
        return {"backend": "builtin", "error_rate": self.error_rate, "seed": self.seed}

    def rephrase(self, problem: str, *, key: str, attempts: int = 16) -> Rephrasing:
        """The same problem told with other sentence templates: same person, item, numbers and
        operations, hence the same answer (MetaMath-style rephrasing with the answer preserved
        by construction). The templates are drawn from a generator seeded by ``seed`` and
        ``key``; a draw that gives back the original text is redrawn up to ``attempts`` times."""
        try:
            story = parse_story(problem)
        except ValueError as exc:
            return Rephrasing(ok=False, reason=f"unparsed: {exc}")
        rng = self._rng(f"rephrase|{key}")
        original = " ".join(problem.split())
        for _ in range(attempts):
            text = story.render(rng)
            if text != original:
                return Rephrasing(ok=True, text=text)
        return Rephrasing(ok=False, reason=f"unchanged: {attempts} draws gave the original text")

    def solve(self, problem: str, *, key: str) -> TeacherOutput:
        try:
            value, ops = parse_problem(problem)
        except ValueError as exc:
            return TeacherOutput(ok=False, reason=f"unparsed: {exc}")
        rng = self._rng(key)
        steps: list[Step] = []
        for op, x in ops:
            try:
                result = apply(op, value, x)
            except ValueError as exc:
                return TeacherOutput(ok=False, steps=steps, reason=f"invalid_step: {exc}")
            if self.error_rate and rng.random() < self.error_rate:
                result += rng.choice((-3, -2, -1, 1, 2, 3))
            steps.append(Step(value, op, x, result))
            value = result
        lines = [s.render() for s in steps]
        lines.append(f"\\boxed{{{value}}}")
        out = TeacherOutput(ok=True, solution="\n".join(lines), answer=str(value), steps=steps)
        for i, step in enumerate(steps):
            if not verify_step(step):
                out.ok = False
                out.reason = f"step_failed: step {i + 1}: {step.render()}"
                break
        return out
