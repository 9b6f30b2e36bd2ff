"""MinHash signatures of hashed shingles with rensa (a Rust MinHash), over several processes.

Kept apart from :mod:`mathrecipes.neardup` so that a worker process imports numpy and rensa only.
rensa computes a whole chunk's signatures in one call (about 2 s per million rows of 90
shingles); taking them out to numpy goes through Python lists (about 10 s per million rows), so
chunks are spread over ``workers`` processes while the parent hashes the next chunks.

"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import numpy as np

MINHASH_SEED = 1


def digest_chunk(
    hashes: Any, offsets: Any, num_perm: int, seed: int = MINHASH_SEED, *, step: int = 8192
) -> Any:
    """The signatures (uint32, rows x ``num_perm``) of rows whose shingle hashes are
    ``hashes[offsets[i]:offsets[i + 1]]``; taken out of rensa ``step`` rows at a time (its
    Python lists cost about 36 bytes a value)."""
    from rensa import RMinHash

    offsets = np.asarray(offsets, dtype=np.int64)
    rows = len(offsets) - 1
    out = np.empty((rows, num_perm), dtype=np.uint32)
    for a in range(0, rows, step):
        b = min(a + step, rows)
        matrix = RMinHash.digest_matrix_from_flat_token_hashes(
            np.ascontiguousarray(hashes[offsets[a] : offsets[b]], dtype=np.uint64),
            (offsets[a : b + 1] - offsets[a]).astype(np.uint64),
            num_perm=num_perm,
            seed=seed,
        )
        out[a:b] = np.fromiter(
            itertools.chain.from_iterable(matrix.to_rows()),
            dtype=np.uint32,
            count=(b - a) * num_perm,
        ).reshape(b - a, num_perm)
    return out


def signatures(
    chunks: Iterable[tuple[Any, Any]],
    rows: int,
    num_perm: int,
    *,
    workers: int = 1,
    min_rows_per_worker: int = 50_000,
    keep: int | None = None,
) -> Any:
    """The signatures of ``rows`` rows given as ``(hashes, offsets)`` chunks in row order
    (a generator: the parent makes the next chunk while the workers digest), with ``workers``
    processes (1, or ``rows`` at most ``min_rows_per_worker``: in this process); ``keep``: only
    the first ``keep`` of the ``num_perm`` values (rows x ``keep``)."""
    out = np.empty((rows, keep or num_perm), dtype=np.uint32)
    if workers <= 1 or rows <= min_rows_per_worker:  # starting a worker costs about 0.3 s
        at = 0
        for hashes, offsets in chunks:
            sig = digest_chunk(hashes, offsets, num_perm)
            out[at : at + len(sig)] = sig[:, : out.shape[1]]
            at += len(sig)
        return out
    import subprocess
    import sys

    # plain child processes fed through pipes (not multiprocessing: a Snakemake script is a
    # __main__ without a main guard, which spawn would run again, and fork would copy polars'
    # thread pool); one chunk in flight per worker, so no pipe fills up while both wait
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", "from mathrecipes.minhash import serve; serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(workers)
    ]
    pending: list[tuple[int, int] | None] = [None] * workers  # (first row, rows) per worker
    try:
        at = 0
        for k, (hashes, offsets) in enumerate(chunks):
            w = k % workers
            if pending[w] is not None:
                _receive(procs[w], out, *pending[w], num_perm)
            _send(procs[w], hashes, offsets, num_perm)
            pending[w] = (at, len(offsets) - 1)
            at += len(offsets) - 1
        for w, job in enumerate(pending):
            if job is not None:
                _receive(procs[w], out, *job, num_perm)
    finally:
        for proc in procs:
            if proc.stdin:
                proc.stdin.close()
        for proc in procs:
            proc.wait()
    return out


def _send(proc: Any, hashes: Any, offsets: Any, num_perm: int) -> None:
    head = np.array([len(offsets), len(hashes), num_perm], dtype=np.int64)
    for part in (head, np.asarray(offsets, np.int64), np.asarray(hashes, np.uint64)):
        proc.stdin.write(memoryview(np.ascontiguousarray(part)).cast("B"))
    proc.stdin.flush()


def _receive(proc: Any, out: Any, start: int, rows: int, num_perm: int) -> None:
    size = rows * num_perm * 4
    data = proc.stdout.read(size)
    if len(data) != size:
        raise RuntimeError(f"minhash worker ended early (exit code {proc.wait()})")
    sig = np.frombuffer(data, dtype=np.uint32).reshape(rows, num_perm)
    out[start : start + rows] = sig[:, : out.shape[1]]


def serve() -> None:
    """A worker: chunks ``(offsets, hashes)`` on stdin, their signatures on stdout."""
    import sys

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while head := stdin.read(24):
        n_off, n_hash, num_perm = np.frombuffer(head, dtype=np.int64).tolist()
        offsets = np.frombuffer(stdin.read(8 * n_off), dtype=np.int64)
        hashes = np.frombuffer(stdin.read(8 * n_hash), dtype=np.uint64)
        stdout.write(memoryview(digest_chunk(hashes, offsets, num_perm)).cast("B"))
        stdout.flush()
