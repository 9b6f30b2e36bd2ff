"""The decoders: token-id prompts in, new token ids out.

:class:`HFDecoder`      the model's own forward in a decode loop with a static (preallocated) KV
                        cache, left-padded batches (the attention mask drives the position ids,
                        so padding does not shift positions), greedy or temperature / top-p
                        sampling from one generator per batch. With ``compile=True`` each
                        decoding step is ``torch.compile``'d with CUDA graphs.
:class:`RowSeededDecoder`  the same with one generator per row (the ``hf`` teacher): a row's
                        sample does not depend on which other rows share its batch.
:class:`VLLMDecoder`    offline batched generation with vLLM (an optional package).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from mathrecipes.decoding.loaders import require_vllm
from mathrecipes.decoding.sampling import batch_seed, sampling_probs

# With compile: true the KV cache length is rounded up to a multiple of this and short batches
# are padded to batch_size, so that batches share a few compiled graphs instead of one each.
COMPILE_CACHE_BUCKET = 256
# On a GPU, "all rows finished?" is read back every this many steps (each read is a host sync).
CUDA_STOP_CHECK_EVERY = 16


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


class HFDecoder:
    """Batched decoding with a transformers causal LM and a static KV cache.

    ``generate(seqs, seed)`` takes token-id prompts and returns, per prompt, the new token ids
    (at most ``max_new_tokens``; a row that finished holds its eos, later tokens are noise to be
    cut there). The prompts are left-padded; prefill is one eager forward (logits of the last
    position only); each decoding step is one forward of a single token per row followed by
    greedy argmax or temperature / top-p sampling (:func:`~mathrecipes.decoding.sampling.sampling_probs`;
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
        stop: Sequence[str] = (),
        tokenizer: Any = None,
    ) -> None:
        import torch

        if stop and tokenizer is None:
            raise ValueError("stop strings need the tokenizer (to read the new text)")
        self.stop = tuple(stop)
        self.tokenizer = tokenizer
        # the new tokens a stop string can span, and those since the last check
        self._stop_window = max((4 * len(s) for s in self.stop), default=0) + CUDA_STOP_CHECK_EVERY
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
        """The next token of every row: greedy argmax, or a sample (the exponential race)."""
        if self.temperature <= 0:
            return logits.float().argmax(dim=-1)
        probs = sampling_probs(logits, self.temperature, self.top_p)
        return (probs / self._race(probs, generator)).argmax(dim=-1)

    def _race(self, probs: Any, generator: Any) -> Any:
        """Exponential(1) noise of the shape of ``probs``, drawn from ``generator``:
        ``argmax(probs / noise)`` is a categorical sample of every row."""
        import torch

        return torch.empty_like(probs).exponential_(generator=generator)

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
                if (t + 1) % self.stop_check_every == 0:
                    if self.stop:
                        self._stop_rows(out, finished, t + 1, n_rows)
                    if bool(finished[:n_rows].all()):
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

    def _stop_rows(self, out: Any, finished: Any, steps: int, n_rows: int) -> None:
        """Mark finished the unfinished rows whose last new tokens' text holds a stop string
        (the tail only: :attr:`_stop_window` tokens; the caller cuts the text there)."""
        live = [r for r, done in enumerate(finished[:n_rows].tolist()) if not done]
        if not live:
            return
        tail = out[live, max(0, steps - self._stop_window) : steps].tolist()
        texts = self.tokenizer.batch_decode(
            tail, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        for r, text in zip(live, texts, strict=True):
            if any(s in text for s in self.stop):
                finished[r] = True


def cut_at_stop(ids: Sequence[int], stop: Sequence[str], decode: Any) -> tuple[str, int] | None:
    """``(text before the first stop string, tokens up to the one that completed it)`` of the
    new tokens ``ids`` (``decode``: ids -> text), or None when the text holds no stop string.
    The token count is found by bisection (the text of a longer prefix holds whatever a shorter
    one holds)."""
    text = decode(list(ids))
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    if not hits:
        return None

    def holds(n: int) -> bool:
        return any(s in decode(list(ids[:n])) for s in stop)

    lo, hi = 1, len(ids)  # the smallest n with holds(n) lies in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        if holds(mid):
            hi = mid
        else:
            lo = mid + 1
    return text[: min(hits)], lo


class RowSeededDecoder(HFDecoder):
    """:class:`HFDecoder` whose sampling draws come from one generator per row.

    ``generate_rows(seqs, seeds)`` seeds row ``i``'s generator with ``seeds[i]``: the
    temperature and top-p filtering are batched as in :class:`HFDecoder`, and row ``i``'s race
    is drawn from its own generator, the draws that decoding the row alone would make.
    """

    _generators: list[Any] | None = None

    def generate_rows(self, seqs: Sequence[Sequence[int]], seeds: Sequence[int]) -> list[list[int]]:
        import torch

        if self.temperature > 0:
            self._generators = [
                torch.Generator(device=self.device).manual_seed(int(s)) for s in seeds
            ]
        try:
            return self.generate(seqs, seed=0)
        finally:
            self._generators = None

    def _race(self, probs: Any, generator: Any) -> Any:
        """One small draw per row, from the row's own generator (set by :meth:`generate_rows`)."""
        import torch

        gens = self._generators
        if not gens:
            return super()._race(probs, generator)
        return torch.stack(
            [torch.empty_like(probs[i]).exponential_(generator=g) for i, g in enumerate(gens)]
        )


class VLLMDecoder:
    """Offline batched generation with vLLM (same interface as :class:`HFDecoder`).

    Each prompt is its own request with its own seed (derived from the batch seed and the row),
    so samples do not depend on how vLLM schedules the batch. ``compile: false`` runs vLLM with
    ``enforce_eager=True`` (no CUDA graphs, no torch.compile).
    """

    def __init__(self, checkpoint_dir: str, g: Any, *, eos: int, dtype: Any) -> None:
        vllm = require_vllm("generation.backend")
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
        stop = getattr(self.g, "stop", None) or []
        params = [
            SamplingParams(
                n=1,
                temperature=self.g.temperature,
                top_p=self.g.top_p if sampling else 1.0,
                max_tokens=self.g.max_new_tokens,
                seed=batch_seed(seed, row) if sampling else None,
                stop_token_ids=[self.eos],
                # stop strings are matched on the text: detokenize only when there are some
                stop=list(stop) or None,
                include_stop_str_in_output=False,
                detokenize=bool(stop),
            )
            for row in range(len(seqs))
        ]
        prompts = [{"prompt_token_ids": list(s)} for s in seqs]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        new = []
        for output in outputs:
            completion = output.outputs[0]
            ids = list(completion.token_ids)
            on_string = isinstance(getattr(completion, "stop_reason", None), str)
            if completion.finish_reason == "stop" and not on_string and self.eos not in ids:
                ids.append(self.eos)  # stopped on eos without returning it
            new.append(ids)
        return new
