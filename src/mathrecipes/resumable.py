"""What a resumable batched job over a checkpoint keeps between attempts (generation, likelihood).

The job plans its batches deterministically, then appends every finished batch to
``resume_dir/progress.jsonl`` (one JSON line per batch; append, flush, fsync) under a key that
hashes everything that determines its rows (:func:`job_key`). A rerun with the same key keeps
those rows and runs only the missing batches; progress made under another key is discarded
(logged), and a torn last line left by a kill is dropped (logged). :func:`stop_on_sigterm` turns
SIGTERM into a request checked between batches, so the batch in flight is finished and saved.
The progress file is deleted once the job's output is written (:meth:`Progress.finish`).

This module imports neither torch nor pydantic.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from importlib import metadata
from pathlib import Path
from typing import Any

PROGRESS_FILE = "progress.jsonl"
PROGRESS_FORMAT = 1


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def job_key(
    stage: str,
    checkpoint_dir: str,
    benchmark_path: str,
    spec: Mapping[str, Any],
    runtime: Mapping[str, Any],
) -> str:
    """sha256 over everything that determines the rows of a job of ``stage`` (a provenance
    stage: its code fingerprint is part of the key)."""
    from mathrecipes.provenance import code_fingerprint, file_sha256, path_sha256

    parts = {
        "format": PROGRESS_FORMAT,
        "checkpoint": path_sha256(checkpoint_dir),
        "benchmark": file_sha256(benchmark_path),
        "spec": dict(spec),
        "code": code_fingerprint(stage),
        "runtime": dict(runtime),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def runtime_settings(torch: Any, device: Any, threads: int, dtype: Any, **extra: Any) -> dict:
    """What else can change a job's numbers: the GPU model (or CPU threads), the dtype, the
    torch and transformers versions, and ``extra`` (e.g. the attention implementation)."""
    cuda = device.type == "cuda"
    return {
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "threads": None if cuda else threads,
        "dtype": str(dtype),
        "torch": package_version("torch"),
        "transformers": package_version("transformers"),
        **extra,
    }


class Progress:
    """The finished batches of one job, in ``resume_dir/progress.jsonl``.

    The first line is a header with the job's key; then one line per finished batch,
    ``{"batch": k, "rows": [...]}``, appended, flushed and fsynced. ``plan[k]`` lists the row
    ids of batch ``k`` (``row_id(row)`` of each row, in order); a batch line that does not match
    it, or whose rows do not have exactly ``columns``, is not trusted. ``what`` names the job in
    log messages (``generation``, ``likelihood``), ``logger`` is the job module's logger.
    """

    def __init__(
        self,
        resume_dir: str | Path,
        key: str,
        plan: Sequence[Sequence[Hashable]],
        *,
        columns: Sequence[str],
        row_id: Callable[[Mapping[str, Any]], Hashable],
        what: str,
        logger: logging.Logger,
    ):
        self.dir = Path(resume_dir)
        self.path = self.dir / PROGRESS_FILE
        self.key = key
        self.plan = [list(ids) for ids in plan]
        self.columns = set(columns)
        self.row_id = row_id
        self.what = what
        self.log = logger
        self._fh: Any = None

    def _batch(self, line: bytes) -> tuple[int, list[dict[str, Any]]] | None:
        """``(k, rows)`` of a well-formed batch line that matches the plan, else None."""
        try:
            entry = json.loads(line)
            k, rows = entry["batch"], entry["rows"]
            if not (isinstance(k, int) and 0 <= k < len(self.plan)):
                return None
            if any(not isinstance(r, dict) or set(r) != self.columns for r in rows):
                return None
            if [self.row_id(r) for r in rows] != self.plan[k]:
                return None
        except (ValueError, TypeError, KeyError):
            return None
        return k, rows

    def recover(self) -> dict[int, list[dict[str, Any]]]:
        """Read what a previous attempt saved (dropping stale or torn parts) and open for
        appending. Returns ``{batch index: rows}``."""
        done: dict[int, list[dict[str, Any]]] = {}
        if self.path.exists():
            data = self.path.read_bytes()
            lines = data.split(b"\n")  # the last item is b"" when the file ends with a newline
            try:
                header = json.loads(lines[0]) if len(lines) > 1 else None
            except ValueError:
                header = None
            if not isinstance(header, dict) or header.get("key") != self.key:
                made_for = header.get("key", "?")[:12] if isinstance(header, dict) else "unreadable"
                self.log.warning(
                    "discarding stale %s progress %s (key %s; this job's key %s: the "
                    "checkpoint, benchmark, spec, code or device settings differ)",
                    self.what,
                    self.path,
                    made_for,
                    self.key[:12],
                )
                self.path.unlink()
            else:
                good = len(lines[0]) + 1
                for line in lines[1:-1]:
                    batch = self._batch(line)
                    if batch is None:
                        break
                    done[batch[0]] = batch[1]
                    good += len(line) + 1
                if good < len(data):
                    self.log.warning(
                        "dropping %d bytes of torn or unreadable %s progress at the end of %s "
                        "(a kill during a write); their batches run again",
                        len(data) - good,
                        self.what,
                        self.path,
                    )
                    with open(self.path, "r+b") as fh:
                        fh.truncate(good)
                        fh.flush()
                        os.fsync(fh.fileno())
        if not self.path.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            header = {"key": self.key, "format": PROGRESS_FORMAT, "batches": len(self.plan)}
            with open(self.path, "wb") as fh:
                fh.write(json.dumps(header).encode() + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            _fsync_dir(self.dir)
        self._fh = open(self.path, "ab")  # noqa: SIM115 - closed by finish()/close()
        return done

    def append(self, k: int, rows: Sequence[Mapping[str, Any]]) -> None:
        line = json.dumps({"batch": k, "rows": list(rows)}).encode()
        self._fh.write(line + b"\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def finish(self) -> None:
        """Delete the progress (the final output is written)."""
        self.close()
        self.path.unlink(missing_ok=True)
        with suppress(OSError):  # other files there: leave the folder
            self.dir.rmdir()


class StopRequest:
    requested = False


@contextmanager
def stop_on_sigterm(enabled: bool, logger: logging.Logger) -> Iterator[StopRequest]:
    """While inside, SIGTERM only sets ``.requested`` (checked between batches)."""
    stop = StopRequest()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: Any) -> None:
        logger.warning("SIGTERM: finishing the batch in flight, saving it, then stopping")
        stop.requested = True

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)
