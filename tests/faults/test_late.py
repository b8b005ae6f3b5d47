"""Fault class late results: results after the lease's deadline.

Each answer is held to docs/protocol.md; the honest tasks submitted meanwhile
must all complete with the right labels, with no 5xx and no error in the log.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.campaign import Campaign, FaultRun, run_fault
from tests.faults.frames import (
    honest_output,
    result_frame,
)
from tests.faults.peer import ready_peer
from tests.faults.tally import Tally
from tests.helpers import timeout

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(timeout(600))]


async def late_results(c: Campaign, t: Tally, rnd: int) -> None:
    peer = await ready_peer(c, t, 2)
    peer.heartbeat()
    held = await peer.take(1, timeout=8, strict=True)
    if not held:
        t.notes["no work received"] += 1
        await peer.close()
        return
    held = await peer.take(2, timeout=0.5, strict=True)
    for i, assign in enumerate(held):
        deadline = assign.deadline_ms / 1000
        if i == 0:  # just past the deadline, maybe before the coordinator's sweep
            await asyncio.sleep(max(0.0, deadline + 0.05 - time.time()))
            check = "result just after the deadline"
        else:  # after the cancel
            await peer.wait(
                lambda a=assign: a.assignment_id in peer.cancels, deadline - time.time() + 3
            )
            check = "result after the expired cancel"
        text = result_frame(
            peer.signer, assign.assignment_id, assign.microtask_id, honest_output(assign)
        )
        got = await peer.result(assign.assignment_id, text)
        t.expect(check, "§5.5, §7 late", got, "refused late")
        c.expect_closed_as(
            t, "late lease closed as expired", assign.assignment_id, "closed expired"
        )
    await peer.wait(lambda: all(a.assignment_id in peer.cancels for a in held), 3)
    for assign in held:
        cancel = peer.cancels.get(assign.assignment_id)
        t.expect(
            "a cancel accompanies the late refusal",
            "§7 late, §8",
            f"cancel {cancel[0]}" if cancel else "no cancel",
            "cancel expired",
        )
    assign = held[0]
    frame = result_frame(
        peer.signer, assign.assignment_id, assign.microtask_id, honest_output(assign)
    )
    _, answer = await c.post_result(t, peer.signer.miner_id, frame)
    t.expect(
        "late result over HTTP",
        "§13.1 409 late",
        answer,
        "HTTP 409 late",
    )
    await peer.close()


async def test_late(fault_server: FaultRun, rounds: int) -> None:
    run = await run_fault(fault_server, "late", "late results", late_results, rounds)
    run.assert_clean()
