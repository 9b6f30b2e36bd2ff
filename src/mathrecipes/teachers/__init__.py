"""Teachers: the models (or programs) that write synthesized solutions.

The programmatic ``builtin`` teacher answers one problem at a time (``Teacher.solve``); model-backed
teachers (``openai``: any OpenAI-compatible server; ``hf``: a local transformers model;
``vllm``: a local model in vLLM's offline engine, an optional package) take a batch of requests
(:class:`~mathrecipes.teachers.base.LLMBackend`); ``hf`` and ``vllm`` share
:mod:`mathrecipes.teachers.local`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mathrecipes.config import HFTeacherSpec, OpenAITeacherSpec, TeacherSpec, teacher_spec
from mathrecipes.teachers.base import LLMBackend

if TYPE_CHECKING:
    from mathrecipes.teachers.builtin import BuiltinTeacher, TeacherOutput


def __getattr__(name: str) -> Any:
    """The builtin teacher is imported when first used, not with this package: it pulls in
    sympy, and the workflow imports teachers.operational when it loads (rules/common.smk)."""
    if name in ("BuiltinTeacher", "TeacherOutput"):
        from mathrecipes.teachers import builtin

        return getattr(builtin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Teacher(Protocol):
    name: str

    def solve(self, problem: str, *, key: str) -> TeacherOutput: ...


def make_teacher(
    spec: Any, *, cache_dir: str | Path | None = None, key: str = "teacher"
) -> Teacher | LLMBackend:
    """The teacher of a synthesis entry's ``teacher`` spec (a teacher spec of
    :mod:`mathrecipes.config` or a mapping for one). ``cache_dir``: where a model backend caches
    its responses unless the spec names its own folder; ``key``: the spec's config key, named
    in configuration errors (``synthesis.<name>.teacher``)."""
    spec = teacher_spec(spec)
    if isinstance(spec, TeacherSpec):
        from mathrecipes.teachers.builtin import BuiltinTeacher

        return BuiltinTeacher(error_rate=spec.error_rate, seed=spec.seed)
    if isinstance(spec, OpenAITeacherSpec):
        from mathrecipes.teachers.openai_backend import OpenAIBackend

        return OpenAIBackend(spec, cache_dir=cache_dir)
    if isinstance(spec, HFTeacherSpec):
        from mathrecipes.teachers.hf_backend import HFBackend

        return HFBackend(spec, cache_dir=cache_dir)
    from mathrecipes.teachers.vllm_backend import VLLMBackend

    return VLLMBackend(spec, cache_dir=cache_dir, key=f"{key}.backend")


__all__ = ["BuiltinTeacher", "LLMBackend", "Teacher", "TeacherOutput", "make_teacher"]
