"""The coordinator in-process: a real SQLite file, a clock the test moves, seeded randomness,
and miners whose link keeps every frame sent to it in a list.

No socket and no web layer: the test plays the endpoint, calling the coordinator
as ``web/socket.py`` does (``connect``, ``intake.receive``, ``disconnect``) and
reading the frames it queued. Results are signed by real keys and verified.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from qortex.coordinator import Coordinator
from qortex.core.kinds import KindRegistry
from qortex.events import BusEvent, EventBus
from qortex.kinds.sentiment import SentimentKind
from qortex.protocol import messages as m
from qortex.protocol.client import ClientSession, CoordinatorEvent, Withdrawn, Work
from qortex.protocol.server import Authenticated
from qortex.settings import Settings
from qortex.signing import Signer, parse_public_key, result_message, verify
from qortex.store.database import Store
from tests.helpers import timeout

KIND = SentimentKind()
#: Loopback: each miner counts as its own network (qortex.core.credibility.network_of).
ADDRESS = "127.0.0.1"


class FakeClock:
    """The coordinator's clock; only the test moves it."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ListLink:
    """A miner link that appends every frame to ``sent`` and every close to ``closed``."""

    def __init__(self, clock: Callable[[], float], address: str) -> None:
        self.sent: list[bytes] = []
        self.closed: list[tuple[int, str]] = []
        self.last_seen = clock()
        self.address = address

    def send(self, frame: bytes) -> None:
        self.sent.append(frame)

    def close(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))


class ListMiner:
    """One miner identity: the real client session reads its frames and signs its results."""

    def __init__(self, coord: Coordinator, signer: Signer, slots: int, address: str) -> None:
        self.coord = coord
        self.signer = signer
        self.miner_id = signer.miner_id
        self.session = ClientSession(signer, slots, ["sentiment"], "test")
        self.link = ListLink(coord.clock, address)
        self.info = Authenticated(
            signer.miner_id, signer.public_hex, slots, ("sentiment",), "test", ""
        )
        self._read = 0  # frames of link.sent already turned into events
        self.events: list[CoordinatorEvent] = []

    def connect(self) -> None:
        self.coord.admit(self.miner_id)
        self.coord.connect(self.info, self.link, self.link.address)

    def disconnect(self, reason: str = "gone") -> None:
        self.coord.disconnect(self.miner_id, self.link, reason)

    def read(self) -> list[CoordinatorEvent]:
        """What the frames sent since the last read mean, in order; kept in ``events`` too."""
        new = [e for frame in self.link.sent[self._read :] for e in self.session.receive_all(frame)]
        self._read = len(self.link.sent)
        self.events += new
        return new

    def work(self) -> list[m.Assign]:
        """Every assignment received so far."""
        self.read()
        return [e.assign for e in self.events if isinstance(e, Work)]

    def withdrawn(self) -> list[Withdrawn]:
        """Every copy taken back so far."""
        self.read()
        return [e for e in self.events if isinstance(e, Withdrawn)]

    def answer(self, assign: m.Assign, value: Any = None) -> asyncio.Future[None]:
        """Send the signed result of ``assign``: the right label unless ``value`` is given."""
        if value is None:
            value = KIND.compute(msgspec.json.decode(assign.input))
        frame = msgspec.json.decode(self.session.result_frame(assign, msgspec.json.encode(value)))
        output = frame["output"].encode()
        key = parse_public_key(self.signer.public_hex)

        def signed(input_sha256: str) -> bool:
            message = result_message(
                assign.assignment_id, assign.microtask_id, input_sha256, output
            )
            return verify(key, message, frame["signature"])

        conn = self.coord.connections.get(self.miner_id)
        return self.coord.intake.receive(
            self.miner_id,
            assign.assignment_id,
            assign.microtask_id,
            output,
            frame["signature"],
            signed,
            conn.network if conn else "",
        )


class Harness:
    """A coordinator on ``db`` with a fake clock and ``random.Random(seed)``."""

    def __init__(self, db: Path, settings: Settings, seed: int, clock: FakeClock) -> None:
        self.db = db
        self.settings = settings
        self.seed = seed
        self.clock = clock
        self.published: list[BusEvent] = []
        self.stopped = False

    async def start(self) -> Harness:
        self.store = await Store.open(str(self.db), self.settings.sync, 64)
        self.bus = EventBus(64 * 1024 * 1024)  # read without get(): never drop this test's stream
        kinds = KindRegistry([KIND])
        rng = random.Random(self.seed)
        self.coord = Coordinator(self.settings, self.store, kinds, self.bus, self.clock, rng)
        self._sub = self.bus.subscribe(internal=True)
        await self.coord.start()
        return self

    async def stop(self) -> None:
        self.stopped = True
        self._sub.close()
        await self.coord.stop()
        await self.store.close()

    def miner(
        self, slots: int = 1, signer: Signer | None = None, address: str = ADDRESS
    ) -> ListMiner:
        """A new miner (or one more connection of ``signer``), connected.

        A new miner is given one copy at a time until it passes checks; one
        with more ``slots`` here has earned them already, as if its standing
        had been loaded from the file at start.
        """
        miner = ListMiner(self.coord, signer or Signer(), slots, address)
        if slots > 1:
            self.coord.ledger.load(miner.miner_id, 0, "active", slots)
        miner.connect()
        return miner

    async def submit(self, tweets: list[str], **policy: Any) -> str:
        submitted = await self.coord.book.submit("sentiment", {"tweets": tweets}, **policy)
        return submitted.task_id

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        """Events published so far (only committed ones are), as their JSON data."""
        while not self._sub.queue.empty():
            self.published.append(self._sub.queue.get_nowait())
        return [
            {"type": e.type, "id": e.id, **msgspec.json.decode(e.data)}
            for e in self.published
            if type_ is None or e.type == type_
        ]

    async def until(self, condition: Callable[[], Any], what: str, seconds: float = 10) -> Any:
        """Let the loop run until ``condition()`` is true; fails after a scaled deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout(seconds)
        while loop.time() < deadline:
            value = condition()
            if value:
                return value
            await asyncio.sleep(0.005)
        raise AssertionError(f"timed out waiting until {what}")

    async def durable(self) -> None:
        """Wait until everything queued so far has committed."""
        await self.coord.write([], [])

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows read from the file by a connection of its own, as another process would."""
        conn = sqlite3.connect(self.db)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()
