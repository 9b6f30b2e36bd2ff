"""Throughput of student training and generation on this machine (no assertions).

    HF_HUB_OFFLINE=1 python benchmarks/bench_train.py [--steps 80] [--threads 2] [--reps 2]

Prints, for the default student (4 layers, width 128, intermediate 344, 4 heads, byte-level
BPE with a vocab cap of 1000 trained on a synthetic word-problem corpus):

* training tokens/s (non-padding tokens through the real ``train_student`` loop) at 2000 tokens
  per step, for attention "sdpa" vs "eager";
* generation new tokens/s for 256 prompts in one batch, greedy, exactly 100 new tokens
  (``min_new_tokens`` forces the length), for attention eager/sdpa x KV cache static/dynamic,
  plus ``generate_file`` end to end on the same 256 problems (stops at eos).

Each configuration runs ``--reps`` times, alternating, and the best and median are printed: the
2-core box is shared and individual runs can be several times slower than usual.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402

from mathrecipes.config import GenerationSpec, StudentSpec  # noqa: E402
from mathrecipes.records import check_record, write_records  # noqa: E402

_NAMES = (
    "Ana Ben Cleo Dev Eli Fay Gus Hana Ivo Jade Kai Lena Milo Nia Omar Pia Quinn Rosa Sami "
    "Tara Umar Vera Wren Xavi Yusuf Zoe Aiko Bruno Chiara Dmitri Esther Farid Greta Hugo "
    "Ingrid Jonas"
)
_THINGS = (
    "apples pears stamps marbles books coins shells cards pencils stickers cookies tickets "
    "buttons flowers candles bottles ribbons tiles bricks seeds oranges lemons crayons "
    "puzzles kites batteries notebooks envelopes magnets feathers pebbles acorns cupcakes "
    "sandwiches postcards balloons erasers lanterns blankets umbrellas"
)
_ADJECTIVES = (
    "red blue green yellow purple shiny small large wooden glass striped spotted golden "
    "silver paper plastic fresh rare old new"
)
_PLACES = (
    "market school garden library museum station bakery harbor farm workshop theater stadium "
    "bookstore hospital airport factory orchard village castle laboratory"
)
NAMES, THINGS = _NAMES.split(), _THINGS.split()
ADJECTIVES, PLACES = _ADJECTIVES.split(), _PLACES.split()


def synthetic_rows(n: int, seed: int) -> list[dict[str, str]]:
    """Multi-step arithmetic word problems with a modest vocabulary (vocab ~600-1000)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        who, where = rng.choice(NAMES), rng.choice(PLACES)
        what = f"{rng.choice(ADJECTIVES)} {rng.choice(THINGS)}"
        total = rng.randrange(5, 100)
        problem = [f"{who} has {total} {what} at the {where}."]
        steps = []
        for k in range(rng.randrange(2, 5)):
            b = rng.randrange(1, 50)
            if rng.random() < 0.5:
                problem.append(f"{rng.choice(NAMES)} gives {who} {b} more {what}.")
                steps.append(f"Step {k + 1}: {total} + {b} = {total + b}")
                total += b
            else:
                problem.append(f"{who} sells {b} {what} to {rng.choice(NAMES)}.")
                steps.append(f"Step {k + 1}: {total} - {b} = {total - b}")
                total -= b
        problem.append(f"How many {what} does {who} have now?")
        rows.append(
            check_record(
                {
                    "id": f"bench/{i:06d}",
                    "source": "bench",
                    "problem": " ".join(problem),
                    "solution": "\n".join(steps) + f"\n\\boxed{{{total}}}",
                    "answer": str(total),
                    "answer_type": "integer",
                },
                where=f"row {i}",
            )
        )
    return rows


def spread(values: list[float]) -> str:
    return f"best {max(values):8.0f}  median {statistics.median(values):8.0f}  runs " + " ".join(
        f"{v:.0f}" for v in values
    )


def bench_training(work: Path, steps: int, threads: int, reps: int) -> Path:
    from mathrecipes.training import model as model_lib
    from mathrecipes.training import train_student

    train = work / "train.parquet"
    write_records(synthetic_rows(8000, 0), train)
    spec = StudentSpec(
        training={"max_steps": steps, "tokens_per_step": 2000, "warmup_steps": 10, "log_every": 20}
    ).model_dump(mode="json", by_alias=True)
    saved = model_lib.ATTN_IMPLEMENTATION
    default = model_lib.attn_implementation_for(model_lib.pick_device())
    results: dict[str, list[float]] = {"sdpa": [], "eager": []}
    ckpt = work / "student"
    info = {}
    for _ in range(reps):
        for impl in results:
            model_lib.ATTN_IMPLEMENTATION = impl
            out = ckpt if impl == default else work / f"student_{impl}"
            s = train_student(str(train), str(out), spec, seed=0, threads=threads, progress=False)
            results[impl].append(s["tokens_per_s"])
            info = s
    model_lib.ATTN_IMPLEMENTATION = saved
    print(
        f"\n== training: {info['params']:,} params, vocab {info['vocab_size']}, "
        f"{steps} steps at 2000 tokens/step, {threads} threads, device {info['device']} =="
    )
    print(f"   padding overhead {info['padded_tokens_seen'] / info['tokens_seen'] - 1:.1%}")
    for impl, values in results.items():
        mark = "  (used)" if impl == default else ""
        print(f"   train tokens/s  {impl:5s}  {spread(values)}{mark}")
    return ckpt


def bench_generation(ckpt: Path, work: Path, threads: int, reps: int) -> None:
    from mathrecipes.decoding import left_pad, load_student
    from mathrecipes.decoding.loaders import CPU_ATTN_IMPLEMENTATION
    from mathrecipes.generation import (
        CACHE_IMPLEMENTATION,
        generate_file,
        make_generation_config,
        validate_generation_spec,
    )
    from mathrecipes.training.data import encode_prompts

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = synthetic_rows(256, 1)
    bench_path = work / "bench.parquet"
    write_records(rows, bench_path)
    spec = GenerationSpec(max_new_tokens=100, batch_size=256).model_dump(mode="json")
    g = validate_generation_spec(spec)

    models = {impl: load_student(str(ckpt), device, impl) for impl in ("eager", "sdpa")}
    tok = models["eager"][0]
    prompts = encode_prompts(tok, [r["problem"] for r in rows])
    input_ids, mask = left_pad(prompts, tok.pad_token_id)
    input_ids, mask = input_ids.to(device), mask.to(device)
    configs = [(a, c) for a in ("eager", "sdpa") for c in ("static", "dynamic")]
    results: dict[tuple[str, str], list[float]] = {k: [] for k in configs}
    for _ in range(reps):
        for attn, cache in configs:
            model = models[attn][1]
            gc = make_generation_config(g, tok)
            gc.min_new_tokens = 100
            gc.cache_implementation = None if cache == "dynamic" else cache
            with torch.inference_mode():
                model.generate(input_ids=input_ids, attention_mask=mask, generation_config=gc)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                out = model.generate(input_ids=input_ids, attention_mask=mask, generation_config=gc)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t0
            new = (out.shape[1] - input_ids.shape[1]) * out.shape[0]
            results[(attn, cache)].append(new / dt)
    print(
        f"\n== generation: batch 256, greedy, 100 new tokens (forced), prompts "
        f"{min(map(len, prompts))}-{max(map(len, prompts))} tokens, {threads} threads =="
    )
    for (attn, cache), values in results.items():
        used = attn == CPU_ATTN_IMPLEMENTATION and cache == CACHE_IMPLEMENTATION
        mark = "  (used on CPU)" if used else ""
        print(f"   new tokens/s  {attn:5s} {cache:7s}  {spread(values)}{mark}")

    e2e = []
    for _ in range(reps):
        s = generate_file(
            str(ckpt), str(bench_path), str(work / "gen.parquet"), spec, threads, progress=False
        )
        e2e.append(s["tokens_per_s"])
    print(
        f"   generate_file end to end (stops at eos; {s['new_tokens']} new tokens, "
        f"{s['finish_reasons']}): new tokens/s {spread(e2e)}"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=80, help="training steps per run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2, help="runs per configuration")
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ckpt = bench_training(work, args.steps, args.threads, args.reps)
        bench_generation(ckpt, work, args.threads, args.reps)


if __name__ == "__main__":
    main()
