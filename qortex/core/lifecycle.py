"""Every state a microtask or an assignment can be in, and every legal move.

Everything that changes one of these states goes through :func:`advance`, so
this table is the whole lifecycle: a move it does not list is a bug and raises
:class:`IllegalTransition` naming the state and the event.

An assignment is one copy of a microtask leased to one miner::

    leased --return--> returned      the miner's signed result was accepted
    leased --expire--> expired       the deadline passed first
    leased --release-> released      the miner disconnected (or the server restarted)
    leased --cancel--> cancelled     the microtask was decided without it

A microtask waits for copies until the quorum decides it or gives up::

    pending --decide--> decided
    pending --give_up-> inconclusive
    pending --cancel--> cancelled     its task was cancelled or ran out of time
    decided/inconclusive --reopen--> pending    a voter was caught lying: decide again

A task is the sum of its microtasks::

    scheduled --start---> running     its notBefore came: microtasks are offered from now on
    running --complete--> completed   every microtask decided
    running --fail------> failed      some microtask inconclusive, or the task's deadline passed
    running --cancel----> cancelled   the operator cancelled it
    completed/failed --revise--> running   a decision was reopened
"""

from __future__ import annotations

from typing import Final

from qortex.errors import IllegalTransition

LEASED: Final = "leased"
RETURNED: Final = "returned"
EXPIRED: Final = "expired"
RELEASED: Final = "released"
CANCELLED: Final = "cancelled"

PENDING: Final = "pending"
DECIDED: Final = "decided"
INCONCLUSIVE: Final = "inconclusive"

SCHEDULED: Final = "scheduled"
RUNNING: Final = "running"
COMPLETED: Final = "completed"
FAILED: Final = "failed"

TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    (LEASED, "return"): RETURNED,
    (LEASED, "expire"): EXPIRED,
    (LEASED, "release"): RELEASED,
    (LEASED, "cancel"): CANCELLED,
    (PENDING, "decide"): DECIDED,
    (PENDING, "give_up"): INCONCLUSIVE,
    (PENDING, "cancel"): CANCELLED,
    (SCHEDULED, "start"): RUNNING,
    (RUNNING, "complete"): COMPLETED,
    (RUNNING, "fail"): FAILED,
    (DECIDED, "reopen"): PENDING,
    (INCONCLUSIVE, "reopen"): PENDING,
    (COMPLETED, "revise"): RUNNING,
    (FAILED, "revise"): RUNNING,
    (RUNNING, "cancel"): CANCELLED,
}

ASSIGNMENT_STATES: Final = (LEASED, RETURNED, EXPIRED, RELEASED, CANCELLED)
MICROTASK_STATES: Final = (PENDING, DECIDED, INCONCLUSIVE, CANCELLED)
TASK_STATES: Final = (SCHEDULED, RUNNING, COMPLETED, FAILED, CANCELLED)


def advance(state: str, event: str) -> str:
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise IllegalTransition(f"cannot {event!r} from state {state!r}") from None
