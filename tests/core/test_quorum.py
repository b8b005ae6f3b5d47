"""Policy validation and the quorum verdicts of a tally."""

from __future__ import annotations

import pytest

from qortex.core.quorum import Policy, Tally, Verdict
from qortex.errors import InvalidInput


def same(a: object, b: object) -> bool:
    return a == b


def tally_of(*outputs: object) -> Tally:
    tally = Tally()
    for output in outputs:
        tally.add(output, same)
    return tally


# -- Policy ----------------------------------------------------------------


def test_valid_policy_keeps_its_fields() -> None:
    p = Policy(replicas=3, quorum=2, max_replicas=5, lease_seconds=30.0)
    assert (p.replicas, p.quorum, p.max_replicas, p.lease_seconds) == (3, 2, 5, 30.0)


def test_policy_boundaries_are_accepted() -> None:
    Policy(1, 1, 1, 0.001)
    Policy(3, 3, 3, 1)
    Policy(3, 1, 3, 1)


@pytest.mark.parametrize(
    ("replicas", "quorum", "max_replicas", "lease", "bad_field"),
    [
        (0, 1, 1, 1.0, "replicas"),
        (-1, 1, 1, 1.0, "replicas"),
        (3, 4, 5, 1.0, "quorum"),  # quorum > replicas
        (3, 0, 5, 1.0, "quorum"),
        (3, -2, 5, 1.0, "quorum"),
        (3, 2, 2, 1.0, "max_replicas"),  # max < replicas
        (3, 2, 0, 1.0, "max_replicas"),
        (3, 2, 5, 0.0, "lease_seconds"),
        (3, 2, 5, -1.0, "lease_seconds"),
    ],
)
def test_policy_validation(
    replicas: int, quorum: int, max_replicas: int, lease: float, bad_field: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        Policy(replicas, quorum, max_replicas, lease)
    assert info.value.detail == {"field": bad_field}
    assert info.value.status == 400


def test_policy_is_frozen() -> None:
    p = Policy(3, 2, 5, 1.0)
    with pytest.raises(AttributeError):
        p.quorum = 1  # type: ignore[misc]


# -- Tally ------------------------------------------------------------------


def test_tally_groups_by_agreement_against_first_member() -> None:
    tally = tally_of("a", "b", "a", "c", "b", "a")
    assert tally.returned == 6
    assert tally.groups == [["a", "a", "a"], ["b", "b"], ["c"]]
    assert tally.best == ["a", "a", "a"]


def test_tally_uses_the_kinds_agree_not_equality() -> None:
    def close(a: float, b: float) -> bool:
        return abs(a - b) <= 0.5

    tally = Tally()
    for value in (1.0, 1.4, 3.0, 0.6, 3.2):
        tally.add(value, close)
    assert tally.groups == [[1.0, 1.4, 0.6], [3.0, 3.2]]


def test_empty_tally_best_is_empty() -> None:
    assert Tally().best == []
    assert Tally().returned == 0


def test_initial_verdict_wants_replicas_copies() -> None:
    p = Policy(3, 2, 5, 1.0)
    assert Tally().verdict(p, outstanding=0) == Verdict(more=3)
    assert Tally().verdict(Policy(5, 3, 9, 1.0), 0) == Verdict(more=5)
    assert Tally().verdict(Policy(1, 1, 1, 1.0), 0) == Verdict(more=1)


@pytest.mark.parametrize(("outstanding", "more"), [(0, 3), (1, 2), (2, 1), (3, 0), (7, 0)])
def test_outstanding_copies_reduce_more(outstanding: int, more: int) -> None:
    assert Tally().verdict(Policy(3, 2, 5, 1.0), outstanding).more == more


def test_decides_at_quorum() -> None:
    p = Policy(3, 2, 5, 1.0)
    assert tally_of("x").verdict(p, 2) == Verdict(more=0)
    v = tally_of("x", "x").verdict(p, 1)
    assert v.is_decided is True
    assert v.decided == "x"
    assert v.inconclusive is False
    assert v.more == 0


def test_decides_on_the_first_output_of_the_winning_group() -> None:
    p = Policy(5, 3, 9, 1.0)
    assert tally_of("b", "a", "a", "b", "a").verdict(p, 0) == Verdict(decided="a", is_decided=True)


def test_decided_output_may_be_falsy() -> None:
    v = tally_of(0, 0).verdict(Policy(3, 2, 5, 1.0), 0)
    assert v.is_decided is True
    assert v.decided == 0


def test_quorum_one_decides_on_first_result() -> None:
    v = tally_of("only").verdict(Policy(1, 1, 1, 1.0), 0)
    assert v == Verdict(decided="only", is_decided=True)


def test_agreeing_results_below_quorum_want_the_rest_of_the_replicas() -> None:
    p = Policy(5, 3, 9, 1.0)
    # 2 agreeing back, 3 still out: nothing more needed now.
    assert tally_of("a", "a").verdict(p, 3) == Verdict(more=0)
    # 2 back, none out (the others expired): replicas - returned = 3 more.
    assert tally_of("a", "a").verdict(p, 0) == Verdict(more=3)


def test_disagreement_asks_for_more_copies() -> None:
    p = Policy(3, 2, 5, 1.0)
    # a, b back, nothing out: one more agreeing result could decide.
    assert tally_of("a", "b").verdict(p, 0) == Verdict(more=1)
    # a, b, c back: missing 1, room 2 -> 1 more.
    assert tally_of("a", "b", "c").verdict(p, 0) == Verdict(more=1)
    # a, b, c, d back: room 1 -> 1 more (the very last copy allowed).
    assert tally_of("a", "b", "c", "d").verdict(p, 0) == Verdict(more=1)


def test_disagreement_more_is_capped_by_max_replicas() -> None:
    p = Policy(3, 3, 4, 1.0)
    # best group 2, missing 1, room 1
    assert tally_of("a", "a", "b").verdict(p, 0) == Verdict(more=1)
    p = Policy(4, 3, 6, 1.0)
    # best 1, missing 2, room 3, replicas - returned = 1 -> wanted = 2
    assert tally_of("a", "b", "c").verdict(p, 0) == Verdict(more=2)
    assert tally_of("a", "b", "c").verdict(p, 1) == Verdict(more=1)


def test_disagreement_when_one_more_can_still_decide_with_outstanding() -> None:
    p = Policy(3, 2, 5, 1.0)
    # a, b back and the third copy still out: it may decide, issue nothing yet.
    assert tally_of("a", "b").verdict(p, 1) == Verdict(more=0)


def test_inconclusive_immediately_when_no_room_for_disagreement() -> None:
    p = Policy(3, 3, 3, 1.0)
    assert tally_of("a").verdict(p, 2) == Verdict(more=0)
    v = tally_of("a", "b").verdict(p, 1)
    assert v == Verdict(inconclusive=True)
    assert v.is_decided is False
    assert v.decided is None


def test_inconclusive_when_best_group_cannot_reach_quorum() -> None:
    p = Policy(3, 2, 5, 1.0)
    assert tally_of("a", "b", "c", "d", "e").verdict(p, 0) == Verdict(inconclusive=True)
    p = Policy(5, 3, 6, 1.0)
    # best 2 (a), missing 1, returned 6, room 0
    assert tally_of("a", "a", "b", "b", "c", "d").verdict(p, 0).inconclusive is True
    # best 1, missing 2, returned 5, room 1 < 2
    assert tally_of("a", "b", "c", "d", "e").verdict(p, 0).inconclusive is True
    # best 1, missing 2, returned 4, room 2: still possible
    assert tally_of("a", "b", "c", "d").verdict(p, 0) == Verdict(more=2)


def test_inconclusive_ignores_outstanding_copies() -> None:
    p = Policy(3, 3, 3, 1.0)
    assert tally_of("a", "b").verdict(p, 5).inconclusive is True


def test_quorum_reached_wins_over_max() -> None:
    p = Policy(3, 2, 3, 1.0)
    assert tally_of("a", "b", "a").verdict(p, 0) == Verdict(decided="a", is_decided=True)
