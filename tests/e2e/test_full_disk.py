"""A full disk and a read-only file, for real: a small tmpfs under the database.

Mounting needs root (as on CI and the developers' machines); elsewhere these
tests are skipped with that reason.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.abuse_full_disk import fill
from tests.helpers import (
    API_KEY,
    TWEETS,
    Server,
    follow_events,
    labels,
    start_miners,
    timeout,
    wait_until,
)

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def small_disk(where: Path, size: str = "16m") -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _health(client: httpx.Client) -> dict[str, Any]:
    return client.get("/health").json()


def test_a_full_disk_refuses_writes_keeps_reads_and_resumes(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        server = Server(tmp_path, db=disk / "qortex.db", replicas=3).start()
        miners = start_miners(server, 5, tmp_path / "keys")
        try:
            with server.client() as client:
                first = client.post("/api/v1/tasks", json={"tweets": TWEETS}).json()["taskId"]
                wait_until(
                    lambda: client.get(f"/api/v1/tasks/{first}").json()["status"] == "completed",
                    30,
                    "the first task completed",
                )
                filler = fill(disk)
                # The next write finds the disk full; its client waits, unacknowledged.
                pending: dict[str, Any] = {}

                def submit() -> None:
                    with httpx.Client(
                        base_url=server.url, headers={"x-api-key": API_KEY}, timeout=timeout(60)
                    ) as own:
                        pending["answer"] = own.post("/api/v1/tasks", json={"tweets": TWEETS[:2]})

                waiting = threading.Thread(target=submit)
                waiting.start()
                health = wait_until(
                    lambda: (h := client.get("/health")).status_code == 503 and h.json(),
                    20,
                    "health reports that writes are refused",
                )
                assert health["status"] == "degraded"
                assert health["writes"] == "refused: the disk is full"

                refused = client.post("/api/v1/tasks", json={"tweets": TWEETS})
                assert refused.status_code == 503
                assert int(refused.headers["retry-after"]) >= 1
                assert "disk is full" in refused.json()["message"]
                key = "ab" * 32
                register = client.post("/api/v1/miners/register", json={"publicKey": key})
                assert register.status_code == 503
                # Reads and the event stream keep working.
                assert client.get(f"/api/v1/tasks/{first}").json()["status"] == "completed"
                assert client.get("/api/v1/tasks").status_code == 200
                replay = follow_events(
                    server, 0, until=lambda e: e["type"] == "task.completed", taskId=first
                )
                assert replay[-1]["data"]["taskId"] == first
                # Miners are told to come back later, and keep being told so.
                wait_until(lambda: _health(client)["minersConnected"] == 0, 20, "miners sent away")
                assert server.proc is not None and server.proc.poll() is None

                filler.unlink()
                wait_until(lambda: client.get("/health").status_code == 200, 20, "writes resume")
                waiting.join(timeout(60))
                answer = pending["answer"]
                assert answer.status_code == 201
                second = answer.json()["taskId"]
                wait_until(
                    lambda: client.get(f"/api/v1/tasks/{second}").json()["status"] == "completed",
                    60,
                    "the task held while the disk was full completed",
                )
                output = client.get(f"/api/v1/tasks/{second}").json()["output"]
                assert [item["label"] for item in output] == labels(TWEETS[:2])
                assert client.post("/api/v1/tasks", json={"tweets": TWEETS}).status_code == 201
        finally:
            miners.stop()
            server.stop()
        log = server.log.read_text()
        assert "writes refused until this changes: the disk is full" in log
        assert "writes resumed" in log
        assert "Traceback" not in log


def test_a_read_only_database_is_refused_at_start(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        server = Server(tmp_path, db=disk / "qortex.db").start()
        server.stop()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        started = subprocess.run(
            [sys.executable, "-m", "qortex", "serve"],
            cwd=tmp_path,
            env=server.env,
            capture_output=True,
            text=True,
            timeout=timeout(30),
        )
        assert started.returncode == 2
        assert "cannot write the database" in started.stderr
        assert "read-only" in started.stderr
        assert "Traceback" not in started.stderr
