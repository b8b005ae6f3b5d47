"""Live-only events: streamed without an id to open streams, never logged or replayed."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from qortex.events import LIVE_ONLY
from tests.helpers import TWEETS, Server, follow_events, start_miners, timeout

pytestmark = pytest.mark.e2e


def test_assigned_and_result_are_streamed_live_but_not_logged(tmp_path: Path) -> None:
    server = Server(tmp_path, replicas=2, quorum=2).start()
    miners = start_miners(server, 2, tmp_path / "keys")
    try:
        live: list[dict] = []
        streaming = threading.Event()

        def until_completed(event: dict) -> bool:
            streaming.set()  # an event came: the stream subscribed before its replay began
            return event["type"] == "task.completed"

        reader = threading.Thread(
            target=lambda: live.extend(follow_events(server, 0, until=until_completed, seconds=60))
        )
        reader.start()
        assert streaming.wait(timeout(20))  # the miners' miner.connected, replayed or live
        with server.client() as client:
            task_id = client.post("/api/v1/tasks", json={"tweets": TWEETS}).json()["taskId"]
        reader.join(timeout(60))
        mine = [e for e in live if e["data"].get("taskId") == task_id]
        types = {e["type"] for e in mine}
        assert {"microtask.assigned", "microtask.result", "task.completed"} <= types
        for event in mine:
            assert (event["id"] == 0) == (event["type"] in LIVE_ONLY), event
        results = [e for e in mine if e["type"] == "microtask.result"]
        assert len(results) == 2 * len(TWEETS)

        conn = sqlite3.connect(server.db)
        logged = {row[0] for row in conn.execute("SELECT DISTINCT type FROM events")}
        assert not logged & LIVE_ONLY
        stored = conn.execute("SELECT assignment_id FROM results").fetchall()
        assert {r[0] for r in stored} == {e["data"]["assignmentId"] for e in results}
        last = conn.execute("SELECT MAX(id) FROM events").fetchone()[0]
        # Resuming from the start replays the log only: every event has its id.
        replayed = follow_events(server, 0, until=lambda e: e["id"] >= last)
        assert replayed and all(e["id"] > 0 for e in replayed)
        assert not {e["type"] for e in replayed} & LIVE_ONLY
    finally:
        miners.stop()
        server.stop()
