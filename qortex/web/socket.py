"""``/ws/miner`` as an ASGI route, for wherever the app runs without ``qortex serve``.

``qortex serve`` answers ``/ws/miner`` before ASGI, in :mod:`qortex.web.wire`,
because the ASGI interface costs tens of microseconds a frame. The app stays a
complete ASGI app all the same: run by another ASGI server, or in-process by
Starlette's ``TestClient``, the same :class:`MinerChannel` holds the same
conversation over this route. Outgoing messages wait in a queue drained by
their own task, since an ASGI ``send`` must be awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import NamedTuple

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from qortex.web.channel import MinerChannel


class _Message(NamedTuple):
    data: bytes
    frames: int


class _Close(NamedTuple):
    code: int
    reason: str


class AsgiWire:
    """A :class:`qortex.web.channel.Wire` over an ASGI WebSocket."""

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        self._queue: asyncio.Queue[_Message | _Close | None] = asyncio.Queue()
        self._unsent = 0
        self.readable = asyncio.Event()
        self.readable.set()

    def send(self, data: bytes, frames: int) -> None:
        self._unsent += frames
        self._queue.put_nowait(_Message(data, frames))

    def close(self, code: int, reason: str) -> None:
        self._queue.put_nowait(_Close(code, reason))

    def unsent(self) -> int:
        return self._unsent

    def hold(self, held: bool) -> None:
        if held:
            self.readable.clear()
        else:
            self.readable.set()

    def gone(self) -> None:
        self._queue.put_nowait(None)

    async def pump(self) -> None:
        """Send what is queued until the close went out or the socket is gone."""
        try:
            while True:
                item = await self._queue.get()
                if item is None:
                    return
                if isinstance(item, _Close):
                    with contextlib.suppress(Exception):
                        await self._ws.close(item.code, item.reason)
                    return
                await self._ws.send_text(item.data.decode())
                self._unsent -= item.frames
        except (WebSocketDisconnect, RuntimeError, OSError):
            return


async def _read(ws: WebSocket, channel: MinerChannel, wire: AsgiWire) -> str:
    """Hand each message to the channel; returns why the socket ended."""
    try:
        while True:
            await wire.readable.wait()
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return f"disconnected ({message.get('code', 1000)})"
            text = message.get("text")
            channel.received(text if text is not None else message.get("bytes") or b"")
            channel.flush()
    finally:
        wire.gone()


async def miner_socket(ws: WebSocket) -> None:
    await ws.accept()
    wire = AsgiWire(ws)
    channel = MinerChannel(ws.app.state, wire, ws.client.host if ws.client else "")
    channel.opened()
    reader = asyncio.create_task(_read(ws, channel, wire))
    try:
        await wire.pump()
    finally:
        reader.cancel()
        results = await asyncio.gather(reader, return_exceptions=True)
        channel.ended(results[0] if isinstance(results[0], str) else "closed")


routes = [WebSocketRoute("/ws/miner", miner_socket)]
