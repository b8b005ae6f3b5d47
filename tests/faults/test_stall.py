"""Fault class stall past deadline: hold leases, stay connected, send heartbeats.

Each answer is held to docs/protocol.md; the honest tasks submitted meanwhile
must all complete with the right labels, with no 5xx and no error in the log.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from tests.faults.campaign import Campaign, FaultRun, run_fault
from tests.faults.frames import (
    LEASE,
    SILENCE,
)
from tests.faults.peer import ready_peer
from tests.faults.tally import Tally
from tests.helpers import timeout

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(timeout(600))]


async def stall_past_deadline(c: Campaign, t: Tally, rnd: int) -> None:
    async def one() -> None:
        peer = await ready_peer(c, t, 2)
        peer.heartbeat()
        held = await peer.take(1, timeout=6)
        if not held:
            t.notes["no work received"] += 1
            await peer.close()
            return
        started = time.time()
        # Hold everything for longer than both a lease and the silence limit.
        await asyncio.sleep(max(LEASE, SILENCE) + 1.5)
        for aid in list(peer.assign_order):
            assign = peer.assigns[aid]
            deadline = assign.deadline_ms / 1000
            if deadline + 1.5 > time.time():
                continue  # issued late in the window; its deadline has not been reached yet
            cancel = peer.cancels.get(aid)
            if cancel is None:
                got = "no cancel"
            elif cancel[0] != "expired":
                got = f"cancel {cancel[0]}"  # a decided copy may be cancelled first: fine
            elif cancel[1] < deadline - 0.05:
                got = "cancel expired before the deadline"
            elif cancel[1] > deadline + 1.5:
                got = f"cancel expired {cancel[1] - deadline:.1f} s after the deadline"
            else:
                got = "cancel expired"
            t.expect(
                "held lease is cancelled at its deadline",
                "§5.5, §8 expired",
                got,
                "cancel expired",
                "cancel decided",
                "cancel inconclusive",
            )
            if cancel is not None and cancel[0] == "expired":
                c.expect_closed_as(t, "stalled lease closed as expired", aid, "closed expired")
        t.expect(
            f"stalled miner sending heartbeats stays connected ({time.time() - started:.0f} s)",
            "§9",
            await peer.alive(),
            "open",
        )
        per_microtask = Counter(peer.assigns[aid].microtask_id for aid in peer.assign_order)
        t.expect(
            "an expired microtask is never leased to the same miner again",
            "§5.5",
            "never again" if max(per_microtask.values()) == 1 else "leased again",
            "never again",
        )
        await peer.close()

    await asyncio.gather(one(), one())


async def test_stall(fault_server: FaultRun, rounds: int) -> None:
    run = await run_fault(fault_server, "stall", "stall past deadline", stall_past_deadline, rounds)
    run.assert_clean()
