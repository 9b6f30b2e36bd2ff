"""Code fingerprints and per-artifact manifests.

Snakemake does not see edits to imported modules, so each rule receives a *narrow* fingerprint of
the package modules its stage uses as a ``params:`` value: editing a module of ``grading/``
changes only the grading fingerprint and therefore re-grades without retraining (``latex.py``,
which reads gold answers at ingest, synthesized answers and model answers at grading, belongs to
all three stages). The mapping below is the single place that says which module belongs to which
stage; ``tests/test_provenance.py`` checks that every module of the package is claimed by some
stage, and that every package module a stage's jobs import (from its own modules and its rules'
scripts, followed transitively) is in that stage's fingerprint or on the test's commented list
of modules that cannot change the stage's outputs.

Every artifact gets a sidecar manifest: inputs with content hashes, params, code fingerprint,
package versions, host, wall time.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import sys
import time
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent

# Modules shared by every stage (I/O contracts) are part of every fingerprint.
COMMON = ("__init__.py", "records.py", "provenance.py")

STAGE_MODULES: dict[str, tuple[str, ...]] = {
    "ingest": ("sources", "builtin", "ingest.py", "parquet_stream.py", "answers.py", "latex.py"),
    "synthesize": (
        "teachers",
        "builtin",
        "synthesis",
        # the answer type of a row a method writes (extract, weakness) and the boxes it reads
        "answers.py",
        "latex.py",
        # the near duplicates the judged methods (rewrite, extract) remove
        "neardup.py",
        "minhash.py",
        "textnorm.py",
    ),
    # what the local-model teachers (hf, vllm) use outside teachers/: the decoders and loaders,
    # and the prompt tokenization (teachers/local.py's prompt ids: training/data.py's bos_ids and
    # encode_texts); part of the code parameter of the synthesis entries with a local teacher or
    # judge only (rules/common.smk, synth_fingerprint)
    "teacher_local": ("decoding", "training/data.py"),
    # the failures of a weakness entry and their nearest neighbours in its pool
    "weakness_seeds": ("embedding.py", "synthesis/weakness.py"),
    "select": (
        "selection.py",
        "poolsteps.py",
        "decontam.py",
        "contamination.py",
        "textnorm.py",
        "neardup.py",
        "minhash.py",
    ),
    "train": ("training", "prompting.py"),
    # the prompt ids (training/data.py's encode_prompts) and the few-shot examples left out when
    # equal to a test problem after normalization (textnorm.py, prompting.draw_examples)
    "generate": (
        "generation.py",
        "decoding",
        "prompting.py",
        "textnorm.py",
        "training/data.py",
        "resumable.py",
    ),
    # the likelihood of the benchmarks' reference solutions: the checkpoint's forward on the
    # training examples' tokens (training/data.py, prompting.py); no grading
    "likelihood": (
        "likelihood.py",
        "decoding",
        "prompting.py",
        "textnorm.py",
        "training/data.py",
        "resumable.py",
    ),
    # a served model (references.<name>) answering a benchmark through the openai backend; not
    # generation.py (the students' decoders: editing them asks no server again), whose
    # OUTPUT_SCHEMA it writes
    "reference": (
        "served.py",
        "prompting.py",
        "textnorm.py",
        "teachers/base.py",
        "teachers/cache.py",
        "teachers/openai_backend.py",
    ),
    "grade": ("grading", "latex.py"),
    "tables": ("tables", "stats.py"),
}

# Packages whose versions are written into manifests.
TRACKED_PACKAGES = (
    "mathrecipes",
    "torch",
    "transformers",
    "tokenizers",
    "math-verify",
    "sympy",
    "polars",
    "pyarrow",
    "snakemake",
    # near dedup's signatures (selection): another version may draw other signatures
    "rensa",
    "datasketch",
)


def _files_of(entry: str) -> list[Path]:
    path = PACKAGE_DIR / entry
    if path.is_dir():
        return sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
    return [path]


def code_fingerprint(stage: str) -> str:
    """sha256 (first 16 hex digits) over the source files of one stage's modules."""
    if stage not in STAGE_MODULES:
        raise KeyError(f"unknown stage {stage!r}; known: {', '.join(STAGE_MODULES)}")
    digest = hashlib.sha256()
    for entry in (*COMMON, *STAGE_MODULES[stage]):
        for f in _files_of(entry):
            digest.update(str(f.relative_to(PACKAGE_DIR)).encode())
            digest.update(b"\0")
            digest.update(f.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()[:16]


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# Files a folder's hash leaves out, at any depth: the job's own manifest (it holds the hash) and
# the timestamp Snakemake adds to a directory output after the job.
FOLDER_HASH_SKIPS = ("manifest.json", ".snakemake_timestamp")


def folder_files(path: str | Path) -> list[str]:
    """The files a folder's hash covers: every file under ``path`` (its path relative to
    ``path``, with ``/``) except :data:`FOLDER_HASH_SKIPS`, sorted by their UTF-8 bytes."""
    path = Path(path)
    rel = [
        p.relative_to(path).as_posix()
        for p in path.rglob("*")
        if p.is_file() and p.name not in FOLDER_HASH_SKIPS
    ]
    return sorted(rel, key=lambda r: r.encode())


def path_sha256(path: str | Path) -> str:
    """sha256 of a file, or of a folder: the sha256 of ``sha256sum``'s output over
    :func:`folder_files`, i.e. of the lines ``<sha256 hex of the file>  <relative path>\\n`` in
    that order. Reproduce it in the folder with (docs/tables.md)::

        find . -type f ! -name manifest.json ! -name .snakemake_timestamp -printf '%P\\0' \\
          | LC_ALL=C sort -z | xargs -0r sha256sum | sha256sum
    """
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for rel in folder_files(path):
        digest.update(f"{file_sha256(path / rel)}  {rel}\n".encode())
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def manifest_path_for(artifact: str | Path) -> Path:
    """``x.parquet`` -> ``x.manifest.json``; a folder -> ``folder/manifest.json``."""
    artifact = Path(artifact)
    if artifact.suffix:
        return artifact.with_name(artifact.stem + ".manifest.json")
    return artifact / "manifest.json"


class Manifest:
    """Collects what a job did and writes it as JSON next to its artifact.

    Use as a context manager around the job's work; wall time is measured between entry and
    :meth:`write`.
    """

    def __init__(
        self,
        stage: str,
        *,
        inputs: Iterable[str | Path] = (),
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.stage = stage
        self.inputs = [str(p) for p in inputs]
        self.params = dict(params or {})
        self.extra: dict[str, Any] = {}
        self._start = time.time()

    def __enter__(self) -> Manifest:
        self._start = time.time()
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add(self, **fields: Any) -> None:
        self.extra.update(fields)

    def write(self, outputs: Iterable[str | Path], path: str | Path | None = None) -> Path:
        outputs = [Path(o) for o in outputs]
        target = Path(path) if path else manifest_path_for(outputs[0])
        doc = {
            "stage": self.stage,
            "code_fingerprint": code_fingerprint(self.stage),
            "params": self.params,
            "inputs": {p: path_sha256(p) for p in self.inputs if Path(p).exists()},
            "outputs": {str(o): path_sha256(o) for o in outputs if o.exists()},
            "versions": package_versions(),
            "host": socket.gethostname(),
            "platform": platform.platform(),
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._start)),
            "wall_time_s": round(time.time() - self._start, 3),
            **self.extra,
        }
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
        tmp.replace(target)
        return target


def read_manifest(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
