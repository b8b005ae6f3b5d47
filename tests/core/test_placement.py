"""Placement and backtracking rules: networks, hoarders, adaptive replication, strikes.

Each test here fails if the mechanism it names is taken out of the table.
"""

from __future__ import annotations

from collections import Counter

import pytest

from qortex.core import lifecycle
from qortex.core.credibility import CHECKED_ERROR, SUSPECT_ERROR, Vote
from qortex.core.dispatch import DispatchTable
from qortex.core.work import Microtask, evaluate
from tests.core.tables import (
    CREDIBLE,
    F,
    connect,
    fingerprint,
    policy,
    queued,
    result,
    same,
    table,
    vote_of,
)


def holders_networks(t: DispatchTable, mt: Microtask) -> list[str]:
    return [t.miners[miner_id].network for miner_id in mt.holders]


# -- networks -----------------------------------------------------------------------


def test_copies_of_one_microtask_go_to_distinct_networks() -> None:
    t = table()
    connect(t, 6, slots=5, network=lambda i: f"10.0.{i % 2}.0/24")
    t.add_task("t", "x", policy(replicas=3), ["a", "b", "c"])
    t.fill(0.0)
    for mt in t.tasks["t"].microtasks:
        assert len(mt.holders) == 2  # two networks, so two copies, whatever the slots
        assert sorted(holders_networks(t, mt)) == ["10.0.0.0/24", "10.0.1.0/24"]
    connect(t, 1, prefix="far", network=lambda i: "192.0.2.0/24")
    (late,) = t.fill(1.0)
    assert late.miner_id == "far0"


@pytest.mark.parametrize("seed", range(10))
def test_a_crowd_on_one_network_gets_one_copy_per_microtask(seed: int) -> None:
    t = table(seed)
    connect(t, 30, slots=4, prefix="sybil", network=lambda i: "10.9.9.0/24", error=F)
    connect(t, 3, slots=4, prefix="honest", error=F)
    t.add_task("t", "x", policy(), [f"i{i}" for i in range(8)])
    t.fill(0.0)
    for mt in t.tasks["t"].microtasks:
        nets = holders_networks(t, mt)
        assert len(nets) == len(set(nets)) and nets.count("10.9.9.0/24") <= 1


@pytest.mark.parametrize("seed", range(10))
def test_suspect_networks_together_get_one_copy_of_a_microtask(seed: int) -> None:
    # Three networks where liars were banned, each with a fresh identity that
    # answers at once: only one of them may spend a copy of each microtask.
    t = table(seed)
    connect(t, 3, slots=4, prefix="suspect", error=SUSPECT_ERROR)
    connect(t, 5, slots=4, prefix="honest", error=F)
    t.add_task("t", "x", policy(), [f"i{i}" for i in range(3)])
    t.fill(0.0)
    for mt in t.tasks["t"].microtasks:
        suspects = [m for m in mt.holders if m.startswith("suspect")]
        assert len(suspects) <= 1, suspects  # free and fast, but one is all it may have
        assert len(mt.holders) - len(suspects) == 4  # the new miners a decision needs
    for lease in list(t.leases.values()):
        if lease.miner_id.startswith("suspect"):
            result(t, lease, "lie")  # answered: it stays the microtask's one suspect vote
    assert [lease.miner_id for lease in t.fill(1.0) if lease.miner_id.startswith("suspect")] == []


@pytest.mark.parametrize("seed", range(20))
def test_a_crowd_on_one_network_never_hides_the_other_networks(seed: int) -> None:
    t = table(seed)
    connect(t, 1, error=F, prefix="h", network=lambda i: "192.0.2.0/24")
    t.add_task("t", "x", policy(), ["a"])
    (first,) = t.fill(0.0)
    result(t, first, "x")  # one vote: it wants more copies
    connect(t, 300, error=F, prefix="sybil", network=lambda i: "10.0.0.0/24")
    connect(t, 2, error=F, prefix="far", network=lambda i: f"198.51.100.{i}/32")
    t.fill(1.0)
    nets = sorted(holders_networks(t, first.microtask))
    assert nets == ["10.0.0.0/24", "198.51.100.0/32", "198.51.100.1/32"]


def test_a_crowd_on_one_network_is_picked_as_often_as_one_machine() -> None:
    t = table(5)
    connect(t, 100, slots=100, error=CREDIBLE, prefix="sybil", network=lambda i: "10.0.0.0/24")
    connect(t, 1, slots=100, error=CREDIBLE, prefix="honest")
    t.add_task("t", "x", policy(), [f"i{i}" for i in range(100)])
    by = Counter(t.miners[lease.miner_id].network for lease in t.fill(0.0))
    assert 30 <= by["net-honest0"] <= 70  # a per-identity pick would give it about one


def test_a_returned_vote_keeps_its_network_from_another_copy() -> None:
    t = table()
    connect(t, 2, network=lambda i: "10.0.0.0/24", error=F)
    t.add_task("t", "x", policy(replicas=2, max_replicas=4), ["a"])
    (first,) = t.fill(0.0)
    result(t, first, "x")
    assert t.fill(1.0) == []  # the other miner shares the voter's network
    mt = first.microtask
    assert mt.networks() == {"10.0.0.0/24"} and mt.holders == {}


# -- hoarders ---------------------------------------------------------------------


def test_a_disconnect_that_drops_copies_excludes_the_miner_from_them() -> None:
    t = table()
    connect(t, 1, slots=2)
    t.add_task("t", "x", policy(), ["a", "b", "c"])
    dropped = {lease.microtask.id for lease in t.fill(0.0)}
    t.disconnect("m0")
    connect(t, 1, slots=3)  # the same miner comes back
    again = {lease.microtask.id for lease in t.fill(1.0)}
    assert again == {"t:0", "t:1", "t:2"} - dropped
    for mt in t.tasks["t"].microtasks:
        assert ("m0" in mt.excluded) == (mt.id in dropped)


def test_an_expired_copy_excludes_its_miner_from_that_microtask_only() -> None:
    t = table()
    connect(t, 1)
    t.add_task("t", "x", policy(), ["a", "b"])
    (first,) = t.fill(0.0)
    t.expire(100.0)
    (second,) = t.fill(100.0)
    assert second.microtask is not first.microtask
    assert first.microtask.excluded == {"m0"}


# -- adaptive replication --------------------------------------------------------------


def copies(t: DispatchTable) -> list[int]:
    return [len(mt.holders) for task in t.tasks.values() for mt in task.microtasks]


def test_a_credible_miners_copy_needs_no_companion() -> None:
    t = table()
    connect(t, 6, slots=3, error=CREDIBLE)
    t.add_task("t", "x", policy(), ["a", "b", "c"])
    t.fill(0.0)
    assert copies(t) == [1, 1, 1]


def test_new_miners_without_a_checker_need_several_agreeing() -> None:
    t = table()
    connect(t, 6, error=F)
    t.add_task("t", "x", policy(), ["a"])
    leases = t.fill(0.0)
    assert len(leases) == 4  # F^4 odds meet 1e-3; F^3 do not
    outcomes = [result(t, lease, "x") for lease in leases]
    assert [o.decided for o in outcomes] == [False, False, False, True]
    assert leases[0].microtask.error <= 1e-3


def test_a_copy_that_will_surely_be_checked_needs_no_companion() -> None:
    t = table(checkable=["x"])
    connect(t, 6, error=F)
    t.add_task("t", "x", policy(), ["a"])
    (lease,) = t.fill(0.0)
    assert lease.projected.error == CHECKED_ERROR
    assert result(t, lease, "x", checked=True).decided


def test_checks_stop_being_sure_once_a_miner_is_credible() -> None:
    t = table(checkable=["x"])
    connect(t, 2, error=CREDIBLE)
    t.add_task("t", "x", policy(), ["a"])
    (lease,) = t.fill(0.0)
    assert lease.projected.error == CREDIBLE


def test_a_known_answer_item_needs_no_companion() -> None:
    t = table()
    connect(t, 6, error=F)
    t.add_task("t", "x", policy(), ["real", "gold"], gold={1: "x"})
    t.fill(0.0)
    assert copies(t) == [4, 1]


def test_a_known_answer_item_still_meets_the_clients_floors() -> None:
    t = table()
    connect(t, 6, error=F)
    task = t.add_task("t", "x", policy(replicas=3, quorum=2), ["gold"], gold={0: "x"})
    leases = t.fill(0.0)
    assert len(leases) == 3
    result(t, leases[0], "x", checked=True)
    outcome = result(t, leases[1], "x", checked=True)
    assert outcome.decided and task.state == lifecycle.COMPLETED


@pytest.mark.parametrize("error", [CREDIBLE, CHECKED_ERROR])
def test_the_clients_floors_hold_for_credible_miners(error: float) -> None:
    t = table()
    connect(t, 5, error=error)
    t.add_task("t", "x", policy(replicas=3, quorum=2), ["a"])
    a, b, c = t.fill(0.0)
    assert not result(t, a, "x").decided
    outcome = result(t, b, "x")
    assert outcome.decided and outcome.cancelled == [c]


def test_a_credible_holder_spares_the_new_miners_copies() -> None:
    t = table()
    connect(t, 1, error=CREDIBLE, prefix="old")
    t.add_task("t", "x", policy(), ["a"])
    (lease,) = t.fill(0.0)
    connect(t, 5, error=F, prefix="new")
    assert t.fill(0.0) == []  # the credible copy alone can decide it
    t.add_task("u", "x", policy(), ["b"])
    assert len(t.fill(0.0)) == 4  # new miners' copies need companions
    t.disconnect("old0")
    assert len(lease.microtask.holders) == 0
    assert len(t.fill(1.0)) == 1  # the one new miner left free


# -- striking a banned miner's votes ------------------------------------------------------


def decided_by_four_new_miners() -> tuple[DispatchTable, Microtask]:
    t = table()
    connect(t, 6, error=F)
    task = t.add_task("t", "x", policy(), ["a"])
    for lease in t.fill(0.0):
        result(t, lease, "x")
    assert task.state == lifecycle.COMPLETED
    return t, task.microtasks[0]


def test_strike_drops_votes_of_an_undecided_microtask_and_requeues_it() -> None:
    t = table()
    connect(t, 4, error=F)
    t.add_task("t", "x", policy(), ["a"])
    a, b, *_ = t.fill(0.0)
    result(t, a, "x")
    result(t, b, "y")
    mt = a.microtask
    reopened, outcome = t.strike(mt, b.miner_id)
    assert (reopened, outcome) == (False, None)
    assert mt.tally.voters() == {a.miner_id} and mt.tally.returned == 1
    assert mt.state == lifecycle.PENDING
    assert b.miner_id in mt.excluded  # a banned miner never gets it back


def test_strike_reopens_a_decision_that_no_longer_meets_the_target() -> None:
    t, mt = decided_by_four_new_miners()
    task = t.tasks["t"]
    voter = next(iter(mt.tally.voters()))
    reopened, outcome = t.strike(mt, voter)
    assert reopened and outcome is None
    assert (mt.state, mt.decision) == (lifecycle.PENDING, None)
    assert mt.error > mt.policy.target_error
    assert (task.state, task.open, t.open) == (lifecycle.RUNNING, 1, 1)
    assert queued(t) == 1
    connect(t, 2, error=F, prefix="fresh")
    (lease,) = t.fill(1.0)
    outcome = result(t, lease, "x", now=1.0)
    assert outcome.decided and outcome.task is task and task.state == lifecycle.COMPLETED


def test_strike_keeps_a_decision_that_still_meets_the_target() -> None:
    t = table()
    connect(t, 1, error=F, prefix="new")
    t.add_task("t", "x", policy(replicas=2), ["a"])
    connect(t, 1, error=CREDIBLE, prefix="old")
    leases = t.fill(0.0)
    by = {lease.miner_id: lease for lease in leases}
    result(t, by["new0"], "x")
    assert result(t, by["old0"], "x").decided
    mt = by["new0"].microtask
    assert t.strike(mt, "new0") == (False, None)
    assert (mt.state, mt.decision) == (lifecycle.DECIDED, "x")
    assert mt.error == pytest.approx(CREDIBLE)
    assert t.tasks["t"].state == lifecycle.COMPLETED and queued(t) == 0


def test_strike_redecides_at_once_when_the_rest_favour_another_answer() -> None:
    t = table()
    task = t.add_task("t", "x", policy(replicas=3), ["a"])
    mt = task.microtasks[0]
    t.restore_result(mt, Vote("h1", "n1", 0.02), "truth", same)
    t.restore_result(mt, Vote("h2", "n2", 0.02), "truth", same)
    t.restore_result(mt, Vote("liar", "n3", 1e-8), "lie", same)
    verdict = mt.tally.verdict(mt.policy, [])
    assert verdict.is_decided and verdict.decided == "lie"
    t.settle(mt, lifecycle.DECIDED, "lie", verdict.error)
    reopened, outcome = t.strike(mt, "liar")
    assert reopened and outcome is not None and outcome.decided
    assert (mt.state, mt.decision) == (lifecycle.DECIDED, "truth")
    assert mt.error <= mt.policy.target_error
    assert outcome.task is task and task.state == lifecycle.COMPLETED and t.open == 0


def test_strike_decides_an_undecided_microtask_the_liar_was_holding_back() -> None:
    t = table()
    connect(t, 1, error=F, prefix="liar")
    connect(t, 1, error=5e-4, prefix="honest")
    task = t.add_task("t", "x", policy(replicas=2), ["a"])
    by = {lease.miner_id: lease for lease in t.fill(0.0)}
    result(t, by["liar0"], "lie")
    assert not result(t, by["honest0"], "truth").decided  # the dissent holds it back
    mt = task.microtasks[0]
    reopened, outcome = t.strike(mt, "liar0")
    assert not reopened and outcome is not None and outcome.decided
    assert (mt.state, mt.decision) == (lifecycle.DECIDED, "truth")
    assert task.state == lifecycle.COMPLETED and queued(t) == 0


def test_strike_reopens_an_inconclusive_microtask_that_can_now_be_decided() -> None:
    t = table()
    connect(t, 3, error=CREDIBLE)
    task = t.add_task("t", "x", policy(replicas=2, quorum=2, max_replicas=2), ["a"])
    a, b = t.fill(0.0)
    result(t, a, "x")
    assert result(t, b, "y").inconclusive and task.state == lifecycle.FAILED
    reopened, outcome = t.strike(a.microtask, b.miner_id)
    assert reopened and outcome is None
    assert task.state == lifecycle.RUNNING and a.microtask.state == lifecycle.PENDING
    (c,) = t.fill(1.0)
    assert result(t, c, "x", now=1.0).decided and task.state == lifecycle.COMPLETED


def test_a_plugin_failure_is_never_reopened() -> None:
    t = table()
    connect(t, 2)
    t.add_task("t", "x", policy(), ["a"])
    (lease,) = t.fill(0.0)
    mt = lease.microtask
    t.fail(mt, "the kind failed", lease)
    assert t.strike(mt, lease.miner_id) == (False, None)
    assert mt.state == lifecycle.INCONCLUSIVE


# -- plugins that raise ----------------------------------------------------------------


def test_an_agree_that_raises_inside_evaluate_changes_nothing() -> None:
    def broken(a: object, b: object) -> bool:
        raise RuntimeError("plugin bug")

    t = table()
    connect(t, 3, error=F)
    t.add_task("t", "x", policy(), ["a"])
    a, b, *_ = t.fill(0.0)
    result(t, a, "x")
    mt = a.microtask
    before = fingerprint(t, [mt])
    taken = t.take(b.miner_id, b.id, mt.id, 0.0)
    with pytest.raises(RuntimeError):
        evaluate(taken, vote_of(t, taken), "x", broken)
    after = fingerprint(t, [mt])
    assert after == before
    outcome = t.fail(mt, "agree raised", taken)
    assert outcome.inconclusive and b.state == lifecycle.RETURNED
