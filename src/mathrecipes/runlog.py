"""Logging set-up for the Snakemake script adapters.

Everything a job prints (log records, warnings, tqdm progress bars, tracebacks) goes to its
``log:`` file, so ``tail -f results/logs/...`` shows progress. Progress bars update at most every
few seconds when the log is not a terminal.
"""

from __future__ import annotations

import logging
import sys
from functools import partialmethod
from pathlib import Path

import tqdm


def start(log_path: str | Path, *, mininterval: float = 5.0) -> logging.Logger:
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    stream = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the job
    sys.stderr = stream
    sys.stdout = stream
    if not stream.isatty():
        # a log file gets a progress line every few seconds, not one per step
        tqdm.tqdm.__init__ = partialmethod(tqdm.tqdm.__init__, mininterval=mininterval)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=stream,
        force=True,
    )
    logging.captureWarnings(True)
    return logging.getLogger("mathrecipes")
