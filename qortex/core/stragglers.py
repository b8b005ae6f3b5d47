"""Copies held far longer than results of their kind take get a companion.

A miner can take a copy and sit on it: a hoarder, a laptop whose lid closed, a
throttled background tab. Without this, its microtask waits for the lease to
run out (minutes) or for the miner to leave. Once a copy has been out longer
than its kind's *patience*, the table stops counting it as outstanding, so the
microtask wants another copy, and that copy goes to a miner that has passed a
check when one is free (as BOINC sends its retries to reliable hosts), so a
crowd of fresh identities cannot keep catching the companions too. The slow
copy stays leased: if its result comes first it counts as any other, and
whichever decides the microtask withdraws the rest.

Patience is :data:`FACTOR` times the median time of this kind's last
:data:`SAMPLES` results, never under the ``floor`` setting (0 turns companions
off) nor over half the lease, so slow kinds (large matmul tiles in a phone's
browser) are not duplicated for being slow, only for being far slower than usual. A median,
not a mean: a miner's first result after it starts, or one copy that waited
long, must not make every later copy wait long too. Copies issued before any
result of their kind came back wait half the lease, until that first result
says what usual is: then their patience is worked out again, so the first
task on a fresh coordinator is not held for half a lease by a hoarder.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Container, Iterator, Mapping

from qortex.core import lifecycle
from qortex.core.deadlines import Deadlines
from qortex.core.work import Lease

#: How many times the usual time a copy may be out before it gets a companion.
FACTOR = 4.0
#: How many recent results of a kind its usual time is the median of.
SAMPLES = 32
#: Copies watched before a kind's first result beyond which closed ones are dropped.
UNSURE_KEPT = 1024


class Stragglers:
    __slots__ = ("_due", "_recent", "_unsure", "_usual", "floor", "proven_below")

    def __init__(self, floor: float = 1.0, proven_below: float = 0.1) -> None:
        self.floor = floor
        # A miner whose error rate is under this has passed a check: a new
        # identity's rate is the fault fraction, and each check passed lowers it.
        self.proven_below = proven_below
        self._recent: dict[str, deque[float]] = {}  # kind -> its last result times
        self._usual: dict[str, float] = {}  # kind -> their median
        self._due = Deadlines()
        # Per kind: copies watched before any of its results came back.
        self._unsure: dict[str, list[Lease]] = {}

    def observe(self, kind: str, seconds: float) -> None:
        """A result of ``kind`` came back ``seconds`` after its copy went out."""
        recent = self._recent.get(kind)
        if recent is not None:
            recent.append(seconds)
            self._usual[kind] = statistics.median(recent)
            return
        self._recent[kind] = deque([seconds], maxlen=SAMPLES)
        self._usual[kind] = seconds
        for lease in self._unsure.pop(kind, ()):  # the kind's first result: usual is known
            if lease.state == lifecycle.LEASED:
                self._watch(lease)

    def patience(self, kind: str, lease_seconds: float) -> float:
        """How long a copy of ``kind`` may be out before it gets a companion."""
        usual = self._usual.get(kind)
        wait = lease_seconds / 2 if usual is None else max(self.floor, FACTOR * usual)
        return min(wait, lease_seconds / 2)

    def watch(self, lease: Lease) -> None:
        if self.floor == 0:  # companions turned off
            return
        kind = lease.microtask.kind
        if kind not in self._usual:
            unsure = self._unsure.setdefault(kind, [])
            if len(unsure) >= UNSURE_KEPT:  # no result for a long while: keep live ones only
                unsure[:] = [held for held in unsure if held.state == lifecycle.LEASED]
            unsure.append(lease)
        self._watch(lease)

    def _watch(self, lease: Lease) -> None:
        patience = self.patience(lease.microtask.kind, lease.microtask.policy.lease_seconds)
        self._due.add(lease.issued_at + patience, lease.id)

    def overdue(self, now: float, leases: Mapping[str, Lease]) -> Iterator[Lease]:
        """Copies out past their patience whose microtask is still pending: marked slow."""
        for lease_id in self._due.due(now):
            lease = leases.get(lease_id)
            if lease is not None and not lease.slow and lease.microtask.state == lifecycle.PENDING:
                lease.slow = True
                yield lease

    def next(self, live: Container[str]) -> float | None:
        return self._due.next(live)
