"""Copies that come back without a result: a lease that runs out, a miner that goes away."""

from __future__ import annotations

import pytest

from qortex.errors import ResultRefused
from qortex.protocol.client import Withdrawn
from tests.coordinator.conftest import Start
from tests.coordinator.harness import Harness, ListMiner
from tests.helpers import TWEETS


async def one_copy_out(h: Harness) -> tuple[ListMiner, ListMiner]:
    """Two miners, one task of one copy: returns (the miner holding it, the other)."""
    a, b = h.miner(), h.miner()
    await h.submit(TWEETS[:1])
    await h.until(lambda: a.work() or b.work(), "the copy is placed")
    return (a, b) if a.work() else (b, a)


async def test_a_lease_that_runs_out_is_withdrawn_and_issued_again(start: Start) -> None:
    h = await start(replicas=1, quorum=1, max_replicas=1, lease_seconds=10)
    holder, other = await one_copy_out(h)
    [first] = holder.work()
    h.clock.advance(9)
    await h.durable()
    assert other.work() == [] and h.coord.snapshot().leases_out == 1, "not expired yet"
    h.clock.advance(2)
    [again] = await h.until(other.work, "the copy is issued to the other miner")
    assert again.microtask_id == first.microtask_id
    assert again.assignment_id != first.assignment_id
    assert again.deadline_ms == int((h.clock() + 10) * 1000)
    assert holder.withdrawn() == [Withdrawn(first.assignment_id, "expired")]
    before = h.coord.snapshot()
    with pytest.raises(ResultRefused) as late:  # too late: it no longer counts
        await holder.answer(first)
    assert dict(h.coord.snapshot().results_refused) == {late.value.reason: 1}
    assert dict(before.results_refused) == {}, "a snapshot is a copy, not a view"
    [reassigned] = await h.until(lambda: h.events("microtask.reassigned"), "it is recorded")
    assert reassigned["assignmentId"] == first.assignment_id
    assert reassigned["reason"] == "expired"
    seen = h.coord.snapshot()
    assert (seen.leases_out, seen.copies_reassigned) == (1, 1)


async def test_a_disconnect_issues_the_copies_again_at_once(start: Start) -> None:
    h = await start(replicas=1, quorum=1, max_replicas=1, lease_seconds=600)
    holder, other = await one_copy_out(h)
    [first] = holder.work()
    now = h.clock()
    holder.disconnect()
    [again] = await h.until(other.work, "the copy is issued to the other miner")
    assert h.clock() == now, "no time had to pass"
    assert again.microtask_id == first.microtask_id
    [gone] = await h.until(lambda: h.events("miner.disconnected"), "the disconnect is recorded")
    assert gone["minerId"] == holder.miner_id and gone["released"] == 1
    [reassigned] = h.events("microtask.reassigned")
    assert (reassigned["assignmentId"], reassigned["reason"]) == (first.assignment_id, "released")
    seen = h.coord.snapshot()
    assert (seen.miners_connected, seen.leases_out, seen.copies_reassigned) == (1, 1, 1)
