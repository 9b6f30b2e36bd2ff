"""A checkpoint's tokenizer and causal LM on a device, the dtype and attention settings, and the
check for the optional vllm package."""

from __future__ import annotations

from typing import Any

# Measured with benchmarks/bench_train.py on the 2-core CPU box: for batched decoding of the
# small students, eager attention with a static (preallocated) KV cache is the fastest and
# steadiest CPU setting; the default dynamic cache re-concatenates keys/values every step.
CPU_ATTN_IMPLEMENTATION = "eager"
CUDA_ATTN_IMPLEMENTATION = "sdpa"


def resolve_dtype(name: str, device: Any) -> Any:
    """``auto`` -> bfloat16 on a GPU, float32 on a CPU; otherwise the named torch dtype."""
    import torch

    if name == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    return getattr(torch, name)


def resolve_attn_implementation(name: str | None, device: Any) -> str:
    """``auto`` (or None) -> sdpa on a GPU, eager on a CPU."""
    import torch

    if name in (None, "auto"):
        cuda = torch.device(device).type == "cuda"
        return CUDA_ATTN_IMPLEMENTATION if cuda else CPU_ATTN_IMPLEMENTATION
    return name


def load_tokenizer(model: str, revision: str | None = None) -> Any:
    """The tokenizer of a model folder or Hub id; a tokenizer without a pad token pads with eos."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model, revision=revision)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    model: str,
    device: Any,
    attn_implementation: str | None = None,
    dtype: Any = None,
    revision: str | None = None,
) -> Any:
    """The causal LM of a model folder or Hub id in eval mode on ``device`` (float32 by
    default; attention per :func:`resolve_attn_implementation`)."""
    import torch
    from transformers import AutoModelForCausalLM

    device = torch.device(device)
    lm = AutoModelForCausalLM.from_pretrained(
        model,
        revision=revision,
        dtype=dtype or torch.float32,
        attn_implementation=resolve_attn_implementation(attn_implementation, device),
    )
    lm.to(device)
    lm.eval()
    return lm


def load_student(
    checkpoint_dir: str, device: Any, attn_implementation: str | None = None, dtype: Any = None
) -> tuple[Any, Any]:
    """(tokenizer, model) of a checkpoint folder, model in eval mode on ``device``."""
    return load_tokenizer(checkpoint_dir), load_model(
        checkpoint_dir, device, attn_implementation, dtype
    )


def require_vllm(key: str, *, instead: str = "hf", error: type[Exception] = ValueError) -> Any:
    """The ``vllm`` module, or ``error`` naming the config ``key`` that asks for it and the two
    ways out: install the optional package, or set ``key`` to ``instead``."""
    try:
        import vllm
    except ImportError as exc:
        raise error(
            f"{key} is 'vllm' but the vllm package is not installed or does not import ({exc}): "
            "install it where the job runs, on a machine with a CUDA GPU, with "
            f"`pip install 'mathrecipes[vllm]'`; or set {key}: {instead}"
        ) from None
    return vllm
