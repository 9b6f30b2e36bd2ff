"""Decoding throughput of a Qwen2.5-0.5B-shaped model: plain transformers vs our hf backend.

    PYTHONPATH=src python benchmarks/bench_generate.py [--json] [--reps 3] [--only NAME ...]
    PYTHONPATH=src python benchmarks/bench_generate.py --small   # CPU smoke run, seconds

A Llama model with random weights (no download) and the dimensions of Qwen2.5-0.5B: hidden 896,
intermediate 4864, 24 layers, 14 heads, 2 KV heads, vocab 151936, tied embeddings, rope_theta
1e6; bfloat16 and sdpa attention on a GPU (float32 and eager on a CPU). Batch 64 prompts of 256
random tokens, greedy, 256 new tokens per row (no eos: every row decodes all of them).
``--small``: 2 layers of width 64, vocab 512, batch 4, 16-token prompts, 16 new tokens.

Prints new tokens/s (batch x new tokens / wall time of one generate call, prefill included;
best and median of ``--reps`` timed calls after one warm-up call, which also compiles) for:

``hf_generate_dynamic``          ``model.generate``, default dynamic cache
``hf_generate_static``           ``model.generate``, static cache, ``disable_compile=True``
``hf_generate_static_compile``   ``model.generate``, static cache + torch.compile (CUDA only)
``mathrecipes_hf``               :class:`mathrecipes.decoding.HFDecoder` (what ``generate_file``
                                 runs for ``backend: hf``), ``compile: false``
``mathrecipes_hf_compile``       the same, ``compile: true`` (CUDA graphs; CUDA only)
``vllm``                         ``vllm.LLM.generate`` on the same token ids (when installed)

``agree`` is the share of rows whose tokens equal ``hf_generate_static``'s (on a GPU, bfloat16
kernels that differ between variants can flip near-tied argmaxes of a random model, so it need
not be 1 there). Anchors from issue 4, one H200, plain transformers: generate 2.7k new tokens/s,
static cache + torch.compile 12.8k, continuous batching 1.8k; target for the hf backend: 25k.

Imports only torch and transformers (and vllm for its row) besides ``mathrecipes.decoding``:
no snakemake, polars, datasets, pydantic or math-verify, which GPU images may lack.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

from mathrecipes.decoding import HFDecoder

QWEN25_05B = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "rope_theta": 1e6,
    "tie_word_embeddings": True,
}
SMALL = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 512,
    "max_position_embeddings": 256,
    "rope_theta": 1e6,
    "tie_word_embeddings": True,
}
ANCHORS = {
    "issue4_h200_hf_generate": 2700,
    "issue4_h200_hf_static_compile": 12800,
    "issue4_h200_hf_continuous_batching": 1800,
    "target_mathrecipes_hf": 25000,
}
VARIANTS = (
    "hf_generate_dynamic",
    "hf_generate_static",
    "hf_generate_static_compile",
    "mathrecipes_hf",
    "mathrecipes_hf_compile",
    "vllm",
)
PAD = 0


def build_model(dims: dict[str, Any], device: torch.device, dtype: torch.dtype, attn: str) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        **dims,
        bos_token_id=None,
        eos_token_id=None,  # no row stops early: every variant decodes exactly `new` tokens
        pad_token_id=PAD,
        attention_dropout=0.0,
        use_cache=True,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=dtype, attn_implementation=attn)
    return model.eval()


def hf_generate(model: Any, input_ids: Any, new: int, cache: str | None, compile: bool) -> Callable:
    from transformers import GenerationConfig

    config = GenerationConfig(
        max_new_tokens=new,
        min_new_tokens=0,
        do_sample=False,
        num_beams=1,
        eos_token_id=None,
        pad_token_id=PAD,
        use_cache=True,
        cache_implementation=cache,
        disable_compile=not compile,
    )
    mask = torch.ones_like(input_ids)

    def run() -> list[list[int]]:
        with torch.no_grad():
            out = model.generate(input_ids=input_ids, attention_mask=mask, generation_config=config)
        return out[:, input_ids.shape[1] :].tolist()

    return run


def ours(model: Any, prompts: list[list[int]], new: int, compile: bool) -> Callable:
    decoder = HFDecoder(
        model, eos=-1, pad=PAD, max_new_tokens=new, compile=compile, batch_size=len(prompts)
    )
    return lambda: decoder.generate(prompts)


def vllm_runner(model: Any, prompts: list[list[int]], new: int, dtype: torch.dtype) -> Callable:
    from vllm import LLM, SamplingParams

    folder = tempfile.mkdtemp(prefix="bench_generate_")
    model.save_pretrained(folder)
    llm = LLM(
        model=folder,
        skip_tokenizer_init=True,
        dtype=str(dtype).removeprefix("torch."),
        seed=0,
        gpu_memory_utilization=0.5,
    )
    params = SamplingParams(temperature=0.0, max_tokens=new, ignore_eos=True, detokenize=False)
    requests = [{"prompt_token_ids": p} for p in prompts]

    def run() -> list[list[int]]:
        outs = llm.generate(requests, params, use_tqdm=False)
        return [list(o.outputs[0].token_ids) for o in outs]

    return run


def measure(run: Callable, reps: int, cuda: bool) -> tuple[list[float], list[list[int]]]:
    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    tokens = run()  # warm-up (compiles where asked)
    seconds = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        tokens = run()
        sync()
        seconds.append(time.perf_counter() - t0)
    return seconds, tokens


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", action="store_true", help="tiny model, batch 4, 16 new tokens")
    ap.add_argument("--json", action="store_true", help="print one JSON object, nothing else")
    ap.add_argument("--reps", type=int, default=3, help="timed calls per variant (3)")
    ap.add_argument("--batch", type=int, help="prompts per batch (64; --small 4)")
    ap.add_argument("--prompt-len", type=int, help="prompt tokens (256; --small 16)")
    ap.add_argument("--new", type=int, help="new tokens per row (256; --small 16)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (2)")
    ap.add_argument("--only", nargs="+", choices=VARIANTS, help="run only these variants")
    args = ap.parse_args(argv)

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if cuda else torch.float32
    attn = "sdpa" if cuda else "eager"
    dims = SMALL if args.small else QWEN25_05B
    batch = args.batch or (4 if args.small else 64)
    prompt_len = args.prompt_len or (16 if args.small else 256)
    new = args.new or (16 if args.small else 256)

    model = build_model(dims, device, dtype, attn)
    gen = torch.Generator().manual_seed(1)
    input_ids = torch.randint(3, dims["vocab_size"], (batch, prompt_len), generator=gen)
    prompts = input_ids.tolist()
    input_ids = input_ids.to(device)

    try:
        import vllm  # noqa: F401

        has_vllm = cuda
    except ImportError:
        has_vllm = False
    runners: dict[str, Callable[[], Callable] | str] = {
        "hf_generate_dynamic": lambda: hf_generate(model, input_ids, new, None, False),
        "hf_generate_static": lambda: hf_generate(model, input_ids, new, "static", False),
        "hf_generate_static_compile": (lambda: hf_generate(model, input_ids, new, "static", True))
        if cuda
        else "needs CUDA",
        "mathrecipes_hf": lambda: ours(model, prompts, new, False),
        "mathrecipes_hf_compile": (lambda: ours(model, prompts, new, True))
        if cuda
        else "needs CUDA",
        "vllm": (lambda: vllm_runner(model, prompts, new, dtype))
        if has_vllm
        else "vllm not installed (or no CUDA)",
    }
    selected = args.only or list(VARIANTS)
    results: dict[str, dict[str, Any]] = {}
    outputs: dict[str, list[list[int]]] = {}
    for name in VARIANTS:
        if name not in selected:
            continue
        make = runners[name]
        if isinstance(make, str):
            results[name] = {"skipped": make}
            if not args.json:
                print(f"{name:28s} skipped: {make}", flush=True)
            continue
        seconds, tokens = measure(make(), args.reps, cuda)
        rates = [batch * new / s for s in seconds]
        if any(len(row) != new for row in tokens):
            raise RuntimeError(f"{name}: a row did not decode {new} new tokens")
        outputs[name] = tokens
        results[name] = {
            "new_tokens_per_s": round(max(rates), 1),
            "new_tokens_per_s_median": round(statistics.median(rates), 1),
            "seconds": [round(s, 4) for s in seconds],
        }
        if not args.json:
            r = results[name]
            print(
                f"{name:28s} {r['new_tokens_per_s']:>10,.0f} new tokens/s "
                f"(median {r['new_tokens_per_s_median']:,.0f})",
                flush=True,
            )
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()

    reference = outputs.get("hf_generate_static") or next(iter(outputs.values()), None)
    for name, tokens in outputs.items():
        same = sum(a == b for a, b in zip(tokens, reference, strict=True))
        results[name]["agree"] = round(same / len(tokens), 3)
    if not args.json and outputs:
        agree = ", ".join(f"{n} {r['agree']}" for n, r in results.items() if "agree" in r)
        print(
            f"rows equal to {'hf_generate_static' if 'hf_generate_static' in outputs else 'the first'}: {agree}"
        )

    import transformers

    report = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "dtype": str(dtype).removeprefix("torch."),
        "attn_implementation": attn,
        "model": dims,
        "batch": batch,
        "prompt_len": prompt_len,
        "new_tokens": new,
        "reps": args.reps,
        "results": results,
        "anchors_new_tokens_per_s": ANCHORS,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"({report['device']}, {report['dtype']}, {attn}; batch {batch}, prompts {prompt_len} "
            f"tokens, {new} new; issue 4 anchors on an H200: generate 2.7k, static + compile "
            f"12.8k, continuous batching 1.8k; target 25k)"
        )
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
