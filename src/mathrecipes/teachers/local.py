"""What the teacher backends that run a model inside the job share (``hf``: transformers;
``vllm``: vLLM's offline engine).

Both read the model's tokenizer with transformers and decode from the same prompt token ids
(:meth:`LocalModelBackend.prompt_ids`): a request with ``messages`` goes through the tokenizer's
chat template (with the generation prompt) when the tokenizer has one; otherwise, and for a plain
``prompt`` request, the text is ``[bos] +`` the messages' contents joined by blank lines (a base
model continues it). An output ends at the first end-of-sequence token (the tokenizer's eos or
any eos id of the model's generation config) or stop string (``finish_reason`` "stop"), else at
``max_tokens`` ("length") (:meth:`LocalModelBackend.result`).

:meth:`LocalModelBackend.generate` is the one loop of both: request keys must be unique;
responses found in the :class:`~mathrecipes.teachers.cache.ResponseCache` are not generated
again; identical requests (one cache key) are generated once; a prompt that does not fit the
model's positions with its ``max_tokens`` is a failed result (``prompt_too_long``); the rest go
to the backend in batches (:meth:`~LocalModelBackend._batches`, :meth:`~LocalModelBackend._run`)
and every finished batch is committed to the cache, so a job killed mid-shard resumes with the
missing requests only and a rerun of a finished shard generates nothing. The cache key names the
model by its id and revision or resolved commit, or for a local folder by a fingerprint of its
files (:func:`model_fingerprint`), plus the backend and its numerics (dtype, ...).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from mathrecipes.teachers.base import GenRequest, GenResult

log = logging.getLogger(__name__)

# Files up to this size are hashed whole for a local model's fingerprint; bigger ones (weights)
# by their size and first and last MiB.
_WHOLE_FILE_BYTES = 4 << 20
_EDGE_BYTES = 1 << 20


class LocalTeacherError(ValueError):
    """A local-model teacher cannot work as configured; the message names the config key."""


def model_fingerprint(folder: str | Path) -> str:
    """A cheap content fingerprint of a local model folder (16 hex digits): every file's name
    and size, small files whole, large ones by their first and last MiB."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = f.stat().st_size
        digest.update(f"{f.relative_to(folder)}\0{size}\0".encode())
        with open(f, "rb") as fh:
            if size <= _WHOLE_FILE_BYTES:
                digest.update(fh.read())
            else:
                digest.update(fh.read(_EDGE_BYTES))
                fh.seek(size - _EDGE_BYTES)
                digest.update(fh.read(_EDGE_BYTES))
    return digest.hexdigest()[:16]


def model_files(folder: str | Path) -> list[str]:
    """The files of a local model folder, recursively, without hidden ones (``.git``,
    ``.cache``): a job's inputs, since Snakemake sees a folder's own mtime only (editing a file
    in place would not rerun the jobs that read the folder)."""
    folder = Path(folder)
    return sorted(
        str(p)
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


@contextmanager
def loading(spec: Any, error: type[ValueError] = LocalTeacherError) -> Iterator[None]:
    """Turn a failure to load ``spec.model`` (a missing folder, a Hub id not in the offline
    cache, no tokenizer) into ``error`` naming ``teacher.model``."""
    try:
        yield
    except (OSError, ValueError) as exc:
        local = Path(spec.model).is_dir()
        where = "local folder" if local else "Hub model (offline: not in the cache?)"
        raise error(
            f"synthesis teacher.model {spec.model!r} ({where}, revision {spec.revision!r}) "
            f"cannot be loaded: {exc}"
        ) from None


class LocalModelBackend:
    """The shared half of a local-model :class:`~mathrecipes.teachers.base.LLMBackend`.

    A subclass sets :attr:`name` and :attr:`cache_file`, loads its model and tokenizer, calls
    :meth:`_setup`, and implements :meth:`_run` (decode one batch of prepared requests); it may
    change how requests are grouped into batches (:meth:`_group`).
    """

    name: ClassVar[str]
    cache_file: ClassVar[str]
    error: ClassVar[type[ValueError]] = LocalTeacherError

    spec: Any

    def _setup(
        self,
        tokenizer: Any,
        *,
        commit: str | None,
        extra_eos: Any,
        max_positions: int | None,
        cache_dir: str | Path | None,
        variant: str,
    ) -> None:
        """Everything but the model: tokenizer, stop ids, versions, cache. ``extra_eos``: the
        generation config's eos id or ids; ``variant``: what else changes the numerics (dtype)."""
        spec = self.spec
        if tokenizer.eos_token_id is None:
            raise self.error(f"synthesis teacher.model {spec.model!r}: tokenizer has no eos")
        self.tokenizer = tokenizer
        self.local = Path(spec.model).is_dir()
        self.commit = None if self.local else commit
        self.fingerprint = model_fingerprint(spec.model) if self.local else None
        self.chat_template = bool(getattr(tokenizer, "chat_template", None))
        eos = int(tokenizer.eos_token_id)
        extra = extra_eos if isinstance(extra_eos, list) else [extra_eos]
        self.stop_ids = {eos, *(int(e) for e in extra if e is not None)}
        self.max_positions = max_positions
        self.cache_path = Path(cache_dir) / self.cache_file if cache_dir else None
        version = spec.revision or self.commit or self.fingerprint or "unversioned"
        self.cache_model = f"{self.name}:{spec.model}@{version}:{variant}"
        self.last_summary: dict[str, Any] = {}

    # ------------------------------------------------------------------ public

    def describe(self) -> dict[str, Any]:
        """Model (id or folder, revision, resolved commit or folder fingerprint), dtype, whether
        a chat template is used, and the sampling defaults: what goes into provenance."""
        s = self.spec
        return {
            "backend": self.name,
            "model": s.model,
            "revision": s.revision,
            "commit": self.commit,
            "fingerprint": self.fingerprint,
            "dtype": s.dtype,
            "chat_template": self.chat_template,
            "max_new_tokens": s.max_new_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "seed": s.seed,
        }

    def prompt_ids(self, req: GenRequest) -> list[int]:
        """The token ids a request is decoded from (see the module docstring)."""
        from mathrecipes.training.data import bos_ids, encode_texts

        tok = self.tokenizer
        if req.messages is not None and self.chat_template:
            text = tok.apply_chat_template(req.chat(), add_generation_prompt=True, tokenize=False)
            return encode_texts(tok, [text])[0]
        if req.prompt is not None:
            text = req.prompt
        else:
            text = "\n\n".join(content for _, content in req.messages or ()) + "\n\n"
        return bos_ids(tok) + encode_texts(tok, [text])[0]

    def generate(self, requests: Sequence[GenRequest], *, progress: bool = True) -> list[GenResult]:
        """One result per request, in order; cached responses are not generated again. The
        counts are in :attr:`last_summary`."""
        from tqdm import tqdm

        from mathrecipes.teachers.cache import ResponseCache

        start = time.monotonic()
        keys = [r.key for r in requests]
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise ValueError(f"request key {dup!r} appears more than once in one call")
        cache = ResponseCache(self.cache_path) if self.cache_path else None
        cache_keys = [r.cache_key(self.cache_model) for r in requests]
        results: dict[int, GenResult] = {}
        try:
            answered = cache.get_many(cache_keys) if cache is not None else {}
            todo: dict[str, int] = {}  # cache key -> first request index with it
            for i, ck in enumerate(cache_keys):
                if ck in answered:
                    results[i] = replace(answered[ck], key=requests[i].key)
                else:
                    todo.setdefault(ck, i)
            prepared = {i: self.prompt_ids(requests[i]) for i in todo.values()}
            for i, ids in prepared.items():
                req = requests[i]
                if self.max_positions and len(ids) + req.max_tokens > self.max_positions:
                    results[i] = GenResult(
                        key=req.key,
                        error=f"prompt_too_long: {len(ids)} prompt tokens + max_tokens "
                        f"{req.max_tokens} > the model's {self.max_positions} positions",
                    )
            runnable = [i for i in prepared if i not in results]
            bar = tqdm(
                total=len(runnable), desc=f"teacher {self.name}", unit="req", disable=not progress
            )
            for batch in self._batches(requests, runnable, prepared):
                for i, res in zip(batch, self._run(requests, batch, prepared), strict=True):
                    results[i] = res
                    if cache is not None and res.ok:
                        cache.put(cache_keys[i], self.cache_model, res)
                bar.update(len(batch))
            bar.close()
        finally:
            if cache is not None:
                cache.close()
        first = {ck: i for i, ck in reversed(list(enumerate(cache_keys)))}
        out = []
        for i, req in enumerate(requests):
            got = results.get(i) or results[first[cache_keys[i]]]
            out.append(replace(got, key=req.key))
        self.last_summary = {
            "requests": len(requests),
            "cached": sum(r.cached for r in out),
            "generated": len(runnable),
            "failed": sum(not r.ok for r in out),
            "seconds": round(time.monotonic() - start, 3),
        }
        log.info("teacher %s %s: %s", self.name, self.spec.model, self.last_summary)
        return out

    def result(self, req: GenRequest, prompt: Sequence[int], tokens: Sequence[int]) -> GenResult:
        """A request's result from its new tokens: cut at the first stop id or stop string."""
        cut = next((n for n, t in enumerate(tokens) if t in self.stop_ids), None)
        if cut is None:
            body, finish, n_new = list(tokens), "length", len(tokens)
        else:
            body, finish, n_new = list(tokens[:cut]), "stop", cut + 1
        text = self.tokenizer.decode(
            body, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        hits = [text.find(s) for s in req.stop if s and s in text]
        if hits:
            text, finish = text[: min(hits)], "stop"
        usage = {"prompt_tokens": len(prompt), "completion_tokens": n_new}
        return GenResult(key=req.key, text=text, finish_reason=finish, usage=usage)

    # ------------------------------------------------------------------ for subclasses

    def _group(self, req: GenRequest) -> tuple:
        """Requests of one batch share this (default: nothing; any mix)."""
        return ()

    def _batches(
        self, requests: Sequence[GenRequest], indices: list[int], ids: Mapping[int, list[int]]
    ) -> list[list[int]]:
        """Batches of up to ``spec.batch_size`` requests of one :meth:`_group`, by prompt
        length."""
        order = sorted(indices, key=lambda i: (self._group(requests[i]), len(ids[i]), i))
        batches: list[list[int]] = []
        for i in order:
            last = batches[-1] if batches else None
            same = last and self._group(requests[last[0]]) == self._group(requests[i])
            if last and same and len(last) < self.spec.batch_size:
                last.append(i)
            else:
                batches.append([i])
        return batches

    def _run(
        self, requests: Sequence[GenRequest], batch: list[int], ids: Mapping[int, list[int]]
    ) -> list[GenResult]:
        """The results of one batch (request indices ``batch``, prompt ids ``ids``)."""
        raise NotImplementedError


__all__ = ["LocalModelBackend", "LocalTeacherError", "loading", "model_files", "model_fingerprint"]
