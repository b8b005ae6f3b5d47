"""Fault class disconnect mid-lease: take leases, drop the socket, come back, send them.

The socket is dropped by an abort or by a close.

Each answer is held to docs/protocol.md; the honest tasks submitted meanwhile
must all complete with the right labels, with no 5xx and no error in the log.
"""

from __future__ import annotations

import asyncio

import pytest

from qortex.signing import Signer
from tests.faults.campaign import Campaign, FaultRun, run_fault
from tests.faults.frames import (
    honest_output,
    result_frame,
)
from tests.faults.peer import ready_peer
from tests.faults.tally import Tally
from tests.helpers import timeout

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(timeout(600))]


async def disconnect_mid_lease(c: Campaign, t: Tally, rnd: int) -> None:
    for variant in ("abort", "close"):
        signer = Signer()
        first = await ready_peer(c, t, 2, signer)
        first.heartbeat()
        held = await first.take(1, timeout=8, strict=True)
        if not held:
            t.notes["no work received"] += 1
            await first.close()
            continue
        held = await first.take(2, timeout=0.3, strict=True)
        if variant == "abort":
            first.abort()
        else:
            await first.close()
        await asyncio.sleep(0.2)
        again = await ready_peer(c, t, 1, signer)
        for assign in held:
            text = result_frame(
                signer, assign.assignment_id, assign.microtask_id, honest_output(assign)
            )
            got = await again.result(assign.assignment_id, text)
            t.expect(
                f"result for a lease released by {variant}, on a new connection",
                "§8, §7 withdrawn",
                got,
                "refused withdrawn",
            )
            c.expect_closed_as(
                t, "dropped lease closed as released", assign.assignment_id, ("closed released")
            )
        await again.close()


async def test_disconnect(fault_server: FaultRun, rounds: int) -> None:
    run = await run_fault(
        fault_server, "disconnect", "disconnect mid-lease", disconnect_mid_lease, rounds
    )
    run.assert_clean()
