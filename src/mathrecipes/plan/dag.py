"""The jobs of a config, from Snakemake's own dry run of the repository's Snakefile.

Two dry runs in subprocesses, started together: ``-n --forceall`` (every job the config has) and,
when a results folder exists, a plain ``-n`` (the jobs that would run now). Each prints a
``Job stats`` table (the count per rule) and one block per job (``rule <name>:`` then
``wildcards: ...`` and ``resources: ...``); the counts come from the table, the wildcards and
GPUs of each job from its block. Nothing here knows the rules: a rule added to the workflow
shows up by itself.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import mathrecipes

RULE_LINE = re.compile(r"^(local)?rule (\w+):$")
KEY_VALUE = re.compile(r"(\w+)=(.*?)(?=, \w+=|$)")
TIMEOUT_S = 600


class DagError(RuntimeError):
    """Snakemake could not build the config's job graph (its own message attached)."""


@dataclass(frozen=True)
class Job:
    """One job of the dry run: its rule, its wildcards and the resources it asks for."""

    rule: str
    wildcards: dict[str, str] = field(default_factory=dict)
    resources: dict[str, str] = field(default_factory=dict)
    local: bool = False
    has_output: bool = False  # a target rule (`all`, `all_grades`...) has inputs only

    @property
    def gpus(self) -> int:
        try:
            return int(float(self.resources.get("gpu", "0") or 0))
        except ValueError:
            return 0

    @property
    def is_target(self) -> bool:
        """A target rule (``all``, ``all_grades``...): it writes nothing, so does no work."""
        return not self.has_output


@dataclass
class DryRun:
    """The parsed report of one dry run."""

    counts: dict[str, int]  # rule -> jobs, in Snakemake's order
    jobs: list[Job]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def default_snakefile() -> Path:
    """The repository's Snakefile: beside the package's source tree (an editable install), else
    ``Snakefile`` in the working directory."""
    repo = Path(mathrecipes.__file__).resolve().parents[2]
    if (repo / "Snakefile").is_file():
        return repo / "Snakefile"
    return Path("Snakefile").resolve()


def parse_dry_run(text: str) -> DryRun:
    """Counts per rule (the ``Job stats`` table) and the job blocks of a dry-run report."""
    counts: dict[str, int] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() != "Job stats:":
            continue
        for row in lines[i + 1 :]:
            parts = row.split()
            if not parts or parts[0] == "total":
                break
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = counts.get(parts[0], 0) + int(parts[1])
        break
    jobs: list[Job] = []
    current: dict | None = None

    def close() -> None:
        if current is not None:
            jobs.append(Job(**current))

    for line in lines:
        stripped = line.strip()
        m = RULE_LINE.match(stripped)
        if m and not line.startswith(" "):
            close()
            current = {"rule": m.group(2), "local": bool(m.group(1))}
            continue
        if current is None:
            continue
        if stripped.startswith("wildcards:"):
            current["wildcards"] = dict(KEY_VALUE.findall(stripped[len("wildcards:") :].strip()))
        elif stripped.startswith("resources:"):
            current["resources"] = dict(KEY_VALUE.findall(stripped[len("resources:") :].strip()))
        elif stripped.startswith("output:"):
            current["has_output"] = True
        elif not stripped or stripped.startswith("Shell command") or stripped.startswith("["):
            close()
            current = None
    close()
    if not counts and jobs:  # a report without the table: count the blocks
        for job in jobs:
            counts[job.rule] = counts.get(job.rule, 0) + 1
    return DryRun(counts, jobs)


def _command(config: Path, snakefile: Path, force: bool) -> list[str]:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-n", "--configfile"]
    return [*cmd, str(config), *(["--forceall"] if force else [])]


def _env() -> dict[str, str]:
    """The subprocess never reaches the Hub (the DAG needs no download)."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def dry_runs(
    config: Path,
    snakefile: Path | None = None,
    pending: bool = False,
    cwd: Path | None = None,
) -> tuple[DryRun, DryRun | None]:
    """The ``--forceall`` dry run and, with ``pending``, the plain one (run concurrently, in
    ``cwd``: the working directory of the workflow)."""
    snakefile = Path(snakefile) if snakefile else default_snakefile()
    if not snakefile.is_file():
        raise DagError(f"no Snakefile at {snakefile} (give --snakefile)")
    procs = [
        subprocess.Popen(
            _command(config, snakefile, force),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(),
            cwd=cwd,
        )
        for force in ((True, False) if pending else (True,))
    ]
    reports = []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise DagError(f"snakemake dry run took over {TIMEOUT_S} s") from None
        if proc.returncode != 0:
            tail = "\n".join(out.strip().splitlines()[-25:])
            raise DagError(f"snakemake dry run failed ({proc.returncode}):\n{tail}")
        reports.append(parse_dry_run(out))
    return reports[0], (reports[1] if pending else None)


__all__ = ["DagError", "DryRun", "Job", "default_snakefile", "dry_runs", "parse_dry_run"]
