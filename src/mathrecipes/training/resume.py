"""Resumable training state: saved every N steps / seconds and on SIGTERM, outside the job's
outputs (Snakemake deletes the outputs of a failed job, so a rerun would find nothing there).

Layout of ``resume_dir``::

    state/            accelerate ``save_state`` (model, optimizer, RNG of every process)
      meta.json       step, the key, counters, the log rows so far (written last)
    state.tmp/        a save in progress (never read)
    state.old/        the previous save while the new one is swapped in

A state is used only when its ``key`` matches: a hash of the training set's bytes, the student
spec, the seed, the training code and the process layout. Anything else is stale and is
discarded with a message. After a successful run the folder is deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

META_NAME = "meta.json"
STOP_SIGNALS = ("SIGTERM", "SIGUSR1")  # SIGUSR1: `sbatch --signal=USR1@<s>` early warning


def resume_key(
    train_sha256: str, spec: Mapping[str, Any], seed: int, code: str, layout: Mapping[str, Any]
) -> str:
    blob = json.dumps(
        {"train": train_sha256, "spec": spec, "seed": seed, "code": code, "layout": layout},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def say(message: str) -> None:
    print(f"[train] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class SaveEvery:
    """When the loop saves resumable state besides on a stop signal: every ``every_steps``
    optimizer steps, and once ``every_s`` seconds have passed since the last save (0 turns
    either off). The training job gets them as its resources ``checkpoint_steps`` and
    ``checkpoint_s``."""

    every_steps: int
    every_s: int

    def __post_init__(self) -> None:
        for name in ("every_steps", "every_s"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"checkpointing {name} must be an integer >= 0, got {value!r}")

    @classmethod
    def of(cls, checkpointing: Any) -> SaveEvery:
        """From the config's ``students.<name>.checkpointing`` (a
        :class:`mathrecipes.config.Checkpointing`; minutes): the one conversion to seconds."""
        return cls(checkpointing.every_steps, round(checkpointing.every_minutes * 60))


@dataclass
class ResumeStore:
    """Where one training run keeps its resumable state."""

    root: Path
    key: str

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def tmp(self) -> Path:
        return self.root / "state.tmp"

    @property
    def old(self) -> Path:
        return self.root / "state.old"

    def find(self) -> tuple[Path, dict[str, Any]] | None:
        """The newest complete state with this key, or None (stale states are removed)."""
        for folder in (self.state, self.old):
            meta_path = folder / META_NAME
            if not meta_path.is_file():
                continue
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                say(f"ignoring unreadable resume state {folder}")
                continue
            if meta.get("key") != self.key:
                say(
                    f"discarding resume state {folder}: it belongs to another run "
                    f"(key {meta.get('key')} != {self.key}; config, data or code changed)"
                )
                shutil.rmtree(folder, ignore_errors=True)
                continue
            return folder, meta
        return None

    def begin(self) -> Path:
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        return self.tmp

    def commit(self, meta: dict[str, Any]) -> None:
        """Make ``state.tmp`` the current state: meta.json last, then two renames."""
        meta = {**meta, "key": self.key, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        tmp_meta = self.tmp / (META_NAME + ".tmp")
        tmp_meta.write_text(json.dumps(meta, sort_keys=True) + "\n")
        tmp_meta.replace(self.tmp / META_NAME)
        shutil.rmtree(self.old, ignore_errors=True)
        if self.state.exists():
            self.state.replace(self.old)
        self.tmp.replace(self.state)
        shutil.rmtree(self.old, ignore_errors=True)

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class StopFlag:
    """Set by SIGTERM / SIGUSR1: the loop saves its state at the end of the step and stops."""

    signame: str | None = None
    _previous: dict[int, Any] = field(default_factory=dict)

    def install(self) -> StopFlag:
        for name in STOP_SIGNALS:
            signum = getattr(signal, name)
            # not the main thread (ValueError): the job cannot be told to stop early
            with contextlib.suppress(ValueError):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signame = signal.Signals(signum).name

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


class TrainingStopped(RuntimeError):
    """Training stopped on a signal after saving its state; a rerun resumes it."""

    exit_code = 143  # 128 + SIGTERM, what a killed job reports
