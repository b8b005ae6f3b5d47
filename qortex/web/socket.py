"""``/ws/miner``: pumps frames between a WebSocket and a :class:`ServerSession`.

Every decision lives in the session (what a frame means) or the coordinator
(what it changes); this module only moves bytes. Outgoing frames go through a
bounded per-connection queue drained by its own task, so a slow miner can
never stall the coordinator or the other miners: if its queue fills, it is
closed and its leases are reassigned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from qortex import __version__
from qortex.coordinator import Coordinator
from qortex.core.limits import Bucket
from qortex.errors import ProtocolViolation, ResultRefused
from qortex.protocol import messages as m
from qortex.protocol.server import (
    Authenticated,
    Challenged,
    HeartbeatIn,
    ResultIn,
    ServerSession,
)
from qortex.web.addresses import AddressLimits

log = logging.getLogger("qortex.socket")

SEND_QUEUE = 4096


class _Message(NamedTuple):
    data: bytes
    frames: int


class _Close(NamedTuple):
    code: int
    reason: str


class SocketLink:
    """The coordinator's handle on one socket: queue a frame, or end the connection.

    Frames queued during one turn of the event loop leave together as one
    message (an array of frames when there are several: the acks of one group
    commit, an assignment and a cancel), so a busy miner costs one send per
    turn rather than one per frame. Messages wait in a bounded queue drained by
    the connection's own task.
    """

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        self._queue: asyncio.Queue[_Message | _Close] = asyncio.Queue()
        self._frames: list[bytes] = []
        self._unsent = 0  # frames queued and not yet written: the bound is on these
        self._task = asyncio.create_task(self._pump())
        self.closed = False
        self.last_seen = 0.0

    def send(self, frame: bytes) -> None:
        if self.closed:
            return
        self._unsent += 1
        if self._unsent > SEND_QUEUE:  # the miner reads too slowly; never wait behind it
            self._abort(m.SLOW_READER, f"more than {SEND_QUEUE} frames unread")
            return
        if not self._frames:
            asyncio.get_running_loop().call_soon(self._seal)
        self._frames.append(frame)

    def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self._seal()  # what was already sent goes out before the close
            self.closed = True
            self._queue.put_nowait(_Close(code, reason))

    def _seal(self) -> None:
        if self._frames and not self.closed:
            frames, self._frames = self._frames, []
            self._queue.put_nowait(_Message(m.batch(frames), len(frames)))

    def _abort(self, code: int, reason: str) -> None:
        """Close now, dropping whatever is still queued."""
        self.closed = True
        self._frames = []
        self._task.cancel()
        self._task = asyncio.create_task(self._close_now(code, reason))

    async def _pump(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, _Close):
                    await self._close_now(item.code, item.reason)
                    return
                await self._ws.send_text(item.data.decode())
                self._unsent -= item.frames
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.closed = True

    async def _close_now(self, code: int, reason: str) -> None:
        # A close reason may hold at most 123 bytes of UTF-8.
        short = reason.encode()[:123].decode(errors="ignore")
        with contextlib.suppress(Exception):
            await self._ws.close(code, short)

    async def finish(self, timeout: float) -> None:
        """Let queued frames (and the close) go out, then stop the pump."""
        self.close(1000, "bye")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def _replier(link: SocketLink, assignment_id: str) -> Callable[[asyncio.Future[None]], None]:
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


async def _receive(ws: WebSocket) -> str | bytes:
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    return text if text is not None else message.get("bytes") or b""


async def _handshake(ws: WebSocket, session: ServerSession, link: SocketLink) -> Authenticated:
    """Hello, challenge, answer: everything before the miner may be given work."""
    while True:
        for event in session.receive_all(await _receive(ws)):
            if isinstance(event, Challenged):
                link.send(event.frame)
            elif isinstance(event, Authenticated):
                return event


def send_miners_away(coord: Coordinator, reason: str | None) -> None:
    """When the store stops accepting writes, tell every miner to come back later.

    Their results could not be acknowledged; closing releases their leases, and
    the miners' backoff brings them back once the coordinator accepts writes again.
    """
    if reason is None:
        return
    for conn in list(coord.connections.values()):
        coord.stats.closed[m.UNAVAILABLE] += 1
        conn.link.close(m.UNAVAILABLE, f"come back later: {reason}")


def _writable(coord: Coordinator) -> None:
    reason = coord.store.writer.unavailable
    if reason is not None:
        raise ProtocolViolation(m.UNAVAILABLE, f"come back later: {reason}")


async def _new_identity(coord: Coordinator, limits: AddressLimits, miner_id: str) -> bool:
    if miner_id in coord.connections or limits.seen(miner_id):
        return False
    return await coord.store.reader.miner(miner_id) is None


async def miner_socket(ws: WebSocket) -> None:
    state = ws.app.state
    coord, settings = state.coordinator, state.settings
    await ws.accept()
    session = ServerSession(secrets.token_hex(16), frozenset(coord.kinds))
    link = SocketLink(ws)
    miner_id = ""
    reason = "closed"
    budget = Bucket(settings.miner_rate, settings.miner_burst)

    limits = state.address_limits
    try:
        if limits.take("handshake", ws):
            raise ProtocolViolation(m.ADDRESS_LIMIT, limits.message("handshake"))
        _writable(coord)
        # One deadline for the whole handshake; afterwards silence is caught by the
        # coordinator's once-a-second sweep of ``last_seen``, not a timer per frame.
        async with asyncio.timeout(settings.handshake_seconds):
            info = await _handshake(ws, session, link)
        coord.admit(info.miner_id)
        _writable(coord)
        if await _new_identity(coord, limits, info.miner_id) and limits.take("identity", ws):
            raise ProtocolViolation(m.ADDRESS_LIMIT, limits.message("identity"))
        limits.remember(info.miner_id)
        miner_id = info.miner_id
        link.send(
            session.welcome_frame(
                settings.heartbeat_seconds, settings.max_message_bytes, __version__
            )
        )
        address = ws.client.host if ws.client else ""
        coord.connect(info, link, address)
        network = coord.connections[miner_id].network
        while True:
            data = await _receive(ws)
            now = link.last_seen = coord.clock()
            frames = m.frames_of(data)
            if budget.take(now, len(frames)):
                raise ProtocolViolation(
                    m.RATE_LIMITED, f"more than {settings.miner_rate:g} frames per second"
                )
            for event in filter(None, map(session.receive, frames)):
                if isinstance(event, ResultIn):
                    _writable(coord)
                    frame = event.result
                    done = coord.intake.receive(
                        miner_id,
                        frame.assignment_id,
                        frame.microtask_id,
                        event.output,
                        frame.signature,
                        partial(session.check, event),
                        network,
                    )
                    done.add_done_callback(_replier(link, frame.assignment_id))
                elif isinstance(event, HeartbeatIn):
                    link.send(session.heartbeat_frame(int(time.time() * 1000)))
    except TimeoutError:
        reason = "the handshake took too long"
        coord.stats.closed[m.TIMEOUT] += 1
        link.close(m.TIMEOUT, reason)
    except ProtocolViolation as exc:
        reason = exc.message
        coord.stats.closed[exc.close_code] += 1
        link.close(exc.close_code, exc.message)
    except WebSocketDisconnect as exc:
        reason = f"disconnected ({exc.code})"
    finally:
        if miner_id:
            coord.disconnect(miner_id, link, reason)
        await link.finish(timeout=1.0)


routes = [WebSocketRoute("/ws/miner", miner_socket)]
