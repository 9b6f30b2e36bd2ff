"""Prompt files: chat messages with placeholders, referenced by the config, hashed into params.

A prompt file is plain text (``.txt`` or ``.md``). Lines ``[system]``, ``[user]`` and
``[assistant]`` (alone on their line) start a message of that role; the text up to the next
such line is its content (surrounding blank lines dropped). Lines starting with ``#`` before the
first role line are comments for the reader and are not sent. A file without any role line is a
single user message. The last message must be a user message (the teacher answers it); earlier
``[user]`` / ``[assistant]`` pairs are few-shot examples.

Placeholders, replaced in every message: ``{problem}``, ``{solution}`` and ``{answer}`` (the input
row's fields), ``{text}`` (``rewrite`` / ``extract``: the raw text chunk) and ``{article}``
(``rewrite``'s judge: the article to score). Nothing else is substituted, so LaTeX braces
(``\\boxed{}``) need no escaping. Each method checks that the placeholders it needs are there
(``distill``: ``{problem}``; ``structure``: ``{problem}`` and ``{solution}``; ``rephrase``:
``{problem}``; ``rewrite`` / ``extract``: ``{text}``; their judges: ``{article}``, resp.
``{problem}`` and ``{solution}``).

The sha256 of the file's bytes (comments included) is a parameter of every synthesis job that
uses it and is written into the provenance of every row: editing a prompt reruns exactly the
synthesis entries that use it and what depends on them.

A relative prompt path is looked up in the working directory first, then in the workflow's own
folder, so the shipped ``prompts/<method>/default.txt`` are found from any working directory.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mathrecipes.config import JudgedSpec, RephraseSpec, SynthesisSpec, WeaknessSpec

ROLES = ("system", "user", "assistant")
PLACEHOLDERS = ("problem", "solution", "answer", "text", "article")
_ROLE_LINE = re.compile(r"^\[(system|user|assistant)\]\s*$")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")

# The prompt each method uses with a model teacher when the config names none.
DEFAULT_PROMPTS = {
    "distill": "prompts/distill/default.txt",
    "structure": "prompts/structure/default.txt",
    "rephrase": "prompts/rephrase/default.txt",
    "rewrite": "prompts/rewrite/default.txt",
    "extract": "prompts/extract/default.txt",
    "weakness": "prompts/weakness/default.txt",
}
# The judge prompt of the judged methods unless `judge_prompt` names another.
DEFAULT_JUDGE_PROMPTS = {
    "rewrite": "prompts/judge/rewrite.txt",
    "extract": "prompts/judge/extract.txt",
}
# rephrase's verifying solve uses distill's prompt unless `solve_prompt` names another.
DEFAULT_SOLVE_PROMPT = DEFAULT_PROMPTS["distill"]
# The placeholders each (method, prompt key) must use.
REQUIRED_PLACEHOLDERS = {
    ("distill", "prompt"): ("problem",),
    ("structure", "prompt"): ("problem", "solution"),
    ("rephrase", "prompt"): ("problem",),
    ("rephrase", "solve_prompt"): ("problem",),
    ("rewrite", "prompt"): ("text",),
    ("rewrite", "judge_prompt"): ("article",),
    ("extract", "prompt"): ("text",),
    ("extract", "judge_prompt"): ("problem", "solution"),
    ("weakness", "prompt"): ("problem",),
    ("weakness", "solve_prompt"): ("problem",),
}


class PromptError(ValueError):
    """A prompt file that cannot be used; the message names the file (and config key)."""


@dataclass(frozen=True)
class Prompt:
    """A parsed prompt file: its path as configured, sha256 and message templates."""

    path: str
    sha256: str
    messages: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, text: str, *, path: str, sha256: str = "") -> Prompt:
        messages: list[list[str]] = []
        preamble = True
        for line in text.splitlines():
            m = _ROLE_LINE.match(line.strip())
            if m:
                messages.append([m.group(1), ""])
                preamble = False
                continue
            if preamble and not messages and line.startswith("#"):
                continue
            if not messages:
                if not line.strip():
                    continue
                messages.append(["user", ""])
                preamble = False
            messages[-1][1] += line + "\n"
        parsed = tuple((role, content.strip("\n").rstrip()) for role, content in messages)
        if not parsed:
            raise PromptError(f"prompt {path}: no message")
        for i, (role, content) in enumerate(parsed):
            if not content.strip():
                raise PromptError(f"prompt {path}: message {i + 1} ([{role}]) is empty")
        if parsed[-1][0] != "user":
            raise PromptError(
                f"prompt {path}: the last message must be [user], not [{parsed[-1][0]}]"
            )
        return cls(path=path, sha256=sha256, messages=parsed)

    @classmethod
    def load(cls, file: str | Path, *, path: str | None = None) -> Prompt:
        """Read and parse ``file``; ``path`` is the name to record (the configured path)."""
        file = Path(file)
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise PromptError(f"prompt {path or file}: cannot read {file}: {exc}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PromptError(f"prompt {path or file}: not UTF-8 ({exc})") from None
        return cls.parse(text, path=path or str(file), sha256=hashlib.sha256(data).hexdigest())

    def placeholders(self) -> set[str]:
        return {m.group(1) for _, content in self.messages for m in _PLACEHOLDER.finditer(content)}

    def require(self, *names: str, key: str = "prompt") -> Prompt:
        missing = [n for n in names if n not in self.placeholders()]
        if missing:
            wanted = ", ".join("{" + n + "}" for n in missing)
            raise PromptError(f"{key} {self.path}: missing placeholder(s) {wanted}")
        return self

    def render(self, **values: str) -> tuple[tuple[str, str], ...]:
        """The messages with ``{problem}`` / ``{solution}`` / ``{answer}`` filled in (values are
        inserted verbatim, never substituted again)."""

        def fill(m: re.Match[str]) -> str:
            return str(values.get(m.group(1), ""))

        return tuple((role, _PLACEHOLDER.sub(fill, content)) for role, content in self.messages)

    def ref(self) -> dict[str, str]:
        """Provenance: ``{"path": ..., "sha256": ...}``."""
        return {"path": self.path, "sha256": self.sha256}


def prompt_refs(spec: SynthesisSpec | Mapping[str, Any]) -> dict[str, str]:
    """The prompt files a synthesis entry reads, as ``{key: configured path}``.

    ``key`` is the config key (``prompt``, ``solve_prompt``, ``judge_prompt``); defaults are
    filled in. The builtin teacher, the rule-based splitter and a retrieval-only weakness entry
    read none; ``rephrase`` with ``verify`` and ``weakness`` also read the prompt of their
    solves (``solve_prompt``), ``rewrite`` and ``extract`` their judge's rubric
    (``judge_prompt``).
    """
    spec = SynthesisSpec.model_validate(spec)
    if spec.teacher.backend == "builtin" or not spec.uses_teacher:
        return {}
    refs = {"prompt": spec.prompt or DEFAULT_PROMPTS[spec.method]}
    if (isinstance(spec, RephraseSpec) and spec.verify) or isinstance(spec, WeaknessSpec):
        refs["solve_prompt"] = spec.solve_prompt or DEFAULT_SOLVE_PROMPT
    if isinstance(spec, JudgedSpec):
        refs["judge_prompt"] = spec.judge_prompt or DEFAULT_JUDGE_PROMPTS[spec.method]
    return refs


def resolve_prompt_path(path: str, search: Iterable[str | Path]) -> str:
    """Where a configured prompt path is: ``path`` itself if absolute or present in the working
    directory; else the first existing ``dir/path`` for ``dir`` in ``search``; else ``path``
    unchanged (the caller reports it missing)."""
    if Path(path).is_absolute() or Path(path).is_file():
        return path
    for base in search:
        candidate = Path(base) / path
        if candidate.is_file():
            return str(candidate)
    return path


def prompt_sha256(file: str | Path) -> str | None:
    """sha256 of a prompt file's bytes, None when it does not exist (yet)."""
    file = Path(file)
    if not file.is_file():
        return None
    return hashlib.sha256(file.read_bytes()).hexdigest()
