"""One CLI miner: connect, authenticate, compute what is pushed, sign, repeat.

Connections drop (laptops sleep, tunnels restart, coordinators get upgraded),
so the runner reconnects with exponential backoff and full jitter, including
after the 404, 429 and 502 answers a tunnel gives while the coordinator is
away. It stops for good only when the server says retrying cannot help.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from qortex import __version__
from qortex.core.kinds import KindRegistry
from qortex.protocol import messages as m
from qortex.protocol.client import (
    ClientSession,
    Mismatch,
    Reply,
    Verdict,
    Welcomed,
    Withdrawn,
    Work,
)
from qortex.signing import Signer

log = logging.getLogger("qortex.miner")

# Close codes after which reconnecting would only fail the same way.
FATAL = {m.AUTH_FAILED, m.UNSUPPORTED, m.BAD_HELLO, m.REPLACED, m.BANNED}


class MinerStopped(Exception):
    """The server refused this miner in a way retrying cannot fix."""


def socket_url(url: str) -> str:
    base = url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return base if base.endswith("/ws/miner") else base + "/ws/miner"


@dataclass
class MinerStats:
    connects: int = 0
    computed: int = 0
    accepted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    cancelled: int = 0
    mismatched: int = 0  # assigns skipped because their input did not match its digest


class Miner:
    def __init__(
        self,
        url: str,
        signer: Signer,
        kinds: KindRegistry,
        slots: int = 1,
        name: str = "",
        max_backoff: float = 30.0,
    ) -> None:
        self.url = socket_url(url)
        self.signer = signer
        self.kinds = kinds
        self.slots = slots
        self.name = name
        self.max_backoff = max_backoff
        self.stats = MinerStats()
        self._work: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        self._attempt = 0
        while True:
            try:
                async with connect(
                    self.url, open_timeout=10, ping_interval=20, max_size=None
                ) as ws:
                    self.stats.connects += 1
                    await self._converse(ws)
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else 1006
                reason = exc.rcvd.reason if exc.rcvd else "connection lost"
                if code in FATAL:
                    raise MinerStopped(f"server closed with {code}: {reason}") from None
                log.info("%s: connection closed (%s %s)", self.signer.miner_id[:8], code, reason)
            except InvalidStatus as exc:
                log.info(
                    "%s: server answered HTTP %s",
                    self.signer.miner_id[:8],
                    exc.response.status_code,
                )
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                log.info("%s: cannot connect: %s", self.signer.miner_id[:8], exc)
            finally:
                self._abandon()
            self._attempt += 1
            delay = min(self.max_backoff, 0.25 * 2**self._attempt)
            await asyncio.sleep(random.uniform(0, delay))

    async def _converse(self, ws: ClientConnection) -> None:
        session = ClientSession(
            self.signer, self.slots, list(self.kinds), f"qortex/{__version__}", self.name
        )
        await ws.send(session.hello_frame().decode())
        heartbeat: asyncio.Task[None] | None = None
        try:
            async for raw in ws:
                for event in session.receive_all(raw):
                    if isinstance(event, Reply):
                        await ws.send(event.frame.decode())
                    elif isinstance(event, Welcomed):
                        self._attempt = 0  # only a welcome proves the server wants us back
                        log.info("miner %s connected to %s", event.miner_id, self.url)
                        heartbeat = asyncio.create_task(
                            self._heartbeat(ws, event.heartbeat_seconds)
                        )
                    elif isinstance(event, Work):
                        task = asyncio.create_task(self._compute(ws, session, event.assign))
                        self._work[event.assign.assignment_id] = task
                    elif isinstance(event, Mismatch):
                        self.stats.mismatched += 1
                        log.error(
                            "assignment %s skipped: its input hashes to %s, not the inputSha256 "
                            "%r the coordinator sent, so it is not computed or signed",
                            event.assign.assignment_id,
                            event.actual_sha256,
                            event.assign.input_sha256,
                        )
                    elif isinstance(event, Verdict):
                        if event.accepted:
                            self.stats.accepted += 1
                        else:
                            refused = self.stats.refused
                            refused[event.reason] = refused.get(event.reason, 0) + 1
                            level = (
                                logging.DEBUG if event.reason == "withdrawn" else logging.WARNING
                            )
                            log.log(
                                level, "result %s refused: %s", event.assignment_id, event.reason
                            )
                    elif isinstance(event, Withdrawn):
                        task = self._work.pop(event.assignment_id, None)
                        if task is not None:
                            task.cancel()
                            self.stats.cancelled += 1
        finally:
            if heartbeat is not None:
                heartbeat.cancel()

    async def _compute(
        self, ws: ClientConnection, session: ClientSession, assign: m.Assign
    ) -> None:
        try:
            kind = self.kinds.get(assign.kind)
            value: Any = msgspec.json.decode(assign.input)
            output = await asyncio.to_thread(kind.compute, value)
            frame = session.result_frame(assign, msgspec.json.encode(output))
            self.stats.computed += 1
            with contextlib.suppress(ConnectionClosed):
                await ws.send(frame.decode())
        finally:
            self._work.pop(assign.assignment_id, None)

    async def _heartbeat(self, ws: ClientConnection, every: float) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(every)
                await ws.send(session_heartbeat())

    def _abandon(self) -> None:
        """Work in hand is void once the connection is gone: the server reassigned it."""
        for task in self._work.values():
            task.cancel()
        self._work.clear()


def session_heartbeat() -> str:
    return ClientSession.heartbeat_frame(int(time.time() * 1000)).decode()
