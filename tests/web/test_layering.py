"""The web layer asks the coordinator; it does not reach into it or write to the store.

Health, metrics and pages read ``Coordinator.snapshot()``; changes go through
the coordinator's methods. So no module under ``qortex/web/`` may read the
coordinator's dispatch table or counters, queue writes itself, or build facts.
The source is read with ``ast``, so a new route that does any of it fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "qortex" / "web"
COORDINATOR_NAMES = {"coord", "coordinator"}
PRIVATE_PARTS = {"table", "stats"}  # the dispatch table and the counters behind the snapshot


def _name_of(node: ast.expr) -> str:
    """The last name of ``a.b.coord`` or ``coord``."""
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def reaches_in(source: str) -> list[str]:
    """Every place the source reads the coordinator's insides, writes, or builds facts."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            if node.attr in PRIVATE_PARTS and _name_of(node.value) in COORDINATOR_NAMES:
                found.append((node.lineno, f"coordinator.{node.attr}"))
            if node.attr == "write" and _name_of(node.value) == "writer":
                found.append((node.lineno, "writer.write"))
        elif isinstance(node, ast.ImportFrom):
            names = {f"{node.module}.{alias.name}" for alias in node.names}
            if node.module == "qortex.store.facts" or "qortex.store.facts" in names:
                found.append((node.lineno, "imports qortex.store.facts"))
    return [f"line {line}: {what}" for line, what in sorted(found)]


@pytest.mark.parametrize("path", sorted(WEB.glob("*.py")), ids=lambda p: p.name)
def test_a_web_module_does_not_reach_into_the_coordinator(path: Path) -> None:
    assert reaches_in(path.read_text()) == []


def test_reaching_in_is_noticed() -> None:
    source = (
        "from qortex.store import facts as f\n"
        "def health(request):\n"
        "    coord = request.app.state.coordinator\n"
        "    n = len(coord.table.tasks)\n"
        "    request.app.state.coordinator.stats.throttled += 1\n"
        "    coord.store.writer.write([])\n"
        "    return coord.snapshot()\n"
    )
    assert reaches_in(source) == [
        "line 1: imports qortex.store.facts",
        "line 4: coordinator.table",
        "line 5: coordinator.stats",
        "line 6: writer.write",
    ]
