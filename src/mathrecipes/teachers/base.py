"""What every model-backed teacher backend implements (``openai``, ``hf``, ``vllm``).

A synthesis method turns rows into :class:`GenRequest` s, hands them to a backend in one call,
and gets one :class:`GenResult` per request back, in the same order. Backends own batching,
concurrency, retries, the response cache and resuming inside a shard; methods own prompts,
parsing and keep/reject decisions. A failed request is a result with ``error`` set (the method
rejects that row with the error as its reason), never an exception that loses the shard, except
for configuration errors (unknown model, missing API key), which fail fast and name the config key.

``describe()`` is what goes into per-row provenance and manifests: backend, model, base URL,
sampling defaults. It must never contain a secret (an API key is read from the environment
variable the config names, and only the variable's name is ever written anywhere).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class GenRequest:
    """One generation: chat ``messages`` (``[{"role": ..., "content": ...}]``) or a plain
    ``prompt`` (completions), exactly one of them."""

    key: str  # unique within one backend call, e.g. "<row id>#<sample k>"
    messages: tuple[tuple[str, str], ...] | None = None  # ((role, content), ...)
    prompt: str | None = None
    max_tokens: int = 1024
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError(f"request {self.key!r}: give exactly one of messages or prompt")

    def chat(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in (self.messages or ())]

    def cache_key(self, model: str) -> str:
        """sha256 over the model, the input and every sampling parameter (not ``key``)."""
        body = asdict(self)
        body.pop("key")
        body["model"] = model
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass
class GenResult:
    key: str
    text: str = ""
    finish_reason: str = ""  # "stop" | "length" | ... as the backend reports it
    error: str | None = None  # None: ok; else a one-line reason (timeout, http 500, ...)
    cached: bool = False
    usage: dict[str, int] = field(default_factory=dict)  # prompt_tokens, completion_tokens

    @property
    def ok(self) -> bool:
        return self.error is None


class LLMBackend(Protocol):
    name: str

    def generate(
        self, requests: Sequence[GenRequest], *, progress: bool = True
    ) -> list[GenResult]: ...

    def describe(self) -> dict[str, Any]: ...
