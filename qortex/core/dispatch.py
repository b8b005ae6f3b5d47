"""Who works on what: pending microtasks, leases with deadlines, miners and their slots.

The table is the coordinator's memory of the work in flight. It is a cache of
the store: everything here can be rebuilt from SQLite after a crash (see
:mod:`qortex.recovery`). It makes every placement decision and nothing else;
callers turn the returned leases and outcomes into messages and facts.

Rules it keeps (docs/trust.md says why): copies of one microtask go to
distinct miners on distinct networks, picked at random, network first; a
miner never gets another copy of a microtask it returned, let expire or
dropped; usable slots are earned with checks passed; a microtask wants
another copy while outstanding copies could not make its answer credible
enough; lost work goes back to the front; per-result work is O(1) in the
number of pending microtasks.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from qortex.core import lifecycle
from qortex.core.credibility import Vote
from qortex.core.deadlines import Deadlines
from qortex.core.queues import SCAN_LIMIT, WorkQueue
from qortex.core.quorum import Policy
from qortex.core.randomset import ByNetwork
from qortex.core.stragglers import Stragglers
from qortex.core.work import (
    Lease,
    Microtask,
    Outcome,
    Placeable,
    Plan,
    Task,
    check_result,
    choose,
    exclude,
    projected,
    refusal_for,
    wants_copy,
)

Agree = Callable[[Any, Any], bool]

# Closed assignments remembered, to tell "late" and "duplicate" results from unknown ones.
CLOSED_MEMORY = 200_000


class DispatchTable:
    def __init__(
        self,
        rng: random.Random,
        new_id: Callable[[], str] | None = None,
        checkable: Iterable[str] = (),
        stragglers: Stragglers | None = None,
    ) -> None:
        self._rng = rng
        self._new_id = new_id or (lambda: f"{rng.getrandbits(96):024x}")
        self.checkable = frozenset(checkable)  # kinds whose results can be checked
        self.tasks: dict[str, Task] = {}
        self.miners: dict[str, Placeable] = {}
        self.leases: dict[str, Lease] = {}
        self._queues: dict[str, WorkQueue] = {}  # per kind: work wanting copies, in order
        self._free: dict[str, ByNetwork[Placeable]] = {}
        self._deadlines = Deadlines()
        self.stragglers = stragglers or Stragglers()
        self._closed: OrderedDict[str, tuple[str, str]] = OrderedDict()  # id -> state, miner
        # Per kind: microtasks passed over since the last change that could make one placeable.
        self._stale: dict[str, int] = {}
        self.backlogged = False
        self.open = 0  # microtasks neither decided nor inconclusive, over all tasks

    # -- work coming in -------------------------------------------------

    def add_task(
        self,
        task_id: str,
        kind: str,
        policy: Policy,
        inputs: Sequence[Any] | None,
        gold: dict[int, Any] | None = None,
        offered: bool = True,
        count: int = 0,
    ) -> Task:
        """Take a task in; its microtasks are built as placement reaches them.

        With ``offered`` false it is not queued yet: recovery first restores what
        was counted, then :meth:`offer` queues the rest behind the work begun.
        ``inputs`` may come later (None; ``count`` says how many there are).
        """
        count = count if inputs is None else len(inputs)
        task = Task(task_id, kind, policy, count, inputs, gold or {}, open=count)
        self.open += task.open
        self.tasks[task_id] = task
        if offered:
            self.offer(task)
        return task

    def offer(self, task: Task) -> None:
        """Queue a task's microtasks never offered, as one entry behind the rest."""
        self._queue(task.kind).offer(task)
        self._stale.clear()

    def restore_result(self, mt: Microtask, vote: Vote, output: Any, agree: Agree) -> None:
        """Replay a stored result while rebuilding from the store."""
        mt.tally = mt.tally.adding(vote, output, agree)
        exclude(mt, vote.miner_id)
        self._requeue(mt)

    def settle(self, mt: Microtask, state: str, decision: Any = None, error: float = 1.0) -> None:
        """Mark a microtask as already decided or inconclusive (rebuilding from the store)."""
        mt.state = state
        mt.decision = decision
        mt.error = error
        self._queue(mt.kind).discard(mt)
        self.tasks[mt.task_id].open -= 1
        self.open -= 1

    def drop_task(self, task_id: str) -> None:
        """Forget a finished task; its microtasks are all settled."""
        task = self.tasks.pop(task_id, None)
        if task is not None:
            self._queue(task.kind).discard(task)

    def withdraw_task(self, task: Task, event: str) -> list[Lease]:
        """Stop a running task (``event``: "cancel" or "fail"); returns its leases, now
        cancelled, so a result that still arrives for one is refused as withdrawn."""
        task.state = lifecycle.advance(task.state, event)
        withdrawn: list[Lease] = []
        queue = self._queue(task.kind)
        for mt in task.built():  # one never built was never placed: nothing to take back
            if mt.state != lifecycle.PENDING:
                continue
            mt.state = lifecycle.advance(mt.state, "cancel")
            queue.discard(mt)
            for lease in list(mt.holders.values()):
                self._close(lease, "cancel", requeue=False)
                withdrawn.append(lease)
        self.open -= task.open
        task.open = 0
        self.drop_task(task.id)
        return withdrawn

    # -- miners -----------------------------------------------------------

    def connect(
        self,
        miner_id: str,
        slots: int,
        kinds: Iterable[str],
        network: str = "",
        error: float = 1.0,
        allowance: int = 1,
    ) -> Placeable:
        if miner_id in self.miners:
            raise ValueError(f"miner {miner_id} is already connected")
        miner = Placeable(miner_id, slots, frozenset(kinds), network or miner_id, error, allowance)
        self.miners[miner_id] = miner
        self._update_free(miner)
        return miner

    def disconnect(self, miner_id: str) -> list[Lease]:
        """Release every lease the miner held; their microtasks go back to the front.

        Dropping a copy by disconnecting counts as letting it expire: the miner
        gets no other copy of that microtask, so hoarders cannot hold it back.
        """
        miner = self.miners.pop(miner_id, None)
        if miner is None:
            return []
        for kind in miner.kinds:
            if kind in self._free:
                self._free[kind].discard(miner)
        released = list(miner.leases.values())
        for lease in released:
            exclude(lease.microtask, miner_id)
            self._close(lease, "release")
        return released

    def rate(self, miner_id: str, error: float, allowance: int) -> None:
        """A connected miner's new error rate and earned slots."""
        miner = self.miners.get(miner_id)
        if miner is not None:
            miner.error = error
            miner.allowance = max(1, allowance)
            self._update_free(miner)

    # -- placement --------------------------------------------------------

    def fill(self, now: float) -> list[Lease]:
        """Lease copies of queued microtasks to free miners until one side runs out.

        Work no free miner may take moves to the back (at most :data:`SCAN_LIMIT` a
        pass); ``backlogged`` says more remain unseen, so the caller runs another pass.
        """
        issued: list[Lease] = []
        self.backlogged = False
        for kind, queue in self._queues.items():
            free = self._free.get(kind)
            if not free or not queue:
                continue

            def serve(mt: Microtask, free: ByNetwork[Placeable] = free, kind: str = kind) -> bool:
                """Lease copies of ``mt`` while it wants them; whether it still does."""
                wanted = wants_copy(mt)
                while wanted and len(free):
                    miner = choose(free, self._rng, mt, self.stragglers.proven_below)
                    if miner is None:
                        break
                    issued.append(self._lease(mt, miner, now))
                    self._stale.pop(kind, None)
                    wanted = wants_copy(mt)
                return wanted

            passed = queue.scan(free, serve)
            stale = self._stale[kind] = self._stale.get(kind, 0) + passed
            if passed >= SCAN_LIMIT and stale < len(queue) and len(free):
                self.backlogged = True
        return issued

    def _lease(self, mt: Microtask, miner: Placeable, now: float) -> Lease:
        lease = Lease(
            self._new_id(),
            mt,
            miner.id,
            now,
            now + mt.policy.lease_seconds,
            projected(miner, mt, self.checkable),
        )
        mt.holders[miner.id] = lease
        miner.leases[lease.id] = lease
        self.leases[lease.id] = lease
        self._deadlines.add(lease.deadline, lease.id)
        self.stragglers.watch(lease)
        self._update_free(miner)
        return lease

    # -- results ----------------------------------------------------------

    def take(self, miner_id: str, assignment_id: str, microtask_id: str, now: float) -> Lease:
        """The lease a result may count against; a refusal raises and leaves it open.

        Why an assignment that is over was refused is told only to its own miner.
        """
        lease = self.leases.get(assignment_id)
        if lease is None:
            reason, owner = self._closed.get(assignment_id, ("", ""))
            raise refusal_for(reason if owner == miner_id else "")
        check_result(lease, miner_id, microtask_id, now)
        self.stragglers.observe(lease.microtask.kind, now - lease.issued_at)
        return lease

    def apply(self, plan: Plan) -> Outcome:
        """Count a result as :meth:`evaluate` planned it, and decide inline."""
        lease, verdict = plan.lease, plan.verdict
        mt = lease.microtask
        self._close(lease, "return", requeue=False)
        exclude(mt, lease.miner_id)
        mt.tally = plan.tally
        mt.error = verdict.error
        if verdict.is_decided:
            return self._settle(mt, "decide", verdict.decided)
        if verdict.inconclusive:
            return self._settle(mt, "give_up")
        self._requeue(mt)
        return Outcome(mt)

    def returned(self, lease: Lease) -> None:
        """Close a copy whose result came back but does not count (it failed a check)."""
        exclude(lease.microtask, lease.miner_id)
        self._close(lease, "return")

    def fail(self, mt: Microtask, reason: str, lease: Lease | None = None) -> Outcome:
        """Give a microtask up because its kind's code failed on it."""
        if lease is not None:
            self.returned(lease)
        mt.reason = reason
        return self._settle(mt, "give_up")

    def _settle(self, mt: Microtask, move: str, decision: Any = None) -> Outcome:
        mt.state = lifecycle.advance(mt.state, move)
        mt.decision = decision
        outcome = Outcome(mt, decided=move == "decide", inconclusive=move != "decide")
        self._queue(mt.kind).discard(mt)
        for cancelled in list(mt.holders.values()):
            self._close(cancelled, "cancel", requeue=False)
            outcome.cancelled.append(cancelled)
        task = self.tasks[mt.task_id]
        task.open -= 1
        self.open -= 1
        if task.open == 0:
            failed = any(m.state == lifecycle.INCONCLUSIVE for m in task.built())
            task.state = lifecycle.advance(task.state, "fail" if failed else "complete")
            outcome.task = task
        return outcome

    def strike(self, mt: Microtask, miner_id: str) -> tuple[bool, Outcome | None]:
        """Drop a banned miner's votes; a decision still meeting its target stands.

        Returns whether a settled microtask reopened, and the outcome when the remaining
        votes decide it at once (another answer won, or the struck votes held it back).
        """
        if mt.state == lifecycle.CANCELLED:  # its task was withdrawn: nothing to decide
            return False, None
        mt.tally = mt.tally.without(miner_id)
        if mt.state == lifecycle.PENDING:
            verdict = mt.tally.verdict(mt.policy, mt.outstanding())
            mt.error = verdict.error
            if verdict.is_decided:
                return False, self._settle(mt, "decide", verdict.decided)
            self._requeue(mt)
            return False, None
        verdict = mt.tally.verdict(mt.policy, [])
        if mt.state == lifecycle.DECIDED and verdict.is_decided and verdict.decided == mt.decision:
            mt.error = verdict.error
            return False, None
        if mt.reason or (mt.state == lifecycle.INCONCLUSIVE and verdict.inconclusive):
            return False, None
        mt.state = lifecycle.advance(mt.state, "reopen")
        mt.decision, mt.error = None, verdict.error
        task = self.tasks[mt.task_id]
        if task.state != lifecycle.RUNNING:
            task.state = lifecycle.advance(task.state, "revise")
        task.open += 1
        self.open += 1
        if verdict.is_decided:
            mt.error = verdict.error
            return True, self._settle(mt, "decide", verdict.decided)
        self._requeue(mt, front=True)
        return True, None

    def expire(self, now: float) -> list[Lease]:
        """Close every lease whose deadline has passed; their copies are queued again."""
        expired: list[Lease] = []
        for aid in self._deadlines.due(now):
            lease = self.leases.get(aid)
            if lease is not None:
                exclude(lease.microtask, lease.miner_id)
                self._close(lease, "expire")
                expired.append(lease)
        return expired

    def nudge(self, now: float) -> int:
        """Queue a companion for each copy out past its kind's patience; how many."""
        slow = list(self.stragglers.overdue(now, self.leases))
        for lease in slow:
            self._requeue(lease.microtask, front=True)
        return len(slow)

    def next_deadline(self) -> float | None:
        return self._deadlines.next(self.leases)

    # -- internals --------------------------------------------------------

    def _close(self, lease: Lease, event: str, requeue: bool = True) -> None:
        lease.state = lifecycle.advance(lease.state, event)
        del self.leases[lease.id]
        mt = lease.microtask
        mt.holders.pop(lease.miner_id, None)
        self._closed[lease.id] = (lease.state, lease.miner_id)
        if len(self._closed) > CLOSED_MEMORY:
            self._closed.popitem(last=False)
        miner = self.miners.get(lease.miner_id)
        if miner is not None and miner.leases.pop(lease.id, None) is not None:
            self._update_free(miner)
        if requeue and mt.state == lifecycle.PENDING:
            self._requeue(mt, front=True)

    def _requeue(self, mt: Microtask, front: bool = False) -> None:
        self._stale.clear()
        if wants_copy(mt):
            self._queue(mt.kind).push(mt, front)
        else:
            self._queue(mt.kind).discard(mt)

    def _queue(self, kind: str) -> WorkQueue:
        queue = self._queues.get(kind)
        if queue is None:
            queue = self._queues[kind] = WorkQueue()
        return queue

    def _update_free(self, miner: Placeable) -> None:
        if miner.id not in self.miners:
            return
        self._stale.clear()
        has_room = miner.free > 0
        for kind in miner.kinds:
            free = self._free.get(kind)
            if free is None:
                free = self._free[kind] = ByNetwork()
            if has_room:
                free.add(miner)
            else:
                free.discard(miner)
