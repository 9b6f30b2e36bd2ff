"""No import cycles in the package.

The import graph of ``src/mathrecipes`` is read from the source with :mod:`ast`: every
``import`` and ``from ... import`` (at module level and inside functions, which run later but
still tie the two modules together; not those under ``if TYPE_CHECKING:``, which never run).
Relative imports are resolved against the importing module's package. ``from pkg import name``
is an edge to the submodule ``pkg.name`` when there is one, else to ``pkg`` itself (its
``__init__``, which re-exports the name and runs whenever the name is imported).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "mathrecipes"
SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path, src: Path) -> str:
    parts = path.relative_to(src).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(src: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` under ``src``, by dotted name."""
    return {
        module_name(p, src): p
        for p in sorted((src / package).rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def _runtime_nodes(tree: ast.AST):
    """The nodes of ``tree``, without the bodies of ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that module ``name`` (file ``path``) imports."""
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()

    def deepest(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [deepest(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                origin = ".".join([*base, node.module] if node.module else base)
            else:
                origin = node.module or ""
            targets = [
                f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in known else deepest(origin)
                for alias in node.names
            ]
        else:
            continue
        out.update(t for t in targets if t and t != name)
    return out


def import_graph(src: Path, package: str) -> dict[str, set[str]]:
    found = modules(src, package)
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) for every strongly connected component of more than one
    module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, set(c)) for c in sorted(components)]


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the first module of ``component`` (breadth first)."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")  # a component always has one


def test_the_package_has_no_import_cycle():
    graph = import_graph(SRC, PACKAGE)
    assert "mathrecipes.sources.formats" in graph and graph["mathrecipes.sources.formats"]
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def write_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_graph_reads_every_kind_of_import(tmp_path):
    src = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.sub import thing\n",
            "pkg/sub/__init__.py": "from .leaf import thing\n",
            "pkg/sub/leaf.py": "import os\nthing = 1\n",
            "pkg/a.py": "from . import b\nfrom .sub import thing\n",
            "pkg/b.py": "def f():\n    import pkg.sub.leaf\n    from pkg import a\n",
            "pkg/c.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n"
                "else:\n    from .b import f\n"
            ),
            "pkg/sub/deep.py": "from ..c import x\nfrom .. import sub\n",
        },
    )
    assert import_graph(src, "pkg") == {
        "pkg": {"pkg.sub"},
        "pkg.sub": {"pkg.sub.leaf"},
        "pkg.sub.leaf": set(),
        "pkg.sub.deep": {"pkg.c", "pkg.sub"},
        "pkg.a": {"pkg.b", "pkg.sub"},
        "pkg.b": {"pkg.sub.leaf", "pkg.a"},
        "pkg.c": {"pkg.b"},
    }
    assert cycles(import_graph(src, "pkg")) == [["pkg.a", "pkg.b", "pkg.a"]]


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c", "a"]]),
        (
            {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c", "a"}},
            [["a", "b", "a"], ["c", "d", "c"]],
        ),
    ],
)
def test_cycles_names_each_one(graph, expected):
    assert cycles(graph) == expected
