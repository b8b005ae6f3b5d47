"""The peers benchmark's Qortex leg, small: the harness runs end to end and reports its figures.

The Celery and Dask legs need the bench extra and a redis-server, so the suite
leaves them to ``benchmarks/peers.py`` itself; the Qortex leg needs nothing
more than the suite has. How fast it is is the benchmark's business
(docs/performance.md records it); this holds the harness to deciding every
microtask it submitted, through a real coordinator and real miner processes,
and to saying so in its JSON line.
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


@pytest.mark.timeout(timeout(150))
def test_qortex_leg_decides_every_microtask_and_reports_it() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/peers.py", "--qortex-only", "--microtasks", "60", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout(120),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["errors"] == {}
    assert report["config"] | {"microtasks": 0} == {
        "microtasks": 0,
        "replicas": 3,
        "quorum": 2,
        "workers": 2,
        "identities": 8,
        "slots": 16,
    }
    assert set(report["legs"]) == {"qortex"}
    leg = report["legs"]["qortex"]
    assert leg["decided"] == 60
    assert leg["seconds"] > 0 and leg["cpuSeconds"] > 0
    assert leg["decidedPerSecond"] == pytest.approx(60 / leg["seconds"], rel=0.01)
    # At least a quorum of accepted results behind every decision.
    assert leg["resultsPerDecided"] >= 2
    assert report["ratios"] == {} and report["cpuRatios"] == {}


def test_bad_sizes_are_refused_before_anything_starts() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/peers.py", "--qortex-only", "--replicas", "17"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout(60),
    )
    assert done.returncode == 2
    assert "--replicas must be between 1 and --workers x --identities" in done.stderr
    assert done.stdout == ""
