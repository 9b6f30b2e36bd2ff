"""Training speed of the project's own loop at Qwen2.5-0.5B size: tokens/s and MFU (no asserts).

    python benchmarks/bench_gpu_train.py                 # on a GPU: every variant, bf16
    python benchmarks/bench_gpu_train.py --small         # CPU smoke run (tiny model, 3 steps)
    python benchmarks/bench_gpu_train.py --variants packed-sdpa,packed-sdpa-compile --json

The model is a Llama with the dimensions of Qwen2.5-0.5B (hidden 896, intermediate 4864, 24
layers, 14 heads, 2 KV heads, vocab 151936, tied embeddings; random weights, nothing is
downloaded). Documents are synthetic token sequences whose lengths follow a fixed log-normal
distribution (median about 600 tokens, capped at the 2048-token sequence length), with a
100-token prompt that carries no loss, as in SFT. Each variant runs the real
``mathrecipes.training.loop.optimize`` (the loop ``train_student`` runs) for ``--warmup``
steps that are not timed (compilation happens there) and ``--steps`` timed steps of
``--tokens-per-step`` tokens (real tokens with packing; a padded-token budget without).

Variants (``--variants``, comma-separated; default all that are available):

* ``padded-eager``: length-bucketed padded batches, eager attention (the plain HF baseline);
* ``packed-sdpa``: packing (position ids restart per document, no cross-document attention),
  SDPA attention with the block-diagonal mask;
* ``packed-sdpa-compile``: the same plus ``torch.compile``;
* ``packed-flex-compile``: packing with FlexAttention (a block-sparse document mask) + compile;
* ``packed-flash``: packing with ``flash_attention_2`` (varlen kernels), when flash-attn is
  installed.

Printed per variant: real tokens/s, MFU = 6 x params x tokens/s / peak (the usual convention,
params counted once for tied embeddings, attention FLOPs left out) and the same with attention
FLOPs (6 x layers x hidden x sum of squared document lengths per step, causal), peak memory.
Peak bf16 dense FLOP/s is read from the GPU name (H100 / H200 SXM: 989 TFLOP/s; H100 PCIe:
756) or given with ``--peak-tflops``.

Imports only torch, transformers, accelerate and the project's training modules (no snakemake,
polars, datasets, pyarrow or math-verify), so it runs on a bare GPU image with the package on
``PYTHONPATH=src``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mathrecipes.training.data import Examples, plan_batches  # noqa: E402
from mathrecipes.training.loop import make_accelerator, optimize  # noqa: E402
from mathrecipes.training.model import count_params  # noqa: E402

QWEN25_05B = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "rope_theta": 1_000_000.0,
    "tie_word_embeddings": True,
}
SMALL = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 512,
    "max_position_embeddings": 512,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
}

VARIANTS = {
    "padded-eager": {"packing": False, "attn": "eager", "compile": False},
    "packed-sdpa": {"packing": True, "attn": "sdpa", "compile": False},
    "packed-sdpa-compile": {"packing": True, "attn": "sdpa", "compile": True},
    "packed-flex-compile": {"packing": True, "attn": "flex_attention", "compile": True},
    "packed-flash": {"packing": True, "attn": "flash_attention_2", "compile": False},
}

PEAK_BF16_TFLOPS = (("H200", 989.4), ("H100 PCIe", 756.0), ("H100", 989.4), ("A100", 312.0))


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16_TFLOPS:
        if key in name:
            return value
    return None


def synthetic_examples(n: int, seq_len: int, vocab: int, seed: int) -> Examples:
    """``n`` documents of log-normal length (median ~600 tokens, within [128, seq_len]) made of
    random token ids, a 100-token prompt each (no loss on it)."""
    rng = random.Random(seed)
    ex = Examples()
    for _ in range(n):
        length = int(min(seq_len, max(128, rng.lognormvariate(math.log(600), 0.6))))
        ids = [rng.randrange(3, vocab) for _ in range(length)]
        ex.ids.append(ids)
        ex.n_prompt.append(min(100, length - 1))
        ex.total_tokens += length
        ex.target_tokens += length - ex.n_prompt[-1]
    return ex


def build_model(dims: dict, attn: str, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        **{k: v for k, v in dims.items()},
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        attention_dropout=0.0,
        use_cache=False,
    )
    config._attn_implementation = attn
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def training_spec(args, variant: dict) -> SimpleNamespace:
    """The fields of mathrecipes.config.TrainingSpec that the loop reads."""
    return SimpleNamespace(
        lr=3e-4,
        weight_decay=0.0,
        warmup_steps=2,
        schedule="constant",
        max_steps=None,
        epochs=None,
        tokens_per_step=args.tokens_per_step,
        max_length=args.seq_len,
        grad_clip=1.0,
        log_every=10_000,
        adam_beta2=0.95,
        packing=variant["packing"],
        micro_batch_tokens=args.micro_batch_tokens,
        precision="bf16" if torch.cuda.is_available() else "fp32",
        attn_implementation=variant["attn"],
        compile=variant["compile"] and (torch.cuda.is_available() or args.compile_on_cpu),
        deterministic=False,
        distributed="ddp",
    )


def run_variant(name: str, args, dims: dict, examples: Examples) -> dict:
    variant = VARIANTS[name]
    tr = training_spec(args, variant)
    acc = make_accelerator(tr)
    device = acc.device
    model = build_model(dims, variant["attn"], seed=0)
    params = count_params(model)
    steps = args.warmup + args.steps
    schedule = plan_batches(
        examples.lengths, tr.tokens_per_step, 0, max_steps=steps, packing=tr.packing
    )
    # One run of the loop; the log row at the end of the warmup (its loss .item() waits for
    # the GPU) and the last one time the steps in between.
    tr.log_every = max(1, args.warmup)
    out = Path(tempfile.mkdtemp(prefix="bench-train-"))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    loop = optimize(acc, model, examples, schedule, pad=0, training=tr, seed=0, out=out)
    rows = {row["step"]: row for row in loop["log_rows"]}
    start = rows.get(args.warmup, {"elapsed_s": 0.0, "tokens_seen": 0})
    end = rows[steps]
    seconds = end["elapsed_s"] - start["elapsed_s"]
    tokens = end["tokens_seen"] - start["tokens_seen"]
    doc_sq = sum(examples.lengths[i] ** 2 for step in schedule[args.warmup :] for i in step)
    flops_6n = 6.0 * params * tokens
    flops_attn = 6.0 * dims["num_hidden_layers"] * dims["hidden_size"] * doc_sq  # causal
    peak = peak_tflops(device, args.peak_tflops)
    result = {
        "variant": name,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "params": params,
        "steps_timed": args.steps,
        "tokens_timed": tokens,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / seconds, 1),
        "final_loss": loop["final_loss"],
    }
    if peak:
        result["mfu_6n"] = round(flops_6n / seconds / (peak * 1e12), 4)
        result["mfu_with_attention"] = round((flops_6n + flops_attn) / seconds / (peak * 1e12), 4)
        result["peak_tflops"] = peak
    if device.type == "cuda":
        result["max_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    del model
    acc.free_memory()
    with contextlib.suppress(Exception):
        torch.cuda.empty_cache()
    return result


def available(name: str, compile_on_cpu: bool = False) -> bool:
    if name == "packed-flash":
        try:
            import flash_attn  # noqa: F401
        except ImportError:
            return False
        return torch.cuda.is_available()
    if VARIANTS[name]["attn"] == "flex_attention" and not torch.cuda.is_available():
        return False  # FlexAttention has no backward on a CPU
    # compiling on a CPU takes minutes and says nothing about a GPU: only when asked
    return not VARIANTS[name]["compile"] or torch.cuda.is_available() or compile_on_cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true", help="tiny model for a CPU smoke run")
    ap.add_argument("--variants", default="all")
    ap.add_argument("--steps", type=int, default=None, help="timed steps")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first")
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--tokens-per-step", type=int, default=None)
    ap.add_argument("--micro-batch-tokens", type=int, default=None)
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--compile-on-cpu", action="store_true")
    ap.add_argument("--json", action="store_true", help="one JSON line per variant")
    args = ap.parse_args(argv)
    dims = SMALL if args.small else QWEN25_05B
    args.seq_len = args.seq_len or (256 if args.small else 2048)
    args.tokens_per_step = args.tokens_per_step or (1024 if args.small else 65536)
    # 8 rows of 2048 per micro-batch: fp32 logits of 151936 words are 1.2 GB per row
    args.micro_batch_tokens = args.micro_batch_tokens or (None if args.small else 16384)
    args.steps = args.steps or (3 if args.small else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.small else 3)
    names = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    n_docs = max(64, 4 * args.tokens_per_step * (args.warmup + args.steps) // 600)
    examples = synthetic_examples(n_docs, args.seq_len, dims["vocab_size"], seed=0)
    if not args.json:
        print(
            f"model {dims['num_hidden_layers']} layers x {dims['hidden_size']}, vocab "
            f"{dims['vocab_size']}; seq {args.seq_len}, {args.tokens_per_step} tokens/step, "
            f"micro-batch {args.micro_batch_tokens}; {args.warmup} warmup + {args.steps} timed "
            "steps"
        )
    for name in names:
        if not available(name, args.compile_on_cpu):
            line = {"variant": name, "skipped": "not available on this machine"}
        else:
            try:
                line = run_variant(name, args, dims, examples)
            except Exception as exc:  # one variant failing must not hide the others
                line = {"variant": name, "error": f"{type(exc).__name__}: {exc}"[:500]}
        if args.json:
            print(json.dumps(line), flush=True)
        elif "tokens_per_s" in line:
            mfu = (
                f"  MFU {100 * line['mfu_6n']:.1f}% (with attention "
                f"{100 * line['mfu_with_attention']:.1f}%)"
                if "mfu_6n" in line
                else ""
            )
            mem = f"  peak {line['max_memory_gib']} GiB" if "max_memory_gib" in line else ""
            print(f"{name:22s} {line['tokens_per_s']:>10.1f} tokens/s{mfu}{mem}", flush=True)
        else:
            print(f"{name:22s} {line.get('skipped') or line.get('error')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
