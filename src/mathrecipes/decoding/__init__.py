"""Decoding with a local causal LM: what student evaluation and the local-model teachers share.

:mod:`~mathrecipes.decoding.loaders`   the checkpoint's tokenizer and model on a device (dtype and
                                       attention settings), and :func:`require_vllm`
:mod:`~mathrecipes.decoding.sampling`  temperature and top-p (one filter), per-batch seeds
:mod:`~mathrecipes.decoding.decoders`  :class:`HFDecoder` (the own static-cache decode loop),
                                       :class:`RowSeededDecoder` (one generator per row) and
                                       :class:`VLLMDecoder`

The evaluation stage (:mod:`mathrecipes.generation`) and the ``hf`` / ``vllm`` teacher backends
(:mod:`mathrecipes.teachers`) import from here, so the teachers' code fingerprint
(``provenance.STAGE_MODULES["teacher_local"]``) holds this package and not the evaluation stage.
Nothing here imports torch, transformers, vllm or pydantic at import time: the GPU benchmarks
run it on images that have only torch and transformers.
"""

from mathrecipes.decoding.decoders import (
    HFDecoder,
    RowSeededDecoder,
    VLLMDecoder,
    cut_at_stop,
    left_pad,
)
from mathrecipes.decoding.loaders import (
    load_model,
    load_student,
    load_tokenizer,
    require_vllm,
    resolve_attn_implementation,
    resolve_dtype,
)
from mathrecipes.decoding.sampling import batch_seed, sampling_probs, top_p_filter

__all__ = [
    "HFDecoder",
    "RowSeededDecoder",
    "VLLMDecoder",
    "batch_seed",
    "cut_at_stop",
    "left_pad",
    "load_model",
    "load_student",
    "load_tokenizer",
    "require_vllm",
    "resolve_attn_implementation",
    "resolve_dtype",
    "sampling_probs",
    "top_p_filter",
]
