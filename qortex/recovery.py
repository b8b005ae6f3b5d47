"""Rebuilding memory from the file after a start, clean or after ``kill -9``.

Memory is a cache of SQLite, so a start is a recovery: every running task is
loaded with its microtasks and the results already counted, and a task whose
microtasks were all settled before the crash gets the completion it missed.
Leases have no rows (a copy out at a stop is void, and is issued again), so
nothing about them is read back; the miners that were connected at the stop
get the ``miner.disconnected`` they missed.

:func:`recover` changes nothing but the table it is given to fill: it returns
what it found, and :meth:`qortex.coordinator.Coordinator.start` applies it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec

from qortex.core import lifecycle
from qortex.core.credibility import Vote
from qortex.core.dispatch import DispatchTable
from qortex.core.kinds import KindRegistry
from qortex.core.quorum import Policy
from qortex.core.work import Task
from qortex.events import BusEvent, EventLog
from qortex.gcpause import collector_paused
from qortex.store.database import INPUTS_PER_READ, OpenWork, Store

log = logging.getLogger("qortex.recovery")
_decode = msgspec.json.decode
_Raw = msgspec.Raw


@dataclass
class Recovered:
    """What a start found in the file, for the coordinator to take over."""

    events: EventLog  # ids continue after the log's last one
    unfinished: list[Task] = field(default_factory=list)  # settled, but their end not recorded
    notices: list[BusEvent] = field(default_factory=list)  # to log before anything else happens
    unread: list[Task] = field(default_factory=list)  # queued, inputs to read (read_inputs)


async def recover(store: Store, kinds: KindRegistry, table: DispatchTable, now: float) -> Recovered:
    """Load the open work of ``store`` into the empty ``table``; see :class:`Recovered`."""
    events = EventLog(await store.reader.last_event_id())
    notices = [
        events.new("miner.disconnected", now, miner_id=miner_id, reason="coordinator restarted")
        for miner_id in await store.connected_at_stop()
    ]
    work = await store.load_open_work()
    with collector_paused():
        loaded = rebuild(table, kinds, work)
    log.info(
        "recovered %d running tasks, %d microtasks, %d results; %d miners were connected",
        len(work.tasks),
        sum(row.microtasks for row in work.tasks),
        len(work.results),
        len(notices),
    )
    unfinished = [task for task in loaded if task.open == 0]
    unread = [task for task in loaded if task.inputs is None and task.open > 0]
    return Recovered(events, unfinished, notices, unread)


async def read_inputs(store: Store, tasks: list[Task], ready: Callable[[], None]) -> None:
    """Give the tasks a start queued their inputs, in queue order, a few at a time.

    Placement stops at the first task still without them (see
    :class:`qortex.core.work.Task`), so ``ready`` (a placement pass) is called
    as each read lands; a start answers before all are read.
    """
    left = [task for task in tasks if task.inputs is None]
    try:
        while left:
            # Each task has one input at least: no read needs more tasks than this.
            read = await store.read_inputs([task.id for task in left[:INPUTS_PER_READ]])
            for task, blobs in zip(left, read, strict=False):
                task.inputs = RawInputs(blobs)
            left = left[len(read) :]
            ready()
    except Exception:  # the file failed under us: what is left waits for the next start
        log.exception("reading the inputs of %d queued tasks failed", len(left))


def rebuild(table: DispatchTable, kinds: KindRegistry, work: OpenWork) -> list[Task]:
    """Load tasks into the table, decisions and counted votes included; returns them.

    Only the microtasks the file says more about than their input (settled,
    or with results counted) are built here; the rest are built as placement
    reaches them, from inputs ``work`` holds or that are read later. Microtasks
    begun before the stop are queued first, each task's untouched rest behind
    them, in the order the tasks came. Tasks whose microtasks are all settled
    come back completed or failed. Inputs stay the bytes the file holds;
    nothing is decoded that placement does not need (a known answer, a
    decision).
    """
    inputs = work.inputs or [None] * len(work.tasks)
    loaded = [
        table.add_task(
            row.id,
            row.kind,
            Policy(row.replicas, row.quorum, row.max_replicas, row.lease_seconds, row.target_error),
            None if blobs is None else RawInputs(blobs),
            offered=False,
            count=row.microtasks,
        )
        for row, blobs in zip(work.tasks, inputs, strict=True)
    ]
    for row in work.special:
        task, index = _locate(table, row.id)
        if row.gold is not None:  # a microtask built from here on expects it
            task.gold[index] = _decode(row.gold)
        if row.status != lifecycle.PENDING:
            mt = task.microtask(index, _Raw(row.input))
            decision = _decode(row.decision) if row.decision is not None else None
            table.settle(mt, row.status, decision, 1.0 if row.error is None else row.error)
            mt.reason = row.reason or ""
    for result in work.results:
        task, index = _locate(table, result.microtask_id)
        mt = task.microtask(index, _Raw(result.input))
        error = 1.0 if result.error is None else result.error
        vote = Vote(result.miner_id, result.network or result.miner_id, error)
        table.restore_result(mt, vote, _decode(result.output), kinds.get(mt.kind).agree)
    for task in loaded:
        if task.open == 0:
            failed = any(mt.state == lifecycle.INCONCLUSIVE for mt in task.built())
            task.state = lifecycle.advance(task.state, "fail" if failed else "complete")
        else:
            table.offer(task)
    return loaded


class RawInputs(Sequence[_Raw]):
    """A task's inputs as the file holds them, each wrapped for the wire when it is built."""

    __slots__ = ("_blobs",)

    def __init__(self, blobs: list[bytes]) -> None:
        self._blobs = blobs

    def __len__(self) -> int:
        return len(self._blobs)

    def __getitem__(self, index: int) -> _Raw:  # type: ignore[override]
        return _Raw(self._blobs[index])


def _locate(table: DispatchTable, microtask_id: str) -> tuple[Task, int]:
    """A loaded microtask's task and index, from its id (``task:index``)."""
    task_id, _, index = microtask_id.rpartition(":")
    return table.tasks[task_id], int(index)
