"""Shared ways to drive a dispatch table in tests: numbers for time, seeded randomness."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from qortex.core.credibility import CHECKED_ERROR, Vote
from qortex.core.dispatch import DispatchTable
from qortex.core.quorum import Policy
from qortex.core.work import Lease, Microtask, Outcome, Task, evaluate
from qortex.errors import ResultRefused

LEASE = 10.0
F = 0.1  # a new miner's error rate at the default fault fraction
TARGET = 1e-3
CREDIBLE = TARGET / 10  # a miner whose word alone meets the target


def same(a: Any, b: Any) -> bool:
    return a == b


def policy(
    replicas: int = 1,
    quorum: int = 1,
    max_replicas: int = 10,
    lease: float = LEASE,
    target: float = TARGET,
) -> Policy:
    return Policy(replicas, quorum, max_replicas, lease, target)


def table(seed: int = 0, checkable: Iterable[str] = ()) -> DispatchTable:
    ids = itertools.count()
    return DispatchTable(random.Random(seed), new_id=lambda: f"a{next(ids)}", checkable=checkable)


def connect(
    t: DispatchTable,
    n: int,
    slots: int = 1,
    kinds: Iterable[str] = ("x",),
    prefix: str = "m",
    error: float = CREDIBLE,
    network: Callable[[int], str] | None = None,
) -> list[str]:
    """``n`` miners with earned slots equal to declared ones, each on its own network."""
    ids = [f"{prefix}{i}" for i in range(n)]
    for i, miner_id in enumerate(ids):
        net = network(i) if network else f"net-{miner_id}"
        t.connect(miner_id, slots, kinds, net, error, allowance=slots)
    return ids


def vote_of(t: DispatchTable, lease: Lease, checked: bool = False) -> Vote:
    miner = t.miners[lease.miner_id]
    return Vote(miner.id, miner.network, CHECKED_ERROR if checked else miner.error)


def result(
    t: DispatchTable,
    lease: Lease,
    output: Any,
    now: float = 0.0,
    agree: Callable[[Any, Any], bool] = same,
    checked: bool = False,
) -> Outcome:
    """Take, evaluate and apply one result, as the intake does."""
    taken = t.take(lease.miner_id, lease.id, lease.microtask.id, now)
    assert taken is lease
    return t.apply(evaluate(taken, vote_of(t, taken, checked), output, agree))


def refusal(t: DispatchTable, miner: str, aid: str, mt: str, now: float = 0.0) -> ResultRefused:
    with pytest.raises(ResultRefused) as info:
        t.take(miner, aid, mt, now)
    assert info.value.detail == {"reason": info.value.reason}
    return info.value


def fingerprint(t: DispatchTable, mts: Iterable[Microtask]) -> tuple[Any, ...]:
    """Everything the table holds, to show that a step changed nothing."""
    return (
        tuple(sorted((a, x.miner_id, x.microtask.id, x.state) for a, x in t.leases.items())),
        tuple(
            sorted(
                (mi.id, mi.slots, mi.allowance, mi.error, tuple(sorted(mi.leases)))
                for mi in t.miners.values()
            )
        ),
        tuple(
            (
                mt.id,
                mt.state,
                tuple(sorted(mt.holders)),
                tuple(sorted(mt.excluded)),
                mt.tally,
                repr(mt.decision),
                mt.error,
            )
            for mt in mts
        ),
        tuple((kind, tuple(mt.id for mt in queue)) for kind, queue in sorted(t._queues.items())),
        tuple(
            (kind, tuple(sorted(m.id for g in f._networks._items for m in g.members._items)))
            for kind, f in sorted(t._free.items())
        ),
        tuple(sorted(t._deadlines)),
        tuple(t._closed.items()),
        tuple(sorted(t._stale.items())),
        tuple((tid, task.state, task.open) for tid, task in t.tasks.items()),
        t.open,
    )


def queued(t: DispatchTable) -> int:
    """How many microtasks wait in the table's queues for another copy."""
    return len(queued_ids(t))


def queued_ids(t: DispatchTable) -> list[str]:
    """The ids of the microtasks waiting, in order; a fresh task's, built or not, included."""
    ids: list[str] = []
    for queue in t._queues.values():
        for entry in queue:
            if isinstance(entry, Task):
                ids += [
                    f"{entry.id}:{i}"
                    for i in range(entry.next, len(entry))
                    if (mt := entry.built_at(i)) is None or mt.untouched()
                ]
            else:
                ids.append(entry.id)
    return ids


def unbuilt(task: Task) -> list[int]:
    """The indices of a task's microtasks that nothing has built yet."""
    return [i for i in range(len(task)) if task.built_at(i) is None]
