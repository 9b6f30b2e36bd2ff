"""Generate student completions for a benchmark (Hugging Face ``model.generate``).

The input of every problem is ``[bos] + tok(format_prompt(problem))`` built by
:func:`mathrecipes.training.data.encode_prompts`, the same function that built the training
prompts. Prompts are sorted by length and left-padded into batches (the attention mask drives
the position ids, so padding does not shift positions); rows are written sorted by
``(problem_id, sample)``.

Output parquet columns (one row per problem and sample):

``problem_id`` str, ``sample`` int, ``prompt`` str, ``completion`` str (the new tokens decoded,
special tokens skipped), ``n_prompt_tokens`` int (bos included), ``n_completion_tokens`` int
(tokens generated, the final eos included; ``max_new_tokens`` when cut off), ``finish_reason``
``"eos" | "length"``, ``seconds`` float (the batch wall time shared over its rows; the only
nondeterministic column).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from mathrecipes.prompting import format_prompt
from mathrecipes.records import read_records, write_table
from mathrecipes.training.data import encode_prompts, eos_id, pad_id

OUTPUT_SCHEMA = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("sample", pa.int64(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("completion", pa.string(), nullable=False),
        pa.field("n_prompt_tokens", pa.int64(), nullable=False),
        pa.field("n_completion_tokens", pa.int64(), nullable=False),
        pa.field("finish_reason", pa.string(), nullable=False),
        pa.field("seconds", pa.float64(), nullable=False),
    ]
)

# Measured with benchmarks/bench_train.py on the 2-core CPU box: for batched decoding of the
# small students, eager attention with a static (preallocated) KV cache is the fastest and
# steadiest CPU setting; the default dynamic cache re-concatenates keys/values every step.
CPU_ATTN_IMPLEMENTATION = "eager"
CUDA_ATTN_IMPLEMENTATION = "sdpa"
CACHE_IMPLEMENTATION = "static"


class GenerationSpecError(ValueError):
    """A generation spec that is missing keys or has invalid values."""


def validate_generation_spec(spec: Mapping[str, Any]) -> Any:
    """Check a GenerationSpec dict strictly (every key present) and return the model."""
    from pydantic import ValidationError

    from mathrecipes.config import GenerationSpec

    if not isinstance(spec, Mapping):
        raise GenerationSpecError(f"generation spec must be a mapping, got {type(spec).__name__}")
    missing = [k for k in GenerationSpec.model_fields if k not in spec]
    if missing:
        raise GenerationSpecError(f"generation spec is missing key(s): {', '.join(missing)}")
    try:
        g = GenerationSpec.model_validate(dict(spec))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        raise GenerationSpecError(f"invalid generation spec: {problems}") from None
    if g.backend != "hf":
        raise GenerationSpecError(f"unsupported generation backend {g.backend!r}")
    return g


def load_student(checkpoint_dir: str, device: Any, attn_implementation: str | None = None):
    """(tokenizer, model) of a checkpoint folder, model in fp32 eval mode on ``device``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = torch.device(device)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        checkpoint_dir,
        dtype=torch.float32,
        attn_implementation=attn_implementation
        or (CUDA_ATTN_IMPLEMENTATION if device.type == "cuda" else CPU_ATTN_IMPLEMENTATION),
    )
    model.to(device)
    model.eval()
    return tokenizer, model


def make_generation_config(g: Any, tokenizer: Any) -> Any:
    """The ``transformers.GenerationConfig`` for a validated GenerationSpec ``g``."""
    from transformers import GenerationConfig

    sampling = g.temperature > 0
    return GenerationConfig(
        max_new_tokens=g.max_new_tokens,
        min_new_tokens=0,
        do_sample=sampling,
        temperature=g.temperature if sampling else None,
        top_p=g.top_p if sampling else None,
        top_k=0 if sampling else None,  # no hidden top-k truncation when sampling
        num_beams=1,
        # explicit neutral values: a checkpoint's own generation_config must not add these
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        eos_token_id=eos_id(tokenizer),
        pad_token_id=pad_id(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        use_cache=True,
        cache_implementation=CACHE_IMPLEMENTATION,
    )


def left_pad(seqs: list[list[int]], pad: int) -> tuple[Any, Any]:
    """``(input_ids, attention_mask)`` tensors with the sequences left-padded to one length."""
    import torch

    longest = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), longest), pad, dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), longest), dtype=torch.long)
    for row, seq in enumerate(seqs):
        input_ids[row, longest - len(seq) :] = torch.tensor(seq, dtype=torch.long)
        attention_mask[row, longest - len(seq) :] = 1
    return input_ids, attention_mask


def generate_file(
    checkpoint_dir: str,
    benchmark_path: str,
    out_path: str,
    spec: Mapping[str, Any],
    threads: int = 2,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate completions of the student in ``checkpoint_dir`` for every benchmark problem.

    ``spec`` is a GenerationSpec dict. Greedy when ``temperature == 0``; otherwise
    ``n_samples`` samples per problem (temperature, top_p; top-k off), seeded by ``seed``:
    deterministic for the same spec, benchmark, checkpoint and machine. Writes ``out_path``
    (see the module docstring for the columns) and returns a summary dict.
    """
    import torch
    from tqdm import tqdm

    from mathrecipes.training.model import transformers_progress

    t_start = time.perf_counter()
    g = validate_generation_spec(spec)
    records = read_records(benchmark_path)
    if not records:
        raise ValueError(f"{benchmark_path}: the benchmark is empty (0 records)")
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with transformers_progress(progress):
        tokenizer, model = load_student(checkpoint_dir, device)

    eos, pad = eos_id(tokenizer), pad_id(tokenizer)
    prompt_ids = encode_prompts(tokenizer, [r["problem"] for r in records])
    sampling = g.temperature > 0
    gen_config = make_generation_config(g, tokenizer)
    n_samples = g.n_samples if sampling else 1
    jobs = [(i, s) for i in range(len(records)) for s in range(n_samples)]
    jobs.sort(key=lambda j: (len(prompt_ids[j[0]]), j[0], j[1]))  # length-sorted batches

    rows: list[dict[str, Any]] = []
    new_tokens = 0
    gen_s = 0.0
    torch.manual_seed(g.seed)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(g.seed)
    bar = tqdm(total=len(jobs), disable=not progress, file=sys.stderr, desc="generate", unit="seq")
    for start in range(0, len(jobs), g.batch_size):
        batch = jobs[start : start + g.batch_size]
        seqs = [prompt_ids[i] for i, _ in batch]
        input_ids, attention_mask = left_pad(seqs, pad)
        longest = input_ids.shape[1]
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                generation_config=gen_config,
            )
        generated = out[:, longest:].cpu().tolist()
        dt = time.perf_counter() - t0
        gen_s += dt
        kept: list[list[int]] = []
        for (i, s), seq, new in zip(batch, seqs, generated, strict=True):
            if eos in new:
                cut = new.index(eos)
                kept.append(new[:cut])
                n_new, reason = cut + 1, "eos"
            else:
                kept.append(new)
                n_new, reason = len(new), "length"
            new_tokens += n_new
            rows.append(
                {
                    "problem_id": str(records[i]["id"]),
                    "sample": s,
                    "prompt": format_prompt(records[i]["problem"]),
                    "completion": "",
                    "n_prompt_tokens": len(seq),
                    "n_completion_tokens": n_new,
                    "finish_reason": reason,
                    "seconds": dt / len(batch),
                }
            )
        texts = tokenizer.batch_decode(
            kept, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        for row, text in zip(rows[-len(batch) :], texts, strict=True):
            row["completion"] = text
        bar.update(len(batch))
    bar.close()

    rows.sort(key=lambda r: (r["problem_id"], r["sample"]))
    table = pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)
    write_table(table, out_path)
    reasons = {"eos": 0, "length": 0}
    for r in rows:
        reasons[r["finish_reason"]] += 1
    return {
        "n_rows": len(rows),
        "n_problems": len(records),
        "new_tokens": new_tokens,
        "tokens_per_s": round(new_tokens / gen_s, 1) if gen_s > 0 else None,
        "generate_s": round(gen_s, 3),
        "wall_s": round(time.perf_counter() - t_start, 3),
        "finish_reasons": reasons,
        "device": str(device),
        "batch_size": g.batch_size,
    }
