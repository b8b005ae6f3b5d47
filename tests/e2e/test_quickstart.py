"""The README's quick start, for real: ``qortex serve``, ``qortex miner``, ``qortex submit``."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qortex.core.kinds import KindRegistry
from qortex.events import LIVE_ONLY
from qortex.kinds.sentiment import SentimentKind
from qortex.miner.keys import read_key
from qortex.proof import check_proof
from tests.helpers import (
    API_KEY,
    TWEETS,
    MinerProcesses,
    Server,
    follow_events,
    labels,
    start_miners,
    timeout,
    wait_until,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path).start()
    yield srv
    srv.stop()


@pytest.fixture
def five_miners(server: Server, tmp_path: Path) -> Iterator[MinerProcesses]:
    miners = start_miners(server, 5, tmp_path / "keys")
    yield miners
    miners.stop()


def run_cli(server: Server, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qortex", *args, "--url", server.url],
        input=stdin,
        capture_output=True,
        text=True,
        env=server.env,
        timeout=timeout(60),
    )


def test_submit_wait_prints_the_labelled_tweets(
    server: Server, five_miners: MinerProcesses, tmp_path: Path
) -> None:
    tweets = tmp_path / "tweets.txt"
    tweets.write_text("\n".join(TWEETS) + "\n")
    done = run_cli(server, "submit", str(tweets), "--wait")
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    assert output == [
        {"tweet": t, "label": lab} for t, lab in zip(TWEETS, labels(TWEETS), strict=True)
    ]
    assert "5/5" in done.stderr  # the progress bar reached the end


def test_stdin_submit_and_status(server: Server, five_miners: MinerProcesses) -> None:
    created = run_cli(server, "submit", "-", stdin="what a lovely day\n")
    assert created.returncode == 0, created.stderr
    task_id = json.loads(created.stdout)["taskId"]
    with server.client() as client:
        wait_until(
            lambda: client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "completed",
            20,
            "task completed",
        )
    shown = run_cli(server, "status", task_id, "--json")
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["output"] == [
        {"tweet": "what a lovely day", "label": "positive"}
    ]


def test_rest_and_sse_follow_a_task_in_order(server: Server, five_miners: MinerProcesses) -> None:
    with server.client() as client:
        task_id = client.post("/api/v1/tasks", json={"tweets": TWEETS[:2]}).json()["taskId"]
        seen: list[tuple[int, str, dict]] = []
        params = {"taskId": task_id, "lastEventId": "0"}
        with client.stream("GET", "/api/v1/events", params=params, timeout=timeout(20)) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            event_id, name = 0, ""
            for line in stream.iter_lines():
                if line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    seen.append((event_id, name, json.loads(line[6:])))
                    event_id = 0  # an event without an id line is live only
                    if name == "task.completed":
                        break
    names = [name for _, name, _ in seen]
    assert names[0] == "task.created"
    assert names[-1] == "task.completed"
    assert names.count("microtask.quorum") == 2
    # What happened before the stream opened is replayed from the log, which holds
    # no live-only events; those that come are the ones that happened while it was open.
    assert all(name in LIVE_ONLY for i, name, _ in seen if not i)
    ids = [i for i, _, _ in seen if i]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(data["taskId"] == task_id for _, _, data in seen)
    quorum = [data for _, name, data in seen if name == "microtask.quorum"]
    assert sorted(q["decision"] for q in quorum) == sorted(labels(TWEETS[:2]))


def test_proof_bundle_checks_out_offline(
    server: Server, five_miners: MinerProcesses, tmp_path: Path
) -> None:
    with server.client() as client:
        task_id = client.post("/api/v1/tasks", json={"tweets": TWEETS}).json()["taskId"]
        wait_until(
            lambda: client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "completed",
            20,
            "task completed",
        )
        proof = client.get(f"/api/v1/tasks/{task_id}/proof").json()
    kinds = KindRegistry([SentimentKind()])
    assert check_proof(proof, kinds) == []
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(proof))
    checked = subprocess.run(
        [sys.executable, "-m", "qortex", "verify", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout(30),
    )
    assert checked.returncode == 0, checked.stderr
    # Tamper with one signed output: the offline check must notice.
    proof["microtasks"][0]["votes"][0]["output"] = '"tampered"'
    assert any("signature" in p for p in check_proof(proof, kinds))


def test_miner_keys_are_private_and_stable(server: Server, tmp_path: Path) -> None:
    keys = tmp_path / "keys"

    def connected(client: httpx.Client) -> set[str]:
        miners = client.get("/api/v1/miners").json()["miners"]
        return {m["minerId"] for m in miners if m["connected"]}

    with server.client() as client:
        for _ in range(2):  # the second run must come back with the same identities
            miners = MinerProcesses(server, 2, keys)
            wait_until(lambda: len(connected(client)) == 2, 20, "2 miners connected")
            ids = {read_key(path).miner_id for path in keys.iterdir()}
            assert connected(client) == ids
            miners.stop()
            wait_until(lambda: not connected(client), 20, "miners gone")
    assert len(list(keys.iterdir())) == 2
    for key in keys.iterdir():
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600


def test_generated_api_key_is_printed_once_and_stored_hashed(tmp_path: Path) -> None:
    srv = Server(tmp_path)
    del srv.env["QORTEX_API_KEY"]
    srv.start()
    try:
        log = srv.log.read_text()
        key = next(
            line.split(": ", 1)[1].strip() for line in log.splitlines() if "Client API key" in line
        )
        saved = json.loads((tmp_path / "config" / "qortex" / "credentials.json").read_text())
        assert saved[srv.url] == key
        assert httpx.get(srv.url + "/api/v1/tasks", headers={"x-api-key": key}).status_code == 200
        assert (
            httpx.get(srv.url + "/api/v1/tasks", headers={"x-api-key": API_KEY}).status_code == 401
        )
        assert key.encode() not in Path(srv.db).read_bytes()
    finally:
        srv.stop()
    srv.start()  # a restart keeps the key and does not print a new one
    try:
        assert srv.log.read_text().count("Client API key") == 1
        assert httpx.get(srv.url + "/api/v1/tasks", headers={"x-api-key": key}).status_code == 200
    finally:
        srv.stop()


def test_sse_resumes_from_last_event_id_without_loss(
    server: Server, five_miners: MinerProcesses
) -> None:
    with server.client() as client:
        task_id = client.post("/api/v1/tasks", json={"tweets": TWEETS}).json()["taskId"]
        wait_until(
            lambda: client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "completed",
            20,
            "task completed",
        )
    everything = follow_events(
        server, 0, until=lambda e: e["type"] == "task.completed", taskId=task_id
    )
    cut = everything[len(everything) // 2]["id"]
    first = [e for e in everything if e["id"] <= cut]
    # A client that saw events up to ``cut`` reconnects with the standard header.
    rest = follow_events(
        server,
        cut,
        until=lambda e: e["type"] == "task.completed",
        last_event_header=True,
        taskId=task_id,
    )
    ids = [e["id"] for e in first + rest]
    assert ids == [e["id"] for e in everything]  # every event once, in order
    assert rest[0]["id"] > cut
