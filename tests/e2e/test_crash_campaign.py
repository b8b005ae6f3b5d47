"""The crash campaign, short mode: kill -9 under load three times, and every promise still holds."""

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
def test_short_crash_campaign_keeps_every_promise() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/crash_campaign.py", "--kills", "3", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout(120),
    )
    assert done.stdout, done.stderr[-3000:]
    report = json.loads(done.stdout)
    failed = {name: c["detail"] for name, c in report["checks"].items() if not c["ok"]}
    assert not failed, failed
    assert not report["errors"], report["errors"]
    assert report["kills"] == 3
    assert report["restarts"] >= 3
    assert report["specialKills"]["largeSubmit"] >= 1
    assert report["specialKills"]["migration"] >= 1
    assert report["tasksSubmitted"] > 0
    assert report["tasksChecked"] == report["tasksSubmitted"]
    assert report["resultsAcked"] > 0
    assert isinstance(report["cliResultsAccepted"], int)  # the CLI miners' own count was read
    assert report["resultsChecked"] == report["resultsAcked"]
    assert report["eventsSeen"] == report["eventsLogged"] - report["eventsAfterStreamClosed"]
    assert report["duplicatesSeen"] == 0
    assert report["gaps"] == 0
    assert report["lost"] == 0
    assert report["ok"] is True
    assert done.returncode == 0, done.stderr[-3000:]
