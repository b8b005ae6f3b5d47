"""Connections as uvicorn accepts them, bounded before any request reaches the app.

uvicorn's own protocols leave three doors open to anyone who can connect:

- a connection may take as long as it likes to send a request head, one byte
  at a time, and one that sends nothing at all stays open (slowloris);
- pipelined requests are parsed as fast as they arrive and each becomes a
  queued request object, so one connection writing ``GET /health`` thousands
  of times before reading anything holds megabytes (measured in
  docs/security.md);
- any number of connections may come from one address.

An upgrade request for the miner socket (``GET /ws/miner``) does not go on to
uvicorn's WebSocket protocol and ASGI: the transport is handed to a
:class:`qortex.web.wire.MinerWire`, which holds the conversation at a few
microseconds a frame, on the same port. The client address it is given is the
one uvicorn's ``ProxyHeadersMiddleware`` finds for every HTTP request (the
forwarded one, behind a trusted proxy). Other upgrade requests still reach the
app through uvicorn's protocol (the app has no other WebSocket route, so they
get its refusal).

:func:`protocols` returns subclasses of uvicorn's httptools and websockets
protocols that close a connection whose request head is not complete within
``head_seconds``, close one that queues more than ``MAX_PIPELINE`` requests
behind the one being answered, and close new connections from an address
that already has ``max_connections_per_address`` open. The count is by TCP
peer, so the trusted proxies (a tunnel agent, which carries everybody) are
not capped; the per-address quotas in :mod:`qortex.web.addresses` apply to
forwarded addresses. Each limit is logged when it bites, at most once every
``LOG_EVERY`` seconds with a count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.datastructures import Headers
from websockets.http11 import Request

from qortex.settings import Settings
from qortex.web.wire import Endpoint, MinerWire

log = logging.getLogger("qortex.connections")

#: Requests one connection may queue behind the one being answered.
MAX_PIPELINE = 16
#: The path served by :class:`qortex.web.wire.MinerWire` rather than through ASGI.
MINER_PATH = b"/ws/miner"
LOG_EVERY = 10.0


class _TooDeep(Exception):
    """Raised from the parser's callback to stop parsing a pipeline that is too deep.

    httptools hands it to uvicorn as a parser error, whose answer is a 400 and
    a close; ``send_400_response`` closes quietly instead.
    """


class Gate:
    """Open connections per peer address, shared by the HTTP and WebSocket protocols."""

    def __init__(self, settings: Settings) -> None:
        self.cap = settings.max_connections_per_address
        self.head_seconds = settings.head_seconds
        self.exempt = frozenset(settings.trusted_proxies)
        self.open: Counter[str] = Counter()
        self._holders: dict[int, str] = {}  # id(transport) -> address, while counted
        self.bitten: Counter[str] = Counter()
        self._unlogged: Counter[str] = Counter()
        self._logged_at: dict[str, float] = {}

    def enter(self, transport: asyncio.BaseTransport, address: str) -> bool:
        """Count a connection; ``False`` (and nothing counted) if its address is full."""
        key = id(transport)
        if key in self._holders:  # the same socket, upgraded to a WebSocket
            return True
        if address not in self.exempt and self.open[address] >= self.cap:
            self.bite("connections", f"more than {self.cap} open from {address}")
            return False
        self._holders[key] = address
        self.open[address] += 1
        return True

    def leave(self, transport: asyncio.BaseTransport) -> None:
        address = self._holders.pop(id(transport), None)
        if address is not None:
            self.open[address] -= 1
            if self.open[address] <= 0:
                del self.open[address]

    def bite(self, limit: str, detail: str) -> None:
        self.bitten[limit] += 1
        self._unlogged[limit] += 1
        now = time.monotonic()
        if now - self._logged_at.get(limit, float("-inf")) >= LOG_EVERY:
            log.warning(
                "closed a connection: %s (%d closed for this since the last line)",
                detail,
                self._unlogged[limit],
            )
            self._logged_at[limit] = now
            self._unlogged[limit] = 0


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""


def forwarded_client(trusted_proxies: list[str]) -> Callable[[dict[str, Any]], str]:
    """The client address of a request scope, found exactly as for HTTP requests.

    uvicorn's ``ProxyHeadersMiddleware`` (``proxy_headers``, ``forwarded_allow_ips``)
    rewrites ``scope["client"]`` and then calls the app; it awaits nothing
    before that, so driving it once runs it to the end without an event loop.
    """
    found: list[Any] = []

    async def note(scope: Any, receive: Any, send: Any) -> None:
        found.append(scope.get("client"))

    proxy = ProxyHeadersMiddleware(note, trusted_hosts=",".join(trusted_proxies))  # type: ignore[arg-type]

    def client(scope: dict[str, Any]) -> str:
        run = proxy(dict(scope), None, None)  # type: ignore[arg-type]
        with contextlib.suppress(StopIteration):
            run.send(None)
        address = found.pop() if found else None
        return str(address[0]) if address else ""

    return client


def protocols(
    settings: Settings, miners: Endpoint | None = None
) -> tuple[type[asyncio.Protocol], type[asyncio.Protocol]]:
    """uvicorn's HTTP and WebSocket protocol classes, bound to one :class:`Gate`.

    ``miners`` serves upgrade requests for ``/ws/miner`` off ASGI (without it,
    every upgrade goes through uvicorn's WebSocket protocol and the app).
    """
    gate = Gate(settings)
    client_of = forwarded_client(settings.trusted_proxies)

    class GuardedHttp(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None
        _counted = False
        _too_deep = False
        _running: Any = None  # the request being answered (``cycle`` is the newest parsed)

        def _start_asgi_task(self, cycle: Any, app: Any) -> None:
            self._running = cycle
            super()._start_asgi_task(cycle, app)

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._counted = gate.enter(transport, _peer(transport))
            if not self._counted:
                transport.close()
                return
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head_timer()
            if self._counted:
                gate.leave(self.transport)
            if self._running is not None:  # uvicorn only tells the newest request
                self._running.disconnected = True
                self._running.message_event.set()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            if not self._too_deep:
                super().send_400_response(msg)
                return
            gate.bite("pipeline", f"more than {MAX_PIPELINE} pipelined requests")
            self._close()

        def _close(self) -> None:
            """Close at once; the request being answered must not write to a closed socket."""
            self.pipeline.clear()
            for cycle in (self.cycle, self._running):
                if cycle is not None:
                    cycle.disconnected = True
            self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._head_timer is None:
                self._arm_head_timer()

        def on_headers_complete(self) -> None:
            self._disarm_head_timer()
            if len(self.pipeline) >= MAX_PIPELINE:
                self._too_deep = True
                raise _TooDeep
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if len(self.pipeline) >= MAX_PIPELINE // 2:
                self.flow.pause_reading()  # answer what is queued before reading more

        def handle_websocket_upgrade(self) -> None:
            self._disarm_head_timer()
            self._counted = False  # the WebSocket protocol holds the count from now on
            if (
                miners is not None
                and self.scope["method"] == "GET"
                and self.url.partition(b"?")[0] == MINER_PATH
            ):
                self._to_miner_wire(miners)
            else:
                super().handle_websocket_upgrade()

        def _to_miner_wire(self, miners: Endpoint) -> None:
            self.connections.discard(self)
            wire = MinerWire(
                settings.max_message_bytes, settings.ws_ping_seconds, self.connections, gate.leave
            )
            headers = Headers(
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in self.scope["headers"]
            )
            self.transport.set_protocol(wire)
            request = Request(self.url.decode("latin-1"), headers)
            wire.start(self.transport, request, client_of(self.scope), miners)

        def _arm_head_timer(self) -> None:
            self._head_timer = self.loop.call_later(gate.head_seconds, self._head_too_slow)

        def _disarm_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_too_slow(self) -> None:
            self._head_timer = None
            if self.cycle is None or self.cycle.response_complete:
                gate.bite("head", f"no complete request head within {gate.head_seconds:g} s")
                self._close()

    class GuardedWebSocket(WebSocketsSansIOProtocol):
        def connection_made(self, transport: Any) -> None:
            gate.enter(transport, _peer(transport))  # already counted as HTTP: a no-op
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            gate.leave(self.transport)
            super().connection_lost(exc)

    return GuardedHttp, GuardedWebSocket


def raise_open_files_limit() -> int:
    """Raise the soft limit on open descriptors to the hard limit; returns the new limit.

    The default soft limit (often 1024) lets a few hundred slow connections
    shut everybody else out long before memory or CPU run short.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft
