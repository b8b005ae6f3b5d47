"""When a microtask is decided, when it needs more copies, when it is hopeless.

A microtask is decided when the estimated probability that its best answer is
wrong (see :mod:`qortex.core.credibility`) is at most the task's
``target_error`` and, as a floor for clients who ask for one, at least
``quorum`` distinct miners agree. While it is not, more copies are issued, but
never more than ``max_replicas`` results are collected; once even unanimous
outstanding copies could not decide it, it is inconclusive.

"Agree" belongs to the task kind (equal labels, numbers within a tolerance), so
results are grouped with the kind's ``agree`` against each group's first member.
A tally is never changed in place: :meth:`Tally.adding` returns a new one, so
a caller can work out a verdict, plugin calls and all, before it mutates anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from qortex.core.credibility import CHECKED_ERROR, Vote, group_errors, projected_error
from qortex.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class Policy:
    replicas: int  # copies issued at first (a floor)
    quorum: int  # agreeing distinct miners needed at least (a floor)
    max_replicas: int
    lease_seconds: float
    target_error: float = 1e-3

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise InvalidInput("replicas must be at least 1", field="replicas")
        if not 1 <= self.quorum <= self.replicas:
            raise InvalidInput(
                f"quorum must be between 1 and replicas ({self.replicas})", field="quorum"
            )
        if self.max_replicas < self.replicas:
            raise InvalidInput("max_replicas must be at least replicas", field="max_replicas")
        if self.lease_seconds <= 0:
            raise InvalidInput("lease_seconds must be positive", field="lease_seconds")
        if not 0 < self.target_error < 1:
            raise InvalidInput("targetError must be between 0 and 1", field="targetError")


@dataclass(frozen=True, slots=True)
class QuorumVerdict:
    """``decided`` holds the winning output; ``error`` its estimated probability of being wrong."""

    decided: Any = None
    is_decided: bool = False
    inconclusive: bool = False
    error: float = 1.0
    votes: int = 0  # distinct miners behind the best answer


@dataclass(frozen=True, slots=True)
class Group:
    output: Any  # the first member's output: what the group says
    votes: tuple[Vote, ...]


@dataclass(frozen=True, slots=True)
class Tally:
    """The counted results of one microtask, grouped by agreement."""

    groups: tuple[Group, ...] = ()
    returned: int = 0
    # ``best()`` worked out once: a tally never changes, and it is asked often.
    _best: tuple[Group | None, float] | None = field(default=None, compare=False, repr=False)

    def adding(self, vote: Vote, output: Any, agree: Callable[[Any, Any], bool]) -> Tally:
        """This tally with one more result; calls the kind's ``agree``, which may raise."""
        groups = list(self.groups)
        for i, group in enumerate(groups):
            if agree(group.output, output):
                groups[i] = Group(group.output, (*group.votes, vote))
                break
        else:
            groups.append(Group(output, (vote,)))
        return Tally(tuple(groups), self.returned + 1)

    def without(self, miner_id: str) -> Tally:
        """This tally with a miner's votes struck out (the miner was caught lying).

        A vote that passed a check stays: it was proven right, whoever sent it.
        """
        groups = []
        removed = 0
        for group in self.groups:
            kept = tuple(
                v for v in group.votes if v.miner_id != miner_id or v.error <= CHECKED_ERROR
            )
            removed += len(group.votes) - len(kept)
            if kept:
                groups.append(Group(group.output, kept))
        return Tally(tuple(groups), self.returned - removed)

    def voters(self) -> set[str]:
        return {v.miner_id for g in self.groups for v in g.votes}

    def best(self) -> tuple[Group | None, float]:
        """The most credible group and its error."""
        if self._best is not None:
            return self._best
        if not self.groups:
            return None, 1.0
        errors = group_errors([g.votes for g in self.groups])
        i = min(range(len(errors)), key=errors.__getitem__)
        object.__setattr__(self, "_best", (self.groups[i], errors[i]))
        return self.groups[i], errors[i]

    def verdict(self, policy: Policy, outstanding: Sequence[Vote]) -> QuorumVerdict:
        """Decided, inconclusive, or neither; ``outstanding`` are the copies still out."""
        best, error = self.best()
        distinct = len({v.miner_id for v in best.votes}) if best else 0
        if best is not None and error <= policy.target_error and distinct >= policy.quorum:
            return QuorumVerdict(best.output, True, error=error, votes=distinct)
        if self.returned + len(outstanding) >= policy.max_replicas and not self.can_still_decide(
            policy, outstanding
        ):
            return QuorumVerdict(inconclusive=True, error=error, votes=distinct)
        return QuorumVerdict(error=error, votes=distinct)

    def can_still_decide(self, policy: Policy, outstanding: Sequence[Vote]) -> bool:
        """Whether some group would be decided if every outstanding copy joined it."""
        if len(self.groups) <= 1:  # the common case: no disagreement
            # Each miner votes once and holds no copy of what it answered, so
            # the joined votes come from distinct miners.
            joined = (*(self.groups[0].votes if self.groups else ()), *outstanding)
            return (
                len(joined) >= max(1, policy.quorum)
                and group_errors([joined])[0] <= policy.target_error
            )
        candidates = [g.votes for g in self.groups]
        for i, votes in enumerate(candidates):
            others = [g.votes for j, g in enumerate(self.groups) if j != i]
            joined = (*votes, *outstanding)
            if not joined:
                continue
            distinct = len({v.miner_id for v in joined})
            if distinct >= policy.quorum and projected_error(joined, others) <= policy.target_error:
                return True
        return False

    def wants_more(self, policy: Policy, outstanding: Sequence[Vote]) -> bool:
        """Whether another copy should be issued now.

        The floor comes first: ``replicas`` copies in all. Beyond it, another
        copy is wanted while even unanimous outstanding copies joining the best
        group would leave it short of the target, and there is room left.
        """
        issued = self.returned + len(outstanding)
        if issued >= policy.max_replicas:
            return False
        if issued < policy.replicas:
            return True
        return not self.can_still_decide(policy, outstanding)
