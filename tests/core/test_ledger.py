"""Standings: checks passed, bans, earned slots, reputation reports; and how slots place work."""

from __future__ import annotations

import itertools

import pytest

from qortex.core.credibility import (
    SUSPECT_ERROR,
    VERIFIED_ERROR,
    error_rate,
    passes_needed,
    reputation,
)
from qortex.core.dispatch import DispatchTable
from qortex.core.ledger import ACTIVE, BANNED, REPORT_STEP, VERIFIED, Ledger
from tests.core.tables import TARGET, F, policy, result, table

LEASE_END = 100.0

# -- the ledger on its own ------------------------------------------------------------


def test_a_stranger_starts_with_the_prior_and_one_slot() -> None:
    ledger = Ledger(F)
    assert ledger.error("new") == F
    assert ledger.reputation("new") == 0
    assert not ledger.banned("new")
    standing = ledger.get("new")
    assert (standing.passes, standing.status, standing.allowance) == (0, ACTIVE, 1)


def test_a_suspect_networks_results_count_as_a_coin_toss_until_it_is_cleared() -> None:
    ledger = Ledger(F)
    for _ in range(50):
        ledger.passed("veteran", slots=4)
    ledger.set_status("mine", VERIFIED, "the operator's own")
    ledger.suspect("10.0.0.0/24", until=100.0)
    assert ledger.vote_error("new", "10.0.0.0/24", 50.0) == SUSPECT_ERROR
    assert ledger.vote_error("veteran", "10.0.0.0/24", 50.0) == SUSPECT_ERROR
    assert ledger.vote_error("mine", "10.0.0.0/24", 50.0) == VERIFIED_ERROR
    assert ledger.vote_error("new", "10.0.1.0/24", 50.0) == F  # other networks as before
    assert ledger.vote_error("new", "10.0.0.0/24", 100.0) == F  # suspicion lapses
    assert ledger.vote_error("veteran", "10.0.0.0/24", 100.0) == ledger.error("veteran")
    ledger.suspect("10.0.0.0/24", until=60.0)  # an earlier end never shortens it
    assert ledger.vote_error("new", "10.0.0.0/24", 80.0) == SUSPECT_ERROR


def test_each_pass_lowers_the_error_and_earns_a_slot_up_to_the_declared_ones() -> None:
    ledger = Ledger(F)
    for k in range(1, 7):
        ledger.passed("m", slots=4)
        assert ledger.get("m").passes == k
        assert ledger.error("m") == error_rate(k, F)
        assert ledger.get("m").allowance == min(4, 1 + k)


def test_a_miner_declaring_no_slots_still_has_one() -> None:
    ledger = Ledger(F)
    ledger.passed("m", slots=0)
    assert ledger.get("m").allowance == 1


def test_letting_go_halves_the_earned_slots_but_never_below_one() -> None:
    ledger = Ledger(F)
    for _ in range(9):
        ledger.passed("m", slots=16)
    assert ledger.get("m").allowance == 10
    halves = []
    for _ in range(5):
        ledger.let_go("m")
        halves.append(ledger.get("m").allowance)
    assert halves == [5, 2, 1, 1, 1]
    assert ledger.get("m").passes == 9  # credibility is not lost, only slots


def test_a_ban_is_total() -> None:
    ledger = Ledger(F)
    for _ in range(100):
        ledger.passed("m", slots=8)
    report = ledger.ban("m", "failed a check")
    assert ledger.banned("m")
    assert ledger.error("m") == 1.0
    assert ledger.reputation("m") == 0
    assert ledger.get("m").allowance == 1
    assert (report.miner_id, report.reputation, report.passes) == ("m", 0, 100)
    assert report.reason == "failed a check"


def test_a_verified_miner_is_trusted_and_can_be_set_back() -> None:
    ledger = Ledger(F)
    report = ledger.set_status("m", VERIFIED, "operator")
    assert ledger.error("m") == VERIFIED_ERROR
    assert report.reputation == ledger.reputation("m") == 1000
    ledger.set_status("m", ACTIVE, "operator")
    assert ledger.error("m") == F


def test_load_restores_a_standing_without_a_fresh_report() -> None:
    ledger = Ledger(F)
    ledger.load("m", passes=40, status=ACTIVE, allowance=0)
    assert ledger.get("m").allowance == 1
    assert ledger.error("m") == error_rate(40, F)
    assert ledger.get("m").reported == ledger.reputation("m")
    assert ledger.passed("m", slots=4) is None  # a small step is not news
    ledger.load("b", passes=3, status=BANNED, allowance=4)
    assert ledger.banned("b") and ledger.error("b") == 1.0


def test_forget_drops_only_strangers() -> None:
    ledger = Ledger(F)
    ledger.get("stranger")
    ledger.passed("known", slots=1)
    ledger.ban("liar", "lied")
    for miner_id in ("stranger", "known", "liar", "never-seen"):
        ledger.forget(miner_id)
    assert ledger.get("known").passes == 1
    assert ledger.banned("liar")
    assert "stranger" not in ledger._standing


def test_reputation_reports_come_only_in_steps() -> None:
    ledger = Ledger(F)
    reports = [ledger.passed("m", slots=1) for _ in range(200)]
    made = [r for r in reports if r is not None]
    assert made[0].reputation == reputation(error_rate(1, F), F)
    assert made[0].reason == "check passed"
    assert 1 < len(made) < 40
    scores = [r.reputation for r in made]
    assert all(b - a >= REPORT_STEP for a, b in itertools.pairwise(scores))
    assert reports[-1] is None


def test_a_miner_becomes_credible_after_passes_needed() -> None:
    ledger = Ledger(F)
    n = passes_needed(TARGET, F)
    for _ in range(n - 1):
        ledger.passed("m", slots=1)
    assert ledger.error("m") > TARGET
    ledger.passed("m", slots=1)
    assert ledger.error("m") <= TARGET


# -- earned slots in placement ----------------------------------------------------------


def newcomer(t: DispatchTable, ledger: Ledger, slots: int) -> str:
    standing = ledger.get("new")
    t.connect("new", slots, ["x"], "net-new", ledger.error("new"), standing.allowance)
    return "new"


def test_a_new_miner_gets_one_copy_whatever_it_declares() -> None:
    t, ledger = table(), Ledger(F)
    newcomer(t, ledger, slots=64)
    t.add_task("t", "x", policy(), [f"i{i}" for i in range(20)])
    assert len(t.fill(0.0)) == 1
    assert t.miners["new"].free == 0


def test_usable_slots_grow_with_passes_up_to_the_declared_ones() -> None:
    t, ledger = table(), Ledger(F)
    newcomer(t, ledger, slots=3)
    t.add_task("t", "x", policy(max_replicas=1), [f"i{i}" for i in range(30)])
    held = []
    for _ in range(6):
        held += t.fill(0.0)
        assert len(t.miners["new"].leases) == min(3, ledger.get("new").allowance)
        lease = held.pop(0)
        result(t, lease, "out", checked=True)
        ledger.passed("new", slots=3)
        t.rate("new", ledger.error("new"), ledger.get("new").allowance)
    assert ledger.get("new").allowance == 3
    assert t.miners["new"].error == ledger.error("new") < F


def test_letting_go_halves_the_slots_placement_uses() -> None:
    t, ledger = table(), Ledger(F)
    for _ in range(7):
        ledger.passed("new", slots=8)
    newcomer(t, ledger, slots=8)
    t.add_task("t", "x", policy(max_replicas=1), [f"i{i}" for i in range(40)])
    first = t.fill(0.0)
    assert len(first) == 8
    expired = t.expire(LEASE_END)
    assert len(expired) == 8
    ledger.let_go("new")
    t.rate("new", ledger.error("new"), ledger.get("new").allowance)
    assert len(t.fill(LEASE_END)) == 4


def test_rate_never_leaves_a_miner_without_a_slot_and_ignores_strangers() -> None:
    t = table()
    t.connect("m", 4, ["x"], "net-m", F, allowance=4)
    t.rate("m", F, 0)
    assert t.miners["m"].allowance == 1 and t.miners["m"].free == 1
    t.rate("gone", F, 3)  # no error, nothing created
    assert "gone" not in t.miners


@pytest.mark.parametrize("allowance", [1, 2, 5])
def test_connect_restores_earned_slots(allowance: int) -> None:
    t = table()
    t.connect("m", 8, ["x"], "net-m", F, allowance=allowance)
    t.add_task("t", "x", policy(max_replicas=1), [f"i{i}" for i in range(10)])
    assert len(t.fill(0.0)) == allowance
