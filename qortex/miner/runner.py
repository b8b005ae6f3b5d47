"""One CLI miner: connect, authenticate, compute what is pushed, sign, repeat.

Connections drop (laptops sleep, tunnels restart, coordinators get upgraded),
so the runner reconnects with exponential backoff and full jitter, including
after the 404, 429 and 502 answers a tunnel gives while the coordinator is
away. It stops for good when retrying cannot help: the server refused this
identity (a close code in ``FATAL``), or, before it ever got in, the address
cannot work (an HTTP 4xx such as 403 for a wrong path, a host name that does
not resolve, TLS spoken to a plain-HTTP server). Stopping ends this identity
only; the other miners of the process go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import ssl
import time
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from qortex import __version__
from qortex.core.kinds import KindRegistry
from qortex.miner.report import MinerStats, Report
from qortex.protocol import messages as m
from qortex.protocol.client import (
    ClientSession,
    Mismatch,
    Reply,
    ResultAnswer,
    Welcomed,
    Withdrawn,
    Work,
)
from qortex.signing import Signer

log = logging.getLogger("qortex.miner")

# Close codes after which reconnecting would only fail the same way.
FATAL = {m.AUTH_FAILED, m.UNSUPPORTED, m.BAD_HELLO, m.REPLACED, m.BANNED}
# HTTP answers to the upgrade that a tunnel or a restarting coordinator gives for a while.
PASSING_STATUSES = {404, 408, 425, 429}
# Closes whose empty reason deserves words.
CLOSE_WORDS = {
    1000: "closed",
    1001: "server going away",
    1006: "connection lost",
    1011: "server error",
    1012: "server restarting",
    1013: "server busy, try again later",
    **m.CLOSE_CODES,
}
# Seconds a connection may stay silent before ``welcome``: the coordinator's
# handshake deadline is far shorter, so silence this long means it is gone.
HANDSHAKE_PATIENCE = 60.0
# The refusal a result gets when its copy was cancelled a moment before it arrived.
WITHDRAWN = "withdrawn"


class MinerStopped(Exception):
    """The server refused this miner in a way retrying cannot fix."""


def socket_url(url: str) -> str:
    base = url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return base if base.endswith("/ws/miner") else base + "/ws/miner"


def _close_words(code: int, reason: str) -> str:
    return f"{code} {reason or CLOSE_WORDS.get(code, 'closed')}"


def _permanent(exc: BaseException, url: str) -> str | None:
    """Why connecting to ``url`` can never work as given, or None if it may work later."""
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if 400 <= status < 500 and status not in PASSING_STATUSES:
            return f"{url} answered HTTP {status}: is the URL the coordinator's address?"
    elif isinstance(exc, socket.gaierror) and exc.errno in (socket.EAI_NONAME, socket.EAI_FAIL):
        return f"cannot resolve the host of {url}: {exc.strerror}"
    elif isinstance(exc, ssl.SSLError):
        why = getattr(exc, "reason", None) or exc
        return f"TLS with {url} failed ({why}): does the server speak https? try http://"
    return None


class Miner:
    def __init__(
        self,
        url: str,
        signer: Signer,
        kinds: KindRegistry,
        slots: int = 1,
        name: str = "",
        max_backoff: float = 30.0,
        report: Report | None = None,
        key_path: str = "",
    ) -> None:
        self.url = socket_url(url)
        self.signer = signer
        self.kinds = kinds
        self.slots = slots
        self.name = name
        self.max_backoff = max_backoff
        self.report = report if report is not None else Report()
        self.key_path = key_path
        self.stats = MinerStats()
        self._work: dict[str, asyncio.Task[None]] = {}
        self._welcomed_ever = False
        self._heard = 0.0  # loop time of the last frame from the coordinator
        self._unanswered = 0.0  # seconds of silence after which the last connection was dropped

    @property
    def short_id(self) -> str:
        return self.signer.miner_id[:8]

    async def run(self) -> None:
        self._attempt = 0
        while True:
            try:
                # No WebSocket pings: the answered heartbeats keep the connection
                # alive and show it is, at no extra wake-up of the coordinator.
                async with connect(
                    self.url, open_timeout=10, ping_interval=None, max_size=None
                ) as ws:
                    self.stats.connects += 1
                    await self._converse(ws)
                problem = self._closed(ws.close_code or 1000, ws.close_reason or "")
            except ConnectionClosed as exc:
                if self._unanswered:  # dropped here: see _heartbeat
                    problem = (
                        "connection dropped: the coordinator answered nothing"
                        f" for {self._unanswered:g} s"
                    )
                else:
                    code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (1006, "")
                    problem = self._closed(code, reason)
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                permanent = _permanent(exc, self.url)
                if permanent is not None and not self._welcomed_ever:
                    raise MinerStopped(permanent) from None
                if isinstance(exc, InvalidStatus):
                    problem = f"{self.url} answered HTTP {exc.response.status_code}"
                else:
                    problem = f"cannot connect to {self.url}: {exc}"
            finally:
                self.stats.connected = False
                self._abandon()
                self.report.changed()
            self._attempt += 1
            delay = random.uniform(0, min(self.max_backoff, 0.25 * 2**self._attempt))
            self.report.problem(problem, delay)
            await asyncio.sleep(delay)

    def _closed(self, code: int, reason: str) -> str:
        """What to say about a closed connection; raises ``MinerStopped`` if it is final."""
        if code == m.REPLACED:
            where = f" ({self.key_path})" if self.key_path else ""
            raise MinerStopped(
                f"miner {self.short_id} stopped: its key{where} connected from another"
                " socket. Give each qortex miner keys of its own: another --key-dir,"
                " or `qortex keygen FILE` and --key FILE"
            )
        if code in FATAL:
            raise MinerStopped(
                f"miner {self.short_id} stopped: the server closed with"
                f" {_close_words(code, reason)}"
            )
        return f"connection closed ({_close_words(code, reason)})"

    async def _converse(self, ws: ClientConnection) -> None:
        session = ClientSession(
            self.signer, self.slots, list(self.kinds), f"qortex/{__version__}", self.name
        )
        loop = asyncio.get_running_loop()
        self._heard, self._unanswered = loop.time(), 0.0
        await ws.send(session.hello_frame().decode())
        watch = asyncio.create_task(self._heartbeat(ws, HANDSHAKE_PATIENCE / 3, beat=False))
        try:
            async for raw in ws:
                self._heard = loop.time()
                for event in session.receive_all(raw):
                    await self._handle(ws, session, event)
                    if isinstance(event, Welcomed):
                        watch.cancel()
                        watch = asyncio.create_task(
                            self._heartbeat(ws, event.heartbeat_seconds, beat=True)
                        )
        finally:
            watch.cancel()

    async def _handle(self, ws: ClientConnection, session: ClientSession, event: Any) -> None:
        if isinstance(event, Reply):
            await ws.send(event.frame.decode())
        elif isinstance(event, Welcomed):
            self._attempt = 0  # only a welcome proves the server wants us back
            self._welcomed_ever = True
            self.stats.connected = True
            self.report.connected(self.url)
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
        elif isinstance(event, ResultAnswer):
            if event.accepted:
                self.stats.accepted += 1
            elif event.reason == WITHDRAWN:
                self.stats.withdrawn += 1
            else:
                self.stats.refused += 1
                self.report.refused(event.assignment_id, event.reason)
            self.report.changed()
        elif isinstance(event, Withdrawn):
            task = self._work.pop(event.assignment_id, None)
            if task is not None:
                task.cancel()
                self.stats.cancelled += 1

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

    async def _heartbeat(self, ws: ClientConnection, every: float, beat: bool) -> None:
        """Heartbeats (once welcomed), and the end of a connection that went quiet.

        The coordinator answers every heartbeat at once, so silence for three
        periods means a dead link or a stopped coordinator, which TCP alone
        would take many minutes to report: the socket is dropped and the
        runner reconnects. Before ``welcome`` nothing is sent, only watched.
        """
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(every)
                silent = loop.time() - self._heard
                if silent > 3 * every:
                    self._unanswered = round(silent, 1)
                    ws.transport.abort()
                    return
                if beat:
                    await ws.send(session_heartbeat())

    def _abandon(self) -> None:
        """Work in hand is void once the connection is gone: the server reassigned it."""
        for task in self._work.values():
            task.cancel()
        self._work.clear()


async def run_all(miners: list[Miner]) -> int:
    """Run every miner; one that must stop says why and the others go on.

    Returns how many stopped, once all have.
    """

    async def one(miner: Miner) -> bool:
        try:
            await miner.run()
        except MinerStopped as exc:
            miner.report.say(f"error: {exc}")
            return True
        return False

    return sum(await asyncio.gather(*(one(miner) for miner in miners)))


def session_heartbeat() -> str:
    return ClientSession.heartbeat_frame(int(time.time() * 1000)).decode()
