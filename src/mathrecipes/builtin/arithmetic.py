"""Procedural multi-step arithmetic word problems with ground truth by construction.

A problem is a *program*: a start value and a list of operations (add, subtract, multiply, divide
exactly). Every number in it (operands, intermediate results, the answer) lies in
``[1, max_value)``. The program is rendered as a short story about a person and a kind of item,
one sentence per operation, from the sentence templates below. The answer is computed while
sampling and checked again with sympy on the whole nested expression.

Train and test are disjoint by construction: a program's hash decides its split
(:func:`program_split`), so no test program can ever be sampled for a training set, whatever the
seeds, sizes or wording.

The templates are shared with the builtin teacher (:mod:`mathrecipes.teachers.builtin`), which
parses the problem text back into operations; it never sees the program itself.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import sympy

OPS = ("add", "sub", "mul", "div")
SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/"}

# 1 in TEST_MODULUS programs and 1 in PAIR_MODULUS (name, item) pairs belong to the test split;
# a test problem needs both.
TEST_MODULUS = 10
PAIR_MODULUS = 5

NAMES = (
    "Ada", "Amir", "Ana", "Arjun", "Ava", "Bea", "Ben", "Caleb", "Chen", "Chloe", "Dara", "David",
    "Diego", "Elena", "Eli", "Emma", "Ezra", "Farah", "Felix", "Gia", "Hana", "Hugo", "Ines",
    "Ivan", "Jada", "Jonas", "Kai", "Kenji", "Lara", "Leo", "Lina", "Luca", "Maya", "Mei", "Milo",
    "Nadia", "Nico", "Nora", "Omar", "Owen", "Paula", "Priya", "Quinn", "Rafael", "Rosa", "Sami",
    "Sara", "Tariq", "Tessa", "Theo", "Uma", "Victor", "Wren", "Yara", "Yusuf", "Zoe",
)  # fmt: skip

ITEMS = (
    "apples", "badges", "beads", "books", "buttons", "candles", "cards", "coins", "cookies",
    "crayons", "cups", "eggs", "feathers", "flowers", "keys", "kites", "lemons", "marbles",
    "medals", "muffins", "oranges", "pencils", "pens", "plums", "rings", "rocks", "shells",
    "shirts", "stamps", "stickers", "stones", "tickets", "toys", "tulips", "whistles", "yoyos",
)  # fmt: skip

# Sentence templates. Placeholders: {name}, {item}, {x}. They are written so that every run of
# NGRAM_GUARD consecutive words of a problem contains the person's name and the item (checked by
# :func:`max_gap` in the tests). Because a test problem's (name, item) pair never occurs in a
# training problem (:func:`pair_split`), no word n-gram with n >= NGRAM_GUARD can be shared
# between train and test: decontamination with the default 13-grams must find nothing.
NGRAM_GUARD = 13
START = (
    "{name} has {x} {item}.",
    "{name} starts with {x} {item}.",
    "{name} owns {x} {item}.",
    "{name} collected {x} {item}.",
)
STEP = {
    "add": (
        "{name} buys {x} more {item}.",
        "{name} finds {x} more {item}.",
        "{name} gets {x} more {item} as a gift.",
        "{name} receives {x} extra {item}.",
    ),
    "sub": (
        "{name} gives away {x} {item}.",
        "{name} loses {x} {item}.",
        "{name} sells {x} {item}.",
        "{name} uses up {x} {item}.",
    ),
    "mul": (
        "{name} turns the {item} into {x} times as many.",
        "{name} sees the {item} grow {x} times.",
        "{name} multiplies the {item} by {x}.",
    ),
    "div": (
        "{name} splits the {item} into {x} parts, keeping one.",
        "{name} divides the {item} {x} ways and keeps one.",
        "{name} keeps one of every {x} {item}.",
    ),
}
QUESTION = (
    "How many {item} does {name} have now?",
    "How many {item} does {name} have in the end?",
    "How many {item} does {name} keep?",
)
PROSE_VERB = {
    "add": "got {x} more",
    "sub": "gave away {x}",
    "mul": "multiplied them by {x}",
    "div": "kept one of {x} equal parts",
}


@dataclass(frozen=True)
class Program:
    start: int
    ops: tuple[tuple[str, int], ...]

    def values(self) -> list[int]:
        """The running value after the start and after each operation."""
        out = [self.start]
        for op, x in self.ops:
            out.append(apply(op, out[-1], x))
        return out

    @property
    def answer(self) -> int:
        return self.values()[-1]

    def key(self) -> str:
        return f"{self.start}|" + "|".join(f"{op}:{x}" for op, x in self.ops)


def apply(op: str, a: int, b: int) -> int:
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    if op == "div":
        if a % b:
            raise ValueError(f"{a} / {b} is not exact")
        return a // b
    raise ValueError(f"unknown op {op!r}")


def sympy_answer(program: Program) -> sympy.Rational:
    """Evaluate the program with sympy's exact rationals, an independent check of the answer.

    Division is a true rational division here, so an inexact step shows up as a non-integer.
    """
    value: sympy.Rational = sympy.Integer(program.start)
    for op, x in program.ops:
        rhs = sympy.Integer(x)
        if op == "add":
            value = value + rhs
        elif op == "sub":
            value = value - rhs
        elif op == "mul":
            value = value * rhs
        else:
            value = value / rhs
    return value


def _hash_split(key: str, modulus: int) -> str:
    digest = hashlib.sha256(key.encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") % modulus == 0 else "train"


def program_split(program: Program) -> str:
    """The split a program belongs to: 1 in TEST_MODULUS programs is a test program."""
    return _hash_split(program.key(), TEST_MODULUS)


def pair_split(name: str, item: str) -> str:
    """The split a (name, item) pair belongs to: 1 in PAIR_MODULUS pairs is a test pair."""
    return _hash_split(f"{name}|{item}", PAIR_MODULUS)


def max_gap(field: str) -> int:
    """The longest run of words of any problem text without the ``{field}`` placeholder.

    Every problem is START, then STEP sentences, then QUESTION; the longest run is found within
    sentences and across every pair of sentences that can follow each other.
    """
    token = "{" + field + "}"

    def words(t: str) -> list[str]:
        return t.split()

    def head(t: str) -> int:  # words before the first occurrence
        w = words(t)
        return next(i for i, x in enumerate(w) if token in x)

    def tail(t: str) -> int:  # words after the last occurrence
        w = words(t)
        return len(w) - 1 - max(i for i, x in enumerate(w) if token in x)

    def inner(t: str) -> int:
        pos = [i for i, x in enumerate(words(t)) if token in x]
        return max((b - a - 1 for a, b in zip(pos, pos[1:], strict=False)), default=0)

    steps = [t for ts in STEP.values() for t in ts]
    everything = [*START, *steps, *QUESTION]
    gap = max(inner(t) for t in everything)
    gap = max(gap, max(head(t) for t in START), max(tail(t) for t in QUESTION))
    for a in (*START, *steps):
        for b in (*steps, *QUESTION):
            gap = max(gap, tail(a) + head(b))
    return gap


def _feasible(op: str, cur: int, max_value: int) -> list[int]:
    if op == "add":
        return list(range(1, max_value - cur))
    if op == "sub":
        return list(range(1, cur))
    if op == "mul":
        return [x for x in range(2, 10) if cur * x < max_value]
    return [x for x in range(2, 10) if cur % x == 0]


def sample_program(rng: random.Random, steps: int, max_value: int) -> Program | None:
    cur = rng.randrange(2, max_value)
    start = cur
    ops: list[tuple[str, int]] = []
    for _ in range(steps):
        choices = [(op, _feasible(op, cur, max_value)) for op in OPS]
        choices = [(op, xs) for op, xs in choices if xs]
        if not choices:
            return None
        op, xs = rng.choice(choices)
        x = rng.choice(xs)
        ops.append((op, x))
        cur = apply(op, cur, x)
    return Program(start, tuple(ops))


@dataclass(frozen=True)
class Problem:
    index: int
    program: Program
    name: str
    item: str
    problem: str
    solution: str
    answer: str


def render(
    program: Program, rng: random.Random, style: str, split: str
) -> tuple[str, str, str, str]:
    """Return (problem text, solution in ``style``, person name, item)."""
    while True:
        name = rng.choice(NAMES)
        item = rng.choice(ITEMS)
        if pair_split(name, item) == split:
            break
    sentences = [rng.choice(START).format(name=name, item=item, x=program.start)]
    for op, x in program.ops:
        sentences.append(rng.choice(STEP[op]).format(name=name, item=item, x=x))
    sentences.append(rng.choice(QUESTION).format(name=name, item=item))
    problem = " ".join(sentences)
    answer = program.answer
    if style == "answer_only":
        solution = f"#### {answer}"
    elif style == "prose":
        changes = ", ".join(PROSE_VERB[op].format(x=x) for op, x in program.ops)
        solution = (
            f"{name} had {program.start} {item}, {changes}, so {name} ends with "
            f"{answer} {item}. The answer is {answer}."
        )
    elif style == "structured":
        solution = structured_solution(program)
    else:
        raise ValueError(f"unknown style {style!r}")
    return problem, solution, name, item


def structured_solution(program: Program) -> str:
    """One line per step with the explicit computation (``58 + 1 = 59``), then the boxed answer."""
    lines = []
    values = program.values()
    for i, (op, x) in enumerate(program.ops):
        lines.append(f"{values[i]} {SYMBOL[op]} {x} = {values[i + 1]}")
    lines.append(f"\\boxed{{{values[-1]}}}")
    return "\n".join(lines)


def generate(
    *,
    n: int,
    seed: int,
    split: str,
    style: str,
    min_steps: int,
    max_steps: int,
    max_value: int,
) -> Iterator[Problem]:
    """Yield ``n`` problems of one split, deterministically for the arguments."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    # The seed stream depends on every argument that shapes the sample, but not on n, so a
    # larger n extends a smaller one.
    rng = random.Random(f"arithmetic|{seed}|{split}|{min_steps}|{max_steps}|{max_value}")
    made = 0
    attempts = 0
    while made < n:
        attempts += 1
        if attempts > 200 * n + 10_000:
            raise RuntimeError(
                f"could not sample {n} {split} problems with steps {min_steps}-{max_steps} "
                f"below {max_value}; only {made} found"
            )
        steps = rng.randint(min_steps, max_steps)
        program = sample_program(rng, steps, max_value)
        if program is None or program_split(program) != split:
            continue
        if any(not (1 <= v < max_value) for v in program.values()):
            continue
        if sympy_answer(program) != program.answer:  # pragma: no cover - construction check
            raise AssertionError(f"sympy disagrees on {program}")
        problem, solution, name, item = render(program, rng, style, split)
        yield Problem(made, program, name, item, problem, solution, str(program.answer))
        made += 1


@cache
def sentence_patterns() -> tuple[tuple[str, str, re.Pattern[str]], ...]:
    """(kind, template, regex) for every sentence template; kind is 'start', an op or 'question'."""
    out = []

    def compile_(template: str) -> re.Pattern[str]:
        pattern = re.escape(template)
        for field, group in (("name", r"[A-Z][a-z]+"), ("item", r"[a-z]+"), ("x", r"\d+")):
            token = re.escape("{" + field + "}")
            # first occurrence captures, later ones must repeat it
            first = pattern.find(token)
            if first < 0:
                continue
            pattern = (
                pattern[:first]
                + f"(?P<{field}>{group})"
                + pattern[first + len(token) :].replace(token, f"(?P={field})")
            )
        return re.compile(f"^{pattern}$")

    for t in START:
        out.append(("start", t, compile_(t)))
    for op, templates in STEP.items():
        for t in templates:
            out.append((op, t, compile_(t)))
    for t in QUESTION:
        out.append(("question", t, compile_(t)))
    return tuple(out)
