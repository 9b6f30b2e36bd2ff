"""docs/config.md is the config reference that the schema's field descriptions make: it fails
when one of them changed and the file was not written again (a drift test)."""

from __future__ import annotations

import difflib
from pathlib import Path

from pydantic import BaseModel

from mathrecipes.config import Config, reference

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "config.md"


def _spec_classes(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[type[BaseModel]]:
    if model in seen:
        return seen
    seen.add(model)
    for field in model.model_fields.values():
        for sub in reference._models(field.annotation):
            _spec_classes(sub, seen)
    for base in model.__mro__[1:]:  # SynthesisSpec, JudgedSpec: shared keys
        if isinstance(base, type) and issubclass(base, BaseModel) and base.model_fields:
            _spec_classes(base, seen)
    return seen


def test_docs_config_md_is_what_the_generator_writes():
    want, have = reference.render(), DOC.read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(have.splitlines(True), want.splitlines(True), n=1))
    assert have == want, f"{DOC} is stale: python -m mathrecipes.config.reference\n{diff[:3000]}"
    assert reference.main(["--check", str(DOC)]) == 0


def test_the_check_fails_on_a_stale_file(tmp_path, capsys):
    stale = tmp_path / "config.md"
    stale.write_text(reference.render().replace("| `shards` |", "| `shard` |"), encoding="utf-8")
    assert reference.main(["--check", str(stale)]) == 1
    assert "is stale" in capsys.readouterr().err
    assert reference.main([str(stale)]) == 0 and reference.main(["--check", str(stale)]) == 0


def test_every_key_has_a_description_and_a_table():
    classes = _spec_classes(Config, set())
    missing = {
        f"{c.__name__}.{name}"
        for c in classes
        for name, field in c.model_fields.items()
        if not field.description
    }
    assert not missing, sorted(missing)
    text = DOC.read_text(encoding="utf-8")
    for c in classes - {Config}:  # every key of every spec class has a row
        for name, field in c.model_fields.items():
            assert f"| `{field.alias or name}` |" in text, f"{c.__name__}.{name}"
    for method in ("distill", "structure", "rephrase", "rewrite", "extract", "weakness"):
        assert f"### `synthesis.<name>` with `method: {method}`" in text
