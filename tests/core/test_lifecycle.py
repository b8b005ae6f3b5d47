"""The lifecycle table: every legal move, and every other move refused by name."""

from __future__ import annotations

import itertools

import pytest

from qortex.core import lifecycle
from qortex.core.lifecycle import advance
from qortex.errors import IllegalTransition, QortexError

LEGAL = [
    (lifecycle.LEASED, "return", lifecycle.RETURNED),
    (lifecycle.LEASED, "expire", lifecycle.EXPIRED),
    (lifecycle.LEASED, "release", lifecycle.RELEASED),
    (lifecycle.LEASED, "cancel", lifecycle.CANCELLED),
    (lifecycle.PENDING, "decide", lifecycle.DECIDED),
    (lifecycle.PENDING, "give_up", lifecycle.INCONCLUSIVE),
    (lifecycle.PENDING, "cancel", lifecycle.CANCELLED),
    (lifecycle.SCHEDULED, "start", lifecycle.RUNNING),
    (lifecycle.RUNNING, "complete", lifecycle.COMPLETED),
    (lifecycle.RUNNING, "fail", lifecycle.FAILED),
    (lifecycle.DECIDED, "reopen", lifecycle.PENDING),  # a voter was caught lying
    (lifecycle.INCONCLUSIVE, "reopen", lifecycle.PENDING),
    (lifecycle.COMPLETED, "revise", lifecycle.RUNNING),  # one of its decisions reopened
    (lifecycle.FAILED, "revise", lifecycle.RUNNING),
    (lifecycle.RUNNING, "cancel", lifecycle.CANCELLED),
]

# "cancelled" is a state of all three; each state once.
ALL_STATES = tuple(
    dict.fromkeys(lifecycle.ASSIGNMENT_STATES + lifecycle.MICROTASK_STATES + lifecycle.TASK_STATES)
)
ALL_EVENTS = sorted({event for _, event in lifecycle.TRANSITIONS})


def test_state_names_are_the_documented_words() -> None:
    assert lifecycle.ASSIGNMENT_STATES == (
        "leased",
        "returned",
        "expired",
        "released",
        "cancelled",
    )
    assert lifecycle.MICROTASK_STATES == ("pending", "decided", "inconclusive", "cancelled")
    assert lifecycle.TASK_STATES == ("scheduled", "running", "completed", "failed", "cancelled")


@pytest.mark.parametrize(("state", "event", "after"), LEGAL)
def test_every_listed_transition(state: str, event: str, after: str) -> None:
    assert advance(state, event) == after


def test_table_lists_exactly_the_documented_moves() -> None:
    assert {(s, e): a for s, e, a in LEGAL} == lifecycle.TRANSITIONS


ILLEGAL = [
    (state, event)
    for state, event in itertools.product(ALL_STATES, ALL_EVENTS)
    if (state, event) not in lifecycle.TRANSITIONS
]


def test_illegal_list_is_not_trivially_small() -> None:
    # Every state by every event, less the legal moves.
    assert len(ILLEGAL) == len(ALL_STATES) * len(ALL_EVENTS) - len(LEGAL)
    assert len(LEGAL) == 15


@pytest.mark.parametrize(("state", "event"), ILLEGAL)
def test_illegal_moves_raise_naming_state_and_event(state: str, event: str) -> None:
    with pytest.raises(IllegalTransition) as info:
        advance(state, event)
    assert repr(state) in info.value.message
    assert repr(event) in info.value.message
    assert info.value.message == f"cannot {event!r} from state {state!r}"


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (lifecycle.RETURNED, "return"),  # a result twice
        (lifecycle.EXPIRED, "return"),  # a result after the deadline closed the lease
        (lifecycle.CANCELLED, "expire"),
        (lifecycle.DECIDED, "decide"),
        (lifecycle.INCONCLUSIVE, "decide"),
        (lifecycle.COMPLETED, "fail"),
        (lifecycle.FAILED, "complete"),
        (lifecycle.PENDING, "reopen"),  # only a settled microtask reopens
        (lifecycle.RUNNING, "revise"),
        (lifecycle.RETURNED, "reopen"),  # a returned copy is never taken back
        (lifecycle.CANCELLED, "cancel"),  # a task cancelled twice
        ("nonsense", "return"),
        (lifecycle.LEASED, "nonsense"),
    ],
)
def test_terminal_states_and_unknown_words_are_refused(state: str, event: str) -> None:
    with pytest.raises(IllegalTransition, match=f"cannot '{event}' from state '{state}'"):
        advance(state, event)


def test_illegal_transition_is_a_qortex_error_without_chained_key_error() -> None:
    with pytest.raises(QortexError) as info:
        advance(lifecycle.DECIDED, "give_up")
    assert isinstance(info.value, IllegalTransition)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ is True
