"""Student models: a randomly initialized Llama-shaped model, or a pretrained causal LM."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch

# Attention implementation for training; None picks per device (see attn_implementation_for).
# benchmarks/bench_train.py overrides it to compare the two.
ATTN_IMPLEMENTATION: str | None = None


def attn_implementation_for(device: torch.device) -> str:
    """The training attention implementation.

    CPU: "sdpa", measured faster than "eager" on the 2-core box (benchmarks/bench_train.py) for
    the 4-layer width-128 student at ~2000 tokens per step (training passes no attention mask,
    so sdpa stays on its is_causal path). CUDA: "eager", because the fp32 sdpa backward there
    (memory-efficient kernel) is not deterministic and same-seed runs must give identical
    weights; the small students are overhead-bound on a GPU anyway.
    """
    if ATTN_IMPLEMENTATION is not None:
        return ATTN_IMPLEMENTATION
    return "eager" if device.type == "cuda" else "sdpa"


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextmanager
def transformers_progress(enabled: bool) -> Iterator[None]:
    """Silence transformers' own progress bars (loading/writing weights) unless ``enabled``."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if not enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def build_scratch_model(
    model_spec: Mapping[str, Any],
    tokenizer: Any,
    seed: int,
    attn_implementation: str = "sdpa",
) -> Any:
    """A ``LlamaForCausalLM`` with ``model_spec`` dims and random weights seeded by ``seed``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=model_spec["hidden_size"],
        intermediate_size=model_spec["intermediate_size"],
        num_hidden_layers=model_spec["num_hidden_layers"],
        num_attention_heads=model_spec["num_attention_heads"],
        num_key_value_heads=model_spec.get("num_key_value_heads")
        or model_spec["num_attention_heads"],
        max_position_embeddings=model_spec["max_position_embeddings"],
        # transformers 5 folds this into rope_parameters; 4.x reads it directly
        rope_theta=float(model_spec["rope_theta"]),
        tie_word_embeddings=bool(model_spec["tie_word_embeddings"]),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        attention_dropout=0.0,
        use_cache=True,
    )
    config._attn_implementation = attn_implementation
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    _sync_generation_config(model, tokenizer)
    return model


def load_pretrained_model(
    init: str,
    tokenizer: Any,
    revision: str | None = None,
    attn_implementation: str = "sdpa",
    dtype: torch.dtype = torch.float32,
) -> Any:
    """``AutoModelForCausalLM`` from a Hub id or local folder, in ``dtype`` (fp32 to train)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        init, revision=revision, dtype=dtype, attn_implementation=attn_implementation
    )
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    if model.config.eos_token_id is None:
        model.config.eos_token_id = tokenizer.eos_token_id
    _sync_generation_config(model, tokenizer)
    return model


def _sync_generation_config(model: Any, tokenizer: Any) -> None:
    """A clean generation config holding only the special ids.

    A pretrained model's sampling defaults (temperature, top_k, repetition_penalty, ...) would
    otherwise fill every knob the GenerationSpec leaves unset when the student is evaluated.
    """
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def count_params(model: Any) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())
