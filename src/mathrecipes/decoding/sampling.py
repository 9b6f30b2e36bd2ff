"""Temperature and top-p sampling of the next token, and the per-batch sampling seed."""

from __future__ import annotations

import hashlib
from typing import Any


def top_p_filter(scores: Any, top_p: float) -> Any:
    """``scores`` (rows of logits) with every token outside the top-p nucleus set to ``-inf``,
    as transformers' ``TopPLogitsWarper``: the least likely tokens whose probabilities sum to at
    most ``1 - top_p`` go, the most likely token always stays."""
    ordered, order = scores.sort(descending=False)
    remove = ordered.softmax(dim=-1).cumsum(dim=-1) <= (1 - top_p)
    remove[..., -1:] = False  # keep at least the most likely token
    return scores.masked_fill(remove.scatter(1, order, remove), -float("inf"))


def sampling_probs(logits: Any, temperature: float, top_p: float) -> Any:
    """The next-token probabilities of ``logits`` at ``temperature`` (> 0), top-p filtered when
    ``top_p < 1``; computed in float32."""
    scores = logits.float() / temperature
    if top_p < 1.0:
        scores = top_p_filter(scores, top_p)
    return scores.softmax(dim=-1)


def batch_seed(seed: int, batch: int) -> int:
    """The sampling seed of batch ``batch``: a fixed function of ``(seed, batch)`` only."""
    digest = hashlib.sha256(f"mathrecipes-generation/{seed}/{batch}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1
