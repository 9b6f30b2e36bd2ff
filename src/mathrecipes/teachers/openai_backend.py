"""The ``openai`` teacher backend: any OpenAI-compatible server (vLLM, SGLang, ``transformers
serve``, hosted APIs).

A request with ``messages`` goes to ``{base_url}/chat/completions``, one with a ``prompt`` to
``{base_url}/completions``. Up to ``concurrency`` requests are in flight at once. Connection
errors, timeouts, 429 and 5xx answers are retried ``max_retries`` times with exponential backoff
and jitter (a ``Retry-After`` header is honoured); any other 4xx is this request's own failure
(its result carries the error; the method rejects the row), except 401/403 and 404, which are
configuration errors and stop the call at once.

Every successful response is committed to a :class:`~mathrecipes.teachers.cache.ResponseCache`
as it arrives, keyed by :meth:`GenRequest.cache_key` (model, input, sampling parameters, seed).
So a rerun of a finished shard sends no request at all, and a shard interrupted mid-way (server
gone, job killed) resumes: only the requests without a cached response are sent, and the results
come back one per request, in request order. Requests still failing after all retries (no
server, timeouts, 5xx) make :meth:`OpenAIBackend.generate` raise :class:`TeacherUnavailable` once
everything else has finished (``on_unavailable: fail``, the default) so a server outage fails the
job instead of writing rejects; ``on_unavailable: reject`` returns them as failed results.

The API key is read from the environment variable that ``api_key_env`` names, when the backend
is built. It is added to each request's headers and nowhere else: never to the cache, a log line,
an error message, :meth:`OpenAIBackend.describe` or a progress bar (error text from the server
is scrubbed of it too).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx2
from tqdm import tqdm

from mathrecipes.config import OpenAITeacherSpec
from mathrecipes.teachers.base import GenRequest, GenResult
from mathrecipes.teachers.cache import ResponseCache

log = logging.getLogger(__name__)
# httpx2 logs every request at INFO: one line per teacher call would flood a job's log.
if logging.getLogger("httpx2").level == logging.NOTSET:
    logging.getLogger("httpx2").setLevel(logging.WARNING)

CACHE_FILE = "openai-responses.sqlite"
MAX_BACKOFF_S = 60.0
RETRY_STATUS = frozenset({408, 429})  # plus every 5xx


class TeacherConfigError(ValueError):
    """The teacher cannot work as configured (missing key, rejected key, unknown model)."""


class TeacherUnavailable(RuntimeError):
    """Requests still failed after every retry; the answers received are in the cache."""


@dataclass
class GenSummary:
    requests: int = 0  # results returned
    unique: int = 0  # distinct cache keys among them
    cached: int = 0  # answered from the cache
    sent: int = 0  # sent to the server (each once, plus retries)
    ok: int = 0  # of those sent, answered
    failed: int = 0  # of those sent, failed after retries or with a 4xx
    retried: int = 0  # retry attempts over all requests
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Outcome:
    result: GenResult
    retries: int
    transient: bool  # failed on the server's availability, not on the request itself


class _Bearer(httpx2.Auth):
    """Adds the key at send time; it is not kept in the client's default headers."""

    def __init__(self, key: str) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "_Bearer(***)"

    def auth_flow(self, request: httpx2.Request) -> Iterator[httpx2.Request]:
        request.headers["Authorization"] = f"Bearer {self._key}"
        yield request


def public_url(url: str) -> str:
    """``url`` without user info, query or fragment (where a credential might hide)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def derive_seed(seed: int, key: str) -> int:
    """A per-request seed (31 bits) from the configured seed and the request key, so the
    samples of one row differ and a rerun repeats them."""
    digest = hashlib.sha256(f"{seed}|{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


class OpenAIBackend:
    """A teacher behind an OpenAI-compatible HTTP API (see the module docstring).

    ``spec`` is an :class:`~mathrecipes.config.OpenAITeacherSpec` or a mapping for one.
    ``cache_dir`` is where responses are cached when the spec gives none (the workflow passes
    ``<results>/cache/teachers``); with neither, nothing is cached.
    """

    name = "openai"

    def __init__(
        self,
        spec: OpenAITeacherSpec | Mapping[str, Any],
        *,
        cache_dir: str | Path | None = None,
    ) -> None:
        if not isinstance(spec, OpenAITeacherSpec):
            spec = OpenAITeacherSpec.model_validate(dict(spec))
        self.spec = spec
        self.base_url = spec.base_url.rstrip("/")
        self._key = self._read_key()
        where = spec.cache_dir or cache_dir
        self.cache_path = Path(where) / CACHE_FILE if where else None
        self.last_summary: GenSummary | None = None

    # ------------------------------------------------------------------ public

    def describe(self) -> dict[str, Any]:
        """Backend, model, server and sampling defaults: what goes into provenance."""
        s = self.spec
        return {
            "backend": self.name,
            "model": s.model,
            "base_url": public_url(s.base_url),
            "api_key_env": s.api_key_env,
            "max_tokens": s.max_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "seed": s.seed,
        }

    def request(
        self,
        key: str,
        *,
        messages: Sequence[tuple[str, str]] | Sequence[Mapping[str, str]] | None = None,
        prompt: str | None = None,
        **overrides: Any,
    ) -> GenRequest:
        """A request with this teacher's sampling defaults; ``seed`` defaults to
        :func:`derive_seed` of the configured seed and ``key``."""
        chat = None
        if messages is not None:
            chat = tuple(
                (m["role"], m["content"]) if isinstance(m, Mapping) else (m[0], m[1])
                for m in messages
            )
        fields: dict[str, Any] = {
            "max_tokens": self.spec.max_tokens,
            "temperature": self.spec.temperature,
            "top_p": self.spec.top_p,
            "seed": derive_seed(self.spec.seed, key),
        }
        fields.update(overrides)
        if "stop" in fields:
            fields["stop"] = tuple(fields["stop"])
        return GenRequest(key=key, messages=chat, prompt=prompt, **fields)

    def generate(self, requests: Sequence[GenRequest], *, progress: bool = True) -> list[GenResult]:
        """One result per request, in order. Cached responses are not sent again; identical
        requests (same cache key) are sent once. The counts are in :attr:`last_summary`."""
        start = time.monotonic()
        keys = [r.key for r in requests]
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise ValueError(f"request key {dup!r} appears more than once in one call")
        model = self.spec.model
        cache_keys = [r.cache_key(model) for r in requests]
        unique = dict(zip(cache_keys, requests, strict=True))
        summary = GenSummary(requests=len(requests), unique=len(unique))
        if self.cache_path is None:
            log.warning("teacher %s: no cache_dir, responses are not cached", model)
        cache = ResponseCache(self.cache_path) if self.cache_path else None
        try:
            answered = cache.get_many(unique) if cache is not None else {}
            summary.cached = len(answered)
            todo = [(ck, r) for ck, r in unique.items() if ck not in answered]
            failed = self._send(todo, cache, answered, summary, progress=progress)
        finally:
            if cache is not None:
                cache.close()
        summary.seconds = round(time.monotonic() - start, 3)
        self.last_summary = summary
        log.info("teacher %s at %s: %s", model, public_url(self.base_url), summary.as_dict())

        unavailable = [o for o in failed.values() if o.transient]
        if unavailable and self.spec.on_unavailable == "fail":
            kept = (
                f"the {summary.cached + summary.ok} answers received are cached in "
                f"{self.cache_path}: rerun to send only the missing ones"
                if cache is not None
                else "no cache_dir: a rerun sends every request again"
            )
            raise TeacherUnavailable(
                f"teacher {model} at {public_url(self.base_url)}: {len(unavailable)} of "
                f"{summary.sent} requests failed after {self.spec.max_retries} retries "
                f"(last: {unavailable[-1].result.error}); {kept}"
            )
        results = []
        for req, ck in zip(requests, cache_keys, strict=True):
            got = answered[ck] if ck in answered else failed[ck].result
            results.append(replace(got, key=req.key))
        return results

    # ------------------------------------------------------------------ internals

    def _read_key(self) -> str | None:
        name = self.spec.api_key_env
        if name is None:
            return None
        value = os.environ.get(name, "")
        if not value:
            raise TeacherConfigError(
                f"teacher.api_key_env: the environment variable {name} is not set or empty; "
                f"export {name} with the API key (the key itself never goes into the config)"
            )
        return value

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _client(self) -> httpx2.Client:
        n = self.spec.concurrency
        return httpx2.Client(
            base_url=self.base_url,
            auth=_Bearer(self._key) if self._key else None,
            timeout=httpx2.Timeout(self.spec.timeout_s),
            limits=httpx2.Limits(max_connections=n, max_keepalive_connections=n),
            headers={"User-Agent": "mathrecipes"},
        )

    def _send(
        self,
        todo: list[tuple[str, GenRequest]],
        cache: ResponseCache | None,
        answered: dict[str, GenResult],
        summary: GenSummary,
        *,
        progress: bool,
    ) -> dict[str, _Outcome]:
        """Send ``todo``; successes go to ``answered`` (and the cache), failures are returned."""
        failed: dict[str, _Outcome] = {}
        summary.sent = len(todo)
        if not todo:
            return failed
        stop = threading.Event()
        fatal: TeacherConfigError | None = None
        bar = tqdm(
            total=summary.unique,
            initial=summary.cached,
            desc=f"teacher {self.spec.model}",
            unit="req",
            disable=not progress,
        )
        pool = ThreadPoolExecutor(self.spec.concurrency, thread_name_prefix="teacher")
        futures: dict[Future[_Outcome], str] = {}
        try:
            with self._client() as client:
                for ck, req in todo:
                    futures[pool.submit(self._call, client, req, stop)] = ck
                for fut in as_completed(futures):
                    ck = futures[fut]
                    try:
                        outcome = fut.result()
                    except CancelledError:
                        continue
                    except TeacherConfigError as exc:
                        fatal = fatal or exc
                        stop.set()
                        for other in futures:
                            other.cancel()
                        continue
                    summary.retried += outcome.retries
                    if outcome.result.ok:
                        if cache is not None:
                            cache.put(ck, self.spec.model, outcome.result)
                        answered[ck] = outcome.result
                        summary.ok += 1
                    else:
                        failed[ck] = outcome
                        summary.failed += 1
                    bar.update(1)
                    bar.set_postfix(
                        cached=summary.cached, retried=summary.retried, failed=summary.failed
                    )
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
        if fatal is not None:
            raise fatal
        if failed and len(failed) == len(todo):
            first = next(iter(failed.values())).result.error
            log.warning("teacher %s: every request failed (first: %s)", self.spec.model, first)
        return failed

    def _body(self, req: GenRequest) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": self.spec.model,
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p,
        }
        if req.seed is not None:
            body["seed"] = req.seed
        if req.stop:
            body["stop"] = list(req.stop)
        if req.messages is not None:
            body["messages"] = req.chat()
            return "/chat/completions", body
        body["prompt"] = req.prompt
        return "/completions", body

    def _backoff(self, retry: int, retry_after: float | None) -> float:
        """Exponential with equal jitter: [d/2, d] for d = backoff_s * 2**retry, capped."""
        d = min(MAX_BACKOFF_S, self.spec.backoff_s * 2**retry)
        d = d / 2 + random.uniform(0, d / 2)
        if retry_after is not None:
            d = max(d, min(retry_after, MAX_BACKOFF_S))
        return d

    def _call(self, client: httpx2.Client, req: GenRequest, stop: threading.Event) -> _Outcome:
        """One request with its retries (runs in a worker thread)."""
        path, body = self._body(req)
        last = ""
        for attempt in range(self.spec.max_retries + 1):
            if stop.is_set():
                return _Outcome(GenResult(req.key, error="cancelled"), attempt, True)
            retry_after = None
            try:
                resp = client.post(path, json=body)
            except httpx2.TimeoutException:
                last = f"timeout after {self.spec.timeout_s:g} s"
            except httpx2.TransportError as exc:
                last = self._scrub(f"connection error: {type(exc).__name__}: {exc}")
            else:
                status = resp.status_code
                if status == 200:
                    try:
                        return _Outcome(self._parse(req, resp.json()), attempt, False)
                    except (ValueError, KeyError, IndexError, TypeError) as exc:
                        last = f"malformed response: {type(exc).__name__}: {exc}"
                else:
                    detail = self._detail(resp)
                    self._raise_for_config(status, path, detail)
                    if status not in RETRY_STATUS and status < 500:
                        return _Outcome(GenResult(req.key, error=detail), attempt, False)
                    last = detail
                    retry_after = _retry_after(resp)
            if attempt < self.spec.max_retries:
                delay = self._backoff(attempt, retry_after)
                log.debug("request %s: %s; retry %d in %.1f s", req.key, last, attempt + 1, delay)
                stop.wait(delay)
        retries = self.spec.max_retries
        return _Outcome(
            GenResult(req.key, error=f"{last} (after {retries} retries)"), retries, True
        )

    def _raise_for_config(self, status: int, path: str, detail: str) -> None:
        url = public_url(self.base_url)
        if status in (401, 403):
            env = self.spec.api_key_env
            hint = (
                f"check the key in the environment variable {env}"
                if env
                else "set teacher.api_key_env to the name of the environment variable holding it"
            )
            raise TeacherConfigError(
                f"teacher.api_key_env: {url} refused the API key ({detail}); {hint}"
            )
        if status == 404:
            raise TeacherConfigError(
                f"teacher.model / teacher.base_url: {url}{path} answered {detail} "
                f"for model {self.spec.model!r}"
            )

    def _detail(self, resp: httpx2.Response) -> str:
        text = " ".join(resp.text.split())[:300]
        return self._scrub(
            f"http {resp.status_code}: {text}" if text else f"http {resp.status_code}"
        )

    def _parse(self, req: GenRequest, data: dict[str, Any]) -> GenResult:
        choice = data["choices"][0]
        text = choice["message"]["content"] if req.messages is not None else choice["text"]
        usage = {
            k: v
            for k, v in (data.get("usage") or {}).items()
            if k in ("prompt_tokens", "completion_tokens") and isinstance(v, int)
        }
        return GenResult(
            key=req.key,
            text=text or "",
            finish_reason=choice.get("finish_reason") or "",
            usage=usage,
        )


def _retry_after(resp: httpx2.Response) -> float | None:
    value = resp.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: use the backoff
