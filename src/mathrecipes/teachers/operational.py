"""A teacher's operational settings: how its server is reached, not what it answers.

The ``openai`` teacher's :attr:`~mathrecipes.config.OpenAITeacherSpec.OPERATIONAL` fields
(``base_url``, ``api_key_env``, ``concurrency``, ``timeout_s``, ``max_retries``, ``backoff_s``,
``on_unavailable``, ``cache_dir``) must not be job parameters: editing the concurrency or moving
the server to another host must not rerun a finished synthesis (its answers are cached under a
key that holds none of them). The workflow drops them from the entry's ``params`` and hands them
to the job as Snakemake resources, which are never rerun triggers; resources hold only integers
and strings, so seconds travel as milliseconds and an unset value as ``""``.

:func:`split_operational` takes them out of a teacher spec, :func:`as_resources` encodes them
(with the response cache folder every model teacher uses), :func:`from_resources` decodes a
job's resources back, and :func:`with_settings` puts them into the entry's spec again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mathrecipes.config import OpenAITeacherSpec

PREFIX = "teacher_"
# field -> (resource name, kind): "ms" is seconds as integer milliseconds, "opt" a string or "".
ENCODING: dict[str, tuple[str, str]] = {
    "base_url": ("teacher_base_url", "str"),
    "api_key_env": ("teacher_api_key_env", "opt"),
    "concurrency": ("teacher_concurrency", "int"),
    "timeout_s": ("teacher_timeout_ms", "ms"),
    "max_retries": ("teacher_max_retries", "int"),
    "backoff_s": ("teacher_backoff_ms", "ms"),
    "on_unavailable": ("teacher_on_unavailable", "str"),
}
CACHE_RESOURCE = "teacher_cache_dir"
RESOURCES: tuple[str, ...] = (*(name for name, _ in ENCODING.values()), CACHE_RESOURCE)


def operational_fields(teacher: Mapping[str, Any]) -> tuple[str, ...]:
    """The operational fields of a teacher spec's backend (none for builtin and hf)."""
    return OpenAITeacherSpec.OPERATIONAL if teacher.get("backend") == "openai" else ()


def split_operational(teacher: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(what the teacher answers, how it is reached)``: the spec without its operational
    fields, and those fields."""
    ops = operational_fields(teacher)
    result = {k: v for k, v in teacher.items() if k not in ops}
    settings = {k: v for k, v in teacher.items() if k in ops}
    return result, settings


def as_resources(teacher: Mapping[str, Any], default_cache_dir: str) -> dict[str, int | str]:
    """Every name of :data:`RESOURCES` with its value for this teacher (integers and strings
    only; 0 and "" where the backend has no such setting). ``teacher_cache_dir`` is the
    spec's ``cache_dir``, else ``default_cache_dir`` (``<results>/cache/teachers``)."""
    _, settings = split_operational(teacher)
    out: dict[str, int | str] = {}
    for field, (name, kind) in ENCODING.items():
        value = settings.get(field)
        if kind == "int":
            out[name] = 0 if value is None else int(value)
        elif kind == "ms":  # at least 1 ms: the spec's seconds are > 0
            out[name] = 0 if value is None else max(1, round(float(value) * 1000))
        else:
            out[name] = "" if value is None else str(value)
    out[CACHE_RESOURCE] = str(settings.get("cache_dir") or default_cache_dir)
    return out


def from_resources(resources: Any) -> dict[str, Any]:
    """The operational fields of an ``openai`` teacher from a job's resources (an object with
    the :data:`RESOURCES` attributes, or a mapping), ready to merge into its spec; ``{}`` for a
    teacher without them (``teacher_base_url`` is ""). ``cache_dir`` is not among them: it is
    :data:`CACHE_RESOURCE` (the folder every model teacher caches in)."""

    def get(name: str) -> Any:
        return resources[name] if isinstance(resources, Mapping) else getattr(resources, name)

    if not get("teacher_base_url"):
        return {}
    settings: dict[str, Any] = {}
    for field, (name, kind) in ENCODING.items():
        value = get(name)
        if kind == "int":
            settings[field] = int(value)
        elif kind == "ms":
            settings[field] = int(value) / 1000
        elif kind == "opt":
            settings[field] = str(value) or None
        else:
            settings[field] = str(value)
    return settings


def with_settings(spec: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """A synthesis entry's spec (as the job's params hold it) with its teacher's operational
    settings (:func:`from_resources`) put back, ready for the teacher to be built."""
    return {**spec, "teacher": {**(spec.get("teacher") or {}), **settings}}


__all__ = [
    "CACHE_RESOURCE",
    "RESOURCES",
    "as_resources",
    "from_resources",
    "operational_fields",
    "split_operational",
    "with_settings",
]
