"""Generate student completions for a benchmark (``hf`` or ``vllm`` backend), resumably.

The input of every problem is ``[bos] + tok(format_prompt(problem))`` built by
:func:`mathrecipes.training.data.encode_prompts`, the same function that built the training
prompts. The (problem, sample) jobs are sorted by prompt length and cut into batches of
``batch_size``; rows are written sorted by ``(problem_id, sample)``.

Backends (the decoders of :mod:`mathrecipes.decoding`):

``hf``    :class:`~mathrecipes.decoding.HFDecoder`: the model's own forward in a decode loop with a
          static (preallocated) KV cache, greedy or temperature / top-p sampling. With
          ``compile: true`` each decoding step is ``torch.compile``'d with CUDA graphs.
``vllm``  :class:`~mathrecipes.decoding.VLLMDecoder`: offline batched generation with vLLM (an
          optional package).

Sampling is deterministic per batch: batch ``k`` draws from a generator seeded by
``(seed, k)``, so a resumed run samples exactly what an uninterrupted run does.

Resume: given ``resume_dir``, every finished batch is appended to
``resume_dir/progress.jsonl`` (one JSON line per batch; append, flush, fsync) under a key that
hashes the checkpoint folder's files, the benchmark file, the spec, the generation code and the
device settings. A rerun with the same key keeps those rows and generates only the missing
batches; progress made under another key is discarded (logged), and a torn last line left by a
kill is dropped (logged). SIGTERM finishes the batch in flight, saves it and raises
:class:`GenerationInterrupted`. The progress file is deleted once the parquet is written.

Output parquet columns (one row per problem and sample):

``problem_id`` str, ``sample`` int, ``prompt`` str, ``completion`` str (the new tokens decoded,
special tokens skipped), ``n_prompt_tokens`` int (bos included), ``n_completion_tokens`` int
(tokens generated, the final eos included; ``max_new_tokens`` when cut off), ``finish_reason``
``"eos" | "length"``, ``seconds`` float (the batch wall time shared over its rows; the only
nondeterministic column).

This module imports neither pydantic nor Snakemake at import time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa

from mathrecipes.decoding import (
    HFDecoder,
    VLLMDecoder,
    batch_seed,
    load_model,
    load_tokenizer,
    require_vllm,
    resolve_attn_implementation,
    resolve_dtype,
)
from mathrecipes.prompting import format_prompt
from mathrecipes.records import read_records, write_table
from mathrecipes.training.data import encode_prompts, eos_id, pad_id

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

PROGRESS_FILE = "progress.jsonl"
PROGRESS_FORMAT = 1


class GenerationSpecError(ValueError):
    """A generation spec that is missing keys or has invalid values."""


class GenerationInterrupted(RuntimeError):
    """SIGTERM arrived; the finished batches are saved in the resume folder."""


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


# ------------------------------------------------------------------ resume


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def progress_key(
    checkpoint_dir: str, benchmark_path: str, spec: Mapping[str, Any], runtime: Mapping[str, Any]
) -> str:
    """sha256 over everything that determines the rows of a generation job."""
    from mathrecipes.provenance import code_fingerprint, file_sha256, path_sha256

    parts = {
        "format": PROGRESS_FORMAT,
        "checkpoint": path_sha256(checkpoint_dir),
        "benchmark": file_sha256(benchmark_path),
        "spec": dict(spec),
        "code": code_fingerprint("generate"),
        "runtime": dict(runtime),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class Progress:
    """The finished batches of one generation job, in ``resume_dir/progress.jsonl``.

    The first line is a header with the job's key; then one line per finished batch,
    ``{"batch": k, "rows": [...]}``, appended, flushed and fsynced. ``plan[k]`` lists the
    ``(problem_id, sample)`` of batch ``k``; a batch line that does not match it is not trusted.
    """

    def __init__(self, resume_dir: str | Path, key: str, plan: Sequence[Sequence[tuple[str, int]]]):
        self.dir = Path(resume_dir)
        self.path = self.dir / PROGRESS_FILE
        self.key = key
        self.plan = [list(map(tuple, ids)) for ids in plan]
        self._fh: Any = None

    def _batch(self, line: bytes) -> tuple[int, list[dict[str, Any]]] | None:
        """``(k, rows)`` of a well-formed batch line that matches the plan, else None."""
        try:
            entry = json.loads(line)
            k, rows = entry["batch"], entry["rows"]
            ids = [(r["problem_id"], r["sample"]) for r in rows]
            if not (isinstance(k, int) and 0 <= k < len(self.plan) and ids == self.plan[k]):
                return None
            if any(set(r) != set(OUTPUT_SCHEMA.names) for r in rows):
                return None
        except (ValueError, TypeError, KeyError):
            return None
        return k, rows

    def recover(self) -> dict[int, list[dict[str, Any]]]:
        """Read what a previous attempt saved (dropping stale or torn parts) and open for
        appending. Returns ``{batch index: rows}``."""
        done: dict[int, list[dict[str, Any]]] = {}
        if self.path.exists():
            data = self.path.read_bytes()
            lines = data.split(b"\n")  # the last item is b"" when the file ends with a newline
            try:
                header = json.loads(lines[0]) if len(lines) > 1 else None
            except ValueError:
                header = None
            if not isinstance(header, dict) or header.get("key") != self.key:
                made_for = header.get("key", "?")[:12] if isinstance(header, dict) else "unreadable"
                log.warning(
                    "discarding stale generation progress %s (key %s; this job's key %s: the "
                    "checkpoint, benchmark, spec, code or device settings differ)",
                    self.path,
                    made_for,
                    self.key[:12],
                )
                self.path.unlink()
            else:
                good = len(lines[0]) + 1
                for line in lines[1:-1]:
                    batch = self._batch(line)
                    if batch is None:
                        break
                    done[batch[0]] = batch[1]
                    good += len(line) + 1
                if good < len(data):
                    log.warning(
                        "dropping %d bytes of torn or unreadable progress at the end of %s "
                        "(a kill during a write); their batches are generated again",
                        len(data) - good,
                        self.path,
                    )
                    with open(self.path, "r+b") as fh:
                        fh.truncate(good)
                        fh.flush()
                        os.fsync(fh.fileno())
        if not self.path.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            header = {"key": self.key, "format": PROGRESS_FORMAT, "batches": len(self.plan)}
            with open(self.path, "wb") as fh:
                fh.write(json.dumps(header).encode() + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            _fsync_dir(self.dir)
        self._fh = open(self.path, "ab")  # noqa: SIM115 - closed by finish()/close()
        return done

    def append(self, k: int, rows: Sequence[Mapping[str, Any]]) -> None:
        line = json.dumps({"batch": k, "rows": list(rows)}).encode()
        self._fh.write(line + b"\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def finish(self) -> None:
        """Delete the progress (the final output is written)."""
        self.close()
        self.path.unlink(missing_ok=True)
        with suppress(OSError):  # other files there: leave the folder
            self.dir.rmdir()


class _StopRequest:
    requested = False


@contextmanager
def _stop_on_sigterm(enabled: bool) -> Iterator[_StopRequest]:
    """While inside, SIGTERM only sets ``.requested`` (checked between batches)."""
    stop = _StopRequest()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: Any) -> None:
        log.warning("SIGTERM: finishing the batch in flight, saving it, then stopping")
        stop.requested = True

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


# ------------------------------------------------------------------ the job


def _rows_of_batch(
    batch: Sequence[tuple[int, int]],
    generated: Sequence[Sequence[int]],
    records: Sequence[Mapping[str, Any]],
    prompt_ids: Sequence[Sequence[int]],
    tokenizer: Any,
    eos: int,
    seconds: float,
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
                "prompt": format_prompt(records[i]["problem"]),
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
    for row, text in zip(rows, texts, strict=True):
        row["completion"] = text
    return rows


def generate_file(
    checkpoint_dir: str,
    benchmark_path: str,
    out_path: str,
    spec: Mapping[str, Any],
    threads: int = 2,
    progress: bool = True,
    resume_dir: str | None = None,
) -> dict[str, Any]:
    """Generate completions of the student in ``checkpoint_dir`` for every benchmark problem.

    ``spec`` is a GenerationSpec dict. Greedy when ``temperature == 0``; otherwise
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
    prompt_ids = encode_prompts(tokenizer, [r["problem"] for r in records])
    n_samples = g.n_samples if g.temperature > 0 else 1
    jobs = [(i, s) for i in range(len(records)) for s in range(n_samples)]
    jobs.sort(key=lambda j: (len(prompt_ids[j[0]]), j[0], j[1]))  # length-sorted batches
    batches = [jobs[start : start + g.batch_size] for start in range(0, len(jobs), g.batch_size)]

    done: dict[int, list[dict[str, Any]]] = {}
    store = None
    if resume_dir is not None:
        runtime = {  # what else can change the numbers: a GPU model, CPU threads, versions
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "threads": threads if device.type == "cpu" else None,
            "dtype": str(dtype),
            "attn_implementation": attn if g.backend == "hf" else None,
            "torch": _package_version("torch"),
            "transformers": _package_version("transformers"),
            "vllm": _package_version("vllm") if g.backend == "vllm" else None,
        }
        plan = [[(str(records[i]["id"]), s) for i, s in batch] for batch in batches]
        key = progress_key(
            checkpoint_dir, benchmark_path, g.model_dump(mode="json", by_alias=True), runtime
        )
        store = Progress(resume_dir, key, plan)
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
        with _stop_on_sigterm(enabled=store is not None) as stop:
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
                rows = _rows_of_batch(batch, generated, records, prompt_ids, tokenizer, eos, dt)
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
    reasons = {"eos": 0, "length": 0}
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
