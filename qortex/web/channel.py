"""One miner's conversation, driven by callbacks: bytes in, frames and closes out.

A :class:`MinerChannel` sits between a :class:`Wire` (whatever carries WebSocket
messages: :mod:`qortex.web.wire` on ``qortex serve``, the ASGI route of
:mod:`qortex.web.socket` elsewhere) and the coordinator. It runs the
:class:`ServerSession` on each message as it arrives, hands results to the
coordinator's intake and is the coordinator's link to the miner. Nothing here
waits on the socket: after the handshake a frame costs one call, no task, no
queue. Only the admission (a read of the store to tell new identities from
known ones) is a task, and reading pauses until it is done.

Frames the coordinator sends during one turn of the event loop leave together
as one message (an array of frames when there are several: the acks of one
group commit, an assignment and a cancel), so a busy miner costs one write per
turn rather than one per frame.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from qortex import __version__
from qortex.coordinator import Coordinator
from qortex.core.limits import Bucket
from qortex.errors import ProtocolViolation, ResultRefused
from qortex.protocol import messages as m
from qortex.protocol.server import Authenticated, Challenged, HeartbeatIn, ResultIn, ServerSession

#: Frames a miner may leave unread before it is closed with ``SLOW_READER``.
SEND_QUEUE = 4096
#: A close reason may hold at most 123 bytes of UTF-8.
MAX_REASON = 123


class Wire(Protocol):
    """What a channel needs of a WebSocket once it is accepted."""

    def send(self, data: bytes, frames: int) -> None:
        """Send one text message (UTF-8 JSON, encoded once) holding ``frames`` frames."""

    def close(self, code: int, reason: str) -> None:
        """Send a close frame after what was sent; stop delivering messages."""

    def unsent(self) -> int:
        """Frames sent but not yet taken by the peer, as far as the wire can tell."""

    def hold(self, held: bool) -> None:
        """Stop (or resume) reading from the peer."""


def short_reason(reason: str) -> str:
    return reason.encode()[:MAX_REASON].decode(errors="ignore")


class MinerChannel:
    """The coordinator's link to one miner, and the miner's way into the coordinator."""

    __slots__ = (
        "_admission",
        "_budget",
        "_deadline",
        "_ended",
        "_frames",
        "_held",
        "_limits",
        "_loop",
        "_reading",
        "address",
        "closed",
        "coord",
        "last_seen",
        "miner_id",
        "network",
        "reason",
        "session",
        "settings",
        "wire",
    )

    def __init__(self, state: Any, wire: Wire, address: str) -> None:
        self.coord: Coordinator = state.coordinator
        self.settings = state.settings
        self._limits = state.address_limits
        self.wire = wire
        self.address = address
        self.session = ServerSession(secrets.token_hex(16), frozenset(self.coord.kinds))
        # Kept: on Python 3.11 each get_running_loop() is a getpid system call.
        self._loop = asyncio.get_running_loop()
        self._budget = Bucket(self.settings.miner_rate, self.settings.miner_burst)
        self._frames: list[bytes] = []
        self._reading = False  # between a read's first message and flush(): replies wait for it
        self._held: list[bytes] | None = None  # messages that arrive while admission reads
        self._admission: asyncio.Task[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._ended = False
        self.closed = False
        self.last_seen = 0.0
        self.miner_id = ""
        self.network = ""
        self.reason = ""

    # -- from the wire ------------------------------------------------------

    def opened(self) -> None:
        """The socket was accepted: the handshake's one deadline starts now."""
        try:
            if self._limits.take_address("handshake", self.address):
                raise ProtocolViolation(m.ADDRESS_LIMIT, self._limits.message("handshake"))
            self._writable()
        except ProtocolViolation as exc:
            self._violated(exc)
            return
        self._deadline = self._loop.call_later(self.settings.handshake_seconds, self._too_slow)

    def received(self, data: bytes | str) -> None:
        """One whole message from the miner; the wire calls :meth:`flush` after a read's last."""
        if self.closed:
            return
        self._reading = True
        if self._held is not None:
            self._held.append(data)
            return
        try:
            if self.miner_id:
                self._work(data)
            else:
                self._handshake(data)
        except ProtocolViolation as exc:
            self._violated(exc)

    def flush(self) -> None:
        """The wire delivered what one read held: what they prompted goes out in one write.

        A heartbeat's answer (and any other reply made while reading) is
        written here, in the read's own callback, rather than a turn of the
        loop later: at 10,000 idle miners that is one scheduled callback less
        per heartbeat.
        """
        self._reading = False
        self._seal()

    def ended(self, reason: str) -> None:
        """The socket is gone (or closed by this side): release what the miner held."""
        if self._ended:
            return
        self._ended = True
        self.closed = True
        self._frames = []
        if self._deadline is not None:
            self._deadline.cancel()
        if self._admission is not None:
            self._admission.cancel()
        if self.miner_id:
            self.coord.disconnect(self.miner_id, self, self.reason or reason)

    # -- the coordinator's link ---------------------------------------------

    def send(self, frame: bytes) -> None:
        if self.closed:
            return
        if self.wire.unsent() + len(self._frames) >= SEND_QUEUE:
            self.coord.count_close(m.SLOW_READER)
            self._frames = []
            self.close(m.SLOW_READER, f"more than {SEND_QUEUE} frames unread")
            return
        if not self._frames and not self._reading:
            self._loop.call_soon(self._seal)
        self._frames.append(frame)

    def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self._seal()  # what was already sent goes out before the close
        self.closed = True
        self.wire.close(code, short_reason(reason))
        # The miner's leases are released at once, not when its close frame comes back.
        self._loop.call_soon(self.ended, f"disconnected ({code})")

    def _seal(self) -> None:
        if self._frames and not self.closed:
            frames, self._frames = self._frames, []
            self.wire.send(m.batch(frames), len(frames))

    # -- the conversation ---------------------------------------------------

    def _handshake(self, data: bytes | str) -> None:
        """Hello, challenge, answer; frames after the answer in the same message are dropped."""
        for event in self.session.receive_all(data):
            if isinstance(event, Challenged):
                self.send(event.frame)
            elif isinstance(event, Authenticated):
                if self._deadline is not None:
                    self._deadline.cancel()
                    self._deadline = None
                self._held = []
                self.wire.hold(True)
                self._admission = asyncio.create_task(self._admit(event))
                return

    async def _admit(self, info: Authenticated) -> None:
        """Everything between a proven key and ``welcome``: bans, the store, quotas."""
        coord, limits = self.coord, self._limits
        try:
            coord.admit(info.miner_id)
            self._writable()
            if await self._new_identity(info.miner_id) and limits.take_address(
                "identity", self.address
            ):
                raise ProtocolViolation(m.ADDRESS_LIMIT, limits.message("identity"))
        except ProtocolViolation as exc:
            self._violated(exc)
            return
        if self.closed:
            return
        limits.remember(info.miner_id)
        self.miner_id = info.miner_id
        settings = self.settings
        self.send(
            self.session.welcome_frame(
                settings.heartbeat_seconds, settings.max_message_bytes, __version__
            )
        )
        coord.connect(info, self, self.address)
        self.network = coord.connections[info.miner_id].network
        held, self._held = self._held or [], None
        self.wire.hold(False)
        for data in held:
            self.received(data)
        self.flush()  # as a wire does after a read: the replies go out now

    async def _new_identity(self, miner_id: str) -> bool:
        if miner_id in self.coord.connections or self._limits.seen(miner_id):
            return False
        return await self.coord.store.reader.miner(miner_id) is None

    def _work(self, data: bytes | str) -> None:
        coord = self.coord
        now = self.last_seen = coord.clock()
        frames = m.frames_of(data)
        if self._budget.take(now, len(frames)):
            raise ProtocolViolation(
                m.RATE_LIMITED, f"more than {self.settings.miner_rate:g} frames per second"
            )
        session = self.session
        for event in filter(None, map(session.receive, frames)):
            if isinstance(event, ResultIn):
                self._writable()
                frame = event.result
                done = coord.intake.receive(
                    self.miner_id,
                    frame.assignment_id,
                    frame.microtask_id,
                    event.output,
                    frame.signature,
                    partial(session.check, event),
                    self.network,
                )
                done.add_done_callback(_replier(self, frame.assignment_id))
            elif isinstance(event, HeartbeatIn):
                self.send(session.heartbeat_frame(int(time.time() * 1000)))

    def _writable(self) -> None:
        reason = self.coord.store.writer.unavailable
        if reason is not None:
            raise ProtocolViolation(m.UNAVAILABLE, f"come back later: {reason}")

    def _too_slow(self) -> None:
        self._deadline = None
        self._violated(ProtocolViolation(m.TIMEOUT, "the handshake took too long"))

    def _violated(self, exc: ProtocolViolation) -> None:
        self.coord.count_close(exc.close_code)
        self.reason = exc.message
        self.close(exc.close_code, exc.message)


def _replier(link: MinerChannel, assignment_id: str) -> Callable[[asyncio.Future[None]], None]:
    """Ack once the result is durable; say why if it was refused; a failed commit says nothing."""

    def reply(future: asyncio.Future[None]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            link.send(m.encoder.encode(m.Ack(assignment_id)))
        elif isinstance(error, ResultRefused):
            link.send(m.encoder.encode(m.Refused(assignment_id, error.reason, error.message)))

    return reply


def send_miners_away(coord: Coordinator, reason: str | None) -> None:
    """When the store stops accepting writes, tell every miner to come back later.

    Their results could not be acknowledged; closing releases their leases, and
    the miners' backoff brings them back once the coordinator accepts writes again.
    """
    if reason is None:
        return
    for conn in list(coord.connections.values()):
        coord.count_close(m.UNAVAILABLE)
        conn.link.close(m.UNAVAILABLE, f"come back later: {reason}")
