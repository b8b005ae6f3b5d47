"""What the coordinator hands its parts: the state they read, and the few calls back.

The parts (:mod:`qortex.intake`, :mod:`qortex.trust`, :mod:`qortex.taskbook`,
:mod:`qortex.control`) change the same memory as the coordinator, so they read
the same objects: :class:`CoordinatorState` holds them, built once by the
coordinator, and is never rebound. Where a part makes a change it must make
the coordinator's way (queue facts and events for one commit, decide a
microtask, place work, run something in the background, let a miner go), it
calls :class:`CoordinatorCalls`, just those methods. So no part imports the
coordinator, which imports them all.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from qortex.connections import Connection, MinerLink, Stats
from qortex.core.deadlines import Deadlines
from qortex.core.dispatch import DispatchTable
from qortex.core.kinds import KindRegistry, checker_of
from qortex.core.ledger import Ledger
from qortex.core.stragglers import Stragglers
from qortex.core.work import Outcome
from qortex.events import BusEvent, EventLog
from qortex.settings import Settings
from qortex.store import facts as f
from qortex.store.database import Store


class SignatureChecker(Protocol):
    """Checks signatures off the event loop; ``done`` gets each answer back on it."""

    def submit(self, check: Callable[[], bool], done: Callable[[bool], None]) -> None: ...


@dataclass(frozen=True, slots=True, eq=False)
class CoordinatorState:
    """The objects the coordinator and its parts share; each is changed in place."""

    settings: Settings
    store: Store
    kinds: KindRegistry
    clock: Callable[[], float]
    rng: random.Random
    loop: asyncio.AbstractEventLoop
    ledger: Ledger
    table: DispatchTable
    connections: dict[str, Connection]
    stats: Stats
    events: EventLog
    #: Checks result signatures on threads; ``None`` checks them inline.
    verifier: SignatureChecker | None
    #: Tasks given a deadline: the task book adds, control expires.
    task_deadlines: Deadlines


def empty_state(
    settings: Settings,
    store: Store,
    kinds: KindRegistry,
    clock: Callable[[], float],
    rng: random.Random,
    verifier: SignatureChecker | None,
) -> CoordinatorState:
    """What a coordinator starts from, in the running loop, before recovery fills it."""
    patience = Stragglers(settings.patience_seconds, settings.fault_fraction)
    # Results of these kinds may be checked (qortex.intake): placement counts on it.
    checked = [k for k in kinds if checker_of(kinds.get(k))] if settings.checker else []
    return CoordinatorState(
        settings=settings,
        store=store,
        kinds=kinds,
        clock=clock,
        rng=rng,
        loop=asyncio.get_running_loop(),
        ledger=Ledger(settings.fault_fraction),
        table=DispatchTable(rng, checkable=checked, stragglers=patience),
        connections={},
        stats=Stats(),
        events=EventLog(0),
        verifier=verifier,
        task_deadlines=Deadlines(),
    )


class CoordinatorCalls(Protocol):
    """The coordinator's methods its parts call: each changes state the coordinator's way."""

    def write(self, unit: list[f.Fact], events: list[BusEvent]) -> asyncio.Future[None]: ...

    def settle(
        self, outcome: Outcome, now: float, unit: list[f.Fact], events: list[BusEvent]
    ) -> None: ...

    def schedule_fill(self) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...

    def disconnect(self, miner_id: str, link: MinerLink, reason: str) -> None: ...
