"""Teachers: the models (or programs) that write synthesized solutions.

Only the programmatic ``builtin`` teacher exists so far; model-backed teachers (OpenAI-compatible
servers, local transformers, vLLM) plug in behind the same ``Teacher`` protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from mathrecipes.teachers.builtin import BuiltinTeacher, TeacherOutput


class Teacher(Protocol):
    name: str

    def solve(self, problem: str, *, key: str) -> TeacherOutput: ...


def make_teacher(spec: Mapping[str, Any]) -> Teacher:
    backend = spec.get("backend", "builtin")
    if backend == "builtin":
        return BuiltinTeacher(
            error_rate=float(spec.get("error_rate", 0.0)), seed=int(spec.get("seed", 0))
        )
    raise ValueError(f"synthesis teacher.backend: unknown backend {backend!r}")


__all__ = ["BuiltinTeacher", "Teacher", "TeacherOutput", "make_teacher"]
