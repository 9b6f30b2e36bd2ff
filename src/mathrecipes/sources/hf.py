"""The ``hf`` source: a Hugging Face ``datasets`` dataset, from the Hub or a local folder.

``path`` is a Hub dataset id (``openai/gsm8k``) or a local folder laid out like a Hub dataset
repository (parquet / jsonl files, optionally under ``data/``); ``name`` the config name,
``split``, ``revision`` (a branch, tag or commit; pin a commit for reproducibility), ``data_files``
and ``streaming`` go to :func:`datasets.load_dataset` as they are. The manifest records the
requested revision, the commit it resolved to when the Hub can be asked, and for a local folder
the hash of its files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mathrecipes.config import HFSource as HFSpec

log = logging.getLogger(__name__)


def is_local(path: str) -> bool:
    return Path(path).is_dir()


def local_files(path: str) -> list[str]:
    """Data files of a local dataset folder (for Snakemake inputs)."""
    root = Path(path)
    if not root.is_dir():
        return []
    keep = {".parquet", ".jsonl", ".json", ".csv", ".arrow", ".txt", ".gz", ".zst"}
    return sorted(
        str(p)
        for p in root.rglob("*")
        if p.is_file() and p.suffix in keep and not any(part.startswith(".") for part in p.parts)
    )


class HFSource:
    def __init__(self, name: str, spec: HFSpec | Mapping[str, Any]) -> None:
        self.name = name
        self.spec = HFSpec.model_validate(spec)

    def _load(self) -> Any:
        try:
            from datasets import load_dataset
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise ImportError("the 'hf' source needs the 'datasets' package") from exc
        s = self.spec
        try:
            return load_dataset(
                s.path,
                s.name,
                split=s.split,
                revision=s.revision,
                data_files=s.data_files,
                streaming=s.streaming,
            )
        except Exception as exc:
            raise RuntimeError(
                f"{self.name}: could not load Hugging Face dataset {s.path!r} "
                f"(name={s.name!r}, split={s.split!r}, "
                f"revision={s.revision!r}): {type(exc).__name__}: {exc}"
            ) from exc

    def rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        ds = self._load()
        limit = self.spec.limit
        where = f"hf:{self.spec.path}[{self.spec.split}]"
        for i, row in enumerate(ds):
            if limit is not None and i >= limit:
                break
            yield f"{where} row {i}", dict(row)

    def resolved_revision(self) -> str | None:
        path = self.spec.path
        if is_local(path):
            return None
        try:
            from huggingface_hub import HfApi

            return HfApi().dataset_info(path, revision=self.spec.revision).sha
        except Exception as exc:  # offline, private or unknown: record that it is unresolved
            log.info("could not resolve the revision of %s: %s", path, exc)
            return None

    def describe(self) -> dict[str, Any]:
        from mathrecipes.provenance import path_sha256

        path = self.spec.path
        out = {
            "source": "hf",
            "path": path,
            "name": self.spec.name,
            "split": self.spec.split,
            "revision": self.spec.revision,
            "resolved_revision": self.resolved_revision(),
            "data_files": self.spec.data_files,
            "streaming": self.spec.streaming,
        }
        if is_local(path):
            out["folder_sha256"] = path_sha256(path)
        return out
