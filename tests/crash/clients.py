"""The clients of the crash campaign: a submitter, an event follower and protocol miners.

Each keeps its own record of every acknowledgement it received (a ``201``, an
``ack``, an event id), which the checks then hold the file to. A
:class:`Trigger` lets any of them kill the coordinator the instant such an
acknowledgement arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import signal
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import msgspec
from rich.console import Console
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from benchmarks.processes import Server, signal_group
from qortex.errors import ProtocolViolation
from qortex.kinds.sentiment import SentimentKind
from qortex.protocol import messages as m
from qortex.protocol.client import ClientSession, Reply, ResultAnswer, Welcomed, Withdrawn, Work
from qortex.signing import Signer

API_KEY = "crash-campaign-key-0123456789"
REPLICAS = 3
LARGE_TWEETS = 20_000
LARGE_REPLICAS = 1  # the large task tests atomic submits and big recoveries, not quorum
KILL_DELAY = (0.2, 1.5)
BAD_LOG = re.compile(r"Traceback|\bCRITICAL\b|\bERROR\b|fatal:")
WORDS = [
    *("i", "love", "this", "so", "much", "hate", "it", "awful", "great", "day", "the", "sky"),
    *("is", "blue", "not", "bad", "at", "all", "what", "a", "good", "terrible", "wonderful"),
    *("never", "happy", "sad", "no", "nothing", "boring", "amazing", "movie", "food", "service"),
]

err = Console(stderr=True)


def log(message: str) -> None:
    err.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}", highlight=False)


def coordinator(tmp: Path, name: str, db: Path | None = None, port: int | None = None) -> Server:
    """``qortex serve`` as the campaign runs it (``sync = "full"``, replicas 3), on ``db``."""
    settings = {
        "QORTEX_SYNC": "full",
        "QORTEX_REPLICAS": str(REPLICAS),
        "QORTEX_MAX_TWEETS_PER_TASK": str(LARGE_TWEETS),
        "QORTEX_MAX_REQUEST_BYTES": str(64 << 20),
    }
    return Server(tmp, name, API_KEY, settings, db=db, port=port)


class Trigger:
    """Kill the server the instant a client receives a given kind of acknowledgement.

    A promise of "durable before acknowledged" is broken only in the short
    window between an acknowledgement leaving and its commit finishing; a kill
    fired from inside the client's handler of that acknowledgement lands in
    that window if it exists. The clients call :meth:`fire` for each
    ``201``, ``ack`` and event they receive; ``quorum`` fires on a
    ``microtask.quorum`` event, often a task's last decision, whose task's
    completion is then still to be written.
    """

    KINDS = ("timer", "201", "ack", "event", "quorum")

    def __init__(self) -> None:
        self.server: Server | None = None
        self.armed: str | None = None
        self.fired = asyncio.Event()

    def arm(self, server: Server, kind: str) -> None:
        self.server, self.armed = server, kind
        self.fired.clear()

    def fire(self, kind: str) -> None:
        if self.armed == kind and self.server is not None:
            signal_group(self.server.proc, signal.SIGKILL)
            self.armed = None
            self.fired.set()


# -- the clients -----------------------------------------------------------------


def tweet(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(2, 9)))


class Submitter:
    """Submits small tasks continuously; keeps its own record of every 201."""

    def __init__(self, url: str, rng: random.Random, rate: float, trigger: Trigger) -> None:
        self.url = url
        self.trigger = trigger
        self.rng = rng
        self.pause = 1 / rate
        self.accepted: dict[str, list[str]] = {}
        self.statuses: Counter[str] = Counter()
        self.stopping = False

    async def run(self) -> None:
        headers = {"x-api-key": API_KEY}
        async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10) as client:
            while not self.stopping:
                tweets = [tweet(self.rng) for _ in range(self.rng.randint(1, 5))]
                body = {"tweets": tweets, "replicas": REPLICAS}
                try:
                    response = await client.post("/api/v1/tasks", json=body)
                except httpx.TransportError as exc:
                    self.statuses[type(exc).__name__] += 1
                    await asyncio.sleep(0.05)
                    continue
                self.statuses[str(response.status_code)] += 1
                if response.status_code == 201:
                    self.accepted[response.json()["taskId"]] = tweets
                    self.trigger.fire("201")
                await asyncio.sleep(self.pause)


class Follower:
    """An SSE client that resumes with ``Last-Event-ID``; records every event id it gets."""

    def __init__(self, url: str, trigger: Trigger) -> None:
        self.url = url
        self.trigger = trigger
        self.last = 0
        self.ids: list[int] = []
        self.types: dict[int, tuple[str, int]] = {}  # id: (type, hash of the data line)
        self.quorum: dict[str, set[str]] = defaultdict(set)
        self.backwards = 0  # an id not above the one before it
        self.connects = 0

    async def run(self) -> None:
        headers = {"x-api-key": API_KEY}
        timeout = httpx.Timeout(5, read=60)
        async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout) as client:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    resume = {"last-event-id": str(self.last)}
                    async with client.stream("GET", "/api/v1/events", headers=resume) as response:
                        if response.status_code == 200:
                            self.connects += 1
                            await self._read(response)
                await asyncio.sleep(0.05)

    async def _read(self, response: httpx.Response) -> None:
        event_id, event_type = None, ""
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("event: "):
                event_type = line[7:]
            elif line.startswith("data: ") and event_id is not None:
                if event_id <= self.last:
                    self.backwards += 1
                self.ids.append(event_id)
                self.types.setdefault(event_id, (event_type, hash(line[6:])))
                if event_type == "microtask.quorum":
                    data = json.loads(line[6:])
                    if data.get("status") == "decided":
                        self.quorum[data["microtaskId"]].add(json.dumps(data["decision"]))
                self.last = event_id
                self.trigger.fire("event")
                if event_type == "microtask.quorum":
                    self.trigger.fire("quorum")
                event_id = None


def events_of(session: ClientSession, raw: str | bytes) -> list[Any]:
    """Every event in one message (a frame, or an array of frames where the server batches)."""
    receive_all = getattr(session, "receive_all", None)
    if receive_all is not None:
        return receive_all(raw)
    event = session.receive(raw)
    return [] if event is None else [event]


class ProtocolMiner:
    """A real protocol miner that answers correctly and records every ack it gets."""

    def __init__(self, url: str, index: int, slots: int, trigger: Trigger) -> None:
        self.url = url.replace("http://", "ws://", 1) + "/ws/miner"
        self.trigger = trigger
        self.index = index
        self.slots = slots
        self.signer = Signer()
        self.kind = SentimentKind()
        self.acked: set[str] = set()
        self.sent = 0
        self.refused: Counter[str] = Counter()
        self.cancelled = 0
        self.connects = 0
        self.errors: Counter[str] = Counter()

    async def run(self) -> None:
        while True:
            try:
                async with connect(self.url, open_timeout=5, max_size=None) as ws:
                    await self._converse(ws)
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
                self.errors[type(exc).__name__] += 1
            except ProtocolViolation as exc:  # a frame our session could not read: a finding
                self.errors[f"ProtocolViolation: {exc.message}"] += 1
            await asyncio.sleep(random.uniform(0.05, 0.3))

    async def _converse(self, ws: ClientConnection) -> None:
        session = ClientSession(
            self.signer, self.slots, ["sentiment"], "crash-campaign/1", f"campaign-{self.index}"
        )
        await ws.send(session.hello_frame().decode())
        work: set[asyncio.Task[None]] = set()
        heartbeat: asyncio.Task[None] | None = None
        try:
            async for raw in ws:
                for event in events_of(session, raw):
                    await self._on(ws, session, event, work)
                    if isinstance(event, Welcomed):
                        heartbeat = asyncio.create_task(
                            self._heartbeat(ws, event.heartbeat_seconds)
                        )
        finally:
            for task in [*work, heartbeat]:
                if task is not None:
                    task.cancel()

    async def _on(
        self, ws: ClientConnection, session: ClientSession, event: Any, work: set[Any]
    ) -> None:
        if isinstance(event, Reply):
            await ws.send(event.frame.decode())
        elif isinstance(event, Welcomed):
            self.connects += 1
        elif isinstance(event, Work):
            task = asyncio.create_task(self._answer(ws, session, event.assign))
            work.add(task)
            task.add_done_callback(work.discard)
        elif isinstance(event, ResultAnswer):
            if event.accepted:
                self.acked.add(event.assignment_id)
                self.trigger.fire("ack")
            else:
                self.refused[event.reason] += 1
        elif isinstance(event, Withdrawn):
            self.cancelled += 1

    async def _answer(self, ws: ClientConnection, session: ClientSession, assign: m.Assign) -> None:
        await asyncio.sleep(random.uniform(0, 0.005))  # keep some copies out at any moment
        label = self.kind.compute(msgspec.json.decode(assign.input))
        frame = session.result_frame(assign, msgspec.json.encode(label))
        with contextlib.suppress(ConnectionClosed):
            await ws.send(frame.decode())
            self.sent += 1

    @staticmethod
    async def _heartbeat(ws: ClientConnection, every: float) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(every)
                await ws.send(ClientSession.heartbeat_frame(int(time.time() * 1000)).decode())
