"""A teacher's operational settings: how its server is reached, not what it answers.

The ``openai`` teacher's :attr:`~mathrecipes.config.OpenAITeacherSpec.OPERATIONAL` fields
(``base_url``, ``api_key_env``, ``concurrency``, ``timeout_s``, ``max_retries``, ``backoff_s``,
``on_unavailable``, ``cache_dir``) must not be job parameters: editing the concurrency or moving
the server to another host must not rerun a finished synthesis (its answers are cached under a
key that holds none of them). The workflow drops them from the entry's ``params`` and hands them
to the job as Snakemake resources, which are never rerun triggers. A resource is an integer or
a string (Snakemake rounds a float), so each setting travels in the config's own units:
integers as integers, seconds as their decimal string (``"2.5"``), an unset value as ``""``.

A synthesis entry has up to two model specs, its :data:`ROLES`: the ``teacher`` and, for the
judged methods, the ``judge``; each role's settings are resources named ``<role>_<setting>``
(:func:`resource_names`): ``teacher_base_url``, ..., ``teacher_timeout_s``, ...
:func:`split_operational` takes the settings out of a spec,
:func:`as_resources` encodes them (with the role's response cache folder), :func:`from_resources`
decodes a job's resources back, and :func:`with_operational` puts them into the entry's spec
again, ready for the backends to be built.

A teacher that runs a model inside the job (``hf``, ``vllm``) has one operational field, its
``resources`` (GPUs, CPUs, memory, time): they are not job parameters either, but what the job
asks the scheduler for (:mod:`mathrecipes.synthesis.jobs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mathrecipes.config import (
    LOCAL_TEACHER_TAGS,
    HFTeacherSpec,
    OpenAITeacherSpec,
    VLLMTeacherSpec,
)

ROLES = ("teacher", "judge")
# field -> how it travels as the resource "<role>_<field>": "int"; "str"; "opt" (a string, ""
# for unset); "seconds" (a number of seconds as its decimal string: a resource is an int or str).
ENCODING: dict[str, str] = {
    "base_url": "str",
    "api_key_env": "opt",
    "concurrency": "int",
    "timeout_s": "seconds",
    "max_retries": "int",
    "backoff_s": "seconds",
    "on_unavailable": "str",
    "cache_dir": "str",
}
CACHE_RESOURCE = "teacher_cache_dir"  # where the entry's model teacher caches (every backend)
_OPERATIONAL = {
    "openai": OpenAITeacherSpec.OPERATIONAL,
    "hf": HFTeacherSpec.OPERATIONAL,
    "vllm": VLLMTeacherSpec.OPERATIONAL,
}


def resource_names(role: str = "teacher") -> tuple[str, ...]:
    """The resources of one role: ``teacher_base_url``, ..., ``teacher_cache_dir``."""
    return tuple(f"{role}_{field}" for field in ENCODING)


RESOURCES: tuple[str, ...] = resource_names("teacher")


def operational_fields(teacher: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The operational fields of a teacher spec's backend (none for builtin; ``resources`` for
    hf and vllm)."""
    return _OPERATIONAL.get((teacher or {}).get("backend"), ())


def split_operational(teacher: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(what the teacher answers, how it is reached)``: the spec without its operational
    fields, and those fields."""
    ops = operational_fields(teacher)
    result = {k: v for k, v in teacher.items() if k not in ops}
    settings = {k: v for k, v in teacher.items() if k in ops}
    return result, settings


def as_resources(
    teacher: Mapping[str, Any] | None, default_cache_dir: str, role: str = "teacher"
) -> dict[str, int | str]:
    """Every name of :func:`resource_names` with its value for this spec (integers and strings
    only; 0 and "" where the backend has no such setting, or there is no spec). ``<role>_cache_dir``
    is the spec's ``cache_dir``, else ``default_cache_dir`` (``<results>/cache/teachers``)."""
    _, settings = split_operational(teacher or {})
    settings["cache_dir"] = settings.get("cache_dir") or default_cache_dir
    out: dict[str, int | str] = {}
    for field, kind in ENCODING.items():
        value = settings.get(field)
        if kind == "int":
            out[f"{role}_{field}"] = 0 if value is None else int(value)
        else:  # a float's str() reads back as the same float
            out[f"{role}_{field}"] = "" if value is None else str(value)
    return out


def from_resources(resources: Any, role: str = "teacher") -> dict[str, Any]:
    """The operational fields of a role's ``openai`` spec from a job's resources (an object with
    the :func:`resource_names` attributes, or a mapping), ready to merge into that spec; ``{}``
    for a spec without them (``<role>_base_url`` is "")."""

    def get(name: str) -> Any:
        key = f"{role}_{name}"
        return resources[key] if isinstance(resources, Mapping) else getattr(resources, key)

    if not get("base_url"):
        return {}
    settings: dict[str, Any] = {}
    for field, kind in ENCODING.items():
        value = get(field)
        if kind == "int":
            settings[field] = int(value)
        elif kind == "seconds":
            settings[field] = float(value)
        elif kind == "opt":
            settings[field] = str(value) or None
        else:
            settings[field] = str(value)
    return settings


def with_operational(spec: Mapping[str, Any], resources: Any) -> dict[str, Any]:
    """A synthesis entry's spec (as the job's params hold it) with the operational settings of
    its teacher and judge put back from the job's ``resources``. A local model (``hf``,
    ``vllm``) gets the job's GPUs as its ``resources.gpus`` (a vllm model split over several
    GPUs needs as many), when the job has a ``gpu`` resource."""
    out = dict(spec)
    gpus = (
        resources.get("gpu") if isinstance(resources, Mapping) else getattr(resources, "gpu", None)
    )
    for role in ROLES:
        model = out.get(role)
        if not model:
            continue
        if model.get("backend") in LOCAL_TEACHER_TAGS and gpus is not None:
            out[role] = {**model, "resources": {"gpus": int(gpus)}}
        elif settings := from_resources(resources, role):
            out[role] = {**model, **settings}
    return out


def operational_settings(resources: Any) -> dict[str, dict[str, Any]]:
    """Every role's settings from a job's resources, for its manifest (never a key: only the
    name of the variable that holds one)."""
    return {role: s for role in ROLES if (s := from_resources(resources, role))}


__all__ = [
    "CACHE_RESOURCE",
    "RESOURCES",
    "ROLES",
    "as_resources",
    "from_resources",
    "operational_fields",
    "operational_settings",
    "resource_names",
    "split_operational",
    "with_operational",
]
