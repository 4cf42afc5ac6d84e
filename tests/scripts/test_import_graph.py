"""The import graph of ``scripts/`` (read with ``ast``, nothing imported): no cycle, and no tool imports another.

Every entry of ``scripts/`` (a module ``scripts/<x>.py`` or a package ``scripts/<x>/``) is either a **tool**, which
has a command line (``python -m scripts.<x>``: it calls ``fire.Fire``, checks ``__name__ == "__main__"`` or has a
``__main__.py``), or a **library** without one: ``common`` (what several tools share), ``phantoms`` (the demo-data
renderers), ``serving`` (the MONAI Label app that ``serve`` builds). Every import counts, also those inside
functions; imports named in strings (``"module:function"`` in the registry) are not imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

SCRIPTS = REPO / "scripts"


def module_files(root: Path = SCRIPTS) -> dict[str, Path]:
    """``{"scripts.x.y": file}`` of every module under ``root`` (a package is named by its ``__init__.py``)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``name`` imports (``from pkg import sub`` counts as ``pkg.sub`` where that is
    a module; relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:  # the module itself, else the package it is in
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph(root: Path = SCRIPTS) -> dict[str, set[str]]:
    files = module_files(root)
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def entry(module: str) -> str:
    """``scripts.<x>`` of any module ``scripts.<x>[.<y>...]``."""
    return ".".join(module.split(".")[:2])


def tools(root: Path = SCRIPTS) -> set[str]:
    """The entries of ``scripts/`` that have a command line."""
    found = set()
    for name, path in module_files(root).items():
        text = path.read_text()
        if path.name == "__main__.py" or "fire.Fire(" in text or '__name__ == "__main__"' in text:
            found.add(entry(name))
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return groups


def tool_imports_of_other_tools(root: Path = SCRIPTS) -> list[str]:
    """``"a -> b"`` for every import of a module of one tool by a module of another tool or of a library."""
    command_lines = tools(root)
    return sorted(f"{source} -> {target}" for source, targets in graph(root).items() for target in targets
                  if entry(target) in command_lines and entry(target) != entry(source))


def test_the_scripts_tree_is_what_this_test_reads():
    entries = {entry(m) for m in module_files()}
    assert {"scripts.common", "scripts.benchmark", "scripts.serve", "scripts.package"} <= entries
    assert {"scripts.benchmark", "scripts.serve", "scripts.package", "scripts.model_stats"} <= tools()
    assert not {"scripts.common", "scripts.phantoms", "scripts.serving"} & tools()
    assert "scripts.common.bundles" in graph()["scripts.package"]  # resolves absolute imports
    assert "scripts.benchmark.profiles" in graph()["scripts.benchmark.run"]  # and relative ones


def test_no_import_cycle_in_scripts():
    assert cycles(graph()) == []


def test_no_tool_imports_another_tool():
    """Tools import ``scripts.common``, their own package and command-line-free libraries, never another tool;
    libraries import no tool either."""
    assert tool_imports_of_other_tools() == []


def test_common_imports_nothing_else_of_scripts():
    """``scripts.common`` is the bottom layer: any tool or test can import it without pulling in a tool."""
    outside = {f"{m} -> {t}" for m, targets in graph().items() if entry(m) == "scripts.common"
               for t in targets if entry(t) != "scripts.common"}
    assert outside == set()


@pytest.mark.parametrize("edges, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_cycle_finder(edges, expected):
    assert cycles(edges) == expected
