"""Running the app under uvicorn for ``qortex serve``, in an order that fails safely.

The port is bound before the app starts, so ``address already in use`` is a
clear error that has changed nothing; and ``on_listening`` runs only once the
socket accepts connections, so what it announces (a new API key, saved for the
CLI under this URL) is never announced by a coordinator that did not come up.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

from qortex.errors import ConfigError
from qortex.settings import Settings
from qortex.web import guard


def uvicorn_options(settings: Settings, application: Any = None) -> dict[str, Any]:
    """uvicorn's options for ``application``; its ``state.miner_endpoint``, if any,
    serves ``/ws/miner`` off ASGI (qortex.web.wire)."""
    state = getattr(application, "state", None)
    http, ws = guard.protocols(settings, getattr(state, "miner_endpoint", None))
    return {
        "http": http,  # bounded pipelining and request heads (qortex.web.guard)
        "ws": ws,
        "log_level": settings.log_level,
        "log_config": None,  # qortex.logs: one format for every logger
        "access_log": False,  # qortex.logs.AccessLog writes access lines, with request ids
        "ws_max_size": settings.max_message_bytes,
        "ws_ping_interval": settings.ws_ping_seconds,
        "ws_ping_timeout": settings.ws_ping_seconds,
        # Frames are small JSON: compressing costs more than it saves.
        "ws_per_message_deflate": False,
        "proxy_headers": True,
        "forwarded_allow_ips": ",".join(settings.trusted_proxies),
        "timeout_graceful_shutdown": 5,
    }


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on ``host:port``, or a ``ConfigError`` that says why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = (
            " (is another qortex serve running? use --port)"
            if exc.errno == errno.EADDRINUSE
            else ""
        )
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_listening: Callable[[], Awaitable[None]]) -> None:
        super().__init__(config)
        self._on_listening = on_listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            await self._on_listening()


def serve(
    application: Any,
    settings: Settings,
    sock: socket.socket,
    on_listening: Callable[[], Awaitable[None]],
) -> None:
    """Serve ``application`` on ``sock`` until a signal stops it."""
    config = uvicorn.Config(
        application,
        host=settings.host,
        port=settings.port,
        **uvicorn_options(settings, application),
    )
    _Server(config, on_listening).run(sockets=[sock])
