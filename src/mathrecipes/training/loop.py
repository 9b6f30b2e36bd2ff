"""Train one student on one training set and write its checkpoint folder.

Checkpoint folder (``out_dir``)::

    config.json, generation_config.json, model.safetensors   model.save_pretrained
    tokenizer.json, tokenizer_config.json (, ...)             tokenizer.save_pretrained
    train_log.jsonl                                           one line per logged step
    train_summary.json                                        written LAST: its presence marks
                                                              a complete folder
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from mathrecipes.records import read_records
from mathrecipes.training.data import (
    IGNORE_INDEX,
    Examples,
    encode_examples,
    example_texts,
    pad_id,
    plan_batches,
)
from mathrecipes.training.model import (
    attn_implementation_for,
    build_scratch_model,
    count_params,
    load_pretrained_model,
    pick_device,
    transformers_progress,
)
from mathrecipes.training.tokenizer import load_pretrained_tokenizer, train_bpe_tokenizer

SUMMARY_NAME = "train_summary.json"
LOG_NAME = "train_log.jsonl"
REQUIRED_TOP_KEYS = ("init", "revision", "model", "tokenizer", "training")


class SpecError(ValueError):
    """A student spec that is missing keys or has invalid values."""


def validate_student_spec(spec: Mapping[str, Any]) -> Any:
    """Check a StudentSpec dict strictly: every key present (no silent defaults), valid values.

    Returns the validated :class:`mathrecipes.config.StudentSpec`.
    """
    from pydantic import ValidationError

    from mathrecipes.config import ModelSpec, StudentSpec, TokenizerSpec, TrainingSpec

    if not isinstance(spec, Mapping):
        raise SpecError(f"student spec must be a mapping, got {type(spec).__name__}")
    missing = [k for k in REQUIRED_TOP_KEYS if k not in spec]
    for section, cls in (
        ("model", ModelSpec),
        ("tokenizer", TokenizerSpec),
        ("training", TrainingSpec),
    ):
        sub = spec.get(section)
        if isinstance(sub, Mapping):
            missing.extend(f"{section}.{k}" for k in cls.model_fields if k not in sub)
    if missing:
        raise SpecError(f"student spec is missing key(s): {', '.join(missing)}")
    try:
        return StudentSpec.model_validate(dict(spec))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        raise SpecError(f"invalid student spec: {problems}") from None


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak lr for 0-based update ``step`` of ``total``.

    Linear warmup over ``warmup`` updates, then ``schedule`` (cosine | linear | constant) decays
    to 0 at the end of training.
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup + 1) / max(1, total - warmup))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - progress
    raise ValueError(f"unknown lr schedule {schedule!r}")


@contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic kernels while training (cheap for this model; restored afterwards)."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    cudnn_benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        torch.backends.cudnn.benchmark = cudnn_benchmark


def collate(
    examples: Examples, batch: Sequence[int], pad: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Right-padded ``input_ids`` and ``labels`` (IGNORE_INDEX on bos, prompt and padding)."""
    longest = max(len(examples.ids[i]) for i in batch)
    ids = torch.full((len(batch), longest), pad, dtype=torch.long)
    labels = torch.full((len(batch), longest), IGNORE_INDEX, dtype=torch.long)
    real = 0
    for row, i in enumerate(batch):
        seq = examples.ids[i]
        n, p = len(seq), examples.n_prompt[i]
        t = torch.tensor(seq, dtype=torch.long)
        ids[row, :n] = t
        labels[row, p:n] = t[p:]
        real += n
    return ids, labels, real


def train_student(
    train_path: str,
    out_dir: str,
    spec: Mapping[str, Any],
    seed: int,
    threads: int = 2,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a student on the canonical-record parquet ``train_path``; write ``out_dir``.

    ``spec`` is a StudentSpec dict (``model_dump(mode="json", by_alias=True)``). ``init`` is
    ``"scratch"`` (byte-level BPE trained on the corpus + random Llama of ``spec["model"]`` dims,
    seeded by ``seed``) or a Hugging Face model id / local model folder to fine-tune
    (``spec["model"]`` and ``spec["tokenizer"]`` are then unused).

    Returns the summary also written to ``out_dir/train_summary.json``. Counting conventions:
    ``train_tokens`` / ``target_tokens`` are totals over the training set BEFORE truncation
    (``train_tokens``: bos + prompt + target + eos; ``target_tokens``: target + eos);
    ``tokens_seen`` counts non-padding input tokens fed to the model (after truncation);
    ``tokens_per_s`` is ``tokens_seen`` over the optimizer-loop time only; ``wall_s`` is the
    whole call (tokenizer training, model build and saving included).
    """
    t_start = time.perf_counter()
    s = validate_student_spec(spec)
    tr = s.training
    records = read_records(train_path)
    if not records:
        raise ValueError(f"{train_path}: the training set is empty (0 records)")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / SUMMARY_NAME).unlink(missing_ok=True)  # a stale summary would mark a partial folder

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # denormals in the small weights/grads wreck CPU throughput
    device = pick_device()
    attn = attn_implementation_for(device)

    with _deterministic(device), transformers_progress(progress):
        if s.init == "scratch":
            if tr.max_length > s.model.max_position_embeddings:
                raise SpecError(
                    f"training.max_length ({tr.max_length}) exceeds "
                    f"model.max_position_embeddings ({s.model.max_position_embeddings})"
                )
            corpus = [text for r in records for text in example_texts(r)]
            tokenizer = train_bpe_tokenizer(
                corpus,
                vocab_size=s.tokenizer.vocab_size,
                min_frequency=s.tokenizer.min_frequency,
                model_max_length=s.model.max_position_embeddings,
            )
            model = build_scratch_model(s.model.model_dump(), tokenizer, seed, attn)
        else:
            tokenizer = load_pretrained_tokenizer(s.init, s.revision)
            torch.manual_seed(seed)
            model = load_pretrained_model(s.init, tokenizer, s.revision, attn)

        examples = encode_examples(tokenizer, records, tr.max_length)
        if not len(examples):
            raise ValueError(
                f"{train_path}: no example keeps a target token within max_length "
                f"{tr.max_length} (all {len(records)} prompts are too long)"
            )
        schedule = plan_batches(
            examples.lengths,
            tr.tokens_per_step,
            seed,
            max_steps=tr.max_steps,
            epochs=tr.epochs,
        )
        loop = _optimize(model, examples, schedule, tokenizer, s, seed, device, out, progress)

        model.save_pretrained(str(out))  # safetensors (model.safetensors)
        tokenizer.save_pretrained(str(out))

    summary = {
        "examples": len(records),
        "examples_trained": len(examples),
        "examples_truncated": examples.truncated,
        "examples_dropped": examples.dropped,
        "train_tokens": examples.total_tokens,
        "target_tokens": examples.target_tokens,
        "token_counts": "before truncation; train_tokens = bos+prompt+target+eos, "
        "target_tokens = target+eos",
        "vocab_size": len(tokenizer),
        "steps": loop["steps"],
        "epochs_seen": loop["epochs_seen"],
        "tokens_seen": loop["tokens_seen"],
        "padded_tokens_seen": loop["padded_tokens_seen"],
        "final_loss": loop["final_loss"],
        "params": count_params(model),
        "tokens_per_s": loop["tokens_per_s"],
        "train_loop_s": loop["loop_s"],
        "wall_s": round(time.perf_counter() - t_start, 3),
        "device": str(device),
        "attn_implementation": attn,
        "threads": threads,
        "seed": seed,
        "init": s.init,
        "revision": s.revision,
    }
    tmp = out / (SUMMARY_NAME + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    tmp.replace(out / SUMMARY_NAME)
    return summary


def _optimize(
    model: Any,
    examples: Examples,
    schedule: list[list[int]],
    tokenizer: Any,
    s: Any,
    seed: int,
    device: torch.device,
    out: Path,
    progress: bool,
) -> dict[str, Any]:
    from tqdm import tqdm

    tr = s.training
    model.to(device)
    model.train()
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    # fused AdamW is slower than foreach on this CPU (measured); fused is the fast one on CUDA
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": tr.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=tr.lr,
        betas=(0.9, tr.adam_beta2),
        **fast,
    )
    params = decay + no_decay
    pad = pad_id(tokenizer)
    total = len(schedule)
    torch.manual_seed(seed)

    tokens_seen = padded_seen = examples_seen = 0
    window_loss = torch.zeros((), device=device)
    window_steps = 0
    final_loss = float("nan")
    bar = tqdm(total=total, disable=not progress, file=sys.stderr, desc="train", unit="step")
    t0 = time.perf_counter()
    with open(out / LOG_NAME, "w") as log:
        for step, batch in enumerate(schedule, start=1):
            lr = tr.lr * lr_factor(step - 1, total, tr.warmup_steps, tr.schedule)
            for group in optimizer.param_groups:
                group["lr"] = lr
            ids, labels, real = collate(examples, batch, pad)
            ids = ids.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            # No attention mask: padding is on the right and attention is causal, so no real
            # token can see a pad; this keeps sdpa on its fast is_causal path.
            loss = model(input_ids=ids, labels=labels, use_cache=False).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, tr.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

            window_loss += loss.detach()
            window_steps += 1
            tokens_seen += real
            padded_seen += ids.numel()
            examples_seen += len(batch)
            bar.update(1)
            if step % tr.log_every == 0 or step == total:
                final_loss = window_loss.item() / window_steps
                row = {
                    "step": step,
                    "loss": round(final_loss, 6),
                    "lr": lr,
                    "tokens_seen": tokens_seen,
                    "elapsed_s": round(time.perf_counter() - t0, 3),
                }
                log.write(json.dumps(row) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{final_loss:.4f}", lr=f"{lr:.2e}")
                window_loss.zero_()
                window_steps = 0
    bar.close()
    loop_s = time.perf_counter() - t0
    return {
        "steps": total,
        "epochs_seen": round(examples_seen / len(examples), 4),
        "tokens_seen": tokens_seen,
        "padded_tokens_seen": padded_seen,
        "final_loss": final_loss,
        "tokens_per_s": round(tokens_seen / loop_s, 1) if loop_s > 0 else None,
        "loop_s": round(loop_s, 3),
    }
