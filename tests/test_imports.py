"""The modules under ``qortex/`` import each other without a cycle.

A cycle makes the order of imports matter and ties two modules into one that
cannot be understood, tested or moved apart. Imports are read from the source
with ``ast``, so nothing is executed. ``from a import b`` counts as an import
of the module ``a.b`` when it is one, else of ``a``. Every import counts:
inside functions (they run, just later) and under ``if TYPE_CHECKING:`` too,
since a module that names another in its annotations depends on it as much
as one that calls it; a part that needs something of the module importing it
is handed that as a narrower type.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "qortex"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, wherever it stands."""
    return [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]


def import_graph() -> dict[str, set[str]]:
    """Each ``qortex`` module and the ``qortex`` modules it imports."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            base = node.module or ""
            if node.level:  # relative: from the package this module is in
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                targets.add(target if target in paths else base)
        graph[name] = {t for t in targets if t in paths and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules, first repeated last; None if there is none."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        stack = [(start, iter(sorted(graph[start])))]
        path.append(start)
        on_path.add(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif child in on_path:
                return [*path[path.index(child) :], child]
            elif child not in done:
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
                on_path.add(child)
    return None


def test_the_qortex_modules_import_each_other_without_a_cycle() -> None:
    graph = import_graph()
    assert "qortex.coordinator" in graph and "qortex.core.dispatch" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_a_cycle_is_found_and_named() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_imports_under_type_checking_and_lazy_ones_count() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import qortex.a\n"
        "if TYPE_CHECKING:\n"
        "    from qortex.b import B\n"
        "def later():\n"
        "    from qortex import c\n"
    )
    imports = _imports(ast.parse(source))
    named = [n.module if isinstance(n, ast.ImportFrom) else n.names[0].name for n in imports]
    assert sorted(named) == ["qortex", "qortex.a", "qortex.b", "typing"]
