"""Who works on what: pending microtasks, leases with deadlines, miners and their slots.

The table is the coordinator's memory of the work in flight. It is a cache of
the store: everything here can be rebuilt from SQLite after a crash (see
``Coordinator.recover``). It makes every placement decision and nothing else;
callers turn the returned leases and outcomes into messages and facts.

Rules it keeps:

* copies of one microtask go to distinct miners: a miner never holds two live
  copies of a microtask, and never gets another once it has returned one or let
  one expire (a disconnect is forgiven: networks drop, and the miner may be back);
* placement is random among eligible free miners, so colluders cannot arrange
  to meet on a microtask;
* work lost to a disconnect or a deadline goes back to the front of the queue;
* per-result work is O(1) in the number of pending microtasks.
"""

from __future__ import annotations

import heapq
import random
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from qortex.core import lifecycle
from qortex.core.quorum import Policy, Tally
from qortex.errors import ResultRefused

Agree = Callable[[Any, Any], bool]

# How many queued microtasks a fill may pass over when every free miner has
# already worked on them (fewer miners than replicas); keeps a fill bounded.
SCAN_LIMIT = 256
# How many closed assignments are remembered to tell "late" and "duplicate"
# results apart from unknown ones.
CLOSED_MEMORY = 200_000

NOBODY: frozenset[str] = frozenset()


@dataclass(slots=True, eq=False)
class Microtask:
    id: str
    task_id: str
    index: int
    kind: str
    input: Any
    policy: Policy
    state: str = lifecycle.PENDING
    holders: dict[str, str] = field(default_factory=dict)  # miner id -> assignment id
    # Miners that returned a copy or let one expire. Most microtasks never need
    # a set of their own until their first result, so they share an empty one.
    excluded: set[str] | frozenset[str] = NOBODY
    tally: Tally = field(default_factory=Tally)
    need: int = 0  # copies still to issue
    decision: Any = None


@dataclass(slots=True, eq=False)
class Lease:
    id: str
    microtask: Microtask
    miner_id: str
    issued_at: float
    deadline: float
    state: str = lifecycle.LEASED


@dataclass(slots=True, eq=False)
class Miner:
    id: str
    slots: int
    kinds: frozenset[str]
    leases: dict[str, Lease] = field(default_factory=dict)

    @property
    def free(self) -> int:
        return self.slots - len(self.leases)


@dataclass(slots=True, eq=False)
class Task:
    id: str
    kind: str
    microtasks: list[Microtask]
    state: str = lifecycle.RUNNING
    open: int = 0  # microtasks neither decided nor inconclusive


@dataclass(slots=True)
class Outcome:
    """What one accepted result caused."""

    lease: Lease
    decided: bool = False
    inconclusive: bool = False
    cancelled: list[Lease] = field(default_factory=list)
    task: Task | None = None  # set when this result finished the task


class _RandomSet:
    """A set with O(1) add, remove and uniform choice."""

    __slots__ = ("_index", "_items")

    def __init__(self) -> None:
        self._items: list[Miner] = []
        self._index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def add(self, miner: Miner) -> None:
        if miner.id not in self._index:
            self._index[miner.id] = len(self._items)
            self._items.append(miner)

    def discard(self, miner: Miner) -> None:
        i = self._index.pop(miner.id, None)
        if i is None:
            return
        last = self._items.pop()
        if last is not miner:
            self._items[i] = last
            self._index[last.id] = i

    def pick(self, rng: random.Random, ok: Callable[[Miner], bool], tries: int) -> Miner | None:
        """A random member passing ``ok``, looking at no more than ``tries`` + 1 members.

        Callers pass ``tries`` >= the number of members that fail ``ok``, so a
        scan from a random start finds one whenever one exists.
        """
        n = len(self._items)
        if not n:
            return None
        start = rng.randrange(n)
        for step in range(min(n, tries + 1)):
            miner = self._items[(start + step) % n]
            if ok(miner):
                return miner
        return None


class DispatchTable:
    def __init__(self, rng: random.Random, new_id: Callable[[], str] | None = None) -> None:
        self._rng = rng
        self._new_id = new_id or (lambda: f"{rng.getrandbits(96):024x}")
        self.tasks: dict[str, Task] = {}
        self.miners: dict[str, Miner] = {}
        self.leases: dict[str, Lease] = {}
        self._queues: dict[str, OrderedDict[str, Microtask]] = {}
        self._free: dict[str, _RandomSet] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._closed: OrderedDict[str, tuple[str, str]] = OrderedDict()  # id -> state, miner
        # Per kind: microtasks passed over since the last change that could
        # make one of them placeable (a miner, a free slot, new work).
        self._stale: dict[str, int] = {}
        self.backlogged = False
        self.open = 0  # microtasks neither decided nor inconclusive, over all tasks

    # -- work coming in -------------------------------------------------

    def add_task(self, task_id: str, kind: str, policy: Policy, inputs: Iterable[Any]) -> Task:
        # A new microtask has no results and no copies out, so it wants exactly
        # ``replicas`` copies; no need to ask the quorum, which matters at 1M.
        queue = self._queues.setdefault(kind, OrderedDict())
        task = Task(task_id, kind, [])
        for index, value in enumerate(inputs):
            mt = Microtask(f"{task_id}:{index}", task_id, index, kind, value, policy)
            mt.need = policy.replicas
            task.microtasks.append(mt)
            queue[mt.id] = mt
        task.open = len(task.microtasks)
        self.open += task.open
        self.tasks[task_id] = task
        self._stale.clear()
        return task

    def restore_result(self, mt: Microtask, miner_id: str, output: Any, agree: Agree) -> None:
        """Replay a stored result while rebuilding from the store."""
        mt.tally.add(output, agree)
        _exclude(mt, miner_id)
        self._requeue(mt)

    def settle(self, mt: Microtask, state: str, decision: Any = None) -> None:
        """Mark a microtask as already decided or inconclusive (rebuilding from the store)."""
        mt.state = state
        mt.decision = decision
        mt.need = 0
        self._queues.get(mt.kind, OrderedDict()).pop(mt.id, None)
        self.tasks[mt.task_id].open -= 1
        self.open -= 1

    def drop_task(self, task_id: str) -> None:
        """Forget a finished task; its microtasks are all settled."""
        self.tasks.pop(task_id, None)

    # -- miners -----------------------------------------------------------

    def connect(self, miner_id: str, slots: int, kinds: Iterable[str]) -> Miner:
        if miner_id in self.miners:
            raise ValueError(f"miner {miner_id} is already connected")
        miner = Miner(miner_id, slots, frozenset(kinds))
        self.miners[miner_id] = miner
        self._update_free(miner)
        return miner

    def disconnect(self, miner_id: str) -> list[Lease]:
        """Release every lease the miner held; their microtasks go back to the front."""
        miner = self.miners.pop(miner_id, None)
        if miner is None:
            return []
        for kind in miner.kinds:
            if kind in self._free:
                self._free[kind].discard(miner)
        released = list(miner.leases.values())
        for lease in released:
            self._close(lease, "release")
        return released

    # -- placement --------------------------------------------------------

    def fill(self, now: float) -> list[Lease]:
        """Lease queued copies to free miners until one side runs out.

        A microtask that none of the free miners may take is passed over and
        moved to the back of its queue, so the next pass starts with work that
        can move. One pass looks at no more than :data:`SCAN_LIMIT` of those;
        if it stops there before every queued microtask has been looked at
        since the last change, ``backlogged`` is set and the caller should run
        another pass soon. Each pass stays bounded, and work behind a long
        blocked stretch is still reached.
        """
        issued: list[Lease] = []
        self.backlogged = False
        for kind, queue in self._queues.items():
            free = self._free.get(kind)
            if not free or not queue:
                continue
            passed: list[str] = []
            done: list[str] = []
            for mt in queue.values():
                while mt.need > 0 and len(free):
                    busy = len(mt.holders) + len(mt.excluded)
                    miner = free.pick(self._rng, lambda m, mt=mt: _eligible(m, mt), busy)
                    if miner is None:
                        break
                    issued.append(self._lease(mt, miner, now))
                    self._stale.pop(kind, None)
                if mt.need == 0:
                    done.append(mt.id)
                elif not len(free):
                    break
                else:
                    passed.append(mt.id)
                    if len(passed) >= SCAN_LIMIT:
                        break
            for mt_id in done:
                del queue[mt_id]
            for mt_id in passed:
                queue.move_to_end(mt_id)
            stale = self._stale[kind] = self._stale.get(kind, 0) + len(passed)
            if len(passed) >= SCAN_LIMIT and stale < len(queue) and len(free):
                self.backlogged = True
        return issued

    def _lease(self, mt: Microtask, miner: Miner, now: float) -> Lease:
        lease = Lease(self._new_id(), mt, miner.id, now, now + mt.policy.lease_seconds)
        mt.holders[miner.id] = lease.id
        mt.need -= 1
        miner.leases[lease.id] = lease
        self.leases[lease.id] = lease
        heapq.heappush(self._deadlines, (lease.deadline, lease.id))
        self._update_free(miner)
        return lease

    # -- results ----------------------------------------------------------

    def take(self, miner_id: str, assignment_id: str, microtask_id: str, now: float) -> Lease:
        """The lease a result may be counted against.

        Refusals raise :class:`ResultRefused` and change nothing; the lease
        stays open (a late one is closed by the next :meth:`expire`, which
        records why). Only the lease's own miner learns why an assignment
        that is over was refused; to anyone else it is unknown.
        """
        lease = self.leases.get(assignment_id)
        if lease is None:
            reason, owner = self._closed.get(assignment_id, ("", ""))
            if owner != miner_id:  # say nothing about other miners' assignments
                reason = ""
            if reason == lifecycle.RETURNED:
                raise ResultRefused("duplicate", "this assignment's result was already accepted")
            if reason == lifecycle.EXPIRED:
                raise ResultRefused("late", "the lease expired before the result arrived")
            if reason in (lifecycle.CANCELLED, lifecycle.RELEASED):
                raise ResultRefused("withdrawn", f"the assignment was {reason}")
            raise ResultRefused("unknown_assignment", "no such assignment is leased")
        if lease.miner_id != miner_id:
            raise ResultRefused("not_your_assignment", "the assignment is leased to another miner")
        if lease.microtask.id != microtask_id:
            raise ResultRefused("wrong_microtask", "the assignment is for another microtask")
        if now > lease.deadline:
            raise ResultRefused("late", "the lease expired before the result arrived")
        return lease

    def record(self, lease: Lease, output: Any, agree: Agree) -> Outcome:
        """Count an accepted result and apply the quorum inline."""
        mt = lease.microtask
        self._close(lease, "return", requeue=False)
        _exclude(mt, lease.miner_id)
        mt.tally.add(output, agree)
        outcome = Outcome(lease)
        verdict = mt.tally.verdict(mt.policy, len(mt.holders))
        if verdict.is_decided or verdict.inconclusive:
            outcome.decided = verdict.is_decided
            outcome.inconclusive = verdict.inconclusive
            mt.state = lifecycle.advance(mt.state, "decide" if verdict.is_decided else "give_up")
            mt.decision = verdict.decided
            mt.need = 0
            self._queues[mt.kind].pop(mt.id, None)
            for aid in list(mt.holders.values()):
                cancelled = self.leases[aid]
                self._close(cancelled, "cancel", requeue=False)
                outcome.cancelled.append(cancelled)
            task = self.tasks[mt.task_id]
            task.open -= 1
            self.open -= 1
            if task.open == 0:
                failed = any(m.state == lifecycle.INCONCLUSIVE for m in task.microtasks)
                task.state = lifecycle.advance(task.state, "fail" if failed else "complete")
                outcome.task = task
        else:
            self._want(mt, verdict.more)
        return outcome

    # -- deadlines --------------------------------------------------------

    def expire(self, now: float) -> list[Lease]:
        """Close every lease whose deadline has passed; their copies are queued again."""
        expired: list[Lease] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, aid = heapq.heappop(self._deadlines)
            lease = self.leases.get(aid)
            if lease is not None:
                _exclude(lease.microtask, lease.miner_id)
                self._close(lease, "expire")
                expired.append(lease)
        return expired

    def next_deadline(self) -> float | None:
        while self._deadlines and self._deadlines[0][1] not in self.leases:
            heapq.heappop(self._deadlines)
        return self._deadlines[0][0] if self._deadlines else None

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
        verdict = mt.tally.verdict(mt.policy, len(mt.holders))
        self._want(mt, verdict.more, front)

    def _want(self, mt: Microtask, more: int, front: bool = False) -> None:
        mt.need = more
        self._stale.clear()
        queue = self._queues.setdefault(mt.kind, OrderedDict())
        if more > 0:
            if mt.id not in queue:
                queue[mt.id] = mt
            if front:
                queue.move_to_end(mt.id, last=False)
        else:
            queue.pop(mt.id, None)

    def _update_free(self, miner: Miner) -> None:
        if miner.id not in self.miners:
            return
        self._stale.clear()
        for kind in miner.kinds:
            free = self._free.setdefault(kind, _RandomSet())
            if miner.free > 0:
                free.add(miner)
            else:
                free.discard(miner)

    # -- views ------------------------------------------------------------

    @property
    def pending(self) -> int:
        return sum(mt.need for queue in self._queues.values() for mt in queue.values())


def _exclude(mt: Microtask, miner_id: str) -> None:
    if mt.excluded is NOBODY:
        mt.excluded = set()
    mt.excluded.add(miner_id)  # type: ignore[union-attr]


def _eligible(miner: Miner, mt: Microtask) -> bool:
    return miner.id not in mt.holders and miner.id not in mt.excluded
