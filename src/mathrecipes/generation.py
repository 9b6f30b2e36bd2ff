"""Generate student completions for a benchmark (``hf`` or ``vllm`` backend), resumably.

The input of every problem is ``[bos] + tok(format_prompt(problem))`` built by
:func:`mathrecipes.training.data.encode_prompts`, the same function that built the training
prompts. The (problem, sample) jobs are sorted by prompt length and cut into batches of
``batch_size``; rows are written sorted by ``(problem_id, sample)``.

Backends:

``hf``    :class:`HFDecoder`: the model's own forward in a decode loop with a static
          (preallocated) KV cache, left-padded batches (the attention mask drives the position
          ids, so padding does not shift positions), greedy or temperature / top-p sampling.
          With ``compile: true`` each decoding step is ``torch.compile``'d with CUDA graphs.
``vllm``  :class:`VLLMDecoder`: offline batched generation with vLLM (an optional package).

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

This module imports neither pydantic nor Snakemake at import time: ``benchmarks/bench_generate.py``
uses :class:`HFDecoder` on GPU machines that have only torch, transformers and pyarrow.
"""

from __future__ import annotations

import hashlib
import inspect
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

# Measured with benchmarks/bench_train.py on the 2-core CPU box: for batched decoding of the
# small students, eager attention with a static (preallocated) KV cache is the fastest and
# steadiest CPU setting; the default dynamic cache re-concatenates keys/values every step.
CPU_ATTN_IMPLEMENTATION = "eager"
CUDA_ATTN_IMPLEMENTATION = "sdpa"
CACHE_IMPLEMENTATION = "static"

# With compile: true the KV cache length is rounded up to a multiple of this and short batches
# are padded to batch_size, so that batches share a few compiled graphs instead of one each.
COMPILE_CACHE_BUCKET = 256
# On a GPU, "all rows finished?" is read back every this many steps (each read is a host sync).
CUDA_STOP_CHECK_EVERY = 16

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


def require_vllm() -> Any:
    """The ``vllm`` module, or an error that names the config key when it is not installed."""
    try:
        import vllm
    except ImportError:
        raise GenerationSpecError(
            "generation.backend is 'vllm' but the vllm package is not installed: "
            "`pip install vllm` (on a CUDA machine), or set generation.backend: hf"
        ) from None
    return vllm


# ------------------------------------------------------------------ device settings


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


def load_tokenizer(checkpoint_dir: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    checkpoint_dir: str,
    device: Any,
    attn_implementation: str | None = None,
    dtype: Any = None,
) -> Any:
    """The causal LM of a checkpoint folder in eval mode on ``device`` (float32 by default)."""
    import torch
    from transformers import AutoModelForCausalLM

    device = torch.device(device)
    model = AutoModelForCausalLM.from_pretrained(
        checkpoint_dir,
        dtype=dtype or torch.float32,
        attn_implementation=resolve_attn_implementation(attn_implementation, device),
    )
    model.to(device)
    model.eval()
    return model


def load_student(
    checkpoint_dir: str, device: Any, attn_implementation: str | None = None, dtype: Any = None
) -> tuple[Any, Any]:
    """(tokenizer, model) of a checkpoint folder, model in eval mode on ``device``."""
    return load_tokenizer(checkpoint_dir), load_model(
        checkpoint_dir, device, attn_implementation, dtype
    )


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


def left_pad(seqs: Sequence[Sequence[int]], pad: int) -> tuple[Any, Any]:
    """``(input_ids, attention_mask)`` tensors with the sequences left-padded to one length."""
    import torch

    longest = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), longest), pad, dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), longest), dtype=torch.long)
    for row, seq in enumerate(seqs):
        input_ids[row, longest - len(seq) :] = torch.tensor(seq, dtype=torch.long)
        attention_mask[row, longest - len(seq) :] = 1
    return input_ids, attention_mask


def batch_seed(seed: int, batch: int) -> int:
    """The sampling seed of batch ``batch``: a fixed function of ``(seed, batch)`` only."""
    digest = hashlib.sha256(f"mathrecipes-generation/{seed}/{batch}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


# ------------------------------------------------------------------ backends


class HFDecoder:
    """Batched decoding with a transformers causal LM and a static KV cache.

    ``generate(seqs, seed)`` takes token-id prompts and returns, per prompt, the new token ids
    (at most ``max_new_tokens``; a row that finished holds its eos, later tokens are noise to be
    cut there). The prompts are left-padded; prefill is one eager forward (logits of the last
    position only); each decoding step is one forward of a single token per row followed by
    greedy argmax or temperature / top-p sampling (top-p as transformers' ``TopPLogitsWarper``;
    the draw is the exponential-race form of a categorical sample, from a ``torch.Generator``
    seeded with ``seed``). With ``compile=True`` the step forward is ``torch.compile``'d with
    ``mode="reduce-overhead"`` (CUDA graphs on a GPU): the cache length is rounded up to
    :data:`COMPILE_CACHE_BUCKET` and short batches are padded to ``batch_size`` so that shapes
    repeat. On a GPU, finished rows are counted every :data:`CUDA_STOP_CHECK_EVERY` steps so that
    the loop does not wait for the device after every token.
    """

    def __init__(
        self,
        model: Any,
        *,
        eos: int,
        pad: int,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        compile: bool = False,
        batch_size: int | None = None,
    ) -> None:
        import torch

        self.model = model
        self.device = next(model.parameters()).device
        self.eos, self.pad = int(eos), int(pad)
        self.max_new_tokens = max_new_tokens
        self.temperature, self.top_p = temperature, top_p
        self.compile = compile
        self.batch_size = batch_size
        params = inspect.signature(model.forward).parameters
        # transformers >= 5.2x calls the cache argument `cache`; earlier 5.x `past_key_values`
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._caches: dict[tuple[int, int], Any] = {}
        self._step = (
            torch.compile(model, mode="reduce-overhead", dynamic=False) if compile else model
        )
        self.stop_check_every = CUDA_STOP_CHECK_EVERY if self.device.type == "cuda" else 1

    def _cache(self, batch: int, length: int) -> Any:
        """A static cache of this shape, reused (and zeroed) when the shape repeats."""
        from transformers import StaticCache

        cache = self._caches.get((batch, length))
        if cache is None:
            if not self.compile:
                self._caches.clear()  # eager: keep only the last shape's memory
            cache = StaticCache(config=self.model.config, max_cache_len=length)
            self._caches[(batch, length)] = cache
        else:
            cache.reset()
        return cache

    def _select(self, logits: Any, generator: Any) -> Any:
        import torch

        scores = logits.float()
        if self.temperature <= 0:
            return scores.argmax(dim=-1)
        scores = scores / self.temperature
        if self.top_p < 1.0:
            ordered, order = torch.sort(scores, descending=False)
            remove = ordered.softmax(dim=-1).cumsum(dim=-1) <= (1 - self.top_p)
            remove[..., -1:] = False  # keep at least the most likely token
            scores = scores.masked_fill(remove.scatter(1, order, remove), -float("inf"))
        probs = scores.softmax(dim=-1)
        race = torch.empty_like(probs).exponential_(generator=generator)
        return (probs / race).argmax(dim=-1)

    def generate(self, seqs: Sequence[Sequence[int]], seed: int = 0) -> list[list[int]]:
        import torch

        n_rows, n_new, dev = len(seqs), self.max_new_tokens, self.device
        seqs = list(seqs)
        if self.compile and self.batch_size and n_rows < self.batch_size:
            seqs += [seqs[-1]] * (self.batch_size - n_rows)  # same shape as the full batches
        generator = None
        if self.temperature > 0:
            generator = torch.Generator(device=dev)
            generator.manual_seed(seed)
        with torch.no_grad():  # as model.generate (known to work with CUDA graphs)
            input_ids, mask = left_pad(seqs, self.pad)
            input_ids, mask = input_ids.to(dev), mask.to(dev)
            batch, longest = input_ids.shape
            length = longest + n_new
            if self.compile:
                length = -(-length // COMPILE_CACHE_BUCKET) * COMPILE_CACHE_BUCKET
            # prompt mask, then ones for every new token: the causal mask hides future slots
            attention_mask = torch.ones((batch, length), dtype=torch.long, device=dev)
            attention_mask[:, :longest] = mask
            position_ids = (mask.cumsum(-1) - 1).masked_fill_(mask == 0, 1)
            cache = {self._cache_arg: self._cache(batch, length)}
            logits = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=True,
                logits_to_keep=1,
                **cache,
            ).logits[:, -1]
            position_ids = position_ids[:, -1:] + 1
            out = torch.full((batch, n_new), self.pad, dtype=torch.long, device=dev)
            finished = torch.zeros(batch, dtype=torch.bool, device=dev)
            steps = n_new
            for t in range(n_new):
                token = self._select(logits, generator)
                out[:, t] = token
                finished |= token == self.eos
                if t + 1 == n_new:
                    break
                if (t + 1) % self.stop_check_every == 0 and bool(finished[:n_rows].all()):
                    steps = t + 1
                    break
                if self.compile:
                    torch.compiler.cudagraph_mark_step_begin()
                logits = self._step(
                    input_ids=token[:, None],
                    attention_mask=attention_mask,
                    position_ids=position_ids,
                    use_cache=True,
                    **cache,
                ).logits[:, -1]
                position_ids = position_ids + 1
            return out[:n_rows, :steps].cpu().tolist()


class VLLMDecoder:
    """Offline batched generation with vLLM (same interface as :class:`HFDecoder`).

    Each prompt is its own request with its own seed (derived from the batch seed and the row),
    so samples do not depend on how vLLM schedules the batch. ``compile: false`` runs vLLM with
    ``enforce_eager=True`` (no CUDA graphs, no torch.compile).
    """

    def __init__(self, checkpoint_dir: str, g: Any, *, eos: int, dtype: Any) -> None:
        vllm = require_vllm()
        self.eos = int(eos)
        self.g = g
        self.llm = vllm.LLM(
            model=checkpoint_dir,
            tokenizer=checkpoint_dir,
            dtype=str(dtype).removeprefix("torch."),
            seed=g.seed,
            enforce_eager=not g.compile,
        )

    def generate(self, seqs: Sequence[Sequence[int]], seed: int = 0) -> list[list[int]]:
        from vllm import SamplingParams

        sampling = self.g.temperature > 0
        params = [
            SamplingParams(
                n=1,
                temperature=self.g.temperature,
                top_p=self.g.top_p if sampling else 1.0,
                max_tokens=self.g.max_new_tokens,
                seed=batch_seed(seed, row) if sampling else None,
                stop_token_ids=[self.eos],
                detokenize=False,
            )
            for row in range(len(seqs))
        ]
        prompts = [{"prompt_token_ids": list(s)} for s in seqs]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        new = []
        for output in outputs:
            completion = output.outputs[0]
            ids = list(completion.token_ids)
            if completion.finish_reason == "stop" and self.eos not in ids:
                ids.append(self.eos)  # stopped on eos without returning it
            new.append(ids)
        return new


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
        require_vllm()
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
