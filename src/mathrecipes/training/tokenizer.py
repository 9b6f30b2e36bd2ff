r"""Student tokenizers: a byte-level BPE trained on the corpus, or a pretrained one.

The scratch tokenizer splits every digit into its own token (a ``Split`` on `` ?\d`` runs before
the byte-level pre-tokenizer, so no merge can join digits; a space before a number stays with its
first digit, ``" 58"`` -> ``"Ġ5", "8"``, which saves one token per number), has a byte-level
decoder (``decode(encode(x)) == x``), and three special tokens: ``<pad>`` (id 0), ``<s>`` (bos,
id 1) and ``</s>`` (eos, id 2). It adds no special tokens by itself: callers add bos/eos by hand
(see :mod:`mathrecipes.training.data`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

PAD, BOS, EOS = "<pad>", "<s>", "</s>"


def train_bpe_tokenizer(
    texts: Iterable[str], vocab_size: int, min_frequency: int = 2, model_max_length: int = 512
) -> Any:
    """Train a byte-level BPE on ``texts``; ``vocab_size`` is a cap (small corpora give fewer).

    Returns a ``transformers.PreTrainedTokenizerFast``. Deterministic for the same texts in the
    same order.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            # one digit per token; a space before a number stays with its first digit
            # (" 58" -> "Ġ5", "8"), which saves a token per number
            pre_tokenizers.Split(Regex(r" ?\d"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        clean_up_tokenization_spaces=False,
        padding_side="left",
        model_max_length=model_max_length,
    )


def load_pretrained_tokenizer(init: str, revision: str | None = None) -> Any:
    """``AutoTokenizer`` for a Hub id or local folder; pad falls back to eos when missing."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(init, revision=revision)
    if tok.eos_token_id is None:
        raise ValueError(f"tokenizer of {init!r} has no eos token; cannot train a student on it")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok
