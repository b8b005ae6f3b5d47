"""One database file, one coordinator; a start that fails changes nothing.

A second ``qortex serve`` on a file in use must refuse before it writes a byte,
name the file and the process that holds it, and leave the first coordinator
serving. A start that cannot listen must not replace the API key the CLI saved
for the coordinator already on that port.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import API_KEY, TWEETS, Server, free_port, snapshot, timeout

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path).start()
    yield srv
    srv.stop()


def serve_once(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``qortex serve`` that is expected to refuse to start."""
    return subprocess.run(
        [sys.executable, "-m", "qortex", "serve", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout(30),
    )


def test_a_second_server_on_a_database_in_use_refuses_and_the_first_goes_on(
    server: Server,
) -> None:
    assert server.proc is not None
    with server.client() as client:
        assert client.post("/api/v1/tasks", json={"tweets": TWEETS[:2]}).status_code == 201
    before = snapshot(server.db)
    files_before = sorted(p.name for p in server.tmp.iterdir())
    second_port = free_port()
    refused = serve_once(
        {**server.env, "QORTEX_PORT": str(second_port)}, server.tmp, "--db", server.db
    )
    assert refused.returncode == 2, refused.stderr
    message = " ".join(refused.stderr.split())
    assert server.db in message
    assert f"process {server.proc.pid}" in message
    assert server.url in message  # the holder says where it serves
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{second_port}/health", timeout=1)
    assert snapshot(server.db) == before
    assert sorted(p.name for p in server.tmp.iterdir()) == files_before
    # The first is untouched: it still takes work and commits it.
    with server.client() as client:
        created = client.post("/api/v1/tasks", json={"tweets": TWEETS[:3]})
        assert created.status_code == 201
        assert client.get("/health").json()["status"] == "ok"
    assert server.proc.poll() is None
    assert "commit failed" not in server.log.read_text()


def test_the_lock_dies_with_its_process(tmp_path: Path) -> None:
    first = Server(tmp_path).start()
    first.kill()  # kill -9: no shutdown code runs, the kernel drops the lock
    second = Server(tmp_path)
    second.start()
    try:
        with second.client() as client:
            assert client.get("/health").json()["status"] == "ok"
    finally:
        second.stop()


def test_a_start_that_cannot_listen_keeps_the_saved_key(tmp_path: Path) -> None:
    srv = Server(tmp_path)
    del srv.env["QORTEX_API_KEY"]
    srv.start()
    try:
        credentials = tmp_path / "config" / "qortex" / "credentials.json"
        saved = credentials.read_bytes()
        key = json.loads(saved)[srv.url]
        other = tmp_path / "other"
        other.mkdir()
        refused = serve_once(srv.env, other, "--port", str(srv.port), "--db", "other.db")
        assert refused.returncode == 2
        assert "address already in use" in refused.stderr.lower()
        assert str(srv.port) in refused.stderr
        assert "Client API key" not in refused.stdout
        assert credentials.read_bytes() == saved
        assert list(other.iterdir()) == []  # not even a database file was created
        env = {k: v for k, v in srv.env.items() if k != "QORTEX_API_KEY"}
        listed = subprocess.run(
            [sys.executable, "-m", "qortex", "submit", "-", "--url", f"localhost:{srv.port}"],
            input="what a day\n",
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout(30),
        )
        assert listed.returncode == 0, listed.stderr
        task_id = json.loads(listed.stdout)["taskId"]
        with httpx.Client(base_url=srv.url, headers={"x-api-key": key}) as client:
            assert client.get(f"/api/v1/tasks/{task_id}").status_code == 200
    finally:
        srv.stop()


def test_the_key_is_shown_and_saved_only_once_the_server_listens(tmp_path: Path) -> None:
    srv = Server(tmp_path)
    del srv.env["QORTEX_API_KEY"]
    srv.start()
    try:
        log = srv.log.read_text()
        # Shown by the listening hook, before the line that says the server listens.
        assert log.count("Client API key") == 1
        assert log.index("Client API key") < log.index(f"listening on {srv.url}")
        key = next(line.split(": ", 1)[1] for line in log.splitlines() if "Client API key" in line)
        response = httpx.get(srv.url + "/api/v1/tasks", headers={"x-api-key": key.strip()})
        assert response.status_code == 200
        assert (
            httpx.get(srv.url + "/api/v1/tasks", headers={"x-api-key": API_KEY}).status_code == 401
        )
    finally:
        srv.stop()
    assert os.path.exists(srv.db)
