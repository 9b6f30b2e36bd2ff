"""The config reference, docs/config.md, written from the schema.

Every section of :class:`~mathrecipes.config.Config` gets a heading and every spec class a
table (key, type, default, description) from its fields; a nested spec gets its own table under
its key path (``recipes.<name>.volume``), a spec of several kinds (sources, teachers, synthesis
methods) one table per kind. Run from the repository root::

    python -m mathrecipes.config.reference            # writes docs/config.md
    python -m mathrecipes.config.reference --check    # exit 1 when docs/config.md is stale

``tests/test_config_reference.py`` fails when docs/config.md differs from what this writes.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from mathrecipes.config.base import NAME_RE, Strict
from mathrecipes.config.experiment import Config

DEFAULT_PATH = Path("docs") / "config.md"

INTRO = """\
# Config reference

<!-- Generated from the schema (src/mathrecipes/config/) by
     `python -m mathrecipes.config.reference`: edit the field descriptions there, not this file.
     tests/test_config_reference.py fails when this file is stale. -->

The config is validated before any job runs (`load_config` in `mathrecipes.config`): an unknown
key or a wrong type fails with a message that names the key path, e.g.
`config key 'recipes.better.volume.fractoin': unknown key`. `<name>` stands for a name you
choose (letters, digits, `_`, `.`, `-`). A key without a default is required.
"""

# (heading, the Config field documented under it)
SECTIONS = (
    ("Datasets and benchmarks", "datasets"),
    ("Synthesis", "synthesis"),
    ("Recipes", "recipes"),
    ("Selection", "selection"),
    ("Students", "students"),
    ("Generation", "generation"),
    ("Likelihood", "likelihood"),
    ("Grading", "grading"),
    ("References", "references"),
    ("Tables", "tables"),
    ("Plan", "plan"),
)
SAME_AS = {"benchmarks": "datasets"}  # sections whose entries are the same specs


def render() -> str:
    """The whole reference (the text of docs/config.md)."""
    paths: dict[type, str] = {}  # where each spec class is documented: its first key path
    for _, key in SECTIONS:
        _assign(Config.model_fields[key].annotation, _section_path(key), paths)
    out: list[str] = []
    done: set[type] = set()
    for heading, key in SECTIONS:
        out.append(f"## {heading}\n")
        path = _section_path(key)
        others = [k for k, same in SAME_AS.items() if same == key]
        if others:
            out.append(
                f"`{path}`, and every `{others[0]}.<name>` the same: a `source` of one kind.\n"
            )
        out.extend(_document(Config.model_fields[key].annotation, path, paths, done))
    top = _table(Config, list(Config.model_fields), "", paths)
    return "\n".join([INTRO, "## Top level\n", *top, *out]).rstrip("\n") + "\n"


def _section_path(key: str) -> str:
    return _child_path("", key, Config.model_fields[key].annotation)


# ------------------------------------------------------------------ walking the schema


def _assign(annotation: Any, path: str, paths: dict[type, str]) -> None:
    """Give every spec class in ``annotation`` and below the first key path it is met at."""
    models = [m for m in _models(annotation) if m not in paths]
    if not models:
        return
    base = _common_base(models)
    tables = ([base] if base is not None else []) + models
    for model in tables:
        paths[model] = path
    for model in tables:
        for name in _own(model, base):
            annotation = model.model_fields[name].annotation
            _assign(annotation, _child_path(path, _key(model, name), annotation), paths)


def _document(annotation: Any, path: str, paths: dict[type, str], done: set[type]) -> list[str]:
    """Tables of the spec classes in ``annotation`` documented at ``path``, then of the spec
    classes their fields hold."""
    models = [m for m in _models(annotation) if paths.get(m) == path and m not in done]
    if not models:
        return []
    base = _common_base(models)
    tables = ([base] if base is not None else []) + models
    out: list[str] = []
    for model in tables:  # the synthesis methods: the keys they share, then each one's own
        done.add(model)
        tag = _tag(model) if model is not base and len(models) > 1 else ""
        fields = _own(model, base)
        out += [f"### `{path}`{tag}\n", *_doc(model), *_table(model, fields, path, paths)]
    for model in tables:
        for name in _own(model, base):
            annotation = model.model_fields[name].annotation
            sub = _child_path(path, _key(model, name), annotation)
            out += _document(annotation, sub, paths, done)
    return out


def _own(model: type[BaseModel], base: type[BaseModel] | None) -> list[str]:
    """The fields of ``model`` that its table shows (not those of the shared ``base``)."""
    if base is None or model is base:
        return list(model.model_fields)
    return [f for f in model.model_fields if f not in base.model_fields]


def _child_path(path: str, key: str, annotation: Any) -> str:
    child = f"{path}.{key}" if path else key
    origin = _origin(annotation)
    if origin is dict:
        return child + ".<name>"
    if origin is list:
        return child + ".<i>"
    return child


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The spec classes an annotation holds (through unions, lists and dicts), in order."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        for m in _models(arg):
            if m not in found:
                found.append(m)
    return found


def _common_base(models: list[type[BaseModel]]) -> type[BaseModel] | None:
    """A spec class (with fields) that every one of several models extends, or None."""
    if len(models) < 2:
        return None
    for base in models[0].__mro__[1:]:
        if base in (Strict, BaseModel) or not isinstance(base, type):
            continue
        if issubclass(base, BaseModel) and all(issubclass(m, base) for m in models):
            return base
    return None


def _tag(model: type[BaseModel]) -> str:
    """`` with `backend: openai` ``: the Literal field that tells a kind from the others."""
    for name in ("source", "backend", "method"):
        field = model.model_fields.get(name)
        values = typing.get_args(field.annotation) if field is not None else ()
        if typing.get_origin(field and field.annotation) is Literal and len(values) == 1:
            return f" with `{name}: {values[0]}`"
    return ""


def _origin(annotation: Any) -> Any:
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return typing.get_origin(annotation)


# ------------------------------------------------------------------ markdown


def _doc(model: type[BaseModel]) -> list[str]:
    if not model.__doc__:
        return []
    text = " ".join(inspect.cleandoc(model.__doc__).split("\n\n")[0].split())
    return [_markdown(text) + "\n"]


def _table(
    model: type[BaseModel], fields: list[str], path: str, paths: dict[type, str]
) -> list[str]:
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for name in fields:
        field = model.model_fields[name]
        key = _key(model, name)
        kind = _type(field.annotation, paths)
        if _pattern(field) == NAME_RE:
            kind = "name"
        bounds = _bounds(field)
        if bounds:
            kind += f" ({bounds})"
        cells = (f"`{key}`", kind, _default(field), _markdown(field.description or ""))
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return ["\n".join(rows) + "\n"]


def _key(model: type[BaseModel], name: str) -> str:
    return model.model_fields[name].alias or name


def _type(annotation: Any, paths: dict[type, str]) -> str:
    """A reader's name for a field's type; a spec class names the path of its table."""
    models = _models(annotation)
    if not models:
        return _plain_type(annotation)
    what = {list: "list of mappings", dict: "mapping of names to mappings"}
    kind = what.get(_origin(annotation), "mapping")
    optional = " (or null)" if _allows_none(annotation) else ""
    return f"{kind}, see `{paths[models[0]]}`{optional}"


def _plain_type(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        metadata = [m for a in args[1:] for m in (a.metadata if isinstance(a, FieldInfo) else [a])]
        if NAME_RE in [getattr(m, "pattern", None) for m in metadata]:
            return "name"
        return _plain_type(args[0])
    if origin is Literal:
        return " or ".join(f"`{_scalar(a)}`" for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_plain_type(a) for a in args)
    if origin is list:
        return f"list of {_plain_type(args[0])}"
    if origin is dict:
        return f"mapping of {_plain_type(args[0])} to {_plain_type(args[1])}"
    names = {int: "integer", float: "number", str: "string", bool: "boolean", Any: "any"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _allows_none(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation)


def _bounds(field: FieldInfo) -> str:
    words: dict[type, Callable[[Any], str]] = {
        annotated_types.Ge: lambda m: f">= {m.ge}",
        annotated_types.Gt: lambda m: f"> {m.gt}",
        annotated_types.Le: lambda m: f"<= {m.le}",
        annotated_types.Lt: lambda m: f"< {m.lt}",
        annotated_types.MinLen: lambda m: "not empty" if m.min_length == 1 else f"{m.min_length}+",
    }
    found = [words[type(m)](m) for m in field.metadata if type(m) in words]
    pattern = _pattern(field)
    if pattern is not None and pattern != NAME_RE:
        found.append(f"matching `{pattern}`")
    return ", ".join(found)


def _pattern(field: FieldInfo) -> str | None:
    patterns = [getattr(m, "pattern", None) for m in field.metadata]
    return next((p for p in patterns if p is not None), None)


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        shown = value.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        tag = _tag(type(value)).removeprefix(" with ").strip("`")
        if len(_models(field.annotation)) > 1 and tag:  # a kind: name it
            return f"`{{{tag}}}`"
        return f"`{_scalar(shown)}`" if shown else "its defaults"
    return f"`{_scalar(value)}`"


def _scalar(value: Any) -> str:
    """A value as YAML would show it inline."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_scalar(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    return str(value)


def _markdown(text: str) -> str:
    """reStructuredText bits of a docstring as markdown (``x`` and :role:`~a.b.x` as `x`), and
    ``<``, ``>`` outside code as entities (``<name>`` is not an HTML tag)."""
    text = re.sub(r":\w+:`~?(?:[\w.]+\.)?([^`]+)`", r"`\1`", text).replace("``", "`")
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


# ------------------------------------------------------------------ command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", default=str(DEFAULT_PATH), help="default: %(default)s")
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    args = parser.parse_args(argv)
    path, text = Path(args.path), render()
    if args.check:
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            print(f"{path} is stale: python -m mathrecipes.config.reference", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
