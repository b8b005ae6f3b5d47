"""The fault campaign's short mode: faulty and hostile miners against a real coordinator.

Runs ``scripts/fault_campaign.py --json`` once (a real ``qortex serve``, three
honest CLI miners, one attacker per fault class) and checks what it reports:
every answer the document specifies, every honest task completed with the
right labels, no HTTP 5xx, no handler crash in the server's log.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import timeout

# The campaign runs once, in the first test's setup: its cap is the fixture's, not 120 s.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(timeout(300))]

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = ROOT / "scripts" / "fault_campaign.py"

CLASSES = {
    "disconnect",
    "stall",
    "silent",
    "same_key",
    "malformed",
    "batched",
    "huge",
    "flood",
    "never_given",
    "replay",
    "wrong_key",
    "late",
}


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--json"],
        capture_output=True,
        text=True,
        timeout=timeout(240),
        cwd=ROOT,
        check=False,
    )
    assert proc.stdout.strip(), f"no report (exit {proc.returncode}): {proc.stderr[-3000:]}"
    result = json.loads(proc.stdout)
    result["exitCode"] = proc.returncode
    return result


def _checks(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (cls["class"], name): check
        for cls in report["classes"]
        for name, check in cls["checks"].items()
    }


def _differences(check: dict[str, Any]) -> dict[str, int]:
    return {a: n for a, n in check["answers"].items() if a not in check["expected"]}


def test_every_fault_class_was_tried(report: dict[str, Any]) -> None:
    tried = {cls["class"]: cls["tried"] for cls in report["classes"]}
    assert set(tried) == CLASSES
    assert all(n > 0 for n in tried.values()), tried
    assert report["tried"] > 1000  # the floods alone send thousands


def test_honest_tasks_all_complete_with_the_right_labels(report: dict[str, Any]) -> None:
    honest = report["honest"]
    assert honest["submitted"] >= 4, honest
    assert honest["completed"] == honest["submitted"], honest
    assert honest["wrongLabels"] == 0, honest
    assert honest["submitErrors"] == {}, honest


def test_no_http_answer_is_a_5xx(report: dict[str, Any]) -> None:
    assert report["http5xx"] == 0


def test_the_server_stays_healthy(report: dict[str, Any]) -> None:
    assert report["server"]["health"] == "ok"


def test_every_answer_matches_the_protocol_doc(report: dict[str, Any]) -> None:
    wrong = {key: _differences(check) for key, check in _checks(report).items()}
    assert {key: diff for key, diff in wrong.items() if diff} == {}


def test_the_server_logs_no_handler_crash(report: dict[str, Any]) -> None:
    assert report["server"]["handlerCrashes"] == 0, report["server"]["crashCauses"]


def test_zero_mismatches_and_exit_zero(report: dict[str, Any]) -> None:
    assert report["mismatches"] == 0, report["problems"]
    assert report["ok"] and report["exitCode"] == 0, report["problems"]
