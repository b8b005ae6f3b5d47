"""Rebuilding memory from the file after a start, clean or after ``kill -9``.

Memory is a cache of SQLite, so a start is a recovery: leases that were out
are void (their copies are issued again), every running task is loaded with
its microtasks and the results already counted, and a task whose microtasks
were all settled before the crash gets the completion it missed.
"""

from __future__ import annotations

import logging
from itertools import groupby
from typing import TYPE_CHECKING

import msgspec

from qortex.core import lifecycle
from qortex.core.dispatch import Task
from qortex.core.quorum import Policy
from qortex.events import EventLog
from qortex.gcpause import collector_paused
from qortex.store import facts
from qortex.store.database import OpenWork

if TYPE_CHECKING:
    from qortex.coordinator import Coordinator

log = logging.getLogger("qortex.recovery")


async def recover(coord: Coordinator) -> list[Task]:
    """Load open work into ``coord``; returns tasks settled before a crash but not finished."""
    store = coord.store
    now = coord.clock()
    coord.events = EventLog(await store.reader.last_event_id())
    released = await _void_leases(coord, now)
    work = await store.load_open_work()
    with collector_paused():
        unfinished = _rebuild(coord, work)
    log.info(
        "recovered %d running tasks, %d microtasks, %d results; %d leases voided",
        len(work.tasks),
        len(work.microtasks),
        len(work.results),
        released,
    )
    return unfinished


async def _void_leases(coord: Coordinator, now: float) -> int:
    """Leases out at the last stop are void; say so in the log, as a disconnect would.

    Their copies will be issued again. Subscribers saw them assigned, so each
    gets its ``microtask.reassigned``, and each miner that held one its
    ``miner.disconnected``, in the same transaction that closes them.
    """
    leases = await coord.store.open_leases()
    if not leases:
        return 0
    unit: list[facts.Fact] = []
    events = []
    for assignment_id, microtask_id, miner_id in leases:
        unit.append((facts.CLOSE_ASSIGNMENT, (lifecycle.RELEASED, now, assignment_id)))
        task_id = microtask_id.rsplit(":", 1)[0]
        events.append(
            coord.events.new(
                "microtask.reassigned",
                now,
                task_id,
                miner_id,
                microtaskId=microtask_id,
                assignmentId=assignment_id,
                reason=lifecycle.RELEASED,
            )
        )
    for miner_id in sorted({miner for _, _, miner in leases}):
        events.append(
            coord.events.new(
                "miner.disconnected", now, miner_id=miner_id, reason="coordinator restarted"
            )
        )
    await coord.store.writer.write(unit + [event.fact() for event in events])
    return len(leases)


def _rebuild(coord: Coordinator, work: OpenWork) -> list[Task]:
    table = coord.table
    policies = {
        task_id: (kind, Policy(replicas, quorum, max_replicas, lease))
        for task_id, kind, replicas, quorum, max_replicas, lease in work.tasks
    }
    for task_id, rows in groupby(work.microtasks, key=lambda row: row[1]):
        rows = list(rows)
        kind, policy = policies[task_id]
        task = table.add_task(task_id, kind, policy, [msgspec.Raw(r[3].encode()) for r in rows])
        for mt, row in zip(task.microtasks, rows, strict=True):
            if row[4] != lifecycle.PENDING:
                decision = msgspec.json.decode(row[5]) if row[5] is not None else None
                table.settle(mt, row[4], decision)
    by_id = {mt.id: mt for task in table.tasks.values() for mt in task.microtasks}
    for microtask_id, miner_id, output in work.results:
        mt = by_id[microtask_id]
        table.restore_result(
            mt, miner_id, msgspec.json.decode(output), coord.kinds.get(mt.kind).agree
        )
    unfinished = [task for task in table.tasks.values() if task.open == 0]
    for task in unfinished:
        failed = any(mt.state == lifecycle.INCONCLUSIVE for mt in task.microtasks)
        task.state = lifecycle.advance(task.state, "fail" if failed else "complete")
    return unfinished
