"""Encoding and batching shared by training and generation.

This module is deliberately light (no torch, no transformers import): generation imports
:func:`encode_prompts` from here so that the token ids a student is evaluated on are built by the
very function that built its training prompts, and the local-model teachers build their prompt
ids with :func:`bos_ids` and :func:`encode_texts`.

An example is ``[bos] + tok(format_prompt(problem)) + tok(format_target(record)) + [eos]``; the
prompt and the target are tokenized separately (never across their boundary), special tokens are
added by hand (``add_special_tokens=False``), and ``bos`` is left out only for a tokenizer that
has none (some Hugging Face models). The loss is on the target and ``eos`` only. A chat student
(:class:`~mathrecipes.prompting.PromptFormat` ``chat``) has ``tok(chat prompt) + tok(chat target)``
instead, with no bos added (the template writes its own) and eos only when the template's end of
turn does not hold it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mathrecipes.prompting import PLAIN, PromptFormat, format_prompt, format_target

IGNORE_INDEX = -100


def bos_ids(tokenizer: Any) -> list[int]:
    """``[bos]``, or ``[]`` for a tokenizer without a bos token."""
    bos = tokenizer.bos_token_id
    return [] if bos is None else [int(bos)]


def eos_id(tokenizer: Any) -> int:
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no eos token; a student must be able to stop")
    return int(eos)


def pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id
    return eos_id(tokenizer) if pad is None else int(pad)


def encode_texts(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, without any special token (one batched call)."""
    if not texts:
        return []
    return [list(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def prompt_texts(tokenizer: Any, problems: Sequence[str], fmt: PromptFormat = PLAIN) -> list[str]:
    """The prompt text of each problem in the student's format ``fmt``."""
    return [fmt.prompt(tokenizer, p) for p in problems]


def encode_prompts(
    tokenizer: Any, problems: Sequence[str], fmt: PromptFormat = PLAIN
) -> list[list[int]]:
    """``[bos] + tok(format_prompt(problem))`` for each problem (plain), ``tok(chat prompt)``
    (chat): the generation input, and the no-loss part of a training example."""
    bos = bos_ids(tokenizer) if fmt.add_bos() else []
    return [bos + ids for ids in encode_texts(tokenizer, prompt_texts(tokenizer, problems, fmt))]


def encode_prompt(tokenizer: Any, problem: str, fmt: PromptFormat = PLAIN) -> list[int]:
    return encode_prompts(tokenizer, [problem], fmt)[0]


def target_texts(
    tokenizer: Any, records: Sequence[Mapping[str, Any]], fmt: PromptFormat = PLAIN
) -> list[str]:
    """The target text of each record in the student's format ``fmt``."""
    return [fmt.target(tokenizer, r) for r in records]


def example_texts(record: Mapping[str, str]) -> tuple[str, str]:
    """The (prompt, target) texts of one training record."""
    return format_prompt(record["problem"]), format_target(record)


@dataclass
class Examples:
    """Tokenized training examples: ``ids[i][:n_prompt[i]]`` is bos + prompt (no loss)."""

    ids: list[list[int]] = field(default_factory=list)
    n_prompt: list[int] = field(default_factory=list)
    # totals before truncation (prompt + target + specials, and target + eos)
    total_tokens: int = 0
    target_tokens: int = 0
    truncated: int = 0  # examples cut at max_length
    dropped: int = 0  # examples whose target was cut away entirely (prompt >= max_length)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> list[int]:
        return [len(x) for x in self.ids]


def encode_examples(
    tokenizer: Any,
    records: Sequence[Mapping[str, str]],
    max_length: int,
    fmt: PromptFormat = PLAIN,
) -> Examples:
    """Tokenize training records into examples truncated to ``max_length`` tokens."""
    prompts = encode_prompts(tokenizer, [r["problem"] for r in records], fmt)
    targets = encode_texts(tokenizer, target_texts(tokenizer, records, fmt))
    eos_token = eos_id(tokenizer)
    out = Examples()
    for prompt, target in zip(prompts, targets, strict=True):
        eos = [eos_token] if fmt.add_eos(target, eos_token) else []
        ids = prompt + target + eos
        out.total_tokens += len(ids)
        out.target_tokens += len(target) + len(eos)
        if len(ids) > max_length:
            out.truncated += 1
            ids = ids[:max_length]
        if len(ids) <= len(prompt):
            out.dropped += 1
            continue
        out.ids.append(ids)
        out.n_prompt.append(len(prompt))
    return out


def labels_for(ids: Sequence[int], n_prompt: int) -> list[int]:
    """Labels of one example: IGNORE_INDEX on bos + prompt, the token itself on target + eos.

    (Hugging Face causal-LM losses shift internally: label ``i`` is predicted from ``ids[:i]``.)
    """
    return [IGNORE_INDEX] * n_prompt + list(ids[n_prompt:])


# --------------------------------------------------------------------------- batching


def plan_epoch(
    lengths: Sequence[int], tokens_per_step: int, rng: random.Random, pool_batches: int = 32
) -> list[list[int]]:
    """One epoch of batches under a padded-token budget, with length bucketing.

    The examples are shuffled, cut into pools of about ``pool_batches`` batches, sorted by
    length inside each pool (so a batch holds similar lengths and little padding), packed
    greedily while ``batch_rows * longest <= tokens_per_step`` (a lone example longer than the
    budget still forms a batch), and the batches are shuffled. Deterministic given ``rng``.
    """
    n = len(lengths)
    order = list(range(n))
    rng.shuffle(order)
    mean_len = max(1.0, sum(lengths) / max(1, n))
    pool = max(1, int(tokens_per_step / mean_len)) * pool_batches
    batches: list[list[int]] = []
    for start in range(0, n, pool):
        chunk = sorted(order[start : start + pool], key=lengths.__getitem__)  # stable
        batches.extend(_cut_padded(lengths, chunk, tokens_per_step))
    rng.shuffle(batches)
    return batches


def _cut_padded(lengths: Sequence[int], order: Sequence[int], budget: int) -> list[list[int]]:
    """``order`` (length-sorted) cut into consecutive groups whose rows x longest example stay
    within ``budget`` padded tokens; a lone example longer than the budget is a group."""
    groups: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        new_longest = max(longest, lengths[i])
        if current and new_longest * (len(current) + 1) > budget:
            groups.append(current)
            current, new_longest = [], lengths[i]
        current.append(i)
        longest = new_longest
    if current:
        groups.append(current)
    return groups


def plan_batches(
    lengths: Sequence[int],
    tokens_per_step: int,
    seed: int,
    *,
    max_steps: int | None = None,
    epochs: float | None = None,
    packing: bool = False,
) -> list[list[int]]:
    """The whole run's batch schedule: ``max_steps`` batches, or ``epochs`` passes.

    Each epoch is reshuffled (one ``random.Random(seed)`` drives all epochs). A fractional
    ``epochs`` takes the leading share of the last epoch's batches (at least one batch overall).
    ``packing``: steps are filled by real tokens (:func:`plan_epoch_packed`) instead of padded
    tokens (:func:`plan_epoch`).
    """
    if (max_steps is None) == (epochs is None):
        raise ValueError("give exactly one of max_steps or epochs")
    if not lengths:
        raise ValueError("no examples to batch")
    plan = plan_epoch_packed if packing else plan_epoch
    rng = random.Random(seed)
    schedule: list[list[int]] = []
    if max_steps is not None:
        while len(schedule) < max_steps:
            schedule.extend(plan(lengths, tokens_per_step, rng))
        return schedule[:max_steps]
    assert epochs is not None
    full = int(epochs)
    for _ in range(full):
        schedule.extend(plan(lengths, tokens_per_step, rng))
    frac = epochs - full
    if frac > 1e-9:
        last = plan(lengths, tokens_per_step, rng)
        schedule.extend(last[: max(1, round(frac * len(last)))])
    return schedule or plan(lengths, tokens_per_step, rng)[:1]


# --------------------------------------------------------------------------- packing


def plan_epoch_packed(
    lengths: Sequence[int], tokens_per_step: int, rng: random.Random
) -> list[list[int]]:
    """One epoch of steps for packed training: shuffled examples, each step filled while its
    real (unpadded) token count stays within ``tokens_per_step`` (a lone longer example still
    forms a step). Deterministic given ``rng``."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    steps: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in order:
        if current and used + lengths[i] > tokens_per_step:
            steps.append(current)
            current, used = [], 0
        current.append(i)
        used += lengths[i]
    if current:
        steps.append(current)
    return steps


def pack_rows(lengths: Sequence[int], batch: Sequence[int], row_length: int) -> list[list[int]]:
    """First-fit-decreasing packing of the examples ``batch`` into rows of ``row_length``
    tokens; an example longer than a row gets a row of its own. Deterministic (ties keep the
    batch order)."""
    order = sorted(batch, key=lambda i: -lengths[i])  # stable
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = lengths[i]
        for r, free in enumerate(room):
            if n <= free:
                rows[r].append(i)
                room[r] -= n
                break
        else:
            rows.append([i])
            room.append(max(0, row_length - n))
    return rows


def split_for_ranks(lengths: Sequence[int], batch: Sequence[int], world: int) -> list[list[int]]:
    """Deal a step's examples to ``world`` processes, longest first to the least-loaded one, so
    each process gets about the same number of tokens (deterministic: ties go to the lower
    rank). Every process gets at least one example when the step has enough of them."""
    shares: list[list[int]] = [[] for _ in range(world)]
    load = [0] * world
    for i in sorted(batch, key=lambda i: -lengths[i]):
        r = min(range(world), key=lambda k: (load[k], len(shares[k]), k))
        shares[r].append(i)
        load[r] += lengths[i]
    return shares


def micro_batches(
    lengths: Sequence[int], batch: Sequence[int], micro_tokens: int | None
) -> list[list[int]]:
    """Cut one process's share of a step into consecutive micro-batches of at most
    ``micro_tokens`` tokens each (by length-sorted order, so padding stays small); one
    micro-batch when ``micro_tokens`` is None."""
    if micro_tokens is None or not batch:
        return [list(batch)]
    return _cut_padded(lengths, sorted(batch, key=lengths.__getitem__), micro_tokens)
