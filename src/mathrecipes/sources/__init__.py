"""Dataset sources: where raw rows come from.

A source turns a config entry (``datasets.<name>`` or ``benchmarks.<name>``) into raw rows, each
with a ``where`` string that names the file and row for error messages. Ingest then checks every
row against the canonical schema (:mod:`mathrecipes.records`).

To add a source: write a class with ``rows()`` and ``describe()`` (see :class:`Source`), and
register it in :data:`SOURCES` under the name used as ``source:`` in the config, next to a pydantic
spec in :mod:`mathrecipes.config`. Sources yield rows as they are; ingest renames columns
(``fields``) and applies the named format adapter (:mod:`mathrecipes.sources.formats`), which
extracts the gold answer and its type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

from mathrecipes.config import source_spec
from mathrecipes.sources.rows import BadRow


class Source(Protocol):
    def rows(self) -> Iterator[tuple[str, dict[str, Any] | BadRow]]:
        """Yield (where, raw row) pairs; ``where`` names the file and row, e.g. 'a.jsonl line 7';
        a row that could not be read is a :class:`BadRow` (ingest fails or quarantines it)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What to record in the manifest (files and their hashes, revisions, generator args)."""
        ...


# The source classes are imported when a source is opened, not with this package: the workflow
# imports input_files when it loads (rules/common.smk), and the builtin generator pulls in sympy
# and the local reader pyarrow (about half a second before Snakemake can plan a job).


def _builtin(name: str, spec: Any) -> Source:
    from mathrecipes.sources.builtin import BuiltinSource

    return BuiltinSource(name, spec)


def _local(name: str, spec: Any) -> Source:
    from mathrecipes.sources.local import LocalSource

    return LocalSource(name, spec)


def _hf(name: str, spec: Any) -> Source:
    from mathrecipes.sources.hf import HFSource

    return HFSource(name, spec)


SOURCES: dict[str, Callable[[str, Any], Source]] = {
    "builtin": _builtin,
    "local": _local,
    "hf": _hf,
}


def open_source(name: str, spec: Any) -> Source:
    """The source of a ``datasets`` / ``benchmarks`` entry (a source spec of
    :mod:`mathrecipes.config`, or a mapping for one)."""
    spec = source_spec(spec)
    return SOURCES[spec.source](name, spec)


def input_files(spec: Any) -> list[str]:
    """Files a source reads, for Snakemake ``input:`` (so editing them re-ingests)."""
    spec = source_spec(spec)
    if spec.source == "local":
        from mathrecipes.sources.local import local_input_files

        return local_input_files(spec.path)
    if spec.source == "hf":
        from mathrecipes.sources.hf import local_files

        return local_files(spec.path)
    return []


__all__ = ["SOURCES", "BadRow", "Source", "input_files", "open_source"]
