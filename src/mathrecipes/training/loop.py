"""Train one student on one training set and write its checkpoint folder.

Checkpoint folder (``out_dir``)::

    config.json, generation_config.json, model.safetensors   model.save_pretrained
    tokenizer.json, tokenizer_config.json (, ...)             tokenizer.save_pretrained
    train_log.jsonl                                           one line per logged step
    train_summary.json                                        written LAST: its presence marks
                                                              a complete folder

:func:`train_student` builds the tokenizer, model, examples and batch schedule and runs
:func:`optimize`: the optimizer loop over a :class:`TrainState` (model, optimizer, step,
counters, loss window, timers), in named steps: :func:`_prepare`, :func:`_resume`, then per
step :func:`_train_step` (:func:`_set_lr`, :func:`_forward_backward`, :func:`_optimizer_step`),
:func:`_log_row` when a log row is due and :func:`_save_if_due` (resumable state, stop signals).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mathrecipes.prompting import PromptFormat
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
def _deterministic(device: torch.device, on: bool = True) -> Iterator[None]:
    """Deterministic kernels while training (cheap for this model; restored afterwards)."""
    if not on:
        yield
        return
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


def collate_packed(
    examples: Examples, rows: Sequence[Sequence[int]], pad: int, width: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Packed rows: ``input_ids``, ``labels`` and ``position_ids`` that restart at 0 for every
    example (and for the padding tail), so that the model's packed-sequence masking keeps each
    example to itself. Rows are padded on the right to the fullest row, or to ``width``."""
    longest = max(sum(len(examples.ids[i]) for i in row) for row in rows)
    longest = max(longest, width or 0)
    ids = torch.full((len(rows), longest), pad, dtype=torch.long)
    labels = torch.full((len(rows), longest), IGNORE_INDEX, dtype=torch.long)
    positions = torch.zeros((len(rows), longest), dtype=torch.long)
    real = 0
    for r, row in enumerate(rows):
        offset = 0
        for i in row:
            seq = examples.ids[i]
            n, p = len(seq), examples.n_prompt[i]
            t = torch.tensor(seq, dtype=torch.long)
            ids[r, offset : offset + n] = t
            labels[r, offset + p : offset + n] = t[p:]
            positions[r, offset : offset + n] = torch.arange(n)
            offset += n
        positions[r, offset:] = torch.arange(longest - offset)
        real += offset
    return ids, labels, positions, real


@contextmanager
def _quiet_accelerate() -> Iterator[None]:
    """accelerate logs every file of a save or load at INFO: keep job logs to our own lines."""
    import logging

    logger = logging.getLogger("accelerate")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def resolve_attn(choice: str, device: torch.device) -> str:
    if choice != "auto":
        return choice
    return attn_implementation_for(device)


def _mixed_precision(precision: str, device_type: str) -> str:
    if precision == "bf16" or (precision == "auto" and device_type == "cuda"):
        return "bf16"
    return "no"


def make_accelerator(tr: Any) -> Any:
    """The Accelerator of this process: CPU or CUDA, bf16 autocast per ``precision``, DDP or
    FSDP (version 2, per decoder layer) when launched with several processes."""
    from accelerate import Accelerator

    cuda = torch.cuda.is_available()
    kwargs: dict[str, Any] = {
        "cpu": not cuda,
        "mixed_precision": _mixed_precision(tr.precision, "cuda" if cuda else "cpu"),
    }
    if tr.distributed == "fsdp" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate.utils import FullyShardedDataParallelPlugin

        kwargs["fsdp_plugin"] = FullyShardedDataParallelPlugin(
            fsdp_version=2,
            auto_wrap_policy="transformer_based_wrap",
            transformer_cls_names_to_wrap=["LlamaDecoderLayer", "Qwen2DecoderLayer"],
            reshard_after_forward=True,
            state_dict_type="SHARDED_STATE_DICT",
        )
    return Accelerator(**kwargs)


def train_student(
    train_path: str,
    out_dir: str,
    spec: Mapping[str, Any],
    seed: int,
    threads: int = 2,
    progress: bool = True,
    resume_dir: str | None = None,
    checkpointing: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train a student on the canonical-record parquet ``train_path``; write ``out_dir``.

    ``spec`` is a StudentSpec dict (``model_dump(mode="json", by_alias=True)``). ``init`` is
    ``"scratch"`` (byte-level BPE trained on the corpus + random Llama of ``spec["model"]`` dims,
    seeded by ``seed``) or a Hugging Face model id / local model folder to fine-tune
    (``spec["model"]`` and ``spec["tokenizer"]`` are then unused).

    Runs as one process, or as every process of an ``accelerate launch`` (see
    :mod:`mathrecipes.training.launch`): each optimizer step's examples are dealt to the
    processes and the loss is normalized over the whole step's target tokens, so the update is
    the one a single process would make (up to float summation order).

    ``resume_dir``: where resumable state is saved (``checkpointing``: ``{"every_steps": N,
    "every_s": S}``, see :class:`~mathrecipes.training.resume.SaveEvery`; None: the config's
    defaults; and on SIGTERM or SIGUSR1, after which :class:`TrainingStopped` is raised). A rerun with the same data, spec, seed and code continues from the last state with
    the same data order; None disables saving.

    Returns the summary also written to ``out_dir/train_summary.json``. Counting conventions:
    ``train_tokens`` / ``target_tokens`` are totals over the training set BEFORE truncation
    (``train_tokens``: bos + prompt + target + eos; ``target_tokens``: target + eos);
    ``tokens_seen`` counts non-padding input tokens fed to the model (after truncation);
    ``tokens_per_s`` is this run's tokens over its optimizer-loop time only; ``wall_s`` is the
    whole call (tokenizer training, model build and saving included).
    """
    from mathrecipes.config import Checkpointing
    from mathrecipes.provenance import code_fingerprint, file_sha256
    from mathrecipes.records import read_records
    from mathrecipes.training.resume import ResumeStore, SaveEvery, StopFlag, resume_key

    t_start = time.perf_counter()
    s = validate_student_spec(spec)
    tr = s.training
    if checkpointing is None:
        save_every = SaveEvery.of(Checkpointing())
    else:
        save_every = SaveEvery(**checkpointing)
    records = read_records(train_path)
    if not records:
        raise ValueError(f"{train_path}: the training set is empty (0 records)")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")

    acc = make_accelerator(tr)
    out = Path(out_dir)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / SUMMARY_NAME).unlink(missing_ok=True)  # a stale summary marks a partial folder
    acc.wait_for_everyone()

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # denormals in the small weights/grads wreck CPU throughput
    device = acc.device
    attn = resolve_attn(tr.attn_implementation, device)
    show = progress and acc.is_main_process

    store = None
    if resume_dir is not None:
        layout = {"processes": acc.num_processes, "distributed": tr.distributed}
        key = resume_key(
            file_sha256(train_path), dict(spec), seed, code_fingerprint("train"), layout
        )
        store = ResumeStore(Path(resume_dir), key)

    with _deterministic(device, tr.deterministic), transformers_progress(show):
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
        params_before = count_params(model)

        fmt = PromptFormat.of(s.prompt_settings(), template=None)
        fmt.check_tokenizer(tokenizer, repr(s.init), key="the student's prompt_format")
        examples = encode_examples(tokenizer, records, tr.max_length, fmt)
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
            packing=tr.packing,
        )
        stop = StopFlag()
        if store is not None:  # without a place to save, a signal stops the job as usual
            stop.install()
        try:
            loop = optimize(
                acc,
                model,
                examples,
                schedule,
                pad=pad_id(tokenizer),
                training=tr,
                seed=seed,
                out=out,
                progress=show,
                store=store,
                save_every=save_every,
                stop=stop,
            )
        finally:
            stop.restore()

        acc.wait_for_everyone()
        unwrapped = acc.unwrap_model(model)
        state_dict = acc.get_state_dict(model) if tr.distributed == "fsdp" else None
        if acc.is_main_process:
            unwrapped.save_pretrained(str(out), state_dict=state_dict)  # model.safetensors
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
        "params": params_before,
        "tokens_per_s": loop["tokens_per_s"],
        "train_loop_s": loop["loop_s"],
        "resumed_from_step": loop["resumed_from_step"],
        "wall_s": round(time.perf_counter() - t_start, 3),
        "device": str(device),
        "processes": acc.num_processes,
        "mixed_precision": acc.mixed_precision,
        "attn_implementation": attn,
        "threads": threads,
        "seed": seed,
        "init": s.init,
        "revision": s.revision,
    }
    if acc.is_main_process:
        tmp = out / (SUMMARY_NAME + ".tmp")
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        tmp.replace(out / SUMMARY_NAME)
        if store is not None:
            store.clear()  # the finished checkpoint supersedes it
    acc.wait_for_everyone()
    return summary


def _step_rows(lengths: Sequence[int], batch: Sequence[int], world: int, rank: int, tr: Any):
    """This process's micro-batches of one step (lists of example indices, or with packing
    lists of rows), plus the padded size of every process's share (for the counters)."""
    from mathrecipes.training.data import micro_batches, pack_rows, split_for_ranks

    shares = [list(batch)] if world == 1 else split_for_ranks(lengths, batch, world)
    padded = 0
    mine: list[list[Any]] = []
    for r, share in enumerate(shares):
        if tr.packing:
            rows = pack_rows(lengths, share, tr.max_length)
            per = max(1, (tr.micro_batch_tokens or 1 << 62) // tr.max_length)
            chunks = [rows[k : k + per] for k in range(0, len(rows), per)] if rows else []
            padded += sum(
                len(chunk) * max(sum(lengths[i] for i in row) for row in chunk) for chunk in chunks
            )
        else:
            chunks = micro_batches(lengths, share, tr.micro_batch_tokens) if share else []
            padded += sum(len(c) * max(lengths[i] for i in c) for c in chunks)
        if r == rank:
            mine = chunks
    return mine, padded


# --------------------------------------------------------------------------- the optimizer loop


@dataclass
class LoopData:
    """What the loop trains on: the examples, the run's batch schedule (one list of example
    indices per optimizer step) and the pad id."""

    examples: Examples
    schedule: list[list[int]]
    pad: int
    lengths: list[int] = field(init=False)
    targets: list[int] = field(init=False)  # loss tokens (target + eos) of every example

    def __post_init__(self) -> None:
        ex = self.examples
        self.lengths = ex.lengths
        self.targets = [len(ids) - p for ids, p in zip(ex.ids, ex.n_prompt, strict=True)]


@dataclass
class TrainState:
    """The optimizer loop's state: the prepared model and optimizer, the last finished step,
    the counters and the loss window since the last log row (what a saved state restores), and
    the timers. ``model`` is the prepared module (DDP/FSDP-wrapped, compiled with
    ``training.compile``); ``params`` the trainable parameters (gradient clipping)."""

    acc: Any
    model: Any
    optimizer: Any
    params: list[Any]
    total: int  # optimizer steps in the schedule
    window_loss: Any  # the summed step losses since the last log row (a tensor on the device)
    step: int = 0  # the last finished step
    counters: dict[str, int] = field(
        default_factory=lambda: {"tokens_seen": 0, "padded_seen": 0, "examples_seen": 0}
    )
    log_rows: list[dict[str, Any]] = field(default_factory=list)
    window_steps: int = 0
    final_loss: float = float("nan")
    resumed_from: int = 0
    tokens_this_run: int = 0  # real tokens trained on by this process's run (not a resumed one)
    started: float = 0.0  # time.perf_counter() when the loop started
    last_save: float = 0.0  # time.perf_counter() of the last save (or the start)

    def meta(self) -> dict[str, Any]:
        """What a saved state holds besides accelerate's model, optimizer and RNG states."""
        return {
            "step": self.step,
            "total_steps": self.total,
            "counters": self.counters,
            "log_rows": self.log_rows,
            "window_sum": self.window_loss.item(),
            "window_steps": self.window_steps,
        }


def _prepare(acc: Any, model: Any, tr: Any) -> tuple[Any, Any, list[Any]]:
    """The prepared model (train mode), its AdamW (weight decay on matrices only) and the
    trainable parameters."""
    model = acc.prepare(model)
    model.train()
    named = list(acc.unwrap_model(model).named_parameters())
    decay = [p for _, p in named if p.requires_grad and p.ndim >= 2]
    no_decay = [p for _, p in named if p.requires_grad and p.ndim < 2]
    # fused AdamW is slower than foreach on this CPU (measured); fused is the fast one on CUDA
    fast = {"fused": True} if acc.device.type == "cuda" else {"foreach": True}
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": tr.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=tr.lr,
        betas=(0.9, tr.adam_beta2),
        **fast,
    )
    optimizer = acc.prepare(optimizer)
    if tr.compile:
        # after prepare: the DDP/FSDP-wrapped module is compiled; states are saved from the
        # uncompiled module the Accelerator holds (same parameters)
        model = torch.compile(model)
    return model, optimizer, decay + no_decay


def _resume(state: TrainState, store: Any) -> None:
    """Continue from the newest saved state of this run, if there is one: accelerate's states
    (model, optimizer, the RNG of every process) and the loop's counters."""
    from mathrecipes.training.resume import say

    found = store.find() if store is not None else None
    if found is None:
        return
    folder, meta = found
    acc = state.acc
    with _quiet_accelerate():
        acc.load_state(str(folder))
    state.step = state.resumed_from = int(meta["step"])
    state.counters = meta["counters"]
    state.log_rows = meta["log_rows"]
    state.window_loss = torch.tensor(
        float(meta["window_sum"]), dtype=torch.float32, device=acc.device
    )
    state.window_steps = int(meta["window_steps"])
    if state.log_rows:
        state.final_loss = state.log_rows[-1]["loss"]
    if acc.is_main_process:
        say(f"resuming from step {meta['step']} of {state.total} (state saved {meta['saved_at']})")


def _set_lr(state: TrainState, tr: Any, step: int) -> float:
    """Set and return the learning rate of 1-based ``step``."""
    lr = tr.lr * lr_factor(step - 1, state.total, tr.warmup_steps, tr.schedule)
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    return lr


def _micro_batch(data: LoopData, chunk: Sequence[Any], tr: Any, device: Any) -> tuple:
    """``input_ids``, ``labels`` and extra model arguments of one micro-batch, on the CPU."""
    extra: dict[str, Any] = {}
    if tr.packing:
        # compiled: every row max_length long, so the shapes stay put
        width = tr.max_length if tr.compile else None
        ids, labels, positions, _ = collate_packed(data.examples, chunk, data.pad, width)
        extra["position_ids"] = positions.to(device, non_blocking=True)
    else:
        ids, labels, _ = collate(data.examples, chunk, data.pad)
    return ids, labels, extra


def _forward_backward(
    state: TrainState, data: LoopData, chunks: list[list[Any]], n_targets: int, tr: Any
) -> Any:
    """Forward and backward of this process's micro-batches of one step (gradients synced on
    the last one); returns the summed loss (a tensor on the device)."""
    acc, model = state.acc, state.model
    device, world = acc.device, acc.num_processes
    # One process, one pass, no packing: the model's own mean loss (as always). Else the sum
    # over the step's target tokens / their count, times `world` because DDP and FSDP average
    # gradients over processes.
    plain = world == 1 and len(chunks) == 1 and not tr.packing
    step_loss = torch.zeros((), device=device)
    for k, chunk in enumerate(chunks):
        ids, labels, extra = _micro_batch(data, chunk, tr, device)
        if not plain:
            # a tensor, not an int: torch.compile would specialize on every new count
            extra["num_items_in_batch"] = torch.tensor(n_targets, device=device)
        ids = ids.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        sync = k == len(chunks) - 1
        with contextlib.nullcontext() if sync else acc.no_sync(model):
            # No attention mask: padding is on the right and attention is causal, so no real
            # token can see a pad; this keeps sdpa on its fast is_causal path.
            loss = model(input_ids=ids, labels=labels, use_cache=False, **extra).loss
            acc.backward(loss if plain else loss * world)
        step_loss += loss.detach()
    if not chunks:  # more processes than examples in this step: join the reduction
        dummy = sum(p.sum() for p in model.parameters()) * 0.0
        acc.backward(dummy)
    return step_loss


def _optimizer_step(state: TrainState, tr: Any) -> None:
    """Clip the gradients, update the parameters, drop the gradients."""
    acc = state.acc
    if tr.distributed == "fsdp" and acc.num_processes > 1:
        acc.clip_grad_norm_(state.model.parameters(), tr.grad_clip)
    else:
        acc.clip_grad_norm_(state.params, tr.grad_clip)
    state.optimizer.step()
    state.optimizer.zero_grad(set_to_none=True)


def _train_step(state: TrainState, data: LoopData, tr: Any, step: int) -> float:
    """One optimizer step on ``schedule[step - 1]``: learning rate, forward/backward, update,
    counters. Returns the step's learning rate."""
    acc = state.acc
    batch = data.schedule[step - 1]
    lr = _set_lr(state, tr, step)
    chunks, padded = _step_rows(data.lengths, batch, acc.num_processes, acc.process_index, tr)
    n_targets = sum(data.targets[i] for i in batch)
    step_loss = _forward_backward(state, data, chunks, n_targets, tr)
    _optimizer_step(state, tr)

    state.window_loss += step_loss
    state.window_steps += 1
    real = sum(data.lengths[i] for i in batch)
    state.counters["tokens_seen"] += real
    state.counters["padded_seen"] += padded
    state.counters["examples_seen"] += len(batch)
    state.tokens_this_run += real
    state.step = step
    return lr


def _log_row(state: TrainState, lr: float) -> dict[str, Any]:
    """Close the loss window into a log row (its mean over every process) and start a new
    window."""
    acc = state.acc
    window = state.window_loss
    if acc.num_processes > 1:
        window = acc.reduce(window.clone(), reduction="sum")
    state.final_loss = window.item() / state.window_steps
    row = {
        "step": state.step,
        "loss": round(state.final_loss, 6),
        "lr": lr,
        "tokens_seen": state.counters["tokens_seen"],
        "elapsed_s": round(time.perf_counter() - state.started, 3),
    }
    state.log_rows.append(row)
    state.window_loss.zero_()
    state.window_steps = 0
    return row


def _save(state: TrainState, store: Any) -> None:
    """Save the state (every process takes part; the main one commits it)."""
    acc = state.acc
    folder = store.begin() if acc.is_main_process else store.tmp
    acc.wait_for_everyone()
    with _quiet_accelerate():
        acc.save_state(str(folder))
    acc.wait_for_everyone()
    if acc.is_main_process:
        store.commit(state.meta())
    acc.wait_for_everyone()
    state.last_save = time.perf_counter()


def _save_if_due(state: TrainState, store: Any, every: Any, stop: Any) -> None:
    """After a step (not the last): save when a save is due on the main process or a stop
    signal came to any process; after a signal, raise :class:`TrainingStopped`."""
    from mathrecipes.training.resume import TrainingStopped, say

    acc, step, total = state.acc, state.step, state.total
    due = (every.every_steps and step % every.every_steps == 0) or (
        every.every_s and time.perf_counter() - state.last_save >= every.every_s
    )
    flags = torch.tensor(
        [1.0 if stop.signame else 0.0, 1.0 if due and acc.is_main_process else 0.0],
        device=acc.device,
    )
    if acc.num_processes > 1:
        flags = acc.reduce(flags, reduction="sum")
    stopping, due = bool(flags[0] > 0), bool(flags[1] > 0)
    if not (stopping or due):
        return
    _save(state, store)
    if not stopping:
        return
    if acc.is_main_process:
        say(
            f"stopped by {stop.signame or 'a signal'} after step {step} of {total}; "
            f"state saved to {store.state}; rerun to resume"
        )
    raise TrainingStopped(
        f"training stopped by a signal after step {step} of {total}; its state "
        f"is saved in {store.state} and a rerun resumes from there"
    )


def optimize(
    acc: Any,
    model: Any,
    examples: Examples,
    schedule: list[list[int]],
    *,
    pad: int,
    training: Any,
    seed: int,
    out: Path,
    progress: bool = False,
    store: Any = None,
    save_every: Any = None,
    stop: Any = None,
) -> dict[str, Any]:
    """Run the optimizer steps of ``schedule`` on ``model`` (from a saved state of ``store``
    when there is one); write ``out/train_log.jsonl`` (main process). ``training`` is a
    TrainingSpec; ``store``, ``save_every`` and ``stop`` (a ResumeStore, a SaveEvery and a
    StopFlag) save resumable state, None: no saving. Returns the loop's figures and log rows."""
    from tqdm import tqdm

    tr = training
    model, optimizer, params = _prepare(acc, model, tr)
    data = LoopData(examples, schedule, pad)
    torch.manual_seed(seed)
    window = torch.tensor(0.0, dtype=torch.float32, device=acc.device)
    state = TrainState(acc, model, optimizer, params, total=len(schedule), window_loss=window)
    _resume(state, store)
    bar = tqdm(
        total=state.total,
        initial=state.step,
        disable=not progress,
        file=sys.stderr,
        desc="train",
        unit="step",
    )
    state.started = state.last_save = time.perf_counter()
    log = open(out / LOG_NAME, "w") if acc.is_main_process else None  # noqa: SIM115
    try:
        if log is not None:
            for row in state.log_rows:
                log.write(json.dumps(row) + "\n")
            log.flush()
        for step in range(state.step + 1, state.total + 1):
            lr = _train_step(state, data, tr, step)
            bar.update(1)
            if step % tr.log_every == 0 or step == state.total:
                row = _log_row(state, lr)
                if log is not None:
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                bar.set_postfix(loss=f"{state.final_loss:.4f}", lr=f"{lr:.2e}")
            if store is not None and step != state.total:
                _save_if_due(state, store, save_every, stop)
    finally:
        bar.close()
        if log is not None:
            log.close()
    loop_s = time.perf_counter() - state.started
    return {
        "steps": state.total,
        "epochs_seen": round(state.counters["examples_seen"] / len(examples), 4),
        "tokens_seen": state.counters["tokens_seen"],
        "padded_tokens_seen": state.counters["padded_seen"],
        "final_loss": state.final_loss,
        "tokens_per_s": round(state.tokens_this_run / loop_s, 1) if loop_s > 0 else None,
        "loop_s": round(loop_s, 3),
        "resumed_from_step": state.resumed_from,
        "log_rows": state.log_rows,
    }
