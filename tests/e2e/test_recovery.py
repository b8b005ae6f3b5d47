"""Crashes and vanishing miners, with real processes: nothing acknowledged is lost."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import (
    TWEETS,
    MinerProcesses,
    Server,
    StuckMiner,
    follow_events,
    labels,
    snapshot,
    timeout,
    wait_until,
)

pytestmark = pytest.mark.e2e


def _statuses(server: Server, task_ids: list[str]) -> list[str]:
    with server.client() as client:
        return [client.get(f"/api/v1/tasks/{t}").json()["status"] for t in task_ids]


def test_kill_9_mid_task_loses_nothing(tmp_path: Path) -> None:
    server = Server(tmp_path, replicas=3, lease_seconds=60).start()
    stuck = StuckMiner(server, slots=5)
    one = MinerProcesses(server, 1, tmp_path / "keys")
    try:
        with server.client() as client:
            task_ids = [
                client.post("/api/v1/tasks", json={"tweets": TWEETS}).json()["taskId"]
                for _ in range(3)
            ]
        # A lease is out with a miner that will never answer (one: a new miner has
        # earned one slot, whatever it declared).
        stuck.take(1)
        # The lone honest miner returns one copy of each of the 15 microtasks; quorum needs 2.
        wait_until(lambda: _count(server) == 15, 30, "one result per microtask")
        server.kill()
        stuck.close()
        one.stop()
        before = snapshot(server.db, ("tasks", "results"))

        server.start()
        after = snapshot(server.db, ("tasks", "results"))
        assert [t[0] for t in after["tasks"]] == [t[0] for t in before["tasks"]]
        assert after["results"] == before["results"]  # every stored result survived
        # The leases out at the crash are void (the stuck miner's copy is issued
        # again below), and subscribers hear that the miners connected then are gone.
        last = sqlite3.connect(server.db).execute("SELECT MAX(id) FROM events").fetchone()[0]
        log = follow_events(server, 0, until=lambda e: e["id"] >= last)
        gone = {
            e["data"]["minerId"]
            for e in log
            if e["type"] == "miner.disconnected" and e["data"]["reason"] == "coordinator restarted"
        }
        assert stuck.signer.miner_id in gone and len(gone) == 2  # and the honest one

        more = MinerProcesses(server, 4, tmp_path / "more-keys")
        wait_until(
            lambda: _statuses(server, task_ids) == ["completed"] * 3,
            30,
            "all tasks complete after the restart",
        )
        more.stop()
        with server.client() as client:
            for task_id in task_ids:
                task = client.get(f"/api/v1/tasks/{task_id}").json()
                assert [o["label"] for o in task["output"]] == labels(TWEETS)
    finally:
        server.stop()


def test_results_acknowledged_before_a_kill_are_all_there(tmp_path: Path) -> None:
    """Every microtask.result event a client saw (sent only after commit) survives kill -9."""
    server = Server(tmp_path, replicas=3).start()
    one = None
    try:
        with server.client() as client:
            for _ in range(4):
                client.post("/api/v1/tasks", json={"tweets": TWEETS})
        # microtask.result is live only: the stream must be open before the miner starts.
        results = 0
        seen: list[dict] = []
        streaming = threading.Event()

        def ten_results(event: dict) -> bool:
            nonlocal results
            streaming.set()  # the replay of task.created began: the stream is live
            results += event["type"] == "microtask.result"
            return results >= 10

        reader = threading.Thread(
            target=lambda: seen.extend(follow_events(server, 0, until=ten_results, seconds=60))
        )
        reader.start()
        assert streaming.wait(timeout(20))
        one = MinerProcesses(server, 1, tmp_path / "keys")
        reader.join(timeout(60))
        assert results >= 10
        server.kill()
        one.stop()
        acked = {e["data"]["assignmentId"] for e in seen if e["type"] == "microtask.result"}
        assert acked
        server.start()
        stored = {r[0] for r in snapshot(server.db, ("results",))["results"]}
        assert acked <= stored
    finally:
        server.stop()


def _count(server: Server) -> int:
    return len(snapshot(server.db, ("results",))["results"])


def _complete_with_third_miner(
    tmp_path: Path, lease: float, leave: bool
) -> tuple[list[dict], float]:
    # Companions off: these tests watch the stuck miner's copies expire or be released,
    # which a companion on an honest miner would pre-empt (docs/trust.md).
    server = Server(tmp_path, replicas=3, quorum=3, patience_seconds=0).start()
    stuck = StuckMiner(server, slots=5)
    two = MinerProcesses(server, 2, tmp_path / "keys")
    try:
        with server.client() as client:
            wait_until(lambda: client.get("/health").json()["minersConnected"] == 3, 20, "3 up")
            body = {"tweets": TWEETS, "leaseSeconds": lease}
            task_id = client.post("/api/v1/tasks", json=body).json()["taskId"]
        stuck.take(1)
        wait_until(lambda: _count(server) == 10, 20, "the two honest miners answered")
        third = MinerProcesses(server, 1, tmp_path / "third")
        with server.client() as client:
            wait_until(lambda: client.get("/health").json()["minersConnected"] == 4, 20, "4 up")
        if leave:  # a long lease: nothing can reach the third miner until the stuck one leaves
            time.sleep(0.3)
            assert _statuses(server, [task_id]) == ["running"]
        started = time.monotonic()
        if leave:
            stuck.close()
        wait_until(
            lambda: _statuses(server, [task_id]) == ["completed"],
            lease + 20,
            "the copies reached the third miner",
        )
        elapsed = time.monotonic() - started
        third.stop()
        events = follow_events(
            server, 0, until=lambda e: e["type"] == "task.completed", taskId=task_id
        )
        # Only the stuck miner's copies: on a busy machine an honest miner may be
        # late with a one-second lease too, and its copy is reassigned as well.
        stuck_id = stuck.signer.miner_id
        reassigned = [
            e
            for e in events
            if e["type"] == "microtask.reassigned" and e["data"].get("minerId") == stuck_id
        ]
        return reassigned, elapsed
    finally:
        stuck.close()
        two.stop()
        server.stop()


def test_disconnected_miner_loses_its_leases_at_once(tmp_path: Path) -> None:
    reassigned, elapsed = _complete_with_third_miner(tmp_path, lease=300, leave=True)
    assert len(reassigned) == 1
    assert {e["data"]["reason"] for e in reassigned} == {"released"}
    assert elapsed < timeout(10)  # far inside the 300 s lease: released on disconnect


def test_silent_miner_loses_its_leases_at_the_deadline(tmp_path: Path) -> None:
    reassigned, _ = _complete_with_third_miner(tmp_path, lease=1.0, leave=False)
    # It holds one copy at a time; each expires in turn and goes to someone else.
    assert len(reassigned) >= 1
    assert {e["data"]["reason"] for e in reassigned} == {"expired"}
