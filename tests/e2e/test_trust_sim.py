"""The trust simulation, short mode: every cell runs end to end and yields its figures.

The figures' values are the engine's business (docs/trust.md records them);
this test holds the harness to producing a complete, consistent set for
every cell it ran, against a real coordinator and real miner processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import timeout

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ("wrongPct", "inconclusivePct", "pendingPct", "resultsPerDecided", "adversaryVotePct")


@pytest.mark.timeout(timeout(180))
def test_quick_trust_simulation_reports_every_cell() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/trust_sim.py", "--quick", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout(150),
    )
    assert done.stdout, done.stderr[-3000:]
    report = json.loads(done.stdout)
    cells = report["cells"]
    assert report["plan"] == "quick"
    assert {c["kind"] for c in cells} == {"sentiment", "matmul"}
    assert {c["mode"] for c in cells} == {"paced", "backlog"}
    assert {c["config"] for c in cells} == {"default", "sybil", "gold", "honest"}
    for cell in cells:
        name = cell["cell"]
        assert not cell["errors"], (name, cell["errors"])
        assert cell["tasks"] > 0 and cell["microtasks"] > 0, name
        # Whatever never settled is judged as it stands, and counted as pending.
        assert cell["decided"] + cell["inconclusive"] + cell["pending"] == cell["microtasks"], name
        assert 0 <= cell["wrong"] <= cell["decided"], name
        for key in FIGURES:
            assert isinstance(cell[key], float), (name, key, cell[key])
        assert cell["caught"] <= cell["liars"], name
        if cell["config"] == "honest":
            assert cell["adversarialIdentities"] == 0 and cell["liars"] == 0, name
        else:
            assert cell["adversarialIdentities"] > 0, name
    sybil = next(c for c in cells if c["config"] == "sybil")
    assert sybil["adversarialIdentities"] > 2 * sybil["adversarialOperators"]
    total = report["total"]
    assert total["cells"] == len(cells)
    assert total["microtasks"] == sum(c["microtasks"] for c in cells)
    assert done.returncode == 0, done.stderr[-3000:]
