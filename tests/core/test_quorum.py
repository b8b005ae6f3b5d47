"""Policy validation and the verdicts of a tally: decided by credibility, floors, hopeless."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from typing import Any

import pytest

from qortex.core.credibility import CHECKED_ERROR, Vote, group_errors
from qortex.core.quorum import Policy, Tally
from qortex.errors import InvalidInput

F = 0.1  # a new miner's error rate at the default fault fraction
TARGET = 1e-3


def same(a: object, b: object) -> bool:
    return a == b


def v(miner: str, error: float = F, network: str | None = None) -> Vote:
    return Vote(miner, network or f"net-{miner}", error)


def tally_of(*pairs: tuple[Vote, Any]) -> Tally:
    tally = Tally()
    for vote, output in pairs:
        tally = tally.adding(vote, output, same)
    return tally


def policy(replicas: int = 1, quorum: int = 1, max_replicas: int = 10) -> Policy:
    return Policy(replicas, quorum, max_replicas, 30.0, TARGET)


# -- Policy ------------------------------------------------------------------------


def test_valid_policy_keeps_its_fields() -> None:
    p = Policy(replicas=3, quorum=2, max_replicas=5, lease_seconds=30.0, target_error=1e-4)
    assert (p.replicas, p.quorum, p.max_replicas, p.lease_seconds) == (3, 2, 5, 30.0)
    assert p.target_error == 1e-4
    assert Policy(1, 1, 1, 1.0).target_error == 1e-3


@pytest.mark.parametrize(
    ("replicas", "quorum", "max_replicas", "lease", "target", "bad_field"),
    [
        (0, 1, 1, 1.0, 1e-3, "replicas"),
        (3, 4, 5, 1.0, 1e-3, "quorum"),  # quorum > replicas
        (3, 0, 5, 1.0, 1e-3, "quorum"),
        (3, 2, 2, 1.0, 1e-3, "max_replicas"),  # max < replicas
        (3, 2, 5, 0.0, 1e-3, "lease_seconds"),
        (3, 2, 5, -1.0, 1e-3, "lease_seconds"),
        (3, 2, 5, 1.0, 0.0, "targetError"),
        (3, 2, 5, 1.0, 1.0, "targetError"),
        (3, 2, 5, 1.0, -0.1, "targetError"),
    ],
)
def test_policy_validation(
    replicas: int, quorum: int, max_replicas: int, lease: float, target: float, bad_field: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        Policy(replicas, quorum, max_replicas, lease, target)
    assert info.value.detail == {"field": bad_field}
    assert info.value.status == 400


def test_policy_boundaries_are_accepted_and_frozen() -> None:
    Policy(1, 1, 1, 0.001, 1e-12)
    p = Policy(3, 3, 3, 1, 0.999)
    with pytest.raises(FrozenInstanceError):
        p.quorum = 1  # type: ignore[misc]


# -- Tally: grouping, immutability, striking -----------------------------------------------


def test_adding_returns_a_new_tally_and_leaves_the_old_one_alone() -> None:
    empty = Tally()
    one = empty.adding(v("a"), "x", same)
    assert empty.groups == () and empty.returned == 0
    assert one.returned == 1 and one.groups[0].output == "x"
    two = one.adding(v("b"), "x", same)
    assert len(one.groups[0].votes) == 1 and len(two.groups[0].votes) == 2


def test_groups_by_agreement_against_the_first_member() -> None:
    tally = tally_of((v("a"), "x"), (v("b"), "y"), (v("c"), "x"), (v("d"), "z"), (v("e"), "y"))
    assert tally.returned == 5
    assert [g.output for g in tally.groups] == ["x", "y", "z"]
    assert [[x.miner_id for x in g.votes] for g in tally.groups] == [["a", "c"], ["b", "e"], ["d"]]
    assert tally.voters() == {"a", "b", "c", "d", "e"}


def test_grouping_uses_the_kinds_agree_not_equality() -> None:
    def close(a: float, b: float) -> bool:
        return abs(a - b) <= 0.1

    tally = Tally()
    for i, out in enumerate([1.0, 1.05, 1.5, 0.95]):
        tally = tally.adding(v(f"m{i}"), out, close)
    assert [(g.output, len(g.votes)) for g in tally.groups] == [(1.0, 3), (1.5, 1)]


def test_an_agree_that_raises_leaves_the_tally_unchanged() -> None:
    def broken(a: object, b: object) -> bool:
        raise RuntimeError("plugin bug")

    tally = tally_of((v("a"), "x"))
    with pytest.raises(RuntimeError):
        tally.adding(v("b"), "x", broken)
    assert tally.returned == 1 and len(tally.groups[0].votes) == 1


def test_without_strikes_a_miners_votes_and_empty_groups() -> None:
    tally = tally_of((v("a"), "x"), (v("liar"), "y"), (v("b"), "x"))
    struck = tally.without("liar")
    assert struck.returned == 2
    assert [g.output for g in struck.groups] == ["x"]
    assert struck.voters() == {"a", "b"}
    assert tally.returned == 3  # the original stands
    assert tally.without("nobody") == tally


def test_best_is_the_most_credible_group_not_the_largest() -> None:
    sure = v("checked", CHECKED_ERROR)
    tally = tally_of((v("a"), "lie"), (v("b"), "lie"), (sure, "truth"))
    best, error = tally.best()
    assert best is not None and best.output == "truth"
    assert error == group_errors([g.votes for g in tally.groups])[1]
    assert Tally().best() == (None, 1.0)


# -- verdicts ---------------------------------------------------------------------


def test_three_new_miners_agreeing_are_not_enough_four_are() -> None:
    p = policy()
    three = tally_of(*[(v(f"m{i}"), "x") for i in range(3)])
    assert not three.verdict(p, []).is_decided
    four = three.adding(v("m3"), "x", same)
    verdict = four.verdict(p, [])
    assert verdict.is_decided and verdict.decided == "x" and verdict.votes == 4
    assert verdict.error <= TARGET < three.verdict(p, []).error


def test_one_credible_or_checked_vote_decides_alone() -> None:
    for error in (CHECKED_ERROR, TARGET / 2):
        verdict = tally_of((v("a", error), "x")).verdict(policy(), [])
        assert verdict.is_decided and verdict.decided == "x" and verdict.votes == 1


def test_a_falsy_output_can_be_decided() -> None:
    verdict = tally_of((v("a", CHECKED_ERROR), 0)).verdict(policy(), [])
    assert verdict.is_decided and verdict.decided == 0


def test_the_clients_quorum_is_a_floor_even_for_certain_votes() -> None:
    p = policy(replicas=3, quorum=2)
    one = tally_of((v("a", CHECKED_ERROR), "x"))
    assert not one.verdict(p, []).is_decided
    two = one.adding(v("b", CHECKED_ERROR), "x", same)
    assert two.verdict(p, []).is_decided


def test_votes_of_one_network_do_not_reach_the_target_however_many() -> None:
    crowd = tally_of(*[(v(f"s{i}", F, "10.0.0.0/24"), "x") for i in range(30)])
    verdict = crowd.verdict(policy(max_replicas=40), [])
    assert not verdict.is_decided
    assert verdict.error == pytest.approx(F)
    assert verdict.votes == 30


def test_a_dissent_keeps_a_group_from_being_decided() -> None:
    p = policy()
    agreeing = [(v(f"m{i}"), "x") for i in range(4)]
    assert tally_of(*agreeing).verdict(p, []).is_decided
    assert not tally_of(*agreeing, (v("other"), "y")).verdict(p, []).is_decided


def test_inconclusive_when_max_is_reached_and_nothing_can_decide() -> None:
    p = policy(max_replicas=2)
    tally = tally_of((v("a"), "x"), (v("b"), "y"))
    verdict = tally.verdict(p, [])
    assert verdict.inconclusive and not verdict.is_decided


def test_not_inconclusive_while_outstanding_copies_could_still_decide() -> None:
    p = policy(max_replicas=3)
    tally = tally_of((v("a"), "x"), (v("b"), "y"))
    assert tally.verdict(p, [v("c", CHECKED_ERROR)]).inconclusive is False
    assert tally.verdict(p, [v("c")]).inconclusive is True


def test_not_inconclusive_below_max_replicas() -> None:
    tally = tally_of((v("a"), "x"), (v("b"), "y"))
    verdict = tally.verdict(policy(max_replicas=10), [])
    assert not verdict.inconclusive and not verdict.is_decided


# -- how many copies to issue (adaptive replication) ----------------------------------------


def test_wants_the_replicas_floor_first() -> None:
    p = policy(replicas=3, quorum=1)
    sure = v("s", CHECKED_ERROR)
    assert Tally().wants_more(p, [sure, v("t", CHECKED_ERROR)])
    assert not Tally().wants_more(p, [sure, v("t", CHECKED_ERROR), v("u", CHECKED_ERROR)])


@pytest.mark.parametrize(("outstanding", "more"), [(0, True), (1, True), (3, True), (4, False)])
def test_new_miners_want_companions_until_unanimity_would_meet_the_target(
    outstanding: int, more: bool
) -> None:
    out = [v(f"m{i}") for i in range(outstanding)]
    assert Tally().wants_more(policy(), out) is more


def test_one_copy_to_a_credible_miner_needs_no_companion() -> None:
    assert not Tally().wants_more(policy(), [v("c", TARGET / 10)])
    assert not Tally().wants_more(policy(), [v("checked", CHECKED_ERROR)])
    assert Tally().wants_more(policy(), [v("c", TARGET * 10)])


def test_returned_votes_count_toward_what_outstanding_copies_need() -> None:
    tally = tally_of((v("a"), "x"), (v("b"), "x"))
    assert tally.wants_more(policy(), [v("c")])
    assert not tally.wants_more(policy(), [v("c"), v("d")])


def test_never_more_than_max_replicas() -> None:
    p = policy(max_replicas=3)
    tally = tally_of((v("a"), "x"))
    assert tally.wants_more(p, [v("b")])
    assert not tally.wants_more(p, [v("b"), v("c")])


def test_can_still_decide_only_when_outstanding_unanimity_would() -> None:
    p = policy(replicas=2, quorum=2)
    tally = tally_of((v("a", CHECKED_ERROR), "x"))
    assert not tally.can_still_decide(p, [])  # the quorum floor
    assert tally.can_still_decide(p, [v("b")])
    split = tally_of((v("a"), "x"), (v("b"), "y"))
    assert not split.can_still_decide(policy(), [v("c")])
    assert split.can_still_decide(policy(), [v("c", CHECKED_ERROR)])
    assert not Tally().can_still_decide(policy(), [])
