"""A durable response cache for model teachers: one SQLite file, one row per response.

Rows are keyed by :meth:`GenRequest.cache_key` (model, input, every sampling parameter, seed) and
hold the response alone: text, finish reason, token usage, the model name and when it was stored.
Never a request header, a URL or an API key. Only successful responses are stored.

Each response is committed on its own as soon as it arrives (WAL journal, ``synchronous=FULL``),
so a job killed mid-shard (SIGKILL, a server gone, a node lost) keeps every answer it had
received: the rerun sends only the missing requests. Several processes (the shards of one
synthesis entry) may share one cache file; SQLite serializes their writes. The file needs a
filesystem with working POSIX locks (a local disk; not every NFS mount has them).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from mathrecipes.teachers.base import GenResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    usage TEXT NOT NULL,
    created REAL NOT NULL
)
"""
# Bound variables per SELECT ... IN (...) (SQLite's default limit is 32766; stay far below it).
_CHUNK = 500


class ResponseCache:
    """``get_many`` looks responses up by cache key; ``put`` stores one and commits it."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 120.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Only the thread that opened it uses this connection (backends write from their main
        # thread); autocommit: every put is its own transaction.
        self._db = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(SCHEMA)

    def get_many(self, keys: Iterable[str]) -> dict[str, GenResult]:
        """Cached responses for the keys that have one (as ``GenResult`` with ``cached=True``
        and ``key`` set to the cache key: callers put their own request key on)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, GenResult] = {}
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, text, finish_reason, usage FROM responses WHERE key IN ({marks})",
                chunk,
            )
            for key, text, finish_reason, usage in rows:
                found[key] = GenResult(
                    key=key,
                    text=text,
                    finish_reason=finish_reason,
                    cached=True,
                    usage=json.loads(usage),
                )
        return found

    def put(self, cache_key: str, model: str, result: GenResult) -> None:
        """Store one successful response durably (a failed one is a programming error)."""
        if not result.ok:
            raise ValueError(f"not caching failed response {result.key!r}: {result.error}")
        self._db.execute(
            "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
            (
                cache_key,
                model,
                result.text,
                result.finish_reason,
                json.dumps(result.usage, sort_keys=True),
                time.time(),
            ),
        )

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
