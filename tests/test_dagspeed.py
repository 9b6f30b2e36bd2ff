"""mathrecipes.dagspeed: Snakemake's source lookups, memoized, give what Snakemake's own give."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from snakemake.sourcecache import GenericSourceFile, LocalSourceFile, SourceCache

from mathrecipes.dagspeed import memoize_local_sources


def test_memoized_lookups_equal_snakemakes_and_run_once(tmp_path):
    script = tmp_path / "scripts" / "job.py"
    script.parent.mkdir()
    script.write_text("print('é')\n", encoding="utf-8")
    plain = SourceCache(tmp_path / "cache_a")
    patched = SourceCache(tmp_path / "cache_b")
    workflow = SimpleNamespace(sourcecache=patched)
    assert memoize_local_sources(workflow)
    assert not memoize_local_sources(workflow)  # once per workflow

    src = LocalSourceFile(str(script))
    with plain.open(src) as a, patched.open(src) as b:
        assert a.read() == b.read() == "print('é')\n"
    with patched.open(src, "rb") as b:
        assert b.read() == "print('é')\n".encode()
    assert patched.exists(src) and plain.exists(src)
    # the same copy in the runtime cache as Snakemake's own
    ours = Path(patched.get_path(src)).relative_to(patched.runtime_cache_path)
    assert ours == Path(plain.get_path(src)).relative_to(plain.runtime_cache_path)
    assert list(patched._mathrecipes_memo) == [str(script)]

    missing = LocalSourceFile(str(tmp_path / "nope.py"))
    assert not patched.exists(missing) and not plain.exists(missing)
    assert str(tmp_path / "nope.py") not in patched._mathrecipes_memo


def test_other_sources_take_snakemakes_path(tmp_path):
    cache = SourceCache(tmp_path / "cache")
    assert memoize_local_sources(SimpleNamespace(sourcecache=cache))
    remote = GenericSourceFile("https://example.invalid/x.py")
    assert not cache.exists(remote)  # Snakemake's own lookup (fails offline, is not memoized)
    assert cache._mathrecipes_memo == {}


def test_workflow_without_source_cache_is_left_alone():
    assert not memoize_local_sources(SimpleNamespace())
