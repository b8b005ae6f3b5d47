"""When a microtask is decided, when it needs more copies, when it is hopeless.

The policy follows volunteer-computing practice (BOINC's initial replication,
minimum quorum and maximum total results): issue ``replicas`` copies to
distinct miners; decide as soon as ``quorum`` results agree; while results
disagree, issue more copies, but never collect more than ``max_replicas``
results; once the best group can no longer reach the quorum, give up.

"Agree" belongs to the task kind (equal labels, numbers within a tolerance), so
results are grouped with the kind's ``agree`` against each group's first member.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qortex.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class Policy:
    replicas: int
    quorum: int
    max_replicas: int
    lease_seconds: float

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


@dataclass(frozen=True, slots=True)
class Verdict:
    """``decided`` holds the winning output; ``more`` is how many copies to add now."""

    decided: Any = None
    is_decided: bool = False
    inconclusive: bool = False
    more: int = 0


@dataclass(slots=True)
class Tally:
    """The results of one microtask, grouped by agreement."""

    groups: list[list[Any]] = field(default_factory=list)
    returned: int = 0

    def add(self, output: Any, agree: Callable[[Any, Any], bool]) -> None:
        self.returned += 1
        for group in self.groups:
            if agree(group[0], output):
                group.append(output)
                return
        self.groups.append([output])

    @property
    def best(self) -> list[Any]:
        return max(self.groups, key=len) if self.groups else []

    def verdict(self, policy: Policy, outstanding: int) -> Verdict:
        best = self.best
        if len(best) >= policy.quorum:
            return Verdict(decided=best[0], is_decided=True)
        missing = policy.quorum - len(best)
        room = policy.max_replicas - self.returned
        if room < missing:
            return Verdict(inconclusive=True)
        wanted = min(max(policy.replicas - self.returned, missing), room)
        return Verdict(more=max(0, wanted - outstanding))
