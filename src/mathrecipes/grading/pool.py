"""The parent side: a pool of worker processes with exact per-item deadlines.

Workers are plain ``python -c`` subprocesses (:data:`~mathrecipes.grading.engine.BOOTSTRAP`)
talking over ``multiprocessing.connection`` pipes rather than ``multiprocessing`` spawn or
forkserver children: those re-execute the parent's ``__main__`` script in every child, which
breaks when the caller is a Snakemake ``script:`` (top-level code, no ``if __name__ ==
"__main__"`` guard). The parent keeps a few small items queued in each worker's pipe so workers
never wait for it; only the item a worker is running has a deadline, which starts when the
worker finishes the previous one, so every item gets exactly ``timeout_s``. A worker past its
deadline is killed (and reaped) and replaced by a fresh one; the items queued behind it go back
to the queue.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path

from mathrecipes.grading.engine import BOOTSTRAP
from mathrecipes.grading.settings import GradeSettings

# How long a worker may take to import Math-Verify and report ready before we give up.
_STARTUP_LIMIT_S = 120.0
# Items queued ahead in a worker's pipe (beyond the one it runs), and the byte cap that keeps
# the parent's sends from ever blocking on a full pipe (Linux pipes hold 64 KiB).
_PIPELINE_DEPTH = 4
_PIPELINE_BYTES = 32_768
# Extra items with the same gold a worker may take beyond the depth (the gold is parsed once).
_GROUP_EXTRA = 8


# A task: (item index, grade it with our grader?, run plain Math-Verify on it?)
Task = tuple[int, bool, bool]


@dataclass
class _Job:
    task: Task
    idx: int
    gold: str
    phases: list[str]  # what the worker still owes for this item, in order: "ours", "mv"
    size: int  # bytes of the message in the worker's pipe
    sent: float = 0.0  # when the current phase started (from the parent's point of view)
    deadline: float = math.inf  # only the job a worker is running has one

    def start(self, now: float, timeout_s: float) -> None:
        self.sent = now
        self.deadline = now + timeout_s


def _stderr_target() -> int | None:
    """Where worker stderr goes: the file behind ``sys.stderr`` if any, else fd 2.

    Snakemake scripts here point ``sys.stderr`` at the job's log file (``runlog.start``) without
    touching fd 2; worker tracebacks belong in that log too.
    """
    try:
        sys.stderr.flush()
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None


class Worker:
    """One worker process (``proc``, started from :data:`BOOTSTRAP`, read at start) and its
    pipes; ``ready`` once it has imported Math-Verify and said so."""

    def __init__(self, settings: GradeSettings) -> None:
        cfg = settings.model_dump_json()
        src = str(Path(__file__).resolve().parents[2])  # the folder that holds mathrecipes
        p2c_r, p2c_w = os.pipe()
        c2p_r, c2p_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", BOOTSTRAP, src, str(p2c_r), str(c2p_w), cfg],
                pass_fds=(p2c_r, c2p_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=_stderr_target(),
            )
        except BaseException:
            for fd in (p2c_w, c2p_r):
                os.close(fd)
            raise
        finally:
            os.close(p2c_r)
            os.close(c2p_w)
        self.inbox = Connection(c2p_r, writable=False)
        self.outbox = Connection(p2c_w, readable=False)
        self.started = time.monotonic()
        self.ready = False
        self.jobs: deque[_Job] = deque()  # sent, not finished; the first one is running
        # Golds it has parsed: its engine caches them and reports each once, in any run.
        self.golds: set[str] = set()

    def stop(self) -> None:
        """Close the pipes, kill the process if it still runs, and reap it."""
        for conn in (self.outbox, self.inbox):
            with contextlib.suppress(OSError):
                conn.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


# Callbacks of Pool.run
_OnOurs = Callable[[int, str, str | None, bool | None, float], None]
_OnPlain = Callable[[int, str, str | None, float], None]


class Pool:
    """N worker processes with a few items queued in each; exact per-item deadlines.

    N may be 0: workers then start at :meth:`ensure` (at most ``max_workers``) or at the first
    :meth:`run`.

    A worker past its deadline, or one that died, is stopped (killed and reaped) and replaced
    in ``workers``; the pool lives on until :meth:`close` (or the end of a ``with`` block) and
    can :meth:`run` several queues."""

    def __init__(
        self, settings: GradeSettings, n_workers: int, max_workers: int | None = None
    ) -> None:
        self.settings = settings
        self.max_workers = max(1, n_workers, max_workers or 0)
        self.workers: list[Worker] = []
        try:
            for _ in range(n_workers):
                self.workers.append(Worker(settings))
        except BaseException:
            self.close()
            raise

    def ensure(self, n_workers: int) -> None:
        """Start workers until there are ``n_workers`` (at most ``max_workers``)."""
        while len(self.workers) < min(n_workers, self.max_workers):
            self.workers.append(Worker(self.settings))

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        workers, self.workers = self.workers, []
        for w in workers:
            w.stop()

    def _replace(self, w: Worker) -> None:
        w.stop()
        self.workers[self.workers.index(w)] = Worker(self.settings)

    def run(
        self,
        queue: deque[Task],
        prepare: Callable[[Task], tuple | None],
        on_ours: _OnOurs,
        on_plain: _OnPlain,
        gold_known_ok: Callable[[str], bool],
        group_of: Callable[[Task], str] | None = None,
    ) -> None:
        """Run every task in ``queue``.

        ``prepare(task)`` is asked right before dispatch and returns the worker message
        ``(idx, gold, answer, want_ours, completion_or_None)``, or None when the caller settled
        the task without a worker.  ``on_ours(i, verdict, how, gold_ok, seconds)`` receives our
        grader's results (``gold_ok`` is None when unknown: timeouts, crashes);
        ``on_plain(i, verdict, extracted, seconds)`` plain Math-Verify's.  A timeout is charged
        to the gold (``how == "gold_timeout"``) only if the worker had not reported parsing it
        (in this run or an earlier one) and ``gold_known_ok(gold)`` is false.  An item whose grading timed out gets its plain
        Math-Verify pass as a fresh task.  Tasks that follow each other with the same
        ``group_of`` (gold) go to the same worker where possible, so that a gold is parsed
        once.
        """
        timeout_s = self.settings.timeout_s
        if queue:
            self.ensure(1)  # a pool made with no workers starts one now
        self._queue = queue
        self._on_ours, self._on_plain, self._gold_known_ok = on_ours, on_plain, gold_known_ok
        while True:
            for k in range(len(self.workers)):
                w = self.workers[k]
                group = None
                while w.ready and queue:
                    if len(w.jobs) > _PIPELINE_DEPTH and not (
                        group is not None
                        and group_of is not None
                        and len(w.jobs) <= _PIPELINE_DEPTH + _GROUP_EXTRA
                        and group_of(queue[0]) == group
                    ):
                        break
                    task = queue.popleft()
                    msg = prepare(task)
                    if msg is None:
                        continue
                    group = msg[1]
                    data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
                    if w.jobs and sum(j.size for j in w.jobs) + len(data) > _PIPELINE_BYTES:
                        queue.appendleft(task)  # would risk a blocking send: wait for room
                        break
                    try:
                        w.outbox.send_bytes(data)
                    except OSError:  # died: the item was never started, retry it
                        queue.appendleft(task)
                        self._on_death(w)
                        break
                    phases = (["ours"] if msg[3] else []) + (["mv"] if msg[4] is not None else [])
                    job = _Job(task, msg[0], msg[1], phases, len(data))
                    if not w.jobs:
                        job.start(time.monotonic(), timeout_s)
                    w.jobs.append(job)
            busy = [w for w in self.workers if w.jobs]
            if not queue and not busy:
                return

            now = time.monotonic()
            limits = [w.jobs[0].deadline for w in busy]
            limits += [w.started + _STARTUP_LIMIT_S for w in self.workers if not w.ready]
            ready = wait([w.inbox for w in self.workers], max(0.0, min(limits) - now))
            by_conn = {id(w.inbox): w for w in self.workers}
            for conn in ready:
                w = by_conn[id(conn)]
                if w in self.workers:
                    self._receive(w)

            now = time.monotonic()
            for w in list(self.workers):
                if w.jobs and w.jobs[0].deadline <= now:
                    # Take what already arrived (results, the gold-parsed note) first.
                    while w in self.workers and w.jobs and w.inbox.poll(0):
                        self._receive(w)
                    if w not in self.workers or not w.jobs or w.jobs[0].deadline > now:
                        continue
                    self._abandon(w, None)
                elif not w.ready and w.started + _STARTUP_LIMIT_S <= now:
                    raise RuntimeError(
                        f"grading worker did not start within {_STARTUP_LIMIT_S:.0f} s"
                    )

    def _abandon(self, w: Worker, how: str | None) -> None:
        """Kill ``w`` (timeout: ``how`` None; crash: ``"worker_crash"``): its running job ends
        with ``timeout``, the jobs queued behind it go back to the front of the queue."""
        head, *rest = list(w.jobs)
        w.jobs.clear()
        self._replace(w)  # kill() + wait(), then a fresh worker
        for job in reversed(rest):
            self._queue.appendleft(job.task)
        seconds = time.monotonic() - head.sent
        if head.phases[0] == "mv":
            self._on_plain(head.idx, "timeout", None, seconds)
            return
        if how is None and not (head.gold in w.golds or self._gold_known_ok(head.gold)):
            how = "gold_timeout"
        self._on_ours(head.idx, "timeout", how, None, seconds)
        if "mv" in head.phases:
            self._queue.appendleft((head.idx, False, True))

    def _receive(self, w: Worker) -> None:
        try:
            msg = w.inbox.recv()
        except (EOFError, OSError):
            self._on_death(w)
            return
        kind = msg[0]
        if kind == "ready":
            w.ready = True
            return
        job = w.jobs[0] if w.jobs else None
        if job is None or job.idx != msg[1]:  # pragma: no cover - defensive
            return
        now = time.monotonic()
        if kind == "gold":
            w.golds.add(job.gold)
            return
        if kind == "done" and job.phases[0] == "ours":
            _, idx, verdict, how, gold_ok = msg
            self._on_ours(idx, verdict, how, gold_ok, now - job.sent)
        elif kind == "mv" and job.phases[0] == "mv":
            _, idx, verdict, extracted = msg
            self._on_plain(idx, verdict, extracted, now - job.sent)
        else:  # pragma: no cover - defensive
            return
        job.phases.pop(0)
        if not job.phases:
            w.jobs.popleft()
            if not w.jobs:
                return
            job = w.jobs[0]
        job.start(now, self.settings.timeout_s)

    def _on_death(self, w: Worker) -> None:
        if not w.ready:
            code = w.proc.wait()
            raise RuntimeError(
                f"grading worker exited with code {code} during start-up "
                f"({sys.executable} could not import mathrecipes.grading.engine / math_verify?)"
            )
        if w.jobs:
            self._abandon(w, "worker_crash")
        else:
            self._replace(w)
