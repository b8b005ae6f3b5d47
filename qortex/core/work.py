"""The records the dispatch table keeps: microtasks, leases, miners, tasks, outcomes."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from qortex.core import lifecycle
from qortex.core.credibility import CHECKED_ERROR, SUSPECT_ERROR, Vote
from qortex.core.quorum import Policy, QuorumVerdict, Tally
from qortex.core.randomset import ByNetwork
from qortex.errors import ResultRefused

NOBODY: frozenset[str] = frozenset()
NO_GOLD = object()
UNDECODED = object()  # a microtask's input not yet decoded from its JSON text
EMPTY = Tally()


@dataclass(slots=True, eq=False)
class Microtask:
    id: str
    task_id: str
    index: int
    kind: str
    input: Any  # the exact JSON text miners get (msgspec.Raw)
    policy: Policy
    digest: str = ""  # hex SHA-256 of the input bytes, which miners sign (see input_digest)
    gold: Any = NO_GOLD  # a known-answer item's expected output
    value: Any = UNDECODED  # the input decoded (and prepared), once, when a checker needs it
    state: str = lifecycle.PENDING
    holders: dict[str, Lease] = field(default_factory=dict)  # miner id -> its live copy
    # Miners that returned a copy, let one expire or dropped one. Most
    # microtasks never need a set of their own, so they share an empty one.
    excluded: set[str] | frozenset[str] = NOBODY
    tally: Tally = EMPTY
    decision: Any = None
    error: float = 1.0  # the decision's estimated probability of being wrong
    reason: str = ""  # why it is inconclusive, when a plugin failed

    def input_digest(self) -> str:
        """The input's digest, worked out when first needed rather than for every load."""
        if not self.digest:
            self.digest = hashlib.sha256(bytes(self.input)).hexdigest()
        return self.digest

    def outstanding(self) -> list[Vote]:
        """What the copies still out are expected to weigh; slow ones are not counted on."""
        return [lease.projected for lease in self.holders.values() if not lease.slow]

    def has_slow_copy(self) -> bool:
        return any(lease.slow for lease in self.holders.values())

    def has_suspect(self) -> bool:
        """Whether a copy is out to, or a result came from, a miner on a suspect network."""
        if any(lease.projected.error >= SUSPECT_ERROR for lease in self.holders.values()):
            return True
        return any(v.error >= SUSPECT_ERROR for g in self.tally.groups for v in g.votes)

    def untouched(self) -> bool:
        """Whether nothing has happened to it yet: never copied, counted or settled."""
        return (
            self.state == lifecycle.PENDING
            and self.tally is EMPTY
            and not self.holders
            and self.excluded is NOBODY
        )

    def networks(self) -> set[str]:
        used = {lease.projected.network for lease in self.holders.values()}
        used.update(v.network for g in self.tally.groups for v in g.votes)
        return used


@dataclass(slots=True, eq=False)
class Lease:
    id: str
    microtask: Microtask
    miner_id: str
    issued_at: float
    deadline: float
    projected: Vote  # what its result is expected to weigh, for adaptive replication
    state: str = lifecycle.LEASED
    slow: bool = False  # out past its kind's patience: no longer counted on (core.stragglers)


@dataclass(slots=True, eq=False)
class Placeable:
    """A connected miner as placement sees it: what it may take, and what it holds."""

    id: str
    slots: int  # declared: a ceiling, not a grant
    kinds: frozenset[str]
    network: str = ""
    error: float = 1.0  # its error rate (see qortex.core.credibility)
    allowance: int = 1  # slots it has earned
    leases: dict[str, Lease] = field(default_factory=dict)

    @property
    def free(self) -> int:
        return min(self.slots, self.allowance) - len(self.leases)


@dataclass(slots=True, eq=False)
class Task:
    """A task's microtasks, each built the first time something needs it.

    Until its first copy goes out, a microtask is nothing but its input (and
    its expected output, for a known-answer item), so a task waits in its
    kind's queue as one entry with a cursor (``next``) rather than one entry
    per microtask, and placement builds each microtask when it takes it (see
    :meth:`next_fresh`). A start after a crash or a large submit then builds
    objects only for work that has begun. After a start the inputs come later
    still (``inputs`` is None until they are read): placement stops at such a
    task until they arrive, so nothing waiting behind it jumps the queue.
    """

    id: str
    kind: str
    policy: Policy
    count: int  # how many microtasks it has
    inputs: Sequence[Any] | None  # per index, the exact JSON text miners get (msgspec.Raw)
    gold: dict[int, Any]  # index -> a known-answer item's expected output
    state: str = lifecycle.RUNNING
    open: int = 0  # microtasks neither decided nor inconclusive
    next: int = 0  # placement's cursor: microtasks from here on were never offered
    _built: list[Microtask | None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._built = [None] * self.count

    def __len__(self) -> int:
        return len(self._built)

    def microtask(self, index: int, input: Any = None) -> Microtask:
        """The microtask at ``index``, built now if nothing needed it before (with
        ``input`` as its input when the task's inputs are not read yet)."""
        mt = self._built[index]
        if mt is None:
            if input is None:
                assert self.inputs is not None, f"{self.id}: inputs not read yet"
                input = self.inputs[index]
            mt = self._built[index] = Microtask(
                f"{self.id}:{index}",
                self.id,
                index,
                self.kind,
                input,
                self.policy,
                gold=self.gold.get(index, NO_GOLD),
            )
        return mt

    def built_at(self, index: int) -> Microtask | None:
        """The microtask at ``index`` if it was built (one never built holds no votes)."""
        return self._built[index]

    def built(self) -> Iterator[Microtask]:
        """The microtasks built so far, in order: every one that was ever placed or settled."""
        return (mt for mt in self._built if mt is not None)

    @property
    def microtasks(self) -> list[Microtask]:
        """Every microtask, in order (builds those not built yet: for a finished task, none)."""
        return [self.microtask(index) for index in range(len(self._built))]

    def next_fresh(self) -> Microtask | None:
        """Advance the cursor to the next microtask never offered; None past the last.

        One built meanwhile but untouched (only read) is still fresh; one that was
        placed or settled otherwise (after a restart, say) is passed over.
        """
        built = self._built
        while self.next < len(built):
            index = self.next
            self.next += 1
            mt = built[index]
            if mt is None:
                return self.microtask(index)
            if mt.untouched():
                return mt
        return None


@dataclass(slots=True)
class Plan:
    """What counting one result would do, worked out before anything changes."""

    lease: Lease
    vote: Vote
    tally: Tally
    verdict: QuorumVerdict


@dataclass(slots=True)
class Outcome:
    """What one accepted result (or a failure) caused."""

    microtask: Microtask
    decided: bool = False
    inconclusive: bool = False
    cancelled: list[Lease] = field(default_factory=list)
    task: Task | None = None  # set when this finished the task


def exclude(mt: Microtask, miner_id: str) -> None:
    """The miner gets no further copy of this microtask."""
    if mt.excluded is NOBODY:
        mt.excluded = set()
    mt.excluded.add(miner_id)  # type: ignore[union-attr]


def projected(miner: Placeable, mt: Microtask, checkable: frozenset[str]) -> Vote:
    """What a copy given to ``miner`` is expected to weigh once returned.

    A result that will surely be checked (a known-answer item, or a kind with
    a checker for a miner not yet credible enough) weighs as a check.
    """
    sure_check = mt.gold is not NO_GOLD or (
        mt.kind in checkable and miner.error > mt.policy.target_error
    )
    return Vote(miner.id, miner.network, CHECKED_ERROR if sure_check else miner.error)


def evaluate(lease: Lease, vote: Vote, output: Any, agree: Callable[[Any, Any], bool]) -> Plan:
    """Work out what counting a result would do; changes nothing (``agree`` may raise)."""
    mt = lease.microtask
    tally = mt.tally.adding(vote, output, agree)
    others = [held.projected for miner, held in mt.holders.items() if miner != lease.miner_id]
    return Plan(lease, vote, tally, tally.verdict(mt.policy, others))


def wants_copy(mt: Microtask) -> bool:
    """Whether a pending microtask should get another copy now.

    Known-answer items follow the same rule as real work: their copies are
    projected as checked, so one is enough unless the client's floors ask for
    more, and nothing in how they are placed tells them apart.
    """
    if mt.state != lifecycle.PENDING:
        return False
    return mt.tally.wants_more(mt.policy, mt.outstanding())


def eligible(miner: Placeable, mt: Microtask) -> bool:
    """Whether a miner may get a copy of this microtask (networks aside).

    A miner on a suspect network gets a copy only of a microtask no other
    suspect miner has touched: its result counts for nothing unless checked,
    so suspect networks, however many, cost a microtask one copy at most.
    """
    if miner.id in mt.holders or miner.id in mt.excluded:
        return False
    return miner.error < SUSPECT_ERROR or not mt.has_suspect()


def choose(
    free: ByNetwork[Placeable], rng: random.Random, mt: Microtask, proven_below: float
) -> Placeable | None:
    """A free miner for another copy of ``mt``, on a network none of its copies is on.

    A companion of a slow copy (see :mod:`qortex.core.stragglers`) goes to a miner
    that has passed a check (its error rate is under ``proven_below``) when one is free.
    """
    if mt.has_slow_copy():
        miner = free.pick(
            rng, lambda m: m.error < proven_below and eligible(m, mt), mt.networks(), len(free)
        )
        if miner is not None:
            return miner
    busy = len(mt.holders) + len(mt.excluded)  # at most this many free miners fail eligible
    return free.pick(rng, lambda m: eligible(m, mt), mt.networks(), busy)


def check_result(lease: Lease, miner_id: str, microtask_id: str, now: float) -> None:
    """Refuse a result that does not belong to this open lease."""
    if lease.miner_id != miner_id:
        raise ResultRefused("not_your_assignment", "the assignment is leased to another miner")
    if lease.microtask.id != microtask_id:
        raise ResultRefused("wrong_microtask", "the assignment is for another microtask")
    if now > lease.deadline:
        raise ResultRefused("late", "the lease expired before the result arrived")


def refusal_for(state: str) -> ResultRefused:
    """Why a result for an assignment that is no longer leased is refused."""
    if state == lifecycle.RETURNED:
        return ResultRefused("duplicate", "this assignment's result was already accepted")
    if state == lifecycle.EXPIRED:
        return ResultRefused("late", "the lease expired before the result arrived")
    if state in (lifecycle.CANCELLED, lifecycle.RELEASED):
        return ResultRefused("withdrawn", f"the assignment was {state}")
    return ResultRefused("unknown_assignment", "no such assignment is leased")
