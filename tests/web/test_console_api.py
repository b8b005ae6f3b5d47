"""The operator's API in-process: cancel, deadlines, miner detail and filters, ban and
verify, stats, credit and the leaderboard; every bad input refused without a trace."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from qortex.protocol import messages as m
from qortex.protocol.client import ResultAnswer, Withdrawn
from qortex.settings import Settings
from qortex.signing import Signer, result_message
from tests.helpers import snapshot, timeout
from tests.web.socketminer import SocketMiner, submit, wait_rows, wait_status


def _event_rows(db: str, type_: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT task_id, miner_id, data FROM events WHERE type = ? ORDER BY id", (type_,)
        ).fetchall()
    finally:
        conn.close()


def _until(predicate: Any, message: str) -> Any:
    deadline = time.monotonic() + timeout(10)
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out: {message}")


def _unchanged(client: TestClient, db: str, method: str, url: str, status: int, **kw: Any) -> Any:
    """Send a bad request; it must be answered ``status`` with a JSON error and change nothing."""
    before = snapshot(db)
    response = client.request(method, url, **kw)
    assert response.status_code == status, response.text
    assert response.json()["error"] and response.json()["message"]
    assert snapshot(db) == before
    return response.json()


# -- cancel and deadlines ---------------------------------------------------------


def test_cancel_withdraws_the_copies_at_once_and_charges_nobody(
    client: TestClient, connect: Any, settings: Settings
) -> None:
    miner = connect()
    task_id = submit(client, ["a fine day"], replicas=1)
    assign = miner.work()

    response = client.post(f"/api/v1/tasks/{task_id}/cancel")
    assert response.status_code == 200
    assert response.json() == {"taskId": task_id, "status": "cancelled"}
    withdrawn = miner.next()
    assert isinstance(withdrawn, Withdrawn)
    assert (withdrawn.assignment_id, withdrawn.reason) == (assign.assignment_id, "cancelled")

    task = client.get(f"/api/v1/tasks/{task_id}").json()
    assert task["status"] == "cancelled" and task["reason"] == "cancelled by the operator"
    assert [mt["status"] for mt in task["microtaskDetails"]] == ["cancelled"]
    ((_, _, data),) = _event_rows(settings.db, "task.cancelled")
    assert '"withdrawn":1' in data

    # The result still in flight is refused as withdrawn, and not held against the miner.
    miner.answer(assign)
    verdict = miner.next()
    assert isinstance(verdict, ResultAnswer) and verdict.reason == "withdrawn"
    detail = client.get(f"/api/v1/miners/{miner.signer.miner_id}").json()
    assert detail["refused"] == 0 and detail["credit"] == 0

    again = _unchanged(client, settings.db, "POST", f"/api/v1/tasks/{task_id}/cancel", 409)
    assert "cancelled" in again["message"]
    _unchanged(client, settings.db, "POST", "/api/v1/tasks/nope/cancel", 404)


def test_cancelling_a_finished_task_is_409(
    client: TestClient, connect: Any, settings: Settings
) -> None:
    miner = connect()
    task_id = submit(client, ["a fine day"], replicas=1)
    miner.answer(miner.work())
    wait_status(client, task_id, "completed")
    body = _unchanged(client, settings.db, "POST", f"/api/v1/tasks/{task_id}/cancel", 409)
    assert "completed" in body["message"]


def test_a_task_past_its_deadline_fails_and_its_copies_are_withdrawn(
    client: TestClient, connect: Any, settings: Settings
) -> None:
    miner = connect()
    task_id = submit(client, ["a fine day", "a bad day"], replicas=1, deadlineSeconds=0.5)
    assign = miner.work()
    task = wait_status(client, task_id, "failed")
    assert task["reason"] == "deadline" and task["deadline"] is not None
    withdrawn = miner.next()
    assert isinstance(withdrawn, Withdrawn)
    assert (withdrawn.assignment_id, withdrawn.reason) == (assign.assignment_id, "deadline")
    assert {mt["status"] for mt in task["microtaskDetails"]} == {"cancelled"}
    ((event_task, _, data),) = _event_rows(settings.db, "task.failed")
    assert event_task == task_id and '"reason":"deadline"' in data


@pytest.mark.parametrize(
    ("deadline", "words"),
    [(-1, "deadlineSeconds"), (0, "deadlineSeconds"), ("soon", "deadlineSeconds")],
)
def test_bad_deadlines_are_refused(
    client: TestClient, settings: Settings, deadline: Any, words: str
) -> None:
    body = {"tweets": ["a"], "deadlineSeconds": deadline}
    error = _unchanged(client, settings.db, "POST", "/api/v1/tasks", 400, json=body)
    assert words in error["message"]


# -- miners -------------------------------------------------------------------------


def test_miner_detail_filters_and_sorting(
    client: TestClient, connect: Any, settings: Settings
) -> None:
    busy = connect(slots=2)
    task_id = submit(client, ["good"], replicas=1)
    assign = busy.work()
    busy.answer(assign)
    wait_status(client, task_id, "completed")
    idle = connect()
    offline = Signer()
    client.post("/api/v1/miners/register", json={"publicKey": offline.public_hex, "name": "off"})
    worker = busy.signer.miner_id
    _until(
        lambda: client.get(f"/api/v1/miners/{worker}").json()["recentResults"], "result recorded"
    )

    detail = client.get(f"/api/v1/miners/{worker}").json()
    assert detail["connected"] is True and detail["address"] == "testclient"
    assert detail["kinds"] == ["sentiment"] and detail["status"] == "active"
    assert detail["accepted"] == 1 and detail["credit"] == 1.0
    assert detail["recentResults"][0]["assignmentId"] == assign.assignment_id
    assert detail["working"] == [] and detail["connectedSince"] is not None
    assert detail["slots"] == 2
    away = client.get(f"/api/v1/miners/{offline.miner_id}").json()
    assert away["connected"] is False and away["slots"] is None and away["working"] == []

    def ids(**params: Any) -> list[str]:
        page = client.get("/api/v1/miners", params=params).json()
        assert page["total"] >= len(page["miners"])
        return [row["minerId"] for row in page["miners"]]

    both = {busy.signer.miner_id, idle.signer.miner_id}
    assert set(ids(connected="true")) == both
    assert ids(connected="false") == [offline.miner_id]
    assert set(ids(kind="sentiment")) == both  # the offline one registered no kinds
    assert ids(kind="matmul") == []
    assert len(ids(status="active")) == 3 and ids(status="banned") == []
    assert ids(sort="credit")[0] == worker
    assert len(ids(limit=1)) == 1
    assert client.get("/api/v1/miners", params={"limit": 1}).json()["total"] == 3

    for params in ({"connected": "maybe"}, {"status": "gone"}, {"sort": "name"}, {"limit": 0}):
        _unchanged(client, settings.db, "GET", "/api/v1/miners", 400, params=params)
    _unchanged(client, settings.db, "GET", "/api/v1/miners/" + "0" * 32, 404)


def test_ban_disconnects_and_refuses_the_key_everywhere(
    client: TestClient, connect: Any, settings: Settings
) -> None:
    signer = Signer()
    miner = connect(signer)
    task_id = submit(client, ["good"], replicas=1)
    assign = miner.work()
    url = f"/api/v1/miners/{signer.miner_id}"

    response = client.patch(url, json={"status": "banned", "note": "wrong labels"})
    assert response.status_code == 200
    assert response.json() == {
        "minerId": signer.miner_id,
        "status": "banned",
        "note": "wrong labels",
    }
    with pytest.raises(WebSocketDisconnect) as closed:
        while True:
            miner.next()
    assert closed.value.code == m.BANNED
    detail = client.get(url).json()
    assert (detail["status"], detail["note"], detail["connected"]) == (
        "banned",
        "wrong labels",
        False,
    )
    ((_, banned_id, _),) = _event_rows(settings.db, "miner.banned")
    assert banned_id == signer.miner_id
    # Its copy went back to the queue: the task still runs, with nobody on it.
    assert client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "running"

    # A later hello of the same key is closed with 4011 once it has proved the key.
    with client.websocket_connect("/ws/miner") as ws:
        again = SocketMiner(ws, signer)
        with pytest.raises(WebSocketDisconnect) as refused:
            again.handshake()
        assert refused.value.code == m.BANNED

    # And a result over HTTP, signed by the banned key, is refused.
    output = b'"positive"'
    signed = {
        "assignmentId": assign.assignment_id,
        "microtaskId": assign.microtask_id,
        "output": output.decode(),
        "signature": signer.sign(
            result_message(assign.assignment_id, assign.microtask_id, assign.input_sha256, output)
        ),
    }
    http = client.post(f"/internal/miner/{signer.miner_id}/result", json=signed)
    assert http.status_code == 403 and "banned" in http.json()["message"]

    # Reinstated, the key may connect again.
    assert client.patch(url, json={"status": "active"}).json()["status"] == "active"
    with client.websocket_connect("/ws/miner") as ws:
        SocketMiner(ws, signer).handshake()
    assert len(_event_rows(settings.db, "miner.reinstated")) == 1


def test_verify_marks_the_operators_own_machine(
    client: TestClient, connect: Any, settings: Settings
) -> None:
    miner = connect()
    url = f"/api/v1/miners/{miner.signer.miner_id}"
    wait_rows(settings.db, "miners", 1)
    assert client.get(url).json()["reputation"] == 0  # a new identity counts for little
    assert client.patch(url, json={"status": "verified", "note": "my desktop"}).status_code == 200
    detail = client.get(url).json()
    assert (detail["status"], detail["note"], detail["reputation"]) == (
        "verified",
        "my desktop",
        1000,
    )
    assert detail["credibility"] is None or detail["credibility"] > 0.999
    assert client.get("/api/v1/miners", params={"status": "verified"}).json()["total"] == 1
    assert len(_event_rows(settings.db, "miner.verified")) == 1
    # A verified miner keeps its connection.
    miner.send(m.Heartbeat(1))
    assert isinstance(m.server_decoder.decode(miner.ws.receive_text()), m.Heartbeat)
    # Reinstated as an ordinary miner, it is back to what its checks earned.
    assert client.patch(url, json={"status": "active"}).status_code == 200
    assert client.get(url).json()["reputation"] == 0
    history = client.get(f"{url}/reputation-history").json()["history"]
    assert [row["reputation"] for row in history] == [0, 1000]  # newest first


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"status": "deleted"}, "status"),
        ({"status": "banned", "color": "red"}, "color"),
        ({"note": "no status"}, "status"),
        ({"status": "banned", "note": "x" * 501}, "note"),
        ([], "invalid request"),
    ],
)
def test_bad_status_changes_are_refused(
    client: TestClient, connect: Any, settings: Settings, body: Any, words: str
) -> None:
    miner = connect()
    wait_rows(settings.db, "miners", 1)
    url = f"/api/v1/miners/{miner.signer.miner_id}"
    error = _unchanged(client, settings.db, "PATCH", url, 400, json=body)
    assert words in error["message"]
    assert client.get(url).json()["connected"] is True


def test_status_change_of_an_unknown_miner_is_404(client: TestClient, settings: Settings) -> None:
    url = "/api/v1/miners/" + "0" * 32
    _unchanged(client, settings.db, "PATCH", url, 404, json={"status": "banned"})


def test_admin_routes_need_the_key(client: TestClient, settings: Settings) -> None:
    anonymous = {"x-api-key": ""}
    for method, url in [
        ("POST", "/api/v1/tasks/x/cancel"),
        ("GET", "/api/v1/miners/x"),
        ("PATCH", "/api/v1/miners/x"),
        ("GET", "/api/v1/stats"),
    ]:
        _unchanged(client, settings.db, method, url, 401, headers=anonymous)


# -- numbers, credit, leaderboard ----------------------------------------------------


def test_stats_count_tasks_miners_results_and_refusals(
    client: TestClient, connect: Any, settings: Settings
) -> None:
    miner = connect()
    done = submit(client, ["good"], replicas=1)
    miner.answer(miner.work())
    wait_status(client, done, "completed")
    cancelled = submit(client, ["bad"], replicas=1)
    client.post(f"/api/v1/tasks/{cancelled}/cancel")
    # An assignment nobody was given, in the right format:
    miner.send(m.Result("0" * 24, f"{cancelled}:0", '"x"', "00" * 64))
    _until(lambda: client.get("/api/v1/stats").json()["refusals"], "refusal counted")

    stats = _until(
        lambda: (s := client.get("/api/v1/stats").json())["resultsPerSecond"]["minute"] > 0 and s,
        "throughput sampled",
    )
    assert stats["tasks"] == {
        "scheduled": 0,
        "running": 0,
        "completed": 1,
        "failed": 0,
        "cancelled": 1,
    }
    assert stats["minersConnected"] == 1 and stats["minersByKind"] == {"sentiment": 1}
    assert stats["refusals"] == {"unknown_assignment": 1}
    assert stats["accepted"] == 1 and stats["decided"] == 1 and stats["inconclusive"] == 0
    assert stats["decisionsPerSecond"]["hour"] > 0 and stats["series"]
    assert stats["uptimeSeconds"] > 0


def test_credit_is_earned_ranked_and_revoked(
    client: TestClient, connect: Any, settings: Settings
) -> None:
    with client.websocket_connect("/ws/miner") as ws:
        alice = SocketMiner(ws, Signer())
        alice.session = type(alice.session)(alice.signer, 1, ["sentiment"], "test", "alice")
        alice.handshake()
        aids = []
        for tweet in ("good", "bad"):
            task_id = submit(client, [tweet], replicas=1)
            assign = alice.work()
            alice.answer(assign)
            assert isinstance(alice.next(), ResultAnswer)
            aids.append(assign.assignment_id)
            wait_status(client, task_id, "completed")
        bob = connect()
        bob_task = submit(client, ["fine"], replicas=1)
        bob.answer(bob.work())
        wait_status(client, bob_task, "completed")

    def board(**params: Any) -> dict[str, Any]:
        response = client.get("/api/v1/leaderboard", params=params, headers={"x-api-key": ""})
        assert response.status_code == 200  # public
        return response.json()

    leaders = _until(lambda: len(board()["leaders"]) == 2 and board()["leaders"], "credited")
    assert [(row["rank"], row["name"], row["credit"]) for row in leaders] == [
        (1, "alice", 2.0),
        (2, "anonymous", 1.0),
    ]
    assert all("minerId" not in row and "publicKey" not in row for row in leaders)
    assert board(minerId=bob.signer.miner_id)["you"] == {"rank": 2, "credit": 1.0}
    assert board(minerId="nobody")["you"] is None

    coord = client.app.state.coordinator  # type: ignore[attr-defined]
    taken = client.portal.call(coord.trust.revoke_credit, alice.signer.miner_id, aids)  # type: ignore[union-attr]
    assert taken == 2.0
    again = client.portal.call(coord.trust.revoke_credit, alice.signer.miner_id, aids)  # type: ignore[union-attr]
    assert again == 0.0  # the same results: nothing more is taken
    others = client.portal.call(coord.trust.revoke_credit, bob.signer.miner_id, aids)  # type: ignore[union-attr]
    assert others == 0.0  # not bob's results
    detail = client.get(f"/api/v1/miners/{alice.signer.miner_id}").json()
    assert detail["credit"] == 0.0
    assert [row["name"] for row in board()["leaders"]] == ["anonymous"]
    assert board(minerId=bob.signer.miner_id)["you"] == {"rank": 1, "credit": 1.0}

    # A ban revokes the miner's results, and so their credit.
    bob_url = f"/api/v1/miners/{bob.signer.miner_id}"
    assert client.patch(bob_url, json={"status": "banned"}).status_code == 200
    _until(lambda: client.get(bob_url).json()["credit"] == 0.0, "the ban revoked bob's credit")
    assert board()["leaders"] == []

    for params in ({"limit": 0}, {"offset": -1}):
        response = client.get("/api/v1/leaderboard", params=params)
        assert response.status_code == 400
