"""The models a synthesis entry's job builds, and what a job running local models asks for.

An entry has up to two model specs: the ``teacher`` when its method calls it
(:attr:`~mathrecipes.config.SynthesisSpec.uses_teacher`: not the rule-based splitter, not a
retrieval-only weakness entry) and, for the judged methods (``rewrite``, ``extract``), a
``judge`` that names its own. A teacher that runs its model inside the job (``hf``, ``vllm``)
is an input with its model folder, and its ``resources`` are what the job asks the scheduler
for (rules/common.smk): with a local teacher and a local judge, the larger of each (both models
are loaded in the one job). ``resources`` are not job parameters: editing them reruns nothing.

The workflow (rules/common.smk), the synthesis job (:mod:`mathrecipes.synthesis`) and the
tests read these from here; the spec is a validated entry or a mapping for one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mathrecipes.config import LOCAL_TEACHER_TAGS, SynthesisSpec, TeacherResources


def job_models(spec: SynthesisSpec | Mapping[str, Any]) -> dict[str, Any]:
    """``{role: teacher spec}`` of the models an entry's job builds: the ``teacher`` when its
    method calls it, and the ``judge`` of a judged method that names its own."""
    spec = SynthesisSpec.model_validate(spec)
    models = {}
    if spec.uses_teacher:
        models["teacher"] = spec.teacher
    if spec.judged and spec.judge is not None:
        models["judge"] = spec.judge
    return models


def local_models(spec: SynthesisSpec | Mapping[str, Any]) -> dict[str, Any]:
    """The :func:`job_models` that run inside the job (``hf``, ``vllm``)."""
    return {r: m for r, m in job_models(spec).items() if m.backend in LOCAL_TEACHER_TAGS}


def job_resources(spec: SynthesisSpec | Mapping[str, Any]) -> dict[str, int] | None:
    """What a synthesis job running local models asks for: ``gpus``, ``cpus``, ``mem_mb``,
    ``runtime``, each the largest of its :func:`local_models`' ``resources``; ``None`` when it
    runs none (the rule's defaults)."""
    given = [m.resources for m in local_models(spec).values()]
    if not given:
        return None
    return {f: max(getattr(r, f) for r in given) for f in TeacherResources.model_fields}


__all__ = ["job_models", "job_resources", "local_models"]
