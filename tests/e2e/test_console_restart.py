"""What the operator decided survives ``kill -9``: a task's deadline, a ban, earned credit."""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from qortex.protocol import messages as m
from qortex.protocol.client import ClientSession, Reply
from qortex.signing import Signer
from tests.helpers import Server, StuckMiner, start_miners, timeout, wait_until

pytestmark = pytest.mark.e2e


def _closed_at_hello(server: Server, signer: Signer) -> int:
    """Say hello with ``signer``'s key; the close code the coordinator answers with."""
    session = ClientSession(signer, 1, ["sentiment"], "test")
    with connect(server.url.replace("http", "ws") + "/ws/miner") as ws:
        ws.send(session.hello_frame().decode())
        (reply,) = session.receive_all(ws.recv(timeout(10)))
        assert isinstance(reply, Reply)
        ws.send(reply.frame.decode())
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout(10))
        assert closed.value.rcvd is not None
        return closed.value.rcvd.code


def test_deadline_ban_and_credit_survive_a_crash(tmp_path: Path) -> None:
    server = Server(tmp_path, replicas=1, lease_seconds=600).start()
    miners = start_miners(server, 1, tmp_path / "keys")
    try:
        with server.client() as client:
            done = client.post("/api/v1/tasks", json={"tweets": ["good", "bad"]}).json()["taskId"]
            wait_until(
                lambda: client.get(f"/api/v1/tasks/{done}").json()["status"] == "completed",
                20,
                "the honest miner's task completed",
            )
            (honest,) = client.get("/api/v1/miners").json()["miners"]
            wait_until(
                lambda: client.get(f"/api/v1/miners/{honest['minerId']}").json()["credit"] == 2.0,
                10,
                "credit for two results",
            )
        miners.stop()

        stuck = StuckMiner(server, slots=1)
        with server.client() as client:
            body = {"tweets": ["slow", "slower"], "deadlineSeconds": 4}
            late = client.post("/api/v1/tasks", json=body).json()["taskId"]
            stuck.take(1)
            url = f"/api/v1/miners/{stuck.signer.miner_id}"
            assert client.patch(url, json={"status": "banned"}).status_code == 200
        server.kill()
        stuck.close()
        server.start()

        with server.client() as client:
            task = wait_until(
                lambda: (
                    (t := client.get(f"/api/v1/tasks/{late}").json())["status"] != "running" and t
                ),
                20,
                "the deadline passed after the restart",
            )
            assert (task["status"], task["reason"]) == ("failed", "deadline")
            assert client.get(url).json()["status"] == "banned"
            assert client.get(f"/api/v1/miners/{honest['minerId']}").json()["credit"] == 2.0
            (leader,) = client.get("/api/v1/leaderboard").json()["leaders"]
            assert (leader["rank"], leader["credit"]) == (1, 2.0)
        assert _closed_at_hello(server, stuck.signer) == m.BANNED
    finally:
        miners.stop()
        server.stop()
