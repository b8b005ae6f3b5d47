"""What the operator does to the coordinator: cancel a task, hold a task to its
deadline, ban or verify a miner, and what the console shows of it.

The coordinator holds one :class:`Control` (``coord.control``), as it holds its
intake and its trust engine. It changes state the way the rest of the
coordinator does: memory first, then the facts, then the messages, and anything
a client is told only after its facts have committed. A ban is the trust
engine's (:meth:`qortex.trust.Trust.ban`): the operator's is the same ban, with
the operator's note; so is taking back the credit of results
(:meth:`qortex.trust.Trust.revoke_credit`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from qortex.coordinator_state import CoordinatorCalls, CoordinatorState
from qortex.core import lifecycle
from qortex.core.ledger import ACTIVE, BANNED, STATUSES
from qortex.core.rates import Throughput
from qortex.core.work import Task
from qortex.errors import Conflict, NotFound
from qortex.protocol import messages as m
from qortex.store import facts as f
from qortex.trust import Trust

MINER_STATUSES = STATUSES


class Control:
    def __init__(self, state: CoordinatorState, calls: CoordinatorCalls, trust: Trust) -> None:
        self._state = state
        self._calls = calls
        self._trust = trust
        self._deadlines = state.task_deadlines
        self.throughput = Throughput()

    async def load(self) -> None:
        """Running tasks' deadlines from the file, and the first throughput sample."""
        state = self._state
        self.sample(state.clock())
        for task_id, deadline in await state.store.reader.task_deadlines():
            self._deadlines.add(deadline, task_id)

    def sample(self, now: float) -> None:
        """Read the result and decision counters for the rates (once a second)."""
        stats = self._state.stats
        self.throughput.sample(now, stats.accepted, stats.decided)

    # -- tasks ------------------------------------------------------------

    def next_deadline(self) -> float | None:
        return self._deadlines.next(self._state.table.tasks)

    async def cancel(self, task_id: str) -> None:
        """Cancel a running task; its copies are withdrawn from their miners at once."""
        state = self._state
        task = state.table.tasks.get(task_id)
        if task is None or task.state != lifecycle.RUNNING:
            row = await state.store.reader.task(task_id)
            if row is None:
                raise NotFound(f"no task {task_id!r}", taskId=task_id)
            status = task.state if task is not None else row["status"]
            raise Conflict(f"task {task_id} is {status}; only a running task can be cancelled")
        await self._withdraw(task, "cancel", "cancelled by the operator")

    def expire_tasks(self, now: float) -> None:
        """Fail every running task whose deadline has passed, withdrawing its copies."""
        for task_id in self._deadlines.due(now):
            task = self._state.table.tasks.get(task_id)
            if task is not None and task.state == lifecycle.RUNNING:
                self._withdraw(task, "fail", "deadline")

    def _withdraw(self, task: Task, event: str, reason: str) -> asyncio.Future[None]:
        state = self._state
        now = state.clock()
        leases = state.table.withdraw_task(task, event)
        word = "cancelled" if event == "cancel" else reason
        for lease in leases:
            conn = state.connections.get(lease.miner_id)
            if conn is not None:
                conn.link.send(m.encoder.encode(m.Cancel(lease.id, word)))
        unit = [f.microtasks_closed(task.id, now), f.withdrawn(task.id, task.state, reason, now)]
        decided = sum(mt.state == lifecycle.DECIDED for mt in task.built())
        name = "task.cancelled" if event == "cancel" else "task.failed"
        notice = state.events.new(
            name,
            now,
            task.id,
            kind=task.kind,
            status=task.state,
            reason=reason,
            decided=decided,
            withdrawn=len(leases),
        )
        self._calls.schedule_fill()  # the freed slots take other work
        return self._calls.write(unit, [notice])

    # -- miners -----------------------------------------------------------

    async def set_miner_status(self, miner_id: str, status: str, note: str) -> None:
        """The operator's PATCH: ban, verify (the operator's own machine) or reinstate.

        A ban is the trust engine's ban (socket closed with 4011, results and
        their credit revoked, decisions re-examined), with the operator's note.
        """
        if status not in MINER_STATUSES:
            raise ValueError(status)
        state = self._state
        known = miner_id in state.connections  # its row may be a commit away
        if not known and await state.store.reader.miner(miner_id) is None:
            raise NotFound(f"no miner {miner_id!r}", minerId=miner_id)
        noted = [f.miner_status(miner_id, status, note)]
        if status == BANNED:
            await self._trust.ban(miner_id, note or "banned by the operator", noted)
            return
        now = state.clock()
        report = state.ledger.set_status(miner_id, status, note or f"made {status} by the operator")
        self._trust.rate(miner_id)
        unit = [
            *noted,
            f.reputation(miner_id, now, report.reputation, report.passes, report.reason),
        ]
        name = "miner.reinstated" if status == ACTIVE else "miner.verified"
        event = state.events.new(
            name, now, miner_id=miner_id, note=note, reputation=report.reputation
        )
        await self._calls.write(unit, [event])

    # -- the console's numbers --------------------------------------------

    def overview(self) -> dict[str, Any]:
        """What the coordinator knows in memory, for ``GET /api/v1/stats``."""
        state = self._state
        by_kind: dict[str, int] = {}
        for conn in state.connections.values():
            for kind in conn.info.kinds:
                by_kind[kind] = by_kind.get(kind, 0) + 1
        minute = self.throughput.rate(60)
        hour = self.throughput.rate(3600)
        return {
            "minersConnected": len(state.connections),
            "minersByKind": by_kind,
            "resultsPerSecond": {"minute": minute[0], "hour": hour[0]},
            "decisionsPerSecond": {"minute": minute[1], "hour": hour[1]},
            "series": [
                {"at": at, "results": results, "decisions": decisions}
                for at, results, decisions in self.throughput.series(60)
            ],
            "refusals": dict(state.stats.refused),
            "accepted": state.stats.accepted,
            "decided": state.stats.decided,
            "inconclusive": state.stats.inconclusive,
            "leasesOut": len(state.table.leases),
            "lastEventId": state.events.last_id,
            "microtasksOpen": state.table.open,
        }

    def live(self, miner_id: str) -> dict[str, Any] | None:
        """A connected miner's slots and current work, or ``None`` if it is not connected."""
        state = self._state
        conn = state.connections.get(miner_id)
        miner = state.table.miners.get(miner_id)
        if conn is None or miner is None:
            return None
        return {
            "slots": conn.info.slots,
            "address": conn.address,
            "since": conn.since,
            "working": [
                {
                    "assignmentId": lease.id,
                    "microtaskId": lease.microtask.id,
                    "taskId": lease.microtask.task_id,
                    "kind": lease.microtask.kind,
                }
                for lease in miner.leases.values()
            ],
        }
