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
from qortex.core.credibility import Vote
from qortex.core.dispatch import DispatchTable
from qortex.core.kinds import KindRegistry
from qortex.core.quorum import Policy
from qortex.core.work import Task
from qortex.events import EventLog
from qortex.gcpause import collector_paused
from qortex.store import facts
from qortex.store.database import OpenWork

if TYPE_CHECKING:
    from qortex.coordinator import Coordinator

log = logging.getLogger("qortex.recovery")
_decode = msgspec.json.decode


async def recover(coord: Coordinator) -> list[Task]:
    """Load open work into ``coord``; returns tasks settled before a crash but not finished."""
    store = coord.store
    now = coord.clock()
    coord.events = EventLog(await store.reader.last_event_id())
    released = await _void_leases(coord, now)
    work = await store.load_open_work()
    with collector_paused():
        loaded = rebuild(coord.table, coord.kinds, work)
    unfinished = [task for task in loaded if task.open == 0]
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


def rebuild(table: DispatchTable, kinds: KindRegistry, work: OpenWork) -> list[Task]:
    """Load tasks into the table, decisions and counted votes included; returns them.

    Tasks whose microtasks are all settled come back completed or failed.
    """
    policies = {
        task_id: (kind, Policy(replicas, quorum, max_replicas, lease, target))
        for task_id, kind, replicas, quorum, max_replicas, lease, target in work.tasks
    }
    loaded: list[Task] = []
    by_id = {}
    for task_id, rows in groupby(work.microtasks, key=lambda row: row[1]):
        rows = list(rows)
        kind, policy = policies[task_id]
        gold = {row[2]: _decode(row[6]) for row in rows if row[6] is not None}
        inputs = [msgspec.Raw(row[3].encode()) for row in rows]
        task = table.add_task(task_id, kind, policy, inputs, gold)
        for mt, row in zip(task.microtasks, rows, strict=True):
            by_id[mt.id] = mt
            if row[4] != lifecycle.PENDING:
                decision = _decode(row[5]) if row[5] is not None else None
                table.settle(mt, row[4], decision, 1.0 if row[7] is None else row[7])
                mt.reason = row[8] or ""
        loaded.append(task)
    for microtask_id, miner_id, output, network, error in work.results:
        mt = by_id[microtask_id]
        vote = Vote(miner_id, network or miner_id, 1.0 if error is None else error)
        table.restore_result(mt, vote, _decode(output), kinds.get(mt.kind).agree)
    for task in loaded:
        if task.open == 0:
            failed = any(mt.state == lifecycle.INCONCLUSIVE for mt in task.microtasks)
            task.state = lifecycle.advance(task.state, "fail" if failed else "complete")
    return loaded
