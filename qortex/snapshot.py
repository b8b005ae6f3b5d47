"""A read-only picture of the coordinator for health checks, metrics and pages.

The web layer reads this instead of the coordinator's tables and counters, so
nothing outside the coordinator depends on how it keeps them, and nothing it
is handed can change them: the counters are copied when the picture is taken.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class CoordinatorSnapshot:
    """What the coordinator holds and has counted since it started, at one moment."""

    uptime_seconds: float
    kinds: tuple[str, ...]
    miners_connected: int
    tasks_running: int  # loaded in the dispatch table: running, or borrowed back for a while
    tasks_scheduled: int  # waiting for their notBefore
    leases_out: int
    microtasks_open: int  # waiting for a decision
    event_subscribers: int
    commits: int  # SQLite transactions
    results_accepted: int
    results_refused: Mapping[str, int]  # by reason
    miner_closes: Mapping[int, int]  # miner sockets closed by the coordinator, by close code
    microtasks_decided: int
    microtasks_inconclusive: int
    copies_reassigned: int  # copies expired or released
    throttled: int  # requests answered 429


def frozen_counts(counts: Mapping[K, int]) -> Mapping[K, int]:
    """A copy of ``counts`` that cannot be changed."""
    return MappingProxyType(dict(counts))
