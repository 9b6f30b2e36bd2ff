"""How likely a student finds a benchmark's reference solutions: teacher-forced NLL and bytes.

For every benchmark row with a non-empty ``solution`` the student reads the row's training
example without its eos, ``[bos] + tok(format_prompt(problem)) + tok(format_target(row))``, built
by the very functions training uses (:mod:`mathrecipes.training.data`; for a row with a solution
``format_target`` is ``" " + solution.strip()``), and the negative log-likelihood of the target
tokens given everything before them is summed, in nats. Only forward passes run (no sampling):
the rows are sorted by length, cut into batches of ``batch_size``, left-padded (the attention
mask drives the position ids, as in :class:`~mathrecipes.decoding.HFDecoder`), and only the
logits of the target positions are computed (``logits_to_keep``), in float32 whatever the
weights' dtype.

A chat student (or a benchmark with a template or few-shot examples: the spec's ``prompt``, as
for generation, :func:`mathrecipes.prompting.eval_format`) is scored the same way after its own
prompt: the chat target is the solution followed by the template's end of turn, whose text the
bytes then include.

Bits per byte, ``nll / ln 2 / bytes``, do not depend on the tokenizer: students trained from
scratch get a tokenizer per recipe, so their per-token NLLs are not comparable, bytes are.

A row whose prompt and target do not fit in the model's ``max_position_embeddings`` keeps the
target's first tokens that fit (``truncated``; none when the prompt alone fills the window) and
counts the bytes of the text those tokens cover (up to the end of the character the last kept
token ends in; the tokenizer's offsets, or a decode for a tokenizer without offsets).

Output parquet columns (one row per scored problem, sorted by ``problem_id``; rows with an empty
solution are left out): ``problem_id`` str, ``nll`` float64 (nats summed over the scored target
tokens), ``tokens`` int64 (scored target tokens), ``bytes`` int64 (UTF-8 bytes of the scored
target text without its leading space), ``truncated`` bool. Deterministic for the same
checkpoint, benchmark, spec and machine (no timing columns; times go to the summary). A benchmark
without any reference solution gives a file without rows and the summary ``{"skipped": ...}``.

Resume (:mod:`mathrecipes.resumable`): given ``resume_dir``, every finished batch is saved there
under a key over the checkpoint, benchmark, spec, code and device settings; a rerun after a kill
scores only the missing batches, and SIGTERM finishes the batch in flight, saves it and raises
:class:`LikelihoodInterrupted`.

This module imports neither pydantic nor Snakemake, nor torch at import time.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from mathrecipes.decoding import (
    left_pad,
    load_model,
    load_tokenizer,
    resolve_attn_implementation,
    resolve_dtype,
)
from mathrecipes.prompting import PLAIN, PromptFormat, eval_format
from mathrecipes.records import read_records, write_table
from mathrecipes.resumable import Progress, job_key, runtime_settings, stop_on_sigterm
from mathrecipes.training.data import encode_prompts, encode_texts, pad_id, target_texts

log = logging.getLogger(__name__)

OUTPUT_SCHEMA = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("nll", pa.float64(), nullable=False),
        pa.field("tokens", pa.int64(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("truncated", pa.bool_(), nullable=False),
    ]
)

# The keys of a likelihood job's spec: likelihood.batch_size, and generation's dtype and
# attn_implementation (rules/common.smk, likelihood_spec), with the values they may take.
SPEC_KEYS: dict[str, tuple[str, ...] | None] = {
    "batch_size": None,  # an integer > 0
    "dtype": ("auto", "float32", "bfloat16", "float16"),
    "attn_implementation": ("auto", "eager", "sdpa"),
}


class LikelihoodSpecError(ValueError):
    """A likelihood spec that is missing keys or has invalid values."""


class LikelihoodInterrupted(RuntimeError):
    """SIGTERM arrived; the finished batches are saved in the resume folder."""


def validate_likelihood_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Check a likelihood job's spec (exactly :data:`SPEC_KEYS`, and optionally ``prompt``,
    read by :func:`mathrecipes.prompting.eval_format`) and return it as a dict."""
    if not isinstance(spec, Mapping):
        raise LikelihoodSpecError(f"likelihood spec must be a mapping, got {type(spec).__name__}")
    missing = [k for k in SPEC_KEYS if k not in spec]
    unknown = [k for k in spec if k not in SPEC_KEYS and k != "prompt"]
    if missing or unknown:
        raise LikelihoodSpecError(
            f"likelihood spec: missing key(s) {missing}, unknown key(s) {unknown} "
            f"(expected {', '.join(SPEC_KEYS)})"
        )
    size = spec["batch_size"]
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise LikelihoodSpecError(f"likelihood.batch_size must be an integer > 0, got {size!r}")
    for key, allowed in SPEC_KEYS.items():
        if allowed is not None and spec[key] not in allowed:
            raise LikelihoodSpecError(
                f"generation.{key} must be one of {', '.join(allowed)}, got {spec[key]!r}"
            )
    out = {k: spec[k] for k in SPEC_KEYS}
    if spec.get("prompt"):
        out["prompt"] = spec["prompt"]
    return out


# ------------------------------------------------------------------ the inputs


@dataclass
class Item:
    """One scored row: ``ids`` is bos + prompt + the kept target tokens (the last ``tokens``)."""

    index: int  # the row's position in the benchmark
    problem_id: str
    ids: list[int]
    tokens: int
    bytes: int
    truncated: bool


def has_solution(record: Mapping[str, Any]) -> bool:
    return bool((record.get("solution") or "").strip())


def _covered_bytes(tokenizer: Any, target: str, ids: Sequence[int], kept: int) -> int:
    """UTF-8 bytes of the text the first ``kept`` tokens of ``target`` cover, without the
    target's leading space."""
    if kept == len(ids):
        text = target
    elif kept == 0:
        text = ""
    elif getattr(tokenizer, "is_fast", False):
        enc = tokenizer(target, add_special_tokens=False, return_offsets_mapping=True)
        if list(enc["input_ids"]) != list(ids):  # pragma: no cover - one tokenizer, one answer
            raise RuntimeError("the tokenizer's offsets call gave other ids than its batch call")
        text = target[: enc["offset_mapping"][kept - 1][1]]
    else:
        text = tokenizer.decode(
            list(ids[:kept]), skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
    return len(text.removeprefix(" ").encode("utf-8"))


def plan_items(
    tokenizer: Any,
    records: Sequence[Mapping[str, Any]],
    max_positions: int | None,
    fmt: PromptFormat = PLAIN,
) -> list[Item]:
    """The scored rows (those with a solution), tokenized as training tokenizes them, each cut to
    ``max_positions`` tokens (None: no limit) by dropping the target's last tokens."""
    scored = [i for i, r in enumerate(records) if has_solution(r)]
    chosen = [records[i] for i in scored]
    prompts = encode_prompts(tokenizer, [r["problem"] for r in chosen], fmt)
    texts = target_texts(tokenizer, chosen, fmt)
    targets = encode_texts(tokenizer, texts)
    items = []
    for i, r, prompt, text, target in zip(scored, chosen, prompts, texts, targets, strict=True):
        room = len(target) if max_positions is None else max(0, max_positions - len(prompt))
        kept = min(len(target), room)
        items.append(
            Item(
                index=i,
                problem_id=str(r["id"]),
                ids=prompt + target[:kept],
                tokens=kept,
                bytes=_covered_bytes(tokenizer, text, target, kept),
                truncated=kept < len(target),
            )
        )
    return items


def plan_batches(items: Sequence[Item], batch_size: int) -> list[list[int]]:
    """Positions in ``items`` of the scored rows (a row with no token kept needs no forward),
    sorted by length (ties: benchmark order), cut into batches of ``batch_size``."""
    order = sorted((k for k, it in enumerate(items) if it.tokens), key=lambda k: len(items[k].ids))
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


# ------------------------------------------------------------------ the forward pass


def target_nll(model: Any, seqs: Sequence[Sequence[int]], n_target: Sequence[int], pad: int):
    """The summed NLL (nats, float) of the last ``n_target[i]`` tokens of each ``seqs[i]``
    given the tokens before them: one left-padded forward of the batch (call under
    ``torch.inference_mode()``); log-softmax in float32, per-row sums in float64."""
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    input_ids, mask = left_pad(seqs, pad)
    input_ids, mask = input_ids.to(device), mask.to(device)
    position_ids = (mask.cumsum(-1) - 1).masked_fill_(mask == 0, 1)
    longest = max(n_target)
    if longest >= input_ids.shape[1]:
        raise ValueError("every sequence needs at least one token before its target")
    # the logits at the last longest + 1 positions; the very last one predicts nothing here
    logits = model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=position_ids,
        use_cache=False,
        logits_to_keep=longest + 1,
    ).logits[:, :-1]
    targets = input_ids[:, -longest:]
    nll = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    ).view(len(seqs), longest)
    # row i's target is its last n_target[i] positions (left padding: every row ends together)
    lengths = torch.tensor(list(n_target), device=device)
    scored = torch.arange(longest, device=device)[None, :] >= (longest - lengths)[:, None]
    return nll.double().masked_fill(~scored, 0.0).sum(-1).cpu().tolist()


# ------------------------------------------------------------------ the job


def _row(item: Item, nll: float) -> dict[str, Any]:
    return {
        "problem_id": item.problem_id,
        "nll": float(nll),
        "tokens": item.tokens,
        "bytes": item.bytes,
        "truncated": item.truncated,
    }


def bits_per_byte(nll: float, n_bytes: int) -> float | None:
    """``nll / ln 2 / n_bytes`` (None without bytes)."""
    return nll / math.log(2) / n_bytes if n_bytes else None


def score_file(
    checkpoint_dir: str,
    benchmark_path: str,
    out_path: str,
    spec: Mapping[str, Any],
    *,
    benchmark: str | None = None,
    threads: int = 2,
    progress: bool = True,
    resume_dir: str | None = None,
    prompt_file: str | None = None,
    few_shot_file: str | None = None,
) -> dict[str, Any]:
    """Score the reference solutions of ``benchmark_path`` under the student in
    ``checkpoint_dir`` and write ``out_path`` (columns: module docstring).

    ``spec`` holds ``batch_size``, ``dtype`` and ``attn_implementation``
    (:func:`validate_likelihood_spec`); ``benchmark`` names the benchmark in the summary (the
    file's stem by default). With ``resume_dir``, finished batches are saved there and a rerun
    resumes. Returns a summary dict: rows, scored, left_out (empty solutions), truncated,
    tokens, nll and bytes (totals), bits_per_byte, seconds, ...; or ``{"skipped": ...}`` when
    no row has a solution (the file then has no rows).
    """
    import torch
    from tqdm import tqdm
    from transformers import AutoConfig

    from mathrecipes.training.model import transformers_progress

    t_start = time.perf_counter()
    s = validate_likelihood_spec(spec)
    name = benchmark or Path(benchmark_path).stem
    records = read_records(benchmark_path)
    if not any(has_solution(r) for r in records):
        write_table(OUTPUT_SCHEMA.empty_table(), out_path)
        log.info("benchmark %s has no reference solutions: wrote an empty %s", name, out_path)
        return {"skipped": f"benchmark {name} has no reference solutions"}

    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = resolve_dtype(s["dtype"], device)
    attn = resolve_attn_implementation(s["attn_implementation"], device)
    tokenizer = load_tokenizer(checkpoint_dir)
    max_positions = getattr(
        AutoConfig.from_pretrained(checkpoint_dir), "max_position_embeddings", None
    )
    fmt = eval_format(
        s.get("prompt"),
        [r["problem"] for r in records],
        prompt_file=prompt_file,
        few_shot_file=few_shot_file,
    )
    fmt.check_tokenizer(tokenizer, checkpoint_dir, key="the student's prompt_format")
    items = plan_items(tokenizer, records, max_positions, fmt)
    batches = plan_batches(items, s["batch_size"])

    done: dict[int, list[dict[str, Any]]] = {}
    store = None
    if resume_dir is not None:
        runtime = runtime_settings(torch, device, threads, dtype, attn_implementation=attn)
        store = Progress(
            resume_dir,
            job_key("likelihood", checkpoint_dir, benchmark_path, s, runtime),
            [[items[k].problem_id for k in batch] for batch in batches],
            columns=OUTPUT_SCHEMA.names,
            row_id=lambda r: r["problem_id"],
            what="likelihood",
            logger=log,
        )
        done = store.recover()
        if done:
            log.info(
                "resuming from %s: recovered %d of %d batches; scoring the rest",
                store.path,
                len(done),
                len(batches),
            )
    todo = [k for k in range(len(batches)) if k not in done]
    recovered = sum(len(rows) for rows in done.values())

    model = None
    if todo:
        with transformers_progress(progress):
            model = load_model(checkpoint_dir, device, attn, dtype)
    pad = pad_id(tokenizer)
    forward_s = 0.0
    n_forward = sum(len(b) for b in batches)
    bar = tqdm(
        total=n_forward,
        initial=recovered,
        disable=not progress,
        file=sys.stderr,
        desc="likelihood",
        unit="seq",
    )
    try:
        with stop_on_sigterm(store is not None, log) as stop, torch.inference_mode():
            for k in todo:
                if stop.requested:
                    raise LikelihoodInterrupted(
                        f"SIGTERM: stopped with {len(done)} of {len(batches)} batches saved in "
                        f"{store.path}; rerun the job to resume"
                    )
                batch = [items[j] for j in batches[k]]
                t0 = time.perf_counter()
                nlls = target_nll(model, [it.ids for it in batch], [it.tokens for it in batch], pad)
                forward_s += time.perf_counter() - t0
                rows = [_row(it, nll) for it, nll in zip(batch, nlls, strict=True)]
                if store is not None:
                    store.append(k, rows)
                done[k] = rows
                bar.update(len(batch))
    finally:
        bar.close()
        if store is not None:
            store.close()

    rows = [row for k in sorted(done) for row in done[k]]
    rows += [_row(it, 0.0) for it in items if not it.tokens]  # the prompt alone fills the window
    rows.sort(key=lambda r: r["problem_id"])
    write_table(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA), out_path)
    if store is not None:
        store.finish()
    total_nll = math.fsum(r["nll"] for r in rows)
    total_bytes = sum(r["bytes"] for r in rows)
    return {
        "benchmark": name,
        "rows": len(records),
        "scored": len(rows),
        "left_out": len(records) - len(items),
        "truncated": sum(r["truncated"] for r in rows),
        "max_positions": max_positions,
        "tokens": sum(r["tokens"] for r in rows),
        "nll": total_nll,
        "bytes": total_bytes,
        "bits_per_byte": bits_per_byte(total_nll, total_bytes),
        "recovered_rows": recovered,
        "forward_s": round(forward_s, 3),
        "seconds": round(time.perf_counter() - t_start, 3),
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "attn_implementation": attn,
        "batch_size": s["batch_size"],
    }
