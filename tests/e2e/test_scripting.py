"""What a program scripting against Qortex relies on, with real processes and restarts.

A revoked key is refused mid-stream; an Idempotency-Key holds across a
``kill -9``; a scheduled task is offered to no miner before its time and runs
after a restart; ``qortex keys`` and ``qortex submit`` work through the
client; logs are JSON lines with request ids and no secrets.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import API_KEY, TWEETS, Server, labels, start_miners, timeout, wait_until

pytestmark = pytest.mark.e2e


def _qortex(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qortex", *args, "--url", server.url],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=timeout(30),
    )


def test_a_read_key_cannot_submit_and_a_revoked_key_is_cut_off_mid_stream(
    tmp_path: Path,
) -> None:
    server = Server(tmp_path).start()
    try:
        made = _qortex(server, "keys", "create", "watcher", "--scope", "read")
        assert made.returncode == 0, made.stderr
        key = json.loads(made.stdout)["key"]
        headers = {"x-api-key": key}
        refused = httpx.post(server.url + "/api/v1/tasks", json={"tweets": ["a"]}, headers=headers)
        assert refused.status_code == 403

        lines: list[str] = []
        opened = threading.Event()

        def watch() -> None:
            with httpx.stream(
                "GET", server.url + "/api/v1/events", headers=headers, timeout=timeout(30)
            ) as stream:
                assert stream.status_code == 200
                opened.set()
                lines.extend(stream.iter_lines())  # returns when the server ends the stream

        watcher = threading.Thread(target=watch)
        watcher.start()
        assert opened.wait(timeout(10))
        revoked = _qortex(server, "keys", "revoke", "watcher")
        assert revoked.returncode == 0, revoked.stderr
        watcher.join(timeout(10))
        assert not watcher.is_alive(), "the stream of a revoked key stayed open"
        assert "event: error" in lines
        assert any("was revoked" in line for line in lines)
        again = httpx.get(server.url + "/api/v1/events", headers=headers)
        assert again.status_code == 401
        listed = json.loads(_qortex(server, "keys", "list").stdout)
        assert [(k["name"], k["revokedAt"] is not None) for k in listed] == [
            ("configured", False),
            ("watcher", True),
        ]
    finally:
        server.stop()


def test_an_idempotent_retry_across_kill_9_returns_the_same_task(tmp_path: Path) -> None:
    server = Server(tmp_path).start()
    body = {"tweets": TWEETS}
    headers = {"idempotency-key": "nightly-2026-11-29"}
    try:
        with server.client() as client:
            first = client.post("/api/v1/tasks", json=body, headers=headers)
            assert first.status_code == 201
        server.kill()
        server.start()
        with server.client() as client:
            again = client.post("/api/v1/tasks", json=body, headers=headers)
            assert again.status_code == 200
            assert again.json()["taskId"] == first.json()["taskId"]
            other = client.post("/api/v1/tasks", json={"tweets": ["x"]}, headers=headers)
            assert other.status_code == 422
            assert len(client.get("/api/v1/tasks").json()["tasks"]) == 1
    finally:
        server.stop()


def test_a_scheduled_task_waits_for_its_time_and_runs_after_a_restart(tmp_path: Path) -> None:
    server = Server(tmp_path, replicas=1).start()
    miners = start_miners(server, 2, tmp_path / "keys")
    try:
        with server.client() as client:
            made = client.post(
                "/api/v1/tasks", json={"tweets": TWEETS[:2], "delaySeconds": timeout(4)}
            ).json()
            task_id, not_before = made["taskId"], made["notBefore"]
            now = client.post("/api/v1/tasks", json={"tweets": TWEETS[:1]}).json()["taskId"]
            wait_until(
                lambda: client.get(f"/api/v1/tasks/{now}").json()["status"] == "completed",
                30,
                "an unscheduled task completes meanwhile",
            )
            assert client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "scheduled"
        server.kill()
        miners.stop()
        server.start()
        miners = start_miners(server, 2, tmp_path / "keys2")
        with server.client() as client:
            wait_until(
                lambda: client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "completed",
                30,
                "the scheduled task completes after the restart",
            )
            log = client.get("/api/v1/events/log", params={"taskId": task_id}).json()["events"]
        types = [e["type"] for e in log]
        assert types[:2] == ["task.created", "task.scheduled"]
        assert types.count("task.started") == 1 and types[-1] == "task.completed"
        assert types.index("task.started") < types.index("microtask.quorum")
        conn = sqlite3.connect(server.db)
        answered = conn.execute(
            "SELECT MIN(r.received_at) FROM results r JOIN microtasks m"
            " ON m.id = r.microtask_id WHERE m.task_id = ?",
            (task_id,),
        ).fetchone()[0]
        assert answered >= not_before  # no copy was worked on before its time
    finally:
        miners.stop()
        server.stop()


def test_qortex_submit_sends_an_idempotency_key_and_schedules_with_in(tmp_path: Path) -> None:
    server = Server(tmp_path, replicas=1).start()
    miners = start_miners(server, 1, tmp_path / "keys")
    tweets = tmp_path / "tweets.txt"
    tweets.write_text("\n".join(TWEETS[:2]))
    try:
        started = time.time()
        done = _qortex(server, "submit", str(tweets), "--in", "1", "--wait")
        assert done.returncode == 0, done.stderr
        assert [row["label"] for row in json.loads(done.stdout)] == labels(TWEETS[:2])
        conn = sqlite3.connect(server.db)
        (key_name, idem, not_before) = conn.execute(
            "SELECT i.key_name, i.idem_key, s.not_before FROM idempotency i"
            " JOIN schedules s ON s.task_id = i.task_id"
        ).fetchone()
        assert key_name == "configured" and idem.startswith("qx-")
        assert not_before >= started + 1
        bad = _qortex(server, "submit", str(tweets), "--at", "yesterday")
        assert bad.returncode != 0 and "--at" in bad.stderr
    finally:
        miners.stop()
        server.stop()


def test_json_logs_carry_request_ids_and_no_secrets(tmp_path: Path) -> None:
    server = Server(tmp_path, log_format="json", log_level="info")
    server.env["MINER_SHARED_SECRET"] = "s3cret-from-the-seed"
    server.env["QUORUM_CHECK_INTERVAL_MS"] = "500"
    server.start()
    try:
        response = httpx.get(
            server.url + "/api/v1/tasks",
            params={"apiKey": API_KEY},
            headers={"x-request-id": "trace-42"},
        )
        assert response.status_code == 200 and response.headers["x-request-id"] == "trace-42"
        created = httpx.post(
            server.url + "/api/v1/tasks", json={"tweets": ["a"]}, headers={"x-api-key": API_KEY}
        ).json()
        httpx.get(server.url + f"/api/v1/tasks/{created['taskId']}?apiKey={API_KEY}")
    finally:
        server.stop()
    text = server.log.read_text()
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert records and all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    access = [r for r in records if r["logger"] == "qortex.access"]
    traced = [r for r in access if r.get("requestId") == "trace-42"]
    assert traced and traced[0]["status"] == 200 and traced[0]["path"].startswith("/api/v1/tasks")
    assert any(r.get("taskId") == created["taskId"] for r in access)
    assert API_KEY not in text and "s3cret-from-the-seed" not in text
    warnings = [r["message"] for r in records if r["level"] == "warning"]
    assert sum("MINER_SHARED_SECRET" in w for w in warnings) == 1
    assert sum("QUORUM_CHECK_INTERVAL_MS" in w for w in warnings) == 1
