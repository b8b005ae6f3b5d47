"""Limits in-process: 429 with Retry-After, closes for floods, CORS, and the metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from qortex.protocol import messages as m
from qortex.settings import Settings
from qortex.web.app import create_app
from tests.helpers import API_KEY, WORK_TABLES, snapshot
from tests.web.socketminer import SocketMiner


def _client(tmp_path: Path, **settings: object) -> TestClient:
    app = create_app(Settings(db=str(tmp_path / "q.db"), api_key=API_KEY, **settings))
    return TestClient(app, headers={"x-api-key": API_KEY})


def test_an_api_key_over_its_rate_gets_429_with_retry_after(tmp_path: Path) -> None:
    with _client(tmp_path, api_rate=1, api_burst=3) as client:
        answers = [client.get("/api/v1/tasks") for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert int(answers[-1].headers["retry-after"]) >= 1
        assert "requests per second" in answers[-1].json()["message"]
        assert client.get("/health").status_code == 200  # public routes are not counted


def test_a_full_backlog_refuses_new_work_and_stores_nothing(tmp_path: Path) -> None:
    with _client(tmp_path, max_pending=6) as client:
        assert (
            client.post("/api/v1/tasks", json={"tweets": ["a", "b", "c", "d"]}).status_code == 201
        )
        before = snapshot(str(tmp_path / "q.db"), WORK_TABLES)
        refused = client.post("/api/v1/tasks", json={"tweets": ["e", "f", "g"]})
        assert refused.status_code == 429 and refused.headers["retry-after"] == "5"
        assert "4 microtasks are waiting" in refused.json()["message"]
        assert snapshot(str(tmp_path / "q.db"), WORK_TABLES) == before
        assert client.post("/api/v1/tasks", json={"tweets": ["e", "f"]}).status_code == 201
        text = client.get("/metrics").text
        assert "qortex_throttled_total 1.0" in text
        assert "qortex_microtasks_open 6.0" in text


def test_a_flooding_miner_is_closed_and_counted(tmp_path: Path) -> None:
    with _client(tmp_path, miner_rate=10, miner_burst=20) as client:
        with client.websocket_connect("/ws/miner") as ws:
            SocketMiner(ws).handshake()
            heartbeat = m.encoder.encode(m.Heartbeat(1)).decode()
            with pytest.raises(WebSocketDisconnect) as closed:
                for _ in range(100):
                    ws.send_text(heartbeat)
                while True:
                    ws.receive_text()
            assert closed.value.code == m.RATE_LIMITED
        assert 'qortex_miner_closes_total{code="4010"} 1.0' in client.get("/metrics").text


def test_cors_is_same_origin_unless_configured(tmp_path: Path) -> None:
    preflight = {
        "origin": "https://friend.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "x-api-key",
    }
    with _client(tmp_path) as client:
        plain = client.get("/api/v1/tasks", headers={"origin": "https://friend.example"})
        assert "access-control-allow-origin" not in plain.headers
    with _client(tmp_path, cors_origins=["https://friend.example"]) as client:
        allowed = client.options("/api/v1/tasks", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "https://friend.example"
        other = client.options(
            "/api/v1/tasks", headers={**preflight, "origin": "https://x.example"}
        )
        assert "access-control-allow-origin" not in other.headers


def test_metrics_need_the_key_and_count_results(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        assert client.get("/metrics", headers={"x-api-key": ""}).status_code == 401
        text = client.get("/metrics").text
        for name in (
            "qortex_results_accepted_total",
            "qortex_miners_connected",
            "qortex_leases_out",
        ):
            assert name in text
