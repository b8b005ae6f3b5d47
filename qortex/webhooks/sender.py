"""One delivery attempt: resolve, check the address, sign, POST, and say how it went.

The host is resolved here and every address it resolves to is checked against
the destination rule (:mod:`qortex.webhooks.destinations`); the request then
goes to the checked address, with the name kept in ``Host`` and, for https,
in the TLS server name, so certificates are still verified against the name.
Redirects are not followed: a redirect could lead anywhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import httpx
from standardwebhooks.webhooks import Webhook

from qortex import __version__
from qortex.settings import Settings
from qortex.webhooks.destinations import allowed, networks


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    status: int | None = None
    error: str | None = None


def sign(msg_id: str, secret: str, payload: str, now: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, payload),
    }


class Sender:
    def __init__(self, settings: Settings) -> None:
        self._allow = networks(settings.webhook_allow_networks)
        self._client = httpx.AsyncClient(
            timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def _address(self, host: str, port: int) -> str:
        """The address to connect to, once every address of ``host`` passed the rule."""
        try:
            literal = ipaddress.ip_address(host)
            addresses = [literal]
        except ValueError:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
            addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        if not addresses:
            raise OSError(f"{host} does not resolve")
        refused = [str(a) for a in addresses if not allowed(a, self._allow)]
        if refused:
            raise PermissionError(
                f"{host} resolves to {', '.join(refused)}, a private or local address"
                " (see webhook_allow_networks)"
            )
        first = addresses[0]
        return f"[{first}]" if first.version == 6 else str(first)

    async def send(self, msg_id: str, url: str, secret: str, payload: str) -> Attempt:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            address = await self._address(host, port)
        except (OSError, PermissionError) as exc:
            return Attempt(False, None, str(exc)[:500])
        netloc = f"{address}:{parts.port}" if parts.port else address
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        headers = {
            "host": parts.netloc,
            "content-type": "application/json",
            "user-agent": f"qortex/{__version__}",
            **sign(msg_id, secret, payload, datetime.now(UTC)),
        }
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        try:
            response = await self._client.post(
                pinned, content=payload.encode(), headers=headers, extensions=extensions
            )
        except httpx.HTTPError as exc:
            return Attempt(False, None, f"{type(exc).__name__}: {exc}"[:500])
        if response.is_success:
            return Attempt(True, response.status_code)
        return Attempt(False, response.status_code, f"HTTP {response.status_code}")
