"""Webhooks end to end: a real coordinator, real miners, and a real receiver on loopback.

The receiver checks every delivery's signature twice: with the
``standardwebhooks`` package and with HMAC-SHA256 computed here from the
specification, so the test does not only trust the library that signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from tests.helpers import TWEETS, Server, start_miners, wait_until

pytestmark = pytest.mark.e2e


class Receiver:
    """An HTTP server that records deliveries; ``failing`` makes it answer 503."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.failing = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if receiver.failing:
                    self.send_response(503)
                else:
                    receiver.deliveries.append((dict(self.headers.items()), body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """Every delivery whose signature checks out under ``secret``; raises on any other."""
        payloads = []
        key = base64.b64decode(secret.removeprefix("whsec_"))
        for headers, body in self.deliveries:
            headers = {k.lower(): v for k, v in headers.items()}
            payload = Webhook(secret).verify(body, headers)
            signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
            expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
            assert f"v1,{expected}" in headers["webhook-signature"].split(" ")
            payloads.append({**payload, "webhookId": headers["webhook-id"]})
        return payloads


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _log(client: Any, path: str) -> list[dict[str, Any]]:
    return list(client.get(path).json()["deliveries"])


def _completed(receiver: Receiver, secret: str) -> set[str]:
    return {p["data"]["taskId"] for p in receiver.verified(secret) if p["type"] == "task.completed"}


def test_every_completion_is_delivered_signed_also_across_kill_9(
    tmp_path: Path, receiver: Receiver
) -> None:
    server = Server(
        tmp_path,
        replicas=1,
        webhook_allow_networks="127.0.0.0/8",
        webhook_retry_seconds=0.2,
    ).start()
    miners = start_miners(server, 2, tmp_path / "keys")
    try:
        with server.client() as client:
            hook = client.post(
                "/api/v1/webhooks",
                json={"url": receiver.url + "/hook", "events": ["task.completed"]},
            ).json()
            secret = hook["secret"]
            first = client.post("/api/v1/tasks", json={"tweets": TWEETS}).json()["taskId"]
            wait_until(lambda: first in _completed(receiver, secret), 30, "first delivery")

            # The receiver fails now: the second task completes, its delivery waits in the outbox.
            receiver.failing = True
            second = client.post("/api/v1/tasks", json={"tweets": TWEETS[:2]}).json()["taskId"]
            wait_until(
                lambda: client.get(f"/api/v1/tasks/{second}").json()["status"] == "completed",
                30,
                "second task completed",
            )
            deliveries = f"/api/v1/webhooks/{hook['webhookId']}/deliveries"
            wait_until(
                lambda: any(
                    d["attempts"] >= 1
                    for d in client.get(deliveries).json()["deliveries"]
                    if d["status"] == "pending"
                ),
                30,
                "a failed attempt recorded",
            )
        server.kill()
        receiver.failing = False
        server.start()
        wait_until(lambda: second in _completed(receiver, secret), 30, "delivery after restart")
        payloads = receiver.verified(secret)
        assert {p["type"] for p in payloads} == {"task.completed"}
        assert _completed(receiver, secret) == {first, second}
        # Retries of one delivery keep its webhook-id, so the receiver can dedupe.
        ids = {p["data"]["eventId"]: p["webhookId"] for p in payloads}
        assert len(set(ids.values())) == len(ids) == 2
        with server.client() as client:
            log = wait_until(
                lambda: (
                    all(d["status"] == "delivered" for d in _log(client, deliveries))
                    and _log(client, deliveries)
                ),
                10,
                "both deliveries recorded as delivered",
            )
            assert len(log) == 2
            assert log[0]["attempts"] >= 2 and log[0]["lastStatus"] == 204
            metrics = client.get("/metrics").text
        # Counted since this start: the retried delivery succeeded after the restart.
        assert 'qortex_webhook_attempts_total{outcome="delivered"} 1.0' in metrics
        assert "qortex_webhooks 1.0" in metrics
    finally:
        miners.stop()
        server.stop()


def test_a_task_callback_gets_its_own_end_signed_with_its_own_secret(
    tmp_path: Path, receiver: Receiver
) -> None:
    server = Server(tmp_path, replicas=1, webhook_allow_networks="127.0.0.0/8").start()
    miners = start_miners(server, 1, tmp_path / "keys")
    try:
        with server.client() as client:
            made = client.post(
                "/api/v1/tasks", json={"tweets": TWEETS[:1], "callbackUrl": receiver.url + "/cb"}
            ).json()
            other = client.post("/api/v1/tasks", json={"tweets": TWEETS[:1]}).json()["taskId"]
            wait_until(lambda: receiver.deliveries, 30, "the callback")
            wait_until(
                lambda: client.get(f"/api/v1/tasks/{other}").json()["status"] == "completed",
                30,
                "the other task",
            )
        (payload,) = receiver.verified(made["callbackSecret"])
        assert payload["type"] == "task.completed"
        assert payload["data"]["taskId"] == made["taskId"]
        assert payload["timestamp"].endswith("Z")
        with pytest.raises(Exception, match="signature"):
            receiver.verified("whsec_" + base64.b64encode(b"x" * 32).decode())
    finally:
        miners.stop()
        server.stop()


def test_private_destinations_are_refused_by_default(tmp_path: Path, receiver: Receiver) -> None:
    server = Server(tmp_path).start()
    try:
        with server.client() as client:
            refused = client.post(
                "/api/v1/webhooks", json={"url": receiver.url, "events": ["task.completed"]}
            )
            assert refused.status_code == 400
            assert "webhook_allow_networks" in refused.json()["message"]
            assert client.get("/api/v1/webhooks").json() == {"webhooks": []}
        assert receiver.deliveries == []
    finally:
        server.stop()
