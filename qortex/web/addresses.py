"""Quotas per address on everything a party without the API key can do.

The address is the client's as uvicorn reports it: behind one of
``trusted_proxies`` (a tunnel agent, a reverse proxy) that is the forwarded
address, so every stranger coming through the tunnel has a quota of their
own. A request from a trusted proxy that forwards nobody comes from this
machine's own processes (the operator's miners, scripts and tests) and is not
limited. When a limit bites it is counted, and logged at most once per limit
every ``LOG_EVERY`` seconds with how many refusals that line stands for.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from starlette.requests import HTTPConnection

from qortex.core.limits import Limiter
from qortex.errors import TooManyRequests
from qortex.settings import Settings

log = logging.getLogger("qortex.limits")

LOG_EVERY = 10.0
#: Identities remembered as seen without asking the file.
MAX_SEEN = 100_000

#: What each quota counts, as the message a refused client gets.
WHAT = {
    "register": "registrations",
    "identity": "new miner identities",
    "handshake": "miner handshakes",
    "auth_failure": "failed API key checks",
    "result": "results over HTTP",
}


class AddressLimits:
    def __init__(self, settings: Settings, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.exempt = frozenset(settings.trusted_proxies)
        self.limiters = {
            name: Limiter(getattr(settings, f"{name}_rate"), getattr(settings, f"{name}_burst"))
            for name in WHAT
        }
        self._seen: dict[str, None] = {}  # identities welcomed lately, oldest first
        self.refused: Counter[str] = Counter()
        self._unlogged: Counter[str] = Counter()
        self._logged_at: dict[str, float] = {}

    def seen(self, miner_id: str) -> bool:
        """Whether this identity was welcomed lately (its row may not be committed yet)."""
        return miner_id in self._seen

    def remember(self, miner_id: str) -> None:
        self._seen.pop(miner_id, None)
        self._seen[miner_id] = None
        if len(self._seen) > MAX_SEEN:
            del self._seen[next(iter(self._seen))]

    def address(self, conn: HTTPConnection) -> str | None:
        """The address a quota is kept for, or ``None`` for this machine's own processes."""
        host = conn.client.host if conn.client else ""
        return None if host in self.exempt else host

    def take(self, name: str, conn: HTTPConnection) -> float:
        """Count one ``name`` for the connection's address: 0, or seconds to wait (refused)."""
        return self.take_address(name, conn.client.host if conn.client else "")

    def take_address(self, name: str, host: str) -> float:
        """:meth:`take` for a client address known without a request (the miner socket's)."""
        address = None if host in self.exempt else host
        if address is None:
            return 0.0
        wait = self.limiters[name].take(address, self.clock())
        if wait:
            self.bitten(name, address)
        return wait

    def waiting(self, name: str, conn: HTTPConnection) -> float:
        """Seconds until the address may do ``name`` again, without counting anything."""
        address = self.address(conn)
        if address is None:
            return 0.0
        wait = self.limiters[name].waiting(address, self.clock())
        if wait:
            self.bitten(name, address)
        return wait

    def check(self, name: str, conn: HTTPConnection) -> None:
        """Take one ``name`` or raise :class:`TooManyRequests` (HTTP 429, ``Retry-After``)."""
        wait = self.take(name, conn)
        if wait:
            raise TooManyRequests(self.message(name), wait)

    def message(self, name: str) -> str:
        limiter = self.limiters[name]
        return f"too many {WHAT[name]} from this address (at most {limiter.rate:g} a second)"

    def bitten(self, name: str, address: str) -> None:
        self.refused[name] += 1
        self._unlogged[name] += 1
        now = self.clock()
        if now - self._logged_at.get(name, float("-inf")) >= LOG_EVERY:
            log.warning(
                "limit on %s per address reached (latest %s; %d refused since the last line)",
                WHAT[name],
                address,
                self._unlogged[name],
            )
            self._logged_at[name] = now
            self._unlogged[name] = 0
