"""Fault class silent (timeouts): say nothing, or stop after hello / after welcome.

Each answer is held to docs/protocol.md; the honest tasks submitted meanwhile
must all complete with the right labels, with no 5xx and no error in the log.
"""

from __future__ import annotations

import asyncio

import pytest

from qortex.protocol.client import ClientSession
from tests.faults.campaign import Campaign, FaultRun, run_fault
from tests.faults.frames import (
    HANDSHAKE,
    SCALE,
    SILENCE,
)
from tests.faults.peer import Peer, ready_peer
from tests.faults.tally import Tally
from tests.helpers import timeout

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(timeout(600))]


async def silent(c: Campaign, t: Tally, rnd: int) -> None:
    async def timed(check: str, peer: Peer, start: float, limit: float, slack: float) -> None:
        got = await peer.closing(limit + slack + 2)
        if got.startswith("close") and peer.closed_at - start < limit - 0.2:
            got += f" early ({peer.closed_at - start:.1f} s)"
        elif got.startswith("close") and peer.closed_at - start > limit + slack * SCALE:
            got += f" late ({peer.closed_at - start:.1f} s)"
        t.expect(check, "§9, §11 4009", got, "close 4009")

    async def nothing() -> None:
        peer = await Peer(c, t).open()
        await timed("silent after opening", peer, peer.opened_at, HANDSHAKE, 1.0)

    async def hello_only() -> None:
        peer = await Peer(c, t).open()
        await peer.send(peer.session.hello_frame().decode())
        await timed("hello but no answer", peer, peer.opened_at, HANDSHAKE, 1.0)

    async def heartbeats_before_welcome() -> None:
        peer = await Peer(c, t).open()
        await peer.send(peer.session.hello_frame().decode())
        for _ in range(int(HANDSHAKE * 4) + 2):
            if not await peer.send(ClientSession.heartbeat_frame(1)):
                break
            await asyncio.sleep(0.25)
        await timed("heartbeats do not extend the handshake", peer, peer.opened_at, HANDSHAKE, 1.0)
        t.expect(
            "heartbeats before welcome get no reply",
            "§4",
            f"{peer.heartbeats_before_welcome} replies",
            "0 replies",
        )

    async def after_welcome() -> None:
        peer = await ready_peer(c, t, 1)
        # Silence is counted from the last frame the server received (the answer),
        # which left here no later than ``sent_at``; not from when the welcome was read.
        await timed("silent after welcome", peer, peer.sent_at, SILENCE, 1.5)

    await asyncio.gather(nothing(), hello_only(), heartbeats_before_welcome(), after_welcome())


async def test_silent(fault_server: FaultRun, rounds: int) -> None:
    run = await run_fault(fault_server, "silent", "silent (timeouts)", silent, rounds)
    run.assert_clean()
