"""What the operator does to the coordinator: cancel a task, hold a task to its
deadline, ban or verify a miner, and the volunteer credit miners earn.

The coordinator holds one :class:`Control` (``coord.control``), as it holds its
intake and its trust engine. It changes state the way the rest of the
coordinator does: memory first, then the facts, then the messages, and anything
a client is told only after its facts have committed. A ban is the trust
engine's (:meth:`qortex.trust.Trust.ban`): the operator's is the same ban, with
the operator's note.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from qortex.core import lifecycle
from qortex.core.kinds import Kind
from qortex.core.ledger import ACTIVE, BANNED, STATUSES
from qortex.core.rates import Throughput
from qortex.core.work import Task
from qortex.errors import Conflict, NotFound
from qortex.protocol import messages as m
from qortex.store import facts as f

if TYPE_CHECKING:
    from qortex.coordinator import Coordinator

MINER_STATUSES = STATUSES

#: Credit per accepted result of a kind that declares no ``cost``.
DEFAULT_COST = 1.0


def cost_of(kind: Kind) -> float:
    """A kind's declared cost per microtask, the credit one accepted result earns."""
    cost = getattr(kind, "cost", DEFAULT_COST)
    return float(cost) if isinstance(cost, int | float) and cost > 0 else DEFAULT_COST


class Control:
    def __init__(self, coord: Coordinator) -> None:
        self._coord = coord
        self._deadlines: list[tuple[float, str]] = []  # (when, task id), running tasks
        self.throughput = Throughput()

    async def load(self) -> None:
        """Running tasks' deadlines from the file, and the first throughput sample."""
        coord = self._coord
        self.sample(coord.clock())
        for task_id, deadline in await coord.store.reader.task_deadlines():
            self.add_deadline(task_id, deadline)

    def sample(self, now: float) -> None:
        """Read the result and decision counters for the rates (once a second)."""
        stats = self._coord.stats
        self.throughput.sample(now, stats.accepted, stats.decided)

    # -- tasks ------------------------------------------------------------

    def add_deadline(self, task_id: str, at: float) -> None:
        heapq.heappush(self._deadlines, (at, task_id))

    def next_deadline(self) -> float | None:
        return self._deadlines[0][0] if self._deadlines else None

    async def cancel(self, task_id: str) -> None:
        """Cancel a running task; its copies are withdrawn from their miners at once."""
        coord = self._coord
        task = coord.table.tasks.get(task_id)
        if task is None or task.state != lifecycle.RUNNING:
            row = await coord.store.reader.task(task_id)
            if row is None:
                raise NotFound(f"no task {task_id!r}", taskId=task_id)
            status = task.state if task is not None else row["status"]
            raise Conflict(f"task {task_id} is {status}; only a running task can be cancelled")
        await self._withdraw(task, "cancel", "cancelled by the operator")

    def expire_tasks(self, now: float) -> None:
        """Fail every running task whose deadline has passed, withdrawing its copies."""
        while self._deadlines and self._deadlines[0][0] <= now:
            _, task_id = heapq.heappop(self._deadlines)
            task = self._coord.table.tasks.get(task_id)
            if task is not None and task.state == lifecycle.RUNNING:
                self._withdraw(task, "fail", "deadline")

    def _withdraw(self, task: Task, event: str, reason: str) -> asyncio.Future[None]:
        coord = self._coord
        now = coord.clock()
        leases = coord.table.withdraw_task(task, event)
        word = "cancelled" if event == "cancel" else reason
        for lease in leases:
            conn = coord.connections.get(lease.miner_id)
            if conn is not None:
                conn.link.send(m.encoder.encode(m.Cancel(lease.id, word)))
        unit = [f.microtasks_closed(task.id, now), f.withdrawn(task.id, task.state, reason, now)]
        decided = sum(mt.state == lifecycle.DECIDED for mt in task.microtasks)
        name = "task.cancelled" if event == "cancel" else "task.failed"
        notice = coord.events.new(
            name,
            now,
            task.id,
            kind=task.kind,
            status=task.state,
            reason=reason,
            decided=decided,
            withdrawn=len(leases),
        )
        coord.schedule_fill()  # the freed slots take other work
        return coord.write(unit, [notice])

    # -- miners -----------------------------------------------------------

    async def set_miner_status(self, miner_id: str, status: str, note: str) -> None:
        """The operator's PATCH: ban, verify (the operator's own machine) or reinstate.

        A ban is the trust engine's ban (socket closed with 4011, results and
        their credit revoked, decisions re-examined), with the operator's note.
        """
        if status not in MINER_STATUSES:
            raise ValueError(status)
        coord = self._coord
        known = miner_id in coord.connections  # its row may be a commit away
        if not known and await coord.store.reader.miner(miner_id) is None:
            raise NotFound(f"no miner {miner_id!r}", minerId=miner_id)
        noted = [f.miner_status(miner_id, status, note)]
        if status == BANNED:
            await coord.trust.ban(miner_id, note or "banned by the operator", noted)
            return
        now = coord.clock()
        report = coord.ledger.set_status(miner_id, status, note or f"made {status} by the operator")
        coord.trust.rate(miner_id)
        unit = [
            *noted,
            f.reputation(miner_id, now, report.reputation, report.passes, report.reason),
        ]
        name = "miner.reinstated" if status == ACTIVE else "miner.verified"
        event = coord.events.new(
            name, now, miner_id=miner_id, note=note, reputation=report.reputation
        )
        await coord.write(unit, [event])

    # -- credit -----------------------------------------------------------

    def credit(self, kind: Kind) -> float:
        """The credit one accepted result of ``kind`` earns."""
        return cost_of(kind)

    async def revoke_credit(self, miner_id: str, results: Iterable[str] | None = None) -> float:
        """Take back the credit ``miner_id`` earned for ``results`` (assignment ids; all
        of its results if ``None``, as when it is banned).

        Revoking a result twice, or one that is not this miner's, changes
        nothing. Returns the credit taken back by this call.
        """
        coord = self._coord
        wanted = None if results is None else list(results)
        rows = await coord.store.reader.result_kinds(miner_id, wanted)
        if not rows:
            return 0.0
        now = coord.clock()
        unit: list[f.Fact] = []
        total = 0.0
        for assignment_id, kind_name in rows:
            credit = cost_of(coord.kinds.get(kind_name)) if kind_name in coord.kinds else 0.0
            total += credit
            unit.append(f.credit_revoked(assignment_id, miner_id, credit, now))
        unit.append(f.revoked_total(miner_id))
        await coord.write(unit, [])
        return total

    # -- the console's numbers --------------------------------------------

    def overview(self) -> dict[str, Any]:
        """What the coordinator knows in memory, for ``GET /api/v1/stats``."""
        coord = self._coord
        by_kind: dict[str, int] = {}
        for conn in coord.connections.values():
            for kind in conn.info.kinds:
                by_kind[kind] = by_kind.get(kind, 0) + 1
        minute = self.throughput.rate(60)
        hour = self.throughput.rate(3600)
        return {
            "minersConnected": len(coord.connections),
            "minersByKind": by_kind,
            "resultsPerSecond": {"minute": minute[0], "hour": hour[0]},
            "decisionsPerSecond": {"minute": minute[1], "hour": hour[1]},
            "series": [
                {"at": at, "results": results, "decisions": decisions}
                for at, results, decisions in self.throughput.series(60)
            ],
            "refusals": dict(coord.stats.refused),
            "accepted": coord.stats.accepted,
            "decided": coord.stats.decided,
            "inconclusive": coord.stats.inconclusive,
            "leasesOut": len(coord.table.leases),
            "lastEventId": coord.events.last_id,
            "microtasksOpen": coord.table.open,
        }

    def live(self, miner_id: str) -> dict[str, Any] | None:
        """A connected miner's slots and current work, or ``None`` if it is not connected."""
        coord = self._coord
        conn = coord.connections.get(miner_id)
        miner = coord.table.miners.get(miner_id)
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
