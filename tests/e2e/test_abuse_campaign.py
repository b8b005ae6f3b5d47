"""The abuse campaign, short mode: every way in is tried, and every bound holds.

Times and memory are the campaign's figures (docs/security.md), not asserted
here; what is asserted is what no attack may change: the process stays up,
nothing an attacker sends grows the file by more than a kilobyte a request,
the honest task still completes, nothing is logged as an error, and each
defence answered the way it is documented.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import timeout

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "benchmarks/abuse_campaign.py", "--short", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout(240),
    )
    assert done.stdout, done.stderr[-3000:]
    return json.loads(done.stdout)["scenarios"]


@pytest.mark.timeout(timeout(300))
def test_no_attack_stops_the_process_or_fills_the_disk(report: dict[str, Any]) -> None:
    for name, scenario in report.items():
        if "skipped" in scenario:
            continue
        assert scenario["alive"], name
        assert scenario["logErrors"] == 0, name
        if name != "full_disk":
            assert scenario["bytesPerRequest"] <= 1024, (name, scenario)
            assert scenario["honestSeconds"] is not None, name
    assert set(report) == {
        "disk",
        "full_disk",
        "pipelining",
        "slow_readers",
        "hoarders",
        "slow_connections",
        "api_key",
        "smaller",
    }


def test_each_defence_answers_as_documented(report: dict[str, Any]) -> None:
    disk = report["disk"]["answers"]
    assert disk.get("400", 0) > 0 and disk.get("close 4000", 0) > 0
    assert report["pipelining"]["answers"].get("cut", 0) > 0
    readers = report["slow_readers"]["answers"]
    assert readers.get("200") == 100 and readers.get("429", 0) > 0  # max_subscribers
    slow = report["slow_connections"]["answers"]
    assert slow["slow head open after hold"] == 0
    assert slow["silent socket open after hold"] == 0
    key = report["api_key"]
    assert key["answers"].get("429", 0) > 0
    assert key["notes"]["keyInLog"] is False
    assert key["notes"]["shortKeyRefused"].startswith("exit 2: error: api_key must be at least")
    notes = report["smaller"]["notes"]
    assert notes["otherKindsFile"] == 404 and notes["ownKindsFile"] == 200
    assert notes["emptyLastEventId"] == 400 and notes["outputsNull"] == 400
    assert {"GET", "POST"} <= {m.strip() for m in notes["optionsAllow"].split(",")}
    assert notes["publicKeyPattern"] == "^[0-9a-fA-F]{64}$"


def test_a_full_disk_is_survived(report: dict[str, Any]) -> None:
    full = report["full_disk"]
    if "skipped" in full:
        pytest.skip(full["skipped"])
    notes = full["notes"]
    assert notes["healthWhileFull"] == "degraded: refused: the disk is full"
    assert full["answers"].get("submit 503", 0) > 0 and notes["retryAfter"] == ["5"]
    assert full["answers"].get("read 200", 0) > 0 and notes["eventStreamWhileFull"]
    assert notes["aliveWhileFull"]
    assert notes["acknowledgedTasks"] > 0 and notes["acknowledgedLost"] == 0
    assert notes["secondsToResume"] is not None and full["honestAfterSeconds"] is not None
