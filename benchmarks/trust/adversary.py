"""Adversarial miners: real WebSocket connections from the harness process.

Each adversarial operator owns one /24 (``198.18.<n>.0/24``, announced in
``X-Forwarded-For`` on the upgrade, which the coordinator believes from
loopback), or, for ``sybil-spread``, one /24 per identity. Every identity
speaks the protocol through :class:`qortex.protocol.client.ClientSession`, so
the handshake and the signed bytes are the coordinator's own, declares the
most slots a miner may (64) and answers the moment work arrives.

A banned identity (close code 4011) is replaced by a fresh key at the same
address, as a real adversary would do; each of an operator's identities may be
replaced ``rejoins`` times.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from qortex.protocol.client import ClientSession, Reply, ResultAnswer, Welcomed, Withdrawn, Work
from qortex.signing import Signer
from trust.strategies import Shared, answer

SLOTS = 64
BANNED = 4011


@dataclass
class Identity:
    """One adversarial key and what it did; times are the harness's ``time.monotonic()``."""

    operator: int
    address: str
    signer: Signer = field(default_factory=Signer)
    welcomed: bool = False
    assigned: int = 0
    answered: int = 0
    lies: int = 0
    held: int = 0
    refused: int = 0
    first_lie_at: float | None = None
    banned_at: float | None = None
    closes: list[int] = field(default_factory=list)

    @property
    def miner_id(self) -> str:
        return self.signer.miner_id


class Swarm:
    """Every adversarial identity of one cell, run as asyncio tasks."""

    def __init__(
        self,
        url: str,
        kind: Any,
        strategy: str,
        shared: Shared,
        rejoins: int,
    ) -> None:
        self.url = url.replace("http://", "ws://") + "/ws/miner"
        self.kind = kind
        self.strategy = strategy
        self.shared = shared
        self.rejoins = rejoins
        self.identities: list[Identity] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._running = True

    def add_operator(self, operator: int, addresses: list[str]) -> None:
        """An operator with one identity per address (several may share a /24)."""
        for address in addresses:
            self._launch(Identity(operator, address), budget=self.rejoins)

    def _launch(self, identity: Identity, budget: int) -> None:
        self.identities.append(identity)
        self._tasks.append(asyncio.create_task(self._life(identity, budget)))

    async def stop(self) -> None:
        self._running = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _life(self, identity: Identity, budget: int) -> None:
        """Connect, work, and reconnect after a drop; a ban hands over to a fresh identity.

        Reconnections back off (0.2 s doubling to 2 s) while the coordinator
        keeps turning the identity away before welcoming it.
        """
        failures = 0
        while self._running:
            code = await self._connection(identity)
            failures = 0 if identity.welcomed else failures + 1
            identity.welcomed = False
            if code == BANNED:
                identity.banned_at = identity.banned_at or time.monotonic()
                if budget > 0 and self._running:
                    self._launch(Identity(identity.operator, identity.address), budget - 1)
                return
            await asyncio.sleep(min(2.0, 0.2 * 2**failures))

    async def _connection(self, identity: Identity) -> int:
        headers = {"X-Forwarded-For": identity.address}
        try:
            async with connect(
                self.url, additional_headers=headers, max_size=None, open_timeout=10
            ) as ws:
                await self._converse(ws, identity)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else 1006
            identity.closes.append(code)
            return code
        except (OSError, InvalidHandshake, TimeoutError):
            identity.closes.append(1006)
            return 1006
        return 1000

    async def _converse(self, ws: ClientConnection, identity: Identity) -> None:
        session = ClientSession(identity.signer, SLOTS, [self.kind.name], "trust-sim/adversary")
        await ws.send(session.hello_frame().decode())
        beat: asyncio.Task[None] | None = None
        try:
            async for raw in ws:
                out: list[str] = []
                for event in session.receive_all(raw):
                    if isinstance(event, Reply):
                        out.append(event.frame.decode())
                    elif isinstance(event, Welcomed):
                        identity.welcomed = True
                        beat = asyncio.create_task(_heartbeat(ws, event.heartbeat_seconds))
                    elif isinstance(event, Work):
                        frame = self._work(identity, session, event)
                        if frame is not None:
                            out.append(frame)
                    elif isinstance(event, ResultAnswer) and not event.accepted:
                        identity.refused += 1
                    elif isinstance(event, Withdrawn) and self.strategy == "hoard":
                        identity.held = max(0, identity.held - 1)
                for frame in out:
                    await ws.send(frame)
        finally:
            if beat is not None:
                beat.cancel()

    def _work(self, identity: Identity, session: ClientSession, work: Work) -> str | None:
        assign = work.assign
        identity.assigned += 1
        raw = bytes(assign.input)
        truth = self.kind.compute(msgspec.json.decode(raw))
        output = answer(
            self.strategy,
            self.kind.name,
            raw,
            assign.microtask_id,
            truth,
            identity.answered,
            self.shared,
        )
        if output is None:
            identity.held += 1
            return None
        identity.answered += 1
        if not self.kind.agree(output, truth):
            identity.lies += 1
            if identity.first_lie_at is None:
                identity.first_lie_at = time.monotonic()
        return session.result_frame(assign, msgspec.json.encode(output)).decode()


async def _heartbeat(ws: ClientConnection, every: float) -> None:
    with contextlib.suppress(ConnectionClosed):
        while True:
            await asyncio.sleep(every)
            await ws.send(ClientSession.heartbeat_frame(int(time.time() * 1000)).decode())
