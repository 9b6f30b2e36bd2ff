"""Generate student completions for a benchmark (``hf`` or ``vllm`` backend), resumably.

The input of every problem is ``[bos] + tok(format_prompt(problem))`` (a plain student; a chat
student: ``tok(chat template rendering)``, :mod:`mathrecipes.prompting`) built by
:func:`mathrecipes.training.data.encode_prompts`, the same function that built the training
prompts. A benchmark's template and few-shot examples (the spec's ``prompt``) change the text put
to the student, never its format. The (problem, sample) jobs are sorted by prompt length and cut into batches of
``batch_size``; rows are written sorted by ``(problem_id, sample)``.

Backends (the decoders of :mod:`mathrecipes.decoding`):

``hf``    :class:`~mathrecipes.decoding.HFDecoder`: the model's own forward in a decode loop with a
          static (preallocated) KV cache, greedy or temperature / top-p sampling. With
          ``compile: true`` each decoding step is ``torch.compile``'d with CUDA graphs.
``vllm``  :class:`~mathrecipes.decoding.VLLMDecoder`: offline batched generation with vLLM (an
          optional package).

Sampling is deterministic per batch: batch ``k`` draws from a generator seeded by
``(seed, k)``, so a resumed run samples exactly what an uninterrupted run does (the batches are a
fixed function of the benchmark and the spec).

Resume (:mod:`mathrecipes.resumable`): given ``resume_dir``, every finished batch is appended
to ``resume_dir/progress.jsonl`` (one JSON line per batch; append, flush, fsync) under a key that
hashes the checkpoint folder's files, the benchmark file, the spec, the generation code and the
device settings. A rerun with the same key keeps those rows and generates only the missing
batches; progress made under another key is discarded (logged), and a torn last line left by a
kill is dropped (logged). SIGTERM finishes the batch in flight, saves it and raises
:class:`GenerationInterrupted`. The progress file is deleted once the parquet is written.

Output parquet columns (one row per problem and sample):

``problem_id`` str, ``sample`` int, ``prompt`` str, ``completion`` str (the new tokens decoded,
special tokens skipped), ``n_prompt_tokens`` int (bos included), ``n_completion_tokens`` int
(tokens generated, the final eos included; ``max_new_tokens`` when cut off), ``finish_reason``
``"eos" | "length" | "stop"`` (stop: the text reached a stop string and ``completion`` is cut
before it; ``n_completion_tokens`` counts up to the token that completed it), ``seconds`` float (the batch wall time shared over its rows; the only
nondeterministic column).

This module imports neither pydantic nor Snakemake at import time.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from mathrecipes.decoding import (
    HFDecoder,
    VLLMDecoder,
    batch_seed,
    cut_at_stop,
    load_model,
    load_tokenizer,
    require_vllm,
    resolve_attn_implementation,
    resolve_dtype,
)
from mathrecipes.prompting import eval_format
from mathrecipes.records import read_records, write_table
from mathrecipes.resumable import (
    Progress,
    job_key,
    package_version,
    runtime_settings,
    stop_on_sigterm,
)
from mathrecipes.training.data import encode_prompts, eos_id, pad_id, prompt_texts

log = logging.getLogger(__name__)

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

# The KV cache of the decoders (HFDecoder preallocates it), named for transformers' generate.
CACHE_IMPLEMENTATION = "static"


class GenerationSpecError(ValueError):
    """A generation spec that is missing keys or has invalid values."""


class GenerationInterrupted(RuntimeError):
    """SIGTERM arrived; the finished batches are saved in the resume folder."""


# Keys a job's spec may leave out: no stop strings, no per-benchmark table (a job's spec is one
# benchmark's, already resolved), and ``prompt`` (the default format; read by eval_format).
OPTIONAL_KEYS = ("stop", "benchmarks", "prompt")


def validate_generation_spec(spec: Mapping[str, Any]) -> Any:
    """Check a GenerationSpec dict strictly (every key present but :data:`OPTIONAL_KEYS`) and
    return the model (``prompt`` is not part of it)."""
    from pydantic import ValidationError

    from mathrecipes.config import GenerationSpec

    if not isinstance(spec, Mapping):
        raise GenerationSpecError(f"generation spec must be a mapping, got {type(spec).__name__}")
    missing = [k for k in GenerationSpec.model_fields if k not in spec and k not in OPTIONAL_KEYS]
    if missing:
        raise GenerationSpecError(f"generation spec is missing key(s): {', '.join(missing)}")
    try:
        g = GenerationSpec.model_validate({k: v for k, v in spec.items() if k != "prompt"})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        raise GenerationSpecError(f"invalid generation spec: {problems}") from None
    return g


# ------------------------------------------------------------------ transformers' equivalent


def make_generation_config(g: Any, tokenizer: Any) -> Any:
    """The ``transformers.GenerationConfig`` equivalent of a GenerationSpec ``g`` (for
    ``model.generate``; the hf backend runs :class:`HFDecoder` instead)."""
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


# ------------------------------------------------------------------ the job


def _rows_of_batch(
    batch: Sequence[tuple[int, int]],
    generated: Sequence[Sequence[int]],
    records: Sequence[Mapping[str, Any]],
    prompts: Sequence[str],
    prompt_ids: Sequence[Sequence[int]],
    tokenizer: Any,
    eos: int,
    seconds: float,
    stop: Sequence[str] = (),
) -> list[dict[str, Any]]:
    rows, kept = [], []
    for (i, s), new in zip(batch, generated, strict=True):
        new = list(new)
        if eos in new:
            cut = new.index(eos)
            kept.append(new[:cut])
            n_new, reason = cut + 1, "eos"
        else:
            kept.append(new)
            n_new, reason = len(new), "length"
        rows.append(
            {
                "problem_id": str(records[i]["id"]),
                "sample": s,
                "prompt": prompts[i],
                "completion": "",
                "n_prompt_tokens": len(prompt_ids[i]),
                "n_completion_tokens": n_new,
                "finish_reason": reason,
                "seconds": seconds / len(batch),
            }
        )
    texts = tokenizer.batch_decode(
        kept, skip_special_tokens=True, clean_up_tokenization_spaces=False
    )
    for row, text, ids in zip(rows, texts, kept, strict=True):
        row["completion"] = text
        cut = cut_at_stop(ids, stop, _decoder(tokenizer)) if stop else None
        if cut is not None:
            row["completion"], row["n_completion_tokens"] = cut
            row["finish_reason"] = "stop"
    return rows


def _decoder(tokenizer: Any) -> Any:
    def decode(ids: Sequence[int]) -> str:
        return tokenizer.decode(
            list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False
        )

    return decode


def generate_file(
    checkpoint_dir: str,
    benchmark_path: str,
    out_path: str,
    spec: Mapping[str, Any],
    threads: int = 2,
    progress: bool = True,
    resume_dir: str | None = None,
    prompt_file: str | None = None,
    few_shot_file: str | None = None,
) -> dict[str, Any]:
    """Generate completions of the student in ``checkpoint_dir`` for every benchmark problem.

    ``spec`` is a GenerationSpec dict (one benchmark's effective settings) with, optionally,
    ``prompt``: the student's format and the benchmark's template and few-shot draw
    (:func:`mathrecipes.prompting.eval_format`; ``prompt_file`` is the template file,
    ``few_shot_file`` the dataset the examples come from). Stop strings (``stop``) end an answer
    where its text first holds one. Greedy when ``temperature == 0``; otherwise
    ``n_samples`` samples per problem (temperature, top_p; top-k off), seeded per batch by
    ``(seed, batch index)``: deterministic for the same spec, benchmark, checkpoint and machine.
    With ``resume_dir``, finished batches are saved there and a rerun resumes (module docstring).
    Writes ``out_path`` (see the module docstring for the columns) and returns a summary dict.
    """
    import torch
    from tqdm import tqdm

    from mathrecipes.training.model import transformers_progress

    t_start = time.perf_counter()
    g = validate_generation_spec(spec)
    if g.backend == "vllm":
        require_vllm("generation.backend", error=GenerationSpecError)
    records = read_records(benchmark_path)
    if not records:
        raise ValueError(f"{benchmark_path}: the benchmark is empty (0 records)")
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = resolve_dtype(g.dtype, device)
    attn = resolve_attn_implementation(g.attn_implementation, device)

    tokenizer = load_tokenizer(checkpoint_dir)
    eos, pad = eos_id(tokenizer), pad_id(tokenizer)
    problems = [r["problem"] for r in records]
    fmt = eval_format(
        spec.get("prompt"), problems, prompt_file=prompt_file, few_shot_file=few_shot_file
    )
    fmt.check_tokenizer(tokenizer, checkpoint_dir, key="the student's prompt_format")
    prompts = prompt_texts(tokenizer, problems, fmt)
    prompt_ids = encode_prompts(tokenizer, problems, fmt)
    n_samples = g.n_samples if g.temperature > 0 else 1
    jobs = [(i, s) for i in range(len(records)) for s in range(n_samples)]
    jobs.sort(key=lambda j: (len(prompt_ids[j[0]]), j[0], j[1]))  # length-sorted batches
    batches = [jobs[start : start + g.batch_size] for start in range(0, len(jobs), g.batch_size)]

    done: dict[int, list[dict[str, Any]]] = {}
    store = None
    if resume_dir is not None:
        runtime = runtime_settings(  # what else can change the numbers
            torch,
            device,
            threads,
            dtype,
            attn_implementation=attn if g.backend == "hf" else None,
            vllm=package_version("vllm") if g.backend == "vllm" else None,
        )
        plan = [[(str(records[i]["id"]), s) for i, s in batch] for batch in batches]
        spec_json = g.model_dump(mode="json", by_alias=True)
        if spec.get("prompt"):  # the texts put to the student (template, few-shot examples)
            spec_json["prompts_sha256"] = hashlib.sha256("\0".join(prompts).encode()).hexdigest()
        store = Progress(
            resume_dir,
            job_key("generate", checkpoint_dir, benchmark_path, spec_json, runtime),
            plan,
            columns=OUTPUT_SCHEMA.names,
            row_id=lambda r: (r["problem_id"], r["sample"]),
            what="generation",
            logger=log,
        )
        done = store.recover()
        if done:
            log.info(
                "resuming from %s: recovered %d of %d rows (%d of %d batches); generating the rest",
                store.path,
                sum(len(rows) for rows in done.values()),
                len(jobs),
                len(done),
                len(batches),
            )
    todo = [k for k in range(len(batches)) if k not in done]
    recovered_rows = sum(len(rows) for rows in done.values())

    decoder: Any = None
    if todo and g.backend == "vllm":
        decoder = VLLMDecoder(checkpoint_dir, g, eos=eos, dtype=dtype)
    elif todo:
        with transformers_progress(progress):
            model = load_model(checkpoint_dir, device, attn, dtype)
        decoder = HFDecoder(
            model,
            eos=eos,
            pad=pad,
            max_new_tokens=g.max_new_tokens,
            temperature=g.temperature,
            top_p=g.top_p,
            compile=g.compile,
            batch_size=min(g.batch_size, len(jobs)),
            stop=g.stop,
            tokenizer=tokenizer,
        )

    gen_tokens = 0
    gen_s = 0.0
    bar = tqdm(
        total=len(jobs),
        initial=recovered_rows,
        disable=not progress,
        file=sys.stderr,
        desc="generate",
        unit="seq",
    )
    try:
        with stop_on_sigterm(store is not None, log) as stop:
            for k in todo:
                if stop.requested:
                    raise GenerationInterrupted(
                        f"SIGTERM: stopped with {sum(map(len, done.values()))} of {len(jobs)} rows "
                        f"saved in {store.path}; rerun the job to resume"
                    )
                batch = batches[k]
                t0 = time.perf_counter()
                generated = decoder.generate(
                    [prompt_ids[i] for i, _ in batch], batch_seed(g.seed, k)
                )
                dt = time.perf_counter() - t0
                rows = _rows_of_batch(
                    batch, generated, records, prompts, prompt_ids, tokenizer, eos, dt, g.stop
                )
                if store is not None:
                    store.append(k, rows)
                done[k] = rows
                gen_s += dt
                gen_tokens += sum(r["n_completion_tokens"] for r in rows)
                bar.update(len(batch))
    finally:
        bar.close()
        if store is not None:
            store.close()

    rows = [row for k in sorted(done) for row in done[k]]
    rows.sort(key=lambda r: (r["problem_id"], r["sample"]))
    write_table(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA), out_path)
    if store is not None:
        store.finish()
    reasons = {"eos": 0, "length": 0, **({"stop": 0} if g.stop else {})}
    for r in rows:
        reasons[r["finish_reason"]] += 1
    return {
        "n_rows": len(rows),
        "n_problems": len(records),
        "recovered_rows": recovered_rows,
        "new_tokens": sum(r["n_completion_tokens"] for r in rows),
        "tokens_per_s": round(gen_tokens / gen_s, 1) if gen_s > 0 else None,
        "generate_s": round(gen_s, 3),
        "wall_s": round(time.perf_counter() - t_start, 3),
        "finish_reasons": reasons,
        "backend": g.backend,
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "attn_implementation": attn if g.backend == "hf" else None,
        "compile": g.compile,
        "batch_size": g.batch_size,
    }
