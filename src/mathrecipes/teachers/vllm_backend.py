"""The ``vllm`` teacher backend: a local model run by vLLM's offline engine (``vllm.LLM``).

vLLM is an optional package (``pip install 'mathrecipes[vllm]'``, on a machine with a CUDA GPU):
:func:`require_package` imports it or raises :class:`VLLMTeacherError` naming the config key and
the fix; the synthesis job calls it before it reads a row, so a missing package fails the job at
once (``synthesis.<name>.teacher.backend``).

The prompts, the stop handling, the response cache (``vllm-responses.sqlite``) and resuming
inside a shard are those of every local-model backend (:mod:`mathrecipes.teachers.local`): the
tokenizer's chat template turns a request into token ids here, and vLLM decodes those ids, so
the ``hf`` and ``vllm`` backends see the same prompts. Every request is its own vLLM request
with its own ``SamplingParams`` (temperature, top-p, ``max_tokens``, the request's ``seed``, the
model's eos ids as stop tokens), so a sample does not depend on the other requests of a call
(beyond the numerics of the batch vLLM schedules it in). Requests go to ``LLM.generate`` in calls
of ``batch_size`` (vLLM batches continuously inside a call); each call's answers are committed to
the cache before the next starts. ``dtype: auto`` is bfloat16, as the ``hf`` teacher on a GPU;
``max_model_len`` caps prompt + output (default: the model's), and a prompt that does not fit
with its ``max_tokens`` is a failed result (``prompt_too_long``), not a failed call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mathrecipes.decoding import require_vllm
from mathrecipes.teachers.base import GenRequest, GenResult
from mathrecipes.teachers.local import LocalModelBackend, LocalTeacherError, loading

CACHE_FILE = "vllm-responses.sqlite"


class VLLMTeacherError(LocalTeacherError):
    """The vllm teacher cannot work as configured (package missing, model not loadable)."""


# What a config with a vllm teacher or judge can use instead (named when vllm is missing).
INSTEAD = "hf (the same model with transformers) or openai (a vLLM server)"


def require_package(key: str = "teacher.backend") -> Any:
    """The ``vllm`` module, or :class:`VLLMTeacherError` naming the config ``key`` (e.g.
    ``synthesis.<name>.teacher.backend``) and the fix (:func:`mathrecipes.decoding.require_vllm`)."""
    return require_vllm(key, instead=INSTEAD, error=VLLMTeacherError)


def engine_dtype(dtype: str) -> str:
    """The dtype vLLM is given: ``auto`` is bfloat16 (vLLM's own auto would pick float16 for a
    float32 checkpoint)."""
    return "bfloat16" if dtype == "auto" else dtype


def _engine_max_len(llm: Any) -> int | None:
    """The engine's resolved ``max_model_len`` (where this vLLM version keeps it)."""
    for path in (("llm_engine", "model_config"), ("llm_engine", "vllm_config", "model_config")):
        obj = llm
        for attr in path:
            obj = getattr(obj, attr, None)
        value = getattr(obj, "max_model_len", None)
        if isinstance(value, int):
            return value
    return None


class VLLMBackend(LocalModelBackend):
    """A model in vLLM's offline engine as an :class:`~mathrecipes.teachers.base.LLMBackend`.

    ``spec`` is a :class:`~mathrecipes.config.VLLMTeacherSpec` or a mapping for one; ``key`` is
    the config key named when vLLM is not installed. The engine starts when the backend is built.
    """

    name = "vllm"
    cache_file = CACHE_FILE
    error = VLLMTeacherError

    def __init__(
        self,
        spec: Any,
        *,
        cache_dir: str | Path | None = None,
        key: str = "teacher.backend",
    ) -> None:
        from mathrecipes.config import VLLMTeacherSpec

        if not isinstance(spec, VLLMTeacherSpec):
            spec = VLLMTeacherSpec.model_validate(dict(spec))
        self.spec = spec
        vllm = require_package(key)
        from transformers import AutoConfig, AutoTokenizer, GenerationConfig

        with loading(spec, VLLMTeacherError):
            tokenizer = AutoTokenizer.from_pretrained(spec.model, revision=spec.revision)
            config = AutoConfig.from_pretrained(spec.model, revision=spec.revision)
        try:
            extra_eos = GenerationConfig.from_pretrained(spec.model, revision=spec.revision)
            extra_eos = extra_eos.eos_token_id
        except OSError:  # no generation_config.json
            extra_eos = getattr(config, "eos_token_id", None)
        self.llm = vllm.LLM(
            model=spec.model,
            tokenizer=spec.model,
            revision=spec.revision,
            tokenizer_revision=spec.revision,
            dtype=engine_dtype(spec.dtype),
            seed=spec.seed,
            gpu_memory_utilization=spec.gpu_memory_utilization,
            tensor_parallel_size=spec.tensor_parallel_size,
            max_model_len=spec.max_model_len,
        )
        max_len = _engine_max_len(self.llm) or spec.max_model_len
        self._setup(
            tokenizer,
            commit=getattr(config, "_commit_hash", None),
            extra_eos=extra_eos,
            max_positions=max_len or getattr(config, "max_position_embeddings", None),
            cache_dir=cache_dir,
            variant=f"{engine_dtype(spec.dtype)}:tp{spec.tensor_parallel_size}",
        )
        self.vllm_version = getattr(vllm, "__version__", None)

    def describe(self) -> dict[str, Any]:
        """:meth:`LocalModelBackend.describe` plus the engine's settings that change numerics
        or which prompts fit, and the vLLM version."""
        s = self.spec
        return {
            **super().describe(),
            "tensor_parallel_size": s.tensor_parallel_size,
            "max_model_len": self.max_positions,
            "vllm": self.vllm_version,
        }

    def sampling_params(self, req: GenRequest) -> Any:
        """One request's vLLM ``SamplingParams``: its own seed when it samples."""
        from vllm import SamplingParams

        sampling = req.temperature > 0
        return SamplingParams(
            n=1,
            temperature=req.temperature,
            top_p=req.top_p if sampling else 1.0,
            max_tokens=req.max_tokens,
            seed=req.seed if sampling else None,
            stop=list(req.stop) or None,
            stop_token_ids=sorted(self.stop_ids),
        )

    # ------------------------------------------------------------------ internals

    def _run(
        self, requests: Sequence[GenRequest], batch: list[int], ids: Mapping[int, list[int]]
    ) -> list[GenResult]:
        """One ``LLM.generate`` call: every request of the batch with its own parameters."""
        prompts = [{"prompt_token_ids": list(ids[i])} for i in batch]
        params = [self.sampling_params(requests[i]) for i in batch]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        results = []
        for i, output in zip(batch, outputs, strict=True):
            completion = output.outputs[0]
            tokens = list(completion.token_ids)
            reason = getattr(completion, "stop_reason", None)  # str: a stop string
            on_token = completion.finish_reason == "stop" and not isinstance(reason, str)
            if on_token and not self.stop_ids.intersection(tokens):  # eos not returned
                tokens.append(reason if isinstance(reason, int) else self.tokenizer.eos_token_id)
            results.append(self.result(requests[i], ids[i], tokens))
        return results


__all__ = ["CACHE_FILE", "VLLMBackend", "VLLMTeacherError", "engine_dtype", "require_package"]
