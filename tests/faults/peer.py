"""One attacker connection: a raw miner socket that sends whatever it is told."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from qortex.protocol import messages as m
from qortex.protocol.client import ClientSession
from qortex.signing import Signer, hello_message
from tests.faults.frames import HEARTBEAT, INPUT_DIGESTS, SCALE, SOFTWARE
from tests.faults.tally import Tally

if TYPE_CHECKING:
    from tests.faults.campaign import Campaign


class Peer:
    """A raw miner socket: sends whatever it is told, records everything it receives."""

    def __init__(
        self,
        campaign: Campaign,
        tally: Tally,
        signer: Signer | None = None,
        slots: int = 1,
    ) -> None:
        self.c = campaign
        self.tally = tally
        self.signer = signer or Signer()
        self.slots = slots
        self.session = ClientSession(self.signer, slots, ["sentiment"], SOFTWARE, tally.key)
        self.identity = campaign.identity(self.signer, tally)
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.beats: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed_at = 0.0
        self.opened_at = 0.0
        self.sent_at = 0.0  # when the last frame went out: the server heard nothing since
        self.nonce: str | None = None
        self.welcome: dict[str, Any] | None = None
        self.heartbeats = 0
        self.heartbeat_ms: list[int] = []  # the server's clock in each heartbeat reply
        self.heartbeats_before_welcome = 0
        self.assigns: dict[str, m.Assign] = {}
        self.assign_order: list[str] = []
        self.verdicts: dict[str, list[str]] = {}
        self.cancels: dict[str, tuple[str, float]] = {}
        self._changed = asyncio.Event()

    # -- plumbing

    async def open(self, rcvbuf: int | None = None) -> Peer:
        """Connect; ``rcvbuf`` caps the kernel's receive buffer (for a miner that stops reading)."""
        sock = None
        if rcvbuf is not None:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.c.port))
        self.ws = await connect(
            self.c.ws_url,
            sock=sock,
            max_size=None,
            open_timeout=10,
            ping_interval=None,
            close_timeout=2,
            compression=None,
            proxy=None,
        )
        self.opened_at = time.time()
        self.reader = asyncio.create_task(self._read())
        self.c.peers.append(self)
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                self._on(raw)
        except ConnectionClosed:
            pass
        finally:
            rcvd = self.ws.protocol.close_rcvd
            self.close_code = rcvd.code if rcvd is not None else 1006
            self.close_reason = rcvd.reason if rcvd is not None else ""
            self.closed_at = time.time()
            self.closed.set()
            self._changed.set()

    def _on(self, raw: str | bytes) -> None:
        """One message: a frame, or an array of frames handled in order (§1)."""
        message = json.loads(raw)
        for frame in message if isinstance(message, list) else [message]:
            self._frame(frame)
        self._changed.set()

    def _frame(self, frame: dict[str, Any]) -> None:
        now = time.time()
        kind = frame.get("type")
        if kind == "heartbeat":
            self.heartbeats += 1
            self.heartbeat_ms.append(int(frame.get("timeMs") or 0))
            if self.welcome is None:
                self.heartbeats_before_welcome += 1
        elif kind == "challenge":
            self.nonce = frame["nonce"]
        elif kind == "welcome":
            self.welcome = frame
        elif kind == "assign":
            assign = m.server_decoder.decode(json.dumps(frame))
            assert isinstance(assign, m.Assign)
            self.assigns[assign.assignment_id] = assign
            INPUT_DIGESTS[assign.assignment_id] = assign.input_sha256
            self.assign_order.append(assign.assignment_id)
        elif kind in ("ack", "refused"):
            aid = frame["assignmentId"]
            if kind == "ack":
                self.identity.acks += 1
                answer = "ack"
            else:
                self.identity.refused[frame["reason"]] += 1
                answer = f"refused {frame['reason']}"
            self.verdicts.setdefault(aid, []).append(answer)
        elif kind == "cancel":
            self.cancels[frame["assignmentId"]] = (frame.get("reason", "decided"), now)

    async def wait(self, predicate: Callable[[], Any], timeout: float) -> Any:
        """``predicate()`` once it is true, or its last (false) value after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout * SCALE
        while True:
            value = predicate()
            if value or self.closed.is_set():
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                return value
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.1))

    async def send(self, data: str | bytes, text: bool | None = None) -> bool:
        assert self.ws is not None
        self.sent_at = time.time()
        try:
            await self.ws.send(data, text=text)
        except ConnectionClosed:
            return False
        return True

    async def close(self) -> None:
        if self.beats is not None:
            self.beats.cancel()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 3)
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.reader, 3)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame, as a crashed miner would."""
        if self.beats is not None:
            self.beats.cancel()
        assert self.ws is not None
        self.ws.transport.abort()

    # -- conversation

    async def handshake(self) -> bool:
        await self.send(self.session.hello_frame().decode())
        if not await self.wait(lambda: self.nonce is not None, 10):
            return False
        await self.send(json.dumps({"type": "answer", "signature": self.sign_nonce()}))
        return bool(await self.wait(lambda: self.welcome is not None, 10))

    def sign_nonce(self, signer: Signer | None = None) -> str:
        assert self.nonce is not None
        return (signer or self.signer).sign(hello_message(self.nonce))

    def heartbeat(self, every: float = HEARTBEAT / 2) -> None:
        async def beat() -> None:
            with contextlib.suppress(ConnectionClosed):
                while True:
                    assert self.ws is not None
                    self.sent_at = time.time()
                    await self.ws.send(ClientSession.heartbeat_frame(int(time.time() * 1000)))
                    await asyncio.sleep(every)

        self.beats = asyncio.create_task(beat())

    async def take(self, count: int, timeout: float = 10.0, strict: bool = False) -> list[m.Assign]:
        """The first ``count`` assignments received (fewer if none come in time).

        ``strict`` takes only copies of quorum-3 tasks: with three replicas, such
        a copy stays live until its deadline, whatever the other miners do.
        """

        def chosen() -> list[m.Assign]:
            found = [self.assigns[aid] for aid in self.assign_order]
            if strict:
                found = [a for a in found if a.task_id in self.c.strict]
            return found[:count]

        await self.wait(lambda: len(chosen()) >= count, timeout)
        return chosen()

    async def verdict(self, assignment_id: str, index: int = 0, timeout: float = 5.0) -> str:
        """The ``index``-th answer to results for ``assignment_id``: ack, refused x, or none."""
        got = await self.wait(lambda: len(self.verdicts.get(assignment_id, ())) > index, timeout)
        if got:
            return self.verdicts[assignment_id][index]
        if self.closed.is_set():
            return f"close {self.close_code}"
        return "no answer"

    async def result(self, assignment_id: str, text: str, index: int = 0) -> str:
        """Send one result frame and wait for its answer."""
        if not await self.send(text):
            return f"close {self.close_code}"
        return await self.verdict(assignment_id, index)

    async def closing(self, timeout: float) -> str:
        """How the connection ended within ``timeout``: ``close <code>`` or ``open``."""
        await self.wait(self.closed.is_set, timeout)
        return f"close {self.close_code}" if self.closed.is_set() else "open"

    async def alive(self) -> str:
        """``open`` if a heartbeat is still answered, else how the connection ended."""
        before = self.heartbeats
        if not await self.send(ClientSession.heartbeat_frame(int(time.time() * 1000))):
            return f"close {self.close_code}"
        if await self.wait(lambda: self.heartbeats > before, 5):
            return "open"
        return f"close {self.close_code}" if self.closed.is_set() else "no heartbeat reply"


async def ready_peer(c: Campaign, t: Tally, slots: int = 1, signer: Signer | None = None) -> Peer:
    peer = await Peer(c, t, signer, slots).open()
    if not await peer.handshake():
        t.notes["handshake failed"] += 1
    return peer


async def lease_over(holder: Peer, assign: m.Assign) -> bool:
    """Whether ``assign`` has ended (cancelled to its holder, or past its deadline).

    Asked only to judge an answer that would be wrong for a live copy, so the
    short wait for a cancel still on its way costs nothing on the usual path.
    """
    return bool(
        await holder.wait(
            lambda: (
                assign.assignment_id in holder.cancels or time.time() >= assign.deadline_ms / 1000
            ),
            1.0,
        )
    )


async def over_unless(got: str, holder: Peer, assign: m.Assign) -> bool:
    """For a copy expected live: if the answer says it is over, whether it really was."""
    return got == "refused unknown_assignment" and await lease_over(holder, assign)
