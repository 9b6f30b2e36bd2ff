"""Run training in this process, or in one process per GPU through ``accelerate launch``.

``launch_training`` is what the workflow's training job calls. With one process it simply calls
:func:`mathrecipes.training.loop.train_student`. With several it writes the arguments to a JSON
file and runs ``accelerate launch --multi_gpu --num_processes N -m mathrecipes.training.launch
<args.json>``; every process runs ``train_student`` (rank 0 writes the checkpoint), and a SIGTERM
or SIGUSR1 sent to this process is passed on so that the workers save their state and stop.
On a machine without CUDA the processes train on the CPU over gloo (how the tests run DDP).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mathrecipes.training.resume import STOP_SIGNALS, TrainingStopped


def processes_for(gpus: int) -> int:
    """Processes to start for a job given ``gpus`` GPUs: one per GPU that is really visible,
    and one on a machine without CUDA."""
    import torch

    if gpus <= 1 or not torch.cuda.is_available():
        return 1
    return max(1, min(gpus, torch.cuda.device_count()))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stream_fd(stream: Any) -> Any:
    try:
        stream.flush()
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def launch_command(processes: int, args_file: str | Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",  # the loop picks its own precision (training.precision)
        "--dynamo_backend",
        "no",  # and its own compilation (training.compile)
        "--main_process_port",
        str(_free_port()),
        "-m",
        "mathrecipes.training.launch",
        str(args_file),
    ]


def launch_training(
    train_path: str,
    out_dir: str,
    spec: Mapping[str, Any],
    seed: int,
    *,
    processes: int = 1,
    threads: int = 2,
    progress: bool = True,
    resume_dir: str | None = None,
    checkpointing: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train with ``processes`` processes (see the module docstring); return the summary."""
    from mathrecipes.training.loop import SUMMARY_NAME, train_student

    kwargs = {
        "train_path": str(train_path),
        "out_dir": str(out_dir),
        "spec": dict(spec),
        "seed": int(seed),
        "progress": progress,
        "resume_dir": None if resume_dir is None else str(resume_dir),
        "checkpointing": None if checkpointing is None else dict(checkpointing),
    }
    if processes <= 1:
        return train_student(threads=threads, **kwargs)

    kwargs["threads"] = max(1, threads // processes)
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="train-", delete=False) as f:
        json.dump(kwargs, f)
        args_file = f.name
    env = {**os.environ, "OMP_NUM_THREADS": str(kwargs["threads"])}
    out_fd = _stream_fd(sys.stderr)
    proc = subprocess.Popen(
        launch_command(processes, args_file), env=env, stdout=out_fd, stderr=out_fd
    )
    previous = {}
    forwarded: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        forwarded.append(signum)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    for name in STOP_SIGNALS:
        with contextlib.suppress(ValueError):  # not the main thread
            previous[getattr(signal, name)] = signal.signal(getattr(signal, name), forward)
    try:
        rc = proc.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        Path(args_file).unlink(missing_ok=True)
    if rc != 0:
        # the launcher reports a worker's exit 143 as its own failure (1): what matters is
        # that a stop signal came in
        if forwarded or rc in (TrainingStopped.exit_code, -signal.SIGTERM):
            raise TrainingStopped(
                f"training stopped by a signal ({processes} processes); a rerun resumes from "
                f"the state saved in {resume_dir}"
            )
        raise RuntimeError(
            f"accelerate launch with {processes} processes failed with exit code {rc} "
            "(the workers' tracebacks are above)"
        )
    return json.loads((Path(out_dir) / SUMMARY_NAME).read_text())


def main(argv: list[str] | None = None) -> int:
    """Entry point of each launched process: ``python -m mathrecipes.training.launch ARGS``."""
    from mathrecipes.training.loop import train_student

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m mathrecipes.training.launch ARGS.json", file=sys.stderr)
        return 2
    kwargs = json.loads(Path(argv[0]).read_text())
    try:
        train_student(**kwargs)
    except TrainingStopped as exc:
        print(f"[train] {exc}", file=sys.stderr, flush=True)
        return TrainingStopped.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
