"""The prompt format shared by training, generation and likelihood scoring.

A student is trained on ``prompt + target`` with the loss on the target only, and evaluated by
generating after (and scoring reference solutions after) the same prompt. Keeping every format in
one module means a format change retrains *and* regenerates (the train, generate and likelihood
fingerprints include this file).

Two student formats (``students.<name>.prompt_format``):

``plain``  the prompt is the text ``Problem: {problem}\\nSolution:`` (:data:`PROMPT_TEMPLATE`),
           tokenized after a bos; the target is ``" " + solution`` followed by eos.
``chat``   the user message (the problem, or a benchmark's rendered template), after an optional
           system message, rendered by the tokenizer's chat template with the generation prompt
           (``apply_chat_template(..., tokenize=False, add_generation_prompt=True)``), tokenized
           as is (the template writes its own special tokens: no bos is added). The target is what
           the template appends after that prompt when the conversation ends with the assistant's
           solution: the solution and the template's end of turn (plus eos when the end of turn
           holds none).

Evaluation templates (``generation.benchmarks.<name>.prompt``, files under ``prompts/eval/``):
plain text with the placeholders ``{problem}`` and ``{examples}`` (few-shot examples, see
:func:`render_examples`); nothing else is substituted, so ``\\boxed{}`` needs no escaping, and
trailing newlines of the file are dropped. For a plain student the rendered template is the whole
prompt; for a chat student it is the user message. Without a template the student's own training
format is used: :data:`PROMPT_TEMPLATE` (plain), ``{problem}`` (chat).

This module imports nothing heavy (no torch, transformers or pydantic).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PROMPT_TEMPLATE = "Problem: {problem}\nSolution:"
CHAT_USER_TEMPLATE = "{problem}"
PLACEHOLDERS = ("problem", "examples")
_PLACEHOLDER = re.compile(r"\{(problem|examples)\}")
# How one few-shot example is written into {examples}, and what separates two examples.
EXAMPLE_TEMPLATE = "Problem: {problem}\nSolution: {solution}"
EXAMPLE_SEPARATOR = "\n\n"


class PromptFormatError(ValueError):
    """A prompt that cannot be built: no chat template, a template that does not prefix the
    conversation, a template file without its placeholders, too few few-shot examples."""


def format_prompt(problem: str) -> str:
    """The plain prompt of a problem (the default format)."""
    return PROMPT_TEMPLATE.format(problem=problem.strip())


def solution_text(record: Mapping[str, Any]) -> str:
    """The solution a student learns to write: the record's solution, or ``#### answer``."""
    solution = (record.get("solution") or "").strip()
    return solution or f"#### {record['answer']}"


def format_target(record: Mapping[str, str]) -> str:
    """The plain target: ``" " + solution`` (:func:`solution_text`)."""
    return " " + solution_text(record)


# ------------------------------------------------------------------ evaluation templates


def template_placeholders(template: str) -> set[str]:
    return {m.group(1) for m in _PLACEHOLDER.finditer(template)}


def check_template(template: str, *, few_shot: bool, key: str, path: str) -> str:
    """``template`` itself, or :class:`PromptFormatError` naming ``key`` and ``path`` when
    ``{problem}`` is missing, or ``{examples}`` is missing with few-shot / present without."""
    found = template_placeholders(template)
    if "problem" not in found:
        raise PromptFormatError(f"{key}: template {path} has no {{problem}} placeholder")
    if few_shot and "examples" not in found:
        raise PromptFormatError(
            f"{key}: few_shot is set but template {path} has no {{examples}} placeholder"
        )
    if not few_shot and "examples" in found:
        raise PromptFormatError(
            f"{key}: template {path} has an {{examples}} placeholder but few_shot is not set"
        )
    return template


def read_template(path: str) -> str:
    """A template file's text, trailing newlines dropped."""
    with open(path, encoding="utf-8") as fh:
        return fh.read().rstrip("\n")


def render_template(template: str, problem: str, examples: str = "") -> str:
    """The template with ``{problem}`` (stripped) and ``{examples}`` filled in verbatim."""
    values = {"problem": problem.strip(), "examples": examples}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def render_examples(records: Sequence[Mapping[str, Any]]) -> str:
    """Few-shot examples as ``Problem: ...\\nSolution: ...`` blocks separated by a blank line."""
    return EXAMPLE_SEPARATOR.join(
        EXAMPLE_TEMPLATE.replace("{problem}", r["problem"].strip()).replace(
            "{solution}", solution_text(r)
        )
        for r in records
    )


def draw_examples(
    pool: Sequence[Mapping[str, Any]],
    exclude_problems: Sequence[str],
    n: int,
    seed: int,
    *,
    key: str = "few_shot",
) -> list[dict[str, Any]]:
    """``n`` records drawn from ``pool`` with ``random.Random(seed)`` (the pool sorted by id
    first: deterministic whatever the file order), never one whose normalized problem
    (:func:`mathrecipes.textnorm.normalize`) equals a normalized problem of
    ``exclude_problems`` (the benchmark's own)."""
    from mathrecipes.textnorm import normalize

    banned = {normalize(p) for p in exclude_problems}
    eligible = sorted(
        (dict(r) for r in pool if normalize(r["problem"]) not in banned), key=lambda r: str(r["id"])
    )
    if len(eligible) < n:
        raise PromptFormatError(
            f"{key}: wants {n} examples but only {len(eligible)} rows of the pool differ from "
            "the benchmark's problems"
        )
    return random.Random(seed).sample(eligible, n)


# ------------------------------------------------------------------ the student's format


@dataclass(frozen=True)
class PromptFormat:
    """How prompts and targets are written for one student and (optionally) one benchmark.

    ``kind``: ``plain`` or ``chat``; ``system``: a chat system message; ``template``: the user
    text template (None: the student's default); ``examples``: the rendered ``{examples}``.
    """

    kind: str = "plain"
    system: str | None = None
    template: str | None = None
    examples: str = ""

    @classmethod
    def of(cls, settings: Mapping[str, Any] | None, **kw: Any) -> PromptFormat:
        """From a job's prompt settings ``{"format": ..., "system": ...}`` (empty: plain)."""
        settings = settings or {}
        kind = settings.get("format", "plain")
        if kind not in ("plain", "chat"):
            raise PromptFormatError(f"prompt format must be plain or chat, not {kind!r}")
        return cls(kind=kind, system=settings.get("system"), **kw)

    @property
    def chat(self) -> bool:
        return self.kind == "chat"

    def user_text(self, problem: str) -> str:
        default = CHAT_USER_TEMPLATE if self.chat else PROMPT_TEMPLATE
        return render_template(self.template or default, problem, self.examples)

    def _messages(self, problem: str) -> list[dict[str, str]]:
        messages = [] if self.system is None else [{"role": "system", "content": self.system}]
        return [*messages, {"role": "user", "content": self.user_text(problem)}]

    def check_tokenizer(self, tokenizer: Any, model: str, key: str = "prompt_format") -> None:
        """A chat format needs a tokenizer with a chat template (the error names ``model``)."""
        if self.chat and not getattr(tokenizer, "chat_template", None):
            raise PromptFormatError(
                f"{key} is chat but the tokenizer of {model} has no chat template: use "
                "prompt_format: plain, or a model whose tokenizer has one"
            )

    def prompt(self, tokenizer: Any, problem: str) -> str:
        """The prompt text (a chat student: the chat template's rendering, special tokens
        included as text)."""
        if not self.chat:
            return self.user_text(problem)
        return tokenizer.apply_chat_template(
            self._messages(problem), tokenize=False, add_generation_prompt=True
        )

    def target(self, tokenizer: Any, record: Mapping[str, Any]) -> str:
        """The target text after :meth:`prompt`: plain ``" " + solution``; chat what the
        template appends after the generation prompt when the assistant answers."""
        if not self.chat:
            return format_target(record)
        prompt = self.prompt(tokenizer, record["problem"])
        messages = [
            *self._messages(record["problem"]),
            {"role": "assistant", "content": solution_text(record)},
        ]
        full = tokenizer.apply_chat_template(messages, tokenize=False)
        if not full.startswith(prompt):
            raise PromptFormatError(
                "the chat template does not render the prompt (add_generation_prompt=True) as a "
                "prefix of the conversation that ends with the assistant's answer, so the target "
                f"cannot be cut off it: prompt {prompt[-80:]!r}, conversation {full[:200]!r}"
            )
        return full[len(prompt) :]

    def add_bos(self) -> bool:
        """Plain prompts get a bos by hand; chat templates write their own special tokens."""
        return not self.chat

    def add_eos(self, target_ids: Sequence[int], eos: int) -> bool:
        """Whether eos follows the target: always for plain; for chat only when the template's
        end of turn does not already hold it."""
        return not self.chat or eos not in target_ids


PLAIN = PromptFormat()


def eval_format(
    settings: Mapping[str, Any] | None,
    problems: Sequence[str],
    *,
    prompt_file: str | None = None,
    few_shot_file: str | None = None,
    key: str = "prompt",
) -> PromptFormat:
    """The :class:`PromptFormat` of an evaluation job from its ``prompt`` settings (rules/
    common.smk ``eval_prompt_spec``: ``format``, ``system``, ``template`` {path, sha256},
    ``few_shot`` {from, n, seed}; empty: plain), the template file and the few-shot dataset
    file; ``problems`` are the benchmark's own (never drawn as examples)."""
    settings = dict(settings or {})
    unknown = set(settings) - {"format", "system", "template", "few_shot"}
    if unknown:
        raise PromptFormatError(f"{key}: unknown key(s) {', '.join(sorted(unknown))}")
    template, examples = None, ""
    few_shot = settings.get("few_shot")
    if settings.get("template") is not None:
        if prompt_file is None:
            raise PromptFormatError(f"{key}: a template is set but no template file was given")
        path = settings["template"].get("path", prompt_file)
        template = check_template(
            read_template(prompt_file), few_shot=few_shot is not None, key=key, path=path
        )
    elif few_shot is not None:
        raise PromptFormatError(
            f"{key}: few_shot needs a template with an {{examples}} placeholder"
        )
    if few_shot is not None:
        if few_shot_file is None:
            raise PromptFormatError(
                f"{key}: few_shot is set but no few-shot dataset file was given"
            )
        from mathrecipes.records import read_records

        drawn = draw_examples(
            read_records(few_shot_file),
            problems,
            int(few_shot["n"]),
            int(few_shot.get("seed", 0)),
            key=f"{key}.few_shot (from {few_shot.get('from', few_shot_file)})",
        )
        examples = render_examples(drawn)
    return PromptFormat.of(settings, template=template, examples=examples)
