"""A miner identity speaking the real protocol over Starlette's in-process test socket."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import msgspec
from starlette.testclient import TestClient

from qortex.kinds.sentiment import SentimentKind
from qortex.protocol import messages as m
from qortex.protocol.client import ClientSession, Reply, ResultAnswer, Welcomed, Withdrawn, Work
from qortex.signing import Signer
from tests.helpers import snapshot, timeout

KIND = SentimentKind()


class SocketMiner:
    """One miner identity speaking the real protocol over a test socket."""

    def __init__(self, ws: Any, signer: Signer | None = None, slots: int = 1) -> None:
        self.ws = ws
        self.signer = signer or Signer()
        self.session = ClientSession(self.signer, slots, ["sentiment"], "test")
        self.pending: deque[Any] = deque()
        self.messages = 0  # messages received, each holding one frame or several

    def handshake(self) -> Welcomed:
        self.ws.send_text(self.session.hello_frame().decode())
        reply = self.next()
        assert isinstance(reply, Reply)
        self.ws.send_text(reply.frame.decode())
        welcome = self.next()
        assert isinstance(welcome, Welcomed)
        assert welcome.miner_id == self.signer.miner_id
        return welcome

    def next(self) -> Any:
        """The next event, from a message that may hold several frames."""
        while not self.pending:
            self.pending.extend(self.session.receive_all(self.ws.receive_text()))
            self.messages += 1
        return self.pending.popleft()

    def verdict(self, assignment_id: str) -> ResultAnswer:
        """The verdict on one result; other events that come first wait their turn."""
        skipped: list[Any] = []
        while True:
            event = self.next()
            if isinstance(event, ResultAnswer) and event.assignment_id == assignment_id:
                self.pending.extendleft(reversed(skipped))
                return event
            skipped.append(event)

    def work(self, skip_withdrawn: bool = False) -> m.Assign:
        event = self.next()
        while skip_withdrawn and isinstance(event, Withdrawn):
            event = self.next()
        assert isinstance(event, Work), event
        return event.assign

    def answer(self, assign: m.Assign, output: Any = None) -> None:
        value = KIND.compute(msgspec.json.decode(assign.input)) if output is None else output
        self.ws.send_text(self.session.result_frame(assign, msgspec.json.encode(value)).decode())

    def send(self, frame: m.Frame) -> None:
        self.ws.send_text(m.encoder.encode(frame).decode())


def submit(client: TestClient, tweets: list[str], **policy: Any) -> str:
    response = client.post("/api/v1/tasks", json={"tweets": tweets, **policy})
    assert response.status_code == 201, response.text
    return response.json()["taskId"]


def wait_status(client: TestClient, task_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout(10)
    while time.monotonic() < deadline:
        task = client.get(f"/api/v1/tasks/{task_id}").json()
        if task["status"] == status:
            return task
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} never became {status}: {task}")


def wait_rows(db: str, table: str, count: int) -> None:
    deadline = time.monotonic() + timeout(10)
    while len(snapshot(db, (table,))[table]) < count:
        assert time.monotonic() < deadline, f"{table} never reached {count} rows"
        time.sleep(0.02)
