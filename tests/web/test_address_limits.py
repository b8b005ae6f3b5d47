"""Quotas per address, in-process: registrations, identities, handshakes, key guesses, results.

Starlette's test client connects as ``testclient``, an outside address, so
every quota applies to it; the trusted proxies' own requests are exempt.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from qortex.protocol import messages as m
from qortex.settings import Settings
from qortex.signing import Signer
from qortex.web.app import create_app
from tests.helpers import API_KEY, snapshot
from tests.web.socketminer import SocketMiner

MICROTASK = "3f0c0d4e-0000-4000-8000-000000000000:0"


def _client(tmp_path: Path, **settings: object) -> TestClient:
    app = create_app(Settings(db=str(tmp_path / "q.db"), api_key=API_KEY, **settings))
    return TestClient(app, headers={"x-api-key": API_KEY})


def test_registrations_and_new_identities_per_address(tmp_path: Path) -> None:
    with _client(
        tmp_path, register_rate=0.01, register_burst=4, identity_rate=0.01, identity_burst=2
    ) as client:
        keys = [Signer().public_hex for _ in range(3)]
        answers = [client.post("/api/v1/miners/register", json={"publicKey": k}) for k in keys]
        assert [a.status_code for a in answers] == [201, 201, 429]
        assert "new miner identities from this address" in answers[-1].json()["message"]
        assert int(answers[-1].headers["retry-after"]) >= 1
        before = snapshot(str(tmp_path / "q.db"), ("miners",))
        again = client.post("/api/v1/miners/register", json={"publicKey": keys[0]})
        assert again.status_code == 200  # a known key is not a new identity
        over = client.post("/api/v1/miners/register", json={"publicKey": keys[0]})
        assert over.status_code == 429 and "registrations" in over.json()["message"]
        assert snapshot(str(tmp_path / "q.db"), ("miners",)) == before
        assert "qortex_throttled_total 2.0" in client.get("/metrics").text


def test_registration_fields_are_bounded(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        key = Signer().public_hex
        for body in (
            {"publicKey": key, "kinds": ["k" * 60] * 17},
            {"publicKey": key, "kinds": ["k" * 65]},
            {"publicKey": key, "name": "n" * 101},
            {"publicKey": key, "software": "s" * 101},
            {"publicKey": key + "00"},
        ):
            answer = client.post("/api/v1/miners/register", json=body)
            assert answer.status_code == 400, body
        assert snapshot(str(tmp_path / "q.db"), ("miners",)) == {"miners": []}
        body = {"publicKey": key, "kinds": ["sentiment", "nope", "sentiment"], "name": "n" * 100}
        assert client.post("/api/v1/miners/register", json=body).status_code == 201
        (miner,) = client.get("/api/v1/miners").json()["miners"]
        assert miner["kinds"] == ["sentiment"]  # only kinds run here are stored


def test_failed_key_checks_are_throttled_per_address(tmp_path: Path) -> None:
    with _client(tmp_path, auth_failure_rate=0.01, auth_failure_burst=3) as client:
        wrong = [client.get("/api/v1/tasks", headers={"x-api-key": f"guess-{i}"}) for i in range(4)]
        assert [a.status_code for a in wrong] == [401, 401, 401, 429]
        # Over the quota even the right key waits: guessing gains nothing from it.
        right = client.get("/api/v1/tasks")
        assert right.status_code == 429
        assert "failed API key checks" in right.json()["message"]


def test_results_over_http_per_address(tmp_path: Path) -> None:
    with _client(tmp_path, result_rate=0.01, result_burst=2) as client:
        signer = Signer()
        client.post("/api/v1/miners/register", json={"publicKey": signer.public_hex})
        body = {"assignmentId": "0" * 24, "microtaskId": MICROTASK, "output": "1"}
        body["signature"] = "00" * 64
        url = f"/internal/miner/{signer.miner_id}/result"
        answers = [client.post(url, json=body).status_code for _ in range(3)]
        assert answers == [409, 409, 429]  # no such assignment, then over the quota


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/internal/miner/XYZ/result", {}),
        (
            f"/internal/miner/{'0' * 32}/result",
            {"assignmentId": "a" * 100_000, "microtaskId": MICROTASK, "output": "1"},
        ),
        (
            f"/internal/miner/{'0' * 32}/result",
            {"assignmentId": "0" * 24, "microtaskId": "x" * 100_000, "output": "1"},
        ),
    ],
)
def test_identifiers_out_of_format_are_refused_before_anything(
    tmp_path: Path, path: str, body: dict[str, str]
) -> None:
    with _client(tmp_path) as client:
        before = snapshot(str(tmp_path / "q.db"))
        answer = client.post(path, json={**body, "signature": "00" * 64})
        assert answer.status_code == 400
        assert len(answer.content) < 1000
        assert snapshot(str(tmp_path / "q.db")) == before


def test_handshakes_and_new_identities_per_address_close_4013(tmp_path: Path) -> None:
    known = Signer()
    with _client(
        tmp_path, handshake_rate=0.01, handshake_burst=3, identity_rate=0.01, identity_burst=1
    ) as client:
        with client.websocket_connect("/ws/miner") as ws:
            SocketMiner(ws, known).handshake()
        with client.websocket_connect("/ws/miner") as ws, pytest.raises(WebSocketDisconnect) as c:
            SocketMiner(ws).handshake()  # a second new identity
        assert c.value.code == m.ADDRESS_LIMIT and "identities" in c.value.reason
        with client.websocket_connect("/ws/miner") as ws:
            SocketMiner(ws, known).handshake()  # a known one is welcome
        with client.websocket_connect("/ws/miner") as ws, pytest.raises(WebSocketDisconnect) as c:
            SocketMiner(ws, known).handshake()  # the fourth handshake
        assert c.value.code == m.ADDRESS_LIMIT and "handshakes" in c.value.reason


def test_smaller_doors(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        assert client.get("/kinds/sentiment/matmul.js").status_code == 404
        assert client.get("/kinds/sentiment/sentiment_lexicon.txt").status_code == 200
        empty = client.get("/api/v1/events", headers={"last-event-id": ""})
        assert empty.status_code == 400
        task = client.post("/api/v1/tasks", json={"tweets": ["a"]}).json()["taskId"]
        assert client.get(f"/api/v1/tasks/{task}?outputs=null").status_code == 400
        assert client.get(f"/api/v1/tasks/{task}?outputs=false").status_code == 200
        options = client.options("/api/v1/tasks")
        assert options.status_code == 405
        assert {"GET", "POST"} <= {v.strip() for v in options.headers["allow"].split(",")}
        schema = client.get("/openapi.json").json()["components"]["schemas"]
        assert schema["Registration"]["properties"]["publicKey"]["pattern"] == "^[0-9a-fA-F]{64}$"
        assert schema["SignedResult"]["properties"]["assignmentId"]["pattern"]
