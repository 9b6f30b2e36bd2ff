"""Snakemake's per-job lookups of a ``script:`` rule's source, made once per script file.

Snakemake checks the script of every job it plans (``dag.ScriptProcessor``: a dry run, a run,
a no-op alike): for each of the grid's thousands of jobs it parses the script's path as a URI
three times, checks its copy in the runtime source cache and reads it through ``smart_open``
behind a retry decorator. The files are the same few scripts every time, so on the 2,387-job
bench grid this was about a third of what a dry run spends beyond bare Snakemake
(``benchmarks/bench_dag.py``). :func:`memoize_local_sources` makes the same lookups once per
local file for one workflow: the copy in the runtime cache is made by Snakemake's own code on
the first lookup (Snakemake never refreshes it within a run either), and reading it is a plain
``open``, which is what ``smart_open`` does for a local path. Remote and git sources take
Snakemake's own path unchanged. If Snakemake's ``SourceCache`` changes shape, nothing is
patched and everything works as without this module.
"""

from __future__ import annotations

import builtins
import types
from typing import Any


def memoize_local_sources(workflow: Any) -> bool:
    """Patch ``workflow.sourcecache`` (this workflow only); True when patched."""
    try:
        from snakemake.sourcecache import LocalSourceFile
    except ImportError:  # pragma: no cover - another Snakemake
        return False
    cache = getattr(workflow, "sourcecache", None)
    if cache is None or getattr(cache, "_mathrecipes_memo", None) is not None:
        return False
    if not all(callable(getattr(cache, name, None)) for name in ("_cache", "open")):
        return False
    own_cache, own_open = cache._cache, cache.open
    entries: dict[str, Any] = {}

    def _cache(self: Any, source_file: Any) -> Any:
        if type(source_file) is not LocalSourceFile:
            return own_cache(source_file)
        entry = entries.get(source_file.path)
        if entry is None:
            entry = entries[source_file.path] = own_cache(source_file)
        return entry

    def open_(self: Any, source_file: Any, mode: str = "r") -> Any:
        if type(source_file) is not LocalSourceFile:
            return own_open(source_file, mode)
        encoding = None if "b" in mode else "utf-8"
        return builtins.open(self._cache(source_file), mode, encoding=encoding)

    cache._cache = types.MethodType(_cache, cache)
    cache.open = types.MethodType(open_, cache)
    cache._mathrecipes_memo = entries
    return True
