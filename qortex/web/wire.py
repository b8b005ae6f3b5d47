"""``/ws/miner`` under ``qortex serve``: a WebSocket that costs a few microseconds a frame.

Through uvicorn's WebSocket protocol, ASGI and Starlette, every frame crossed a
queue, two awaits and a per-connection task: 30 to 50 µs of Python each way
(docs/performance.md). :class:`MinerWire` is an asyncio protocol that takes
over the transport once :mod:`qortex.web.guard` has read the upgrade request,
and pumps bytes between the socket and ``websockets``' sans-I/O
``ServerProtocol``: ``data_received`` parses frames and hands each whole
message to the endpoint's peer (a :class:`qortex.web.channel.MinerChannel`)
in the same call; what the peer sends is framed and written at once. No task,
no queue, one timer (the keepalive ping) per connection.

What uvicorn did for this path is done here, with the same settings: the
opening handshake checks of ``websockets`` (``ServerProtocol.accept``), no
per-message deflate, ``max_message_bytes`` (close ``1009``), text that must be
UTF-8 (close ``1007``), close ``1012`` when the server shuts down, and a
closing handshake bounded by ``CLOSE_SECONDS`` (``DRAIN_SECONDS`` while the
close waits behind frames the peer has not read). Keepalive pings go only to a
peer silent for ``ws_ping_seconds``; silent through the next interval too, it
is closed with ``1011``. When the transport's buffer is over its high-water
mark (``pause_writing``) the frames written meanwhile are counted, so the
channel can close a miner that stopped reading (``4008``) instead of holding
its frames without bound.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Protocol

from websockets.frames import Opcode, apply_mask
from websockets.http11 import Request
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

from qortex.web.channel import Wire

log = logging.getLogger("qortex.socket")

#: Seconds the peer has to answer a close frame before the socket is dropped.
CLOSE_SECONDS = 5.0
#: The same while the close waits behind unread frames (a miner that stopped
#: reading): enough to read them all and the close after them.
DRAIN_SECONDS = 60.0
#: What uvicorn answers on shutdown, and what the miners expect (service restart).
SHUTTING_DOWN = 1012
_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT


class Peer(Protocol):
    """What a wire drives: the conversation on one accepted socket."""

    def opened(self) -> None: ...

    def received(self, data: bytes) -> None: ...

    def flush(self) -> None:
        """Called after the last message of one read."""

    def ended(self, reason: str) -> None: ...


#: Builds the peer of an accepted socket from its wire and its client address.
Endpoint = Callable[[Wire, str], Peer]


class MinerWire(asyncio.Protocol):
    """One WebSocket on an asyncio transport, after the HTTP upgrade request was read."""

    __slots__ = (
        "_closer",
        "_connections",
        "_heard",
        "_held",
        "_loop",
        "_on_lost",
        "_parts",
        "_paused",
        "_peer",
        "_ping",
        "_ping_seconds",
        "_pinged",
        "_text",
        "_unsent",
        "_ws",
        "transport",
    )

    def __init__(
        self,
        max_message_bytes: int,
        ping_seconds: float,
        connections: set[asyncio.Protocol],
        on_lost: Callable[[asyncio.BaseTransport], None],
    ) -> None:
        self._ws = ServerProtocol(state=OPEN, max_size=max_message_bytes, logger=log)
        self._ping_seconds = ping_seconds
        self._connections = connections  # uvicorn's: shut down and waited for on exit
        self._on_lost = on_lost
        self._peer: Peer | None = None
        self._parts: list[bytes] | None = None  # a fragmented message so far
        self._text = True  # whether that message is text (UTF-8, checked) or binary
        self._ping: asyncio.TimerHandle | None = None
        self._closer: asyncio.TimerHandle | None = None
        self._heard = False  # anything arrived since the last keepalive tick
        self._pinged = False  # the last tick sent a ping
        self._paused = False
        self._held = False
        self._unsent = 0
        self.transport: asyncio.Transport | None = None
        # Kept: on Python 3.11 each get_running_loop() is a getpid system call.
        self._loop = asyncio.get_running_loop()

    def start(
        self, transport: asyncio.Transport, request: Request, address: str, endpoint: Endpoint
    ) -> None:
        """Answer the upgrade request; on success the endpoint's peer takes the socket."""
        self.transport = transport
        self._connections.add(self)
        response = self._ws.accept(request)
        transport.write(response.serialize())
        if response.status_code != 101:  # the handshake failed: said why, in plain text
            transport.close()
            return
        self._arm_ping()
        self._peer = endpoint(self, address)
        self._peer.opened()

    # -- asyncio.Protocol ---------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._heard = True
        ws = self._ws
        parse = True  # what the fast path leaves: control frames, fragments, partial frames
        if ws.state is OPEN and not ws.reader.buffer and self._parts is None:
            used = self._whole_messages(data)
            data = data[used:]
            parse = bool(data) or ws.state is not OPEN
        if parse:
            self._parse(data)
        if self._peer is not None:
            self._peer.flush()  # the replies to this read, before anything the protocol sends
        if parse:
            self._flush()

    def _parse(self, data: bytes) -> None:
        ws = self._ws
        ws.receive_data(data)
        for frame in ws.events_received():
            opcode = frame.opcode
            if opcode is _TEXT or opcode is _BINARY:
                self._text = opcode is _TEXT
                if frame.fin:
                    self._deliver(frame.data, self._text)
                else:
                    self._parts = [frame.data]
            elif opcode is _CONT and self._parts is not None:
                self._parts.append(frame.data)
                if frame.fin:
                    parts, self._parts = self._parts, None
                    self._deliver(b"".join(parts), self._text)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._ping, self._closer):
            if timer is not None:
                timer.cancel()
        self._ping = self._closer = None
        self._connections.discard(self)
        if self.transport is not None:
            self._on_lost(self.transport)
        if self._peer is not None:
            received = self._ws.close_rcvd
            self._peer.ended(f"disconnected ({received.code if received else 1006})")

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._unsent = 0
        if self._closer is not None:  # the close frame is about to leave: time its answer
            self._arm_closer()

    def shutdown(self) -> None:
        """uvicorn is stopping: close with 1012, as its own WebSocket protocol does."""
        self.close(SHUTTING_DOWN, "")

    # -- qortex.web.channel.Wire --------------------------------------------

    def send(self, data: bytes, frames: int) -> None:
        """One unfragmented text frame, its header built here (as ``send_text`` would)."""
        transport = self.transport
        if self._ws.state is not OPEN or transport is None or transport.is_closing():
            return  # a socket may end before its protocol hears of it: drop, never raise
        size = len(data)
        if size < 126:
            head = bytes((0x81, size))
        elif size < 65536:
            head = b"\x81\x7e" + size.to_bytes(2)
        else:
            head = b"\x81\x7f" + size.to_bytes(8)
        transport.write(head + data)
        if self._paused:
            self._unsent += frames

    def close(self, code: int, reason: str) -> None:
        if self._ws.state is OPEN:
            self._ws.send_close(code, reason)
            self._flush()

    def unsent(self) -> int:
        return self._unsent

    def hold(self, held: bool) -> None:
        if held != self._held and self.transport is not None and not self.transport.is_closing():
            self._held = held
            if held:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    # -- inside -------------------------------------------------------------

    def _whole_messages(self, data: bytes) -> int:
        """Deliver the whole, unfragmented, masked data frames at the start of ``data``.

        They are nearly every frame a miner sends (pings, every 20 s from the
        reference miner, are answered here too), and ``websockets``' parser
        (a generator per frame) costs several times what the message itself
        does. Anything else (a control frame, a fragment, a frame cut by the
        read, one over the size limit, reserved bits) stops here: the rest goes
        to the protocol, which handles every case. Returns the bytes used.
        """
        end = len(data)
        limit = self._ws.max_message_size or end
        pos = 0
        while end - pos >= 6:
            first, second = data[pos], data[pos + 1]
            if first == 0x89 and 0x80 <= second < 0x80 + 126:  # a ping: pong at once
                stop = pos + 6 + (second & 0x7F)
                if stop > end:
                    break
                pong = apply_mask(data[pos + 6 : stop], data[pos + 2 : pos + 6])
                self.transport.write(bytes((0x8A, len(pong))) + pong)  # type: ignore[union-attr]
                pos = stop
                continue
            if (first != 0x81 and first != 0x82) or second < 0x80:
                break  # not FIN + text/binary with no extension bits, or not masked
            size = second & 0x7F
            head = pos + 2
            if size == 126:
                size = int.from_bytes(data[head : head + 2])
                head += 2
            elif size == 127:
                break
            stop = head + 4 + size
            if stop > end or size > limit:
                break
            self._deliver(apply_mask(data[head + 4 : stop], data[head : head + 4]), first == 0x81)
            pos = stop
            if self._ws.state is not OPEN:
                break
        return pos

    def _deliver(self, data: bytes, text: bool) -> None:
        if self._peer is None or self._ws.state is not OPEN:
            return
        if text and not data.isascii():
            try:
                data.decode()
            except UnicodeDecodeError:  # RFC 6455: a text message must be UTF-8
                self._ws.fail(1007, "a text message that is not UTF-8")
                return
        self._peer.received(data)

    def _flush(self) -> None:
        """Write what the protocol produced; close the socket when it says so."""
        transport = self.transport
        assert transport is not None
        if transport.is_closing():
            self._ws.data_to_send()  # nobody to write it to
            return
        for chunk in self._ws.data_to_send():
            if chunk:
                transport.write(chunk)
            else:  # end of stream: the closing handshake is complete, or failed
                transport.close()
        if self._closer is None and self._ws.close_expected() and not transport.is_closing():
            self._arm_closer()

    def _arm_closer(self) -> None:
        if self._closer is not None:
            self._closer.cancel()
        assert self.transport is not None
        delay = DRAIN_SECONDS if self._paused else CLOSE_SECONDS
        self._closer = self._loop.call_later(delay, self.transport.abort)

    def _arm_ping(self) -> None:
        if self._ping_seconds > 0:
            self._ping = self._loop.call_later(self._ping_seconds, self._keepalive)

    def _keepalive(self) -> None:
        """Every ``ws_ping_seconds``: ping a peer that sent nothing since the last tick.

        A peer that is heard from (heartbeats, results, a pong) needs no ping:
        the connection is neither idle to a proxy nor dead. One that stays
        silent through the tick after its ping is gone: close ``1011``.
        """
        self._ping = None
        ws = self._ws
        if ws.state is not OPEN:
            return
        if self._heard:
            self._heard = self._pinged = False
        elif self._pinged:
            ws.fail(1011, "keepalive ping timeout")
            self._flush()
            return
        else:
            self._pinged = True
            ws.send_ping(os.urandom(4))
            self._flush()
        self._arm_ping()
