"""The rooms import downward only (DESIGN: dependency direction), checked on the source.

Every ``import`` and ``from … import`` of every module, those inside functions included, is
read with :mod:`ast`; a module may import the core (``ftaccel.errors``, ``ftaccel.files``,
``ftaccel.config``, …), its own room and the rooms below it, never a room above.  The
application layer (``ftaccel.app``) may import everything; nothing imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: folder in the tree -> package name
ROOMS = {"ftaccel": "core", "rtl_gen": "rtl_gen", "golden": "golden", "tb": "tb",
         "synth": "synth", "app": "app"}
#: room -> the rooms it may import (besides itself and the core)
ALLOWED = {"core": set(), "rtl_gen": set(), "golden": set(),
           "tb": {"rtl_gen", "golden"}, "synth": {"rtl_gen", "golden"},
           "app": {"rtl_gen", "golden", "tb", "synth"}}


def _room_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "ftaccel":
        return None
    if len(parts) > 1 and parts[1] in ROOMS and parts[1] != "ftaccel":
        return parts[1]
    return "core"


def _imports(path: Path, package: str):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            yield node.lineno, mod
            if mod == "ftaccel":  # `from ftaccel import files` names a module of the core
                for alias in node.names:
                    yield node.lineno, f"ftaccel.{alias.name}"


def _modules():
    for folder, room in ROOMS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            package = "ftaccel" if folder == "ftaccel" else f"ftaccel.{folder}"
            yield path, room, package


@pytest.mark.parametrize("path,room,package", list(_modules()),
                         ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else "")
def test_imports_go_downward(path, room, package):
    if path.name == "__init__.py" and room == "core":
        pytest.skip("the package root names its public API lazily, by module path")
    wrong = []
    for line, module in _imports(path, package):
        target = _room_of(module)
        if target is None or target == room or target == "core":
            continue
        if target not in ALLOWED[room]:
            wrong.append(f"line {line}: {module} ({room} may not import {target})")
    assert not wrong, "\n".join(wrong)


def _module_name(path: Path, package: str) -> str:
    return package if path.name == "__init__.py" else f"{package}.{path.stem}"


def test_no_module_circles():
    """No two modules import each other, directly or through others (inner imports too).

    The graph is every ``ftaccel`` module's imports of other ``ftaccel`` modules (a
    package's ``__init__`` included, except the lazy public-API table of the root); its
    strongly connected components, found with Tarjan's algorithm, must all be single modules.
    """
    graph: dict[str, set[str]] = {}
    for path, _room, package in _modules():
        name = _module_name(path, package)
        if name == "ftaccel":
            continue  # the root names its public API by module path, imported on first use
        edges = graph.setdefault(name, set())
        for _line, module in _imports(path, package):
            if module.startswith("ftaccel.") and module != name:
                edges.add(module)
    nodes = set(graph) | {m for e in graph.values() for m in e}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
                circles.append(sorted(component))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    assert not circles, "module circles: " + "; ".join(" ⇄ ".join(c) for c in circles)
