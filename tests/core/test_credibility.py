"""The credibility arithmetic: error bounds, how sure agreeing votes make us, networks."""

from __future__ import annotations

import math

import pytest

from qortex.core.credibility import (
    CHECKED_ERROR,
    Vote,
    check_probability,
    error_rate,
    group_errors,
    network_of,
    passes_needed,
    projected_error,
    reputation,
)

F = 0.1  # the assumed fraction of liars


def vote(miner: str, error: float, network: str | None = None) -> Vote:
    return Vote(miner, network or f"net-{miner}", error)


# -- a miner's error rate ----------------------------------------------------------


def test_a_new_miner_is_as_doubtful_as_the_fraction_of_liars() -> None:
    assert error_rate(0, F) == F
    assert error_rate(0, 0.3) == 0.3
    assert error_rate(-5, F) == F  # no negative record buys anything


@pytest.mark.parametrize("k", [1, 2, 10, 100, 10_000])
def test_each_pass_lowers_the_bound_as_sarmenta_says(k: int) -> None:
    assert error_rate(k, F) == pytest.approx(F / (1 + (1 - F) * math.e * k))
    assert error_rate(k, F) < error_rate(k - 1, F)


def test_the_bound_never_reaches_zero() -> None:
    assert 0 < error_rate(10**9, F) < 1e-9


@pytest.mark.parametrize(("target", "f"), [(1e-3, 0.1), (1e-2, 0.1), (1e-6, 0.3), (0.05, 0.2)])
def test_passes_needed_is_the_first_count_that_meets_the_target(target: float, f: float) -> None:
    n = passes_needed(target, f)
    assert n > 0
    assert error_rate(n, f) <= target
    assert error_rate(n - 1, f) > target


def test_no_pass_is_needed_when_the_target_is_looser_than_the_prior() -> None:
    assert passes_needed(0.1, 0.1) == 0
    assert passes_needed(0.5, 0.1) == 0


def test_default_settings_need_a_few_dozen_passes() -> None:
    # f = 0.1, target 1e-3: (100 - 1) / (0.9 e) = 40.5 -> 41
    assert passes_needed(1e-3, 0.1) == 41


# -- reputation and checks ---------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "score"),
    [(F, 0), (F / 2, 500), (F / 4, 750), (0.0, 1000), (1.0, 0), (CHECKED_ERROR, 1000)],
)
def test_reputation_is_the_share_of_the_initial_doubt_removed(error: float, score: int) -> None:
    assert reputation(error, F) == score


def test_reputation_grows_with_passes_and_stays_in_range() -> None:
    scores = [reputation(error_rate(k, F), F) for k in range(0, 200, 10)]
    assert scores == sorted(scores)
    assert scores[0] == 0 and all(0 <= s <= 1000 for s in scores)
    assert reputation(0.05, 0.0) == 1000  # nobody is assumed to lie


def test_every_result_is_checked_until_the_miners_word_meets_the_target() -> None:
    assert check_probability(0.1, 1e-3, 0.05) == 1.0
    assert check_probability(1e-3, 1e-3, 0.05) == 0.05
    assert check_probability(1e-5, 1e-3, 0.2) == 0.2
    assert check_probability(1e-5, 1e-3, 0.0) == 0.0


# -- how sure a microtask's groups make us ---------------------------------------------


def test_no_groups_no_errors() -> None:
    assert group_errors([]) == []


@pytest.mark.parametrize("e", [0.5, 0.1, 1e-3, 1e-9])
def test_one_vote_is_as_wrong_as_its_voter(e: float) -> None:
    assert group_errors([[vote("a", e)]]) == [pytest.approx(e)]


def test_agreeing_votes_from_distinct_networks_multiply() -> None:
    e1, e2 = 0.1, 0.2
    expected = e1 * e2 / ((1 - e1) * (1 - e2) + e1 * e2)
    (error,) = group_errors([[vote("a", e1), vote("b", e2)]])
    assert error == pytest.approx(expected)
    three = group_errors([[vote("a", F), vote("b", F), vote("c", F)]])[0]
    assert three == pytest.approx(F**3 / ((1 - F) ** 3 + F**3))
    assert three < error


def test_disagreeing_votes_weigh_against_each_other() -> None:
    e1, e2 = 0.01, 0.1
    right_a, right_b, none = (1 - e1) * e2, (1 - e2) * e1, e1 * e2
    total = right_a + right_b + none
    a, b = group_errors([[vote("a", e1)], [vote("b", e2)]])
    assert a == pytest.approx(1 - right_a / total)
    assert b == pytest.approx(1 - right_b / total)
    assert a < b  # the more credible voter is more likely right
    alone = group_errors([[vote("a", e1)]])[0]
    assert a > alone  # but a dissent makes it less sure than it was alone


def test_votes_from_one_network_count_once_with_the_best_rate() -> None:
    same_net = [vote("a", 0.1, "10.0.0.0/24"), vote("b", 0.05, "10.0.0.0/24")]
    assert group_errors([same_net]) == [pytest.approx(0.05)]
    many = [vote(f"sybil{i}", F, "10.0.0.0/24") for i in range(50)]
    assert group_errors([many]) == [pytest.approx(F)]
    # the same votes from distinct networks would be far surer
    spread = [vote(f"m{i}", F) for i in range(3)]
    assert group_errors([spread])[0] < F**2


def test_a_sybil_crowd_on_one_network_does_not_outvote_one_honest_network() -> None:
    crowd = [vote(f"s{i}", F, "10.0.0.0/24") for i in range(20)]
    honest = [vote("h", F, "192.0.2.0/24")]
    lie, truth = group_errors([crowd, honest])
    assert lie == pytest.approx(truth)


def test_a_checked_vote_is_all_but_certain() -> None:
    (error,) = group_errors([[vote("a", CHECKED_ERROR)]])
    assert error == pytest.approx(CHECKED_ERROR)
    checked, liar = group_errors([[vote("a", CHECKED_ERROR)], [vote("b", F)]])
    assert checked < 1e-10 and liar > 0.99


def test_rates_of_zero_and_one_stay_finite() -> None:
    sure, hopeless = group_errors([[vote("a", 0.0)], [vote("b", 1.0)]])
    assert 0 <= sure < 1e-9
    assert math.isfinite(hopeless) and hopeless == pytest.approx(1.0)
    (nothing,) = group_errors([[vote("a", 1.0), vote("b", 1.0)]])
    assert nothing == pytest.approx(1.0)


def test_projected_error_is_the_first_group_joined() -> None:
    votes = [vote("a", F), vote("b", 0.01)]
    others = [[vote("c", 0.2)]]
    assert projected_error(votes, others) == group_errors([votes, *others])[0]


# -- networks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("203.0.113.7", "203.0.113.0/24"),
        ("203.0.113.250", "203.0.113.0/24"),
        ("198.51.100.1", "198.51.100.0/24"),
        ("2001:db8:1234:5678::1", "2001:db8:1234::/48"),
        ("2001:db8:1234:ffff:1:2:3:4", "2001:db8:1234::/48"),
        ("2001:db8:1235::1", "2001:db8:1235::/48"),
        ("::ffff:203.0.113.7", "203.0.113.0/24"),
    ],
)
def test_network_of_a_public_address(address: str, network: str) -> None:
    assert network_of(address, "m") == network


def test_ipv4_and_its_mapped_ipv6_form_are_one_network() -> None:
    assert network_of("::ffff:192.0.2.9", "a") == network_of("192.0.2.200", "b")


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_each_loopback_miner_is_its_own_network(address: str) -> None:
    assert network_of(address, "m1") == "local:m1"
    assert network_of(address, "m2") == "local:m2"


@pytest.mark.parametrize("address", ["testclient", "/run/qortex.sock", "", "x" * 500])
def test_an_address_that_is_not_an_ip_is_the_miners_own_network(address: str) -> None:
    assert network_of(address, "m1") == "local:m1"
    assert network_of(address, "m2") == "local:m2"
