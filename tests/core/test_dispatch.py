"""The dispatch table: placement, leases, deadlines, refusals and the quorum inline.

Everything is driven with numbers for time and a seeded ``random.Random``.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qortex.core import lifecycle
from qortex.core.dispatch import DispatchTable, Lease, Microtask
from qortex.core.quorum import Policy
from qortex.errors import ResultRefused
from qortex.kinds.sentiment import SentimentKind

LEASE = 10.0


def same(a: Any, b: Any) -> bool:
    return a == b


@pytest.fixture(scope="module")
def sentiment_agree() -> Callable[[Any, Any], bool]:
    return SentimentKind().agree


def policy(replicas: int = 3, quorum: int = 2, max_replicas: int = 5, lease: float = LEASE):
    return Policy(replicas, quorum, max_replicas, lease)


def table(seed: int = 0) -> DispatchTable:
    ids = itertools.count()
    return DispatchTable(random.Random(seed), new_id=lambda: f"a{next(ids)}")


def connect_many(t: DispatchTable, n: int, slots: int = 1, kinds=("x",), prefix: str = "m"):
    return [t.connect(f"{prefix}{i}", slots, kinds) for i in range(n)]


def result(t: DispatchTable, lease: Lease, output: Any, now: float = 0.0, agree=same):
    taken = t.take(lease.miner_id, lease.id, lease.microtask.id, now)
    assert taken is lease
    return t.record(taken, output, agree)


def refusal(t: DispatchTable, miner: str, aid: str, mt: str, now: float = 0.0) -> ResultRefused:
    with pytest.raises(ResultRefused) as info:
        t.take(miner, aid, mt, now)
    assert info.value.detail == {"reason": info.value.reason}
    return info.value


# -- adding work ---------------------------------------------------------------


def test_add_task_builds_pending_microtasks_wanting_replicas() -> None:
    t = table()
    task = t.add_task("t1", "x", policy(replicas=3), ["i0", {"k": 1}, None])
    assert t.tasks == {"t1": task}
    assert task.state == lifecycle.RUNNING
    assert task.open == 3
    assert [mt.id for mt in task.microtasks] == ["t1:0", "t1:1", "t1:2"]
    assert [mt.index for mt in task.microtasks] == [0, 1, 2]
    assert [mt.input for mt in task.microtasks] == ["i0", {"k": 1}, None]
    for mt in task.microtasks:
        assert mt.task_id == "t1"
        assert mt.kind == "x"
        assert mt.state == lifecycle.PENDING
        assert mt.need == 3
        assert mt.holders == {}
        assert mt.excluded == set()
    assert t.pending == 9
    assert t.leases == {}
    assert t.next_deadline() is None


def test_fill_without_miners_issues_nothing() -> None:
    t = table()
    t.add_task("t1", "x", policy(), ["a"])
    assert t.fill(0.0) == []
    assert t.pending == 3


def test_fill_without_work_issues_nothing() -> None:
    t = table()
    connect_many(t, 3)
    assert t.fill(0.0) == []


def test_drop_task_forgets_it() -> None:
    t = table()
    t.add_task("t1", "x", policy(), ["a"])
    t.drop_task("t1")
    assert t.tasks == {}
    t.drop_task("never")  # no error


# -- placement -----------------------------------------------------------------


def test_replicas_go_to_distinct_miners() -> None:
    t = table()
    miners = connect_many(t, 5, slots=4)
    t.add_task("t1", "x", policy(replicas=3), ["a"])
    issued = t.fill(100.0)
    assert len(issued) == 3
    mt = t.tasks["t1"].microtasks[0]
    assert len({lease.miner_id for lease in issued}) == 3
    assert mt.holders == {lease.miner_id: lease.id for lease in issued}
    assert mt.need == 0
    assert t.pending == 0
    for lease in issued:
        assert lease.state == lifecycle.LEASED
        assert lease.microtask is mt
        assert lease.issued_at == 100.0
        assert lease.deadline == 100.0 + LEASE
        assert t.leases[lease.id] is lease
        assert t.miners[lease.miner_id].leases == {lease.id: lease}
    assert sum(m.free for m in miners) == 5 * 4 - 3
    assert t.next_deadline() == 110.0


def test_a_miner_with_many_slots_gets_one_copy_per_microtask() -> None:
    t = table()
    (m0,) = connect_many(t, 1, slots=10)
    t.add_task("t1", "x", policy(replicas=3), ["a", "b"])
    issued = t.fill(0.0)
    assert sorted(lease.microtask.id for lease in issued) == ["t1:0", "t1:1"]
    assert all(lease.miner_id == "m0" for lease in issued)
    assert m0.free == 8
    assert t.pending == 4
    # filling again changes nothing: m0 already holds both
    assert t.fill(1.0) == []
    assert t.pending == 4


def test_fewer_miners_than_replicas_leaves_copies_queued_until_a_miner_connects() -> None:
    t = table()
    connect_many(t, 2)
    t.add_task("t1", "x", policy(replicas=3), ["a"])
    first = t.fill(0.0)
    mt = t.tasks["t1"].microtasks[0]
    assert {lease.miner_id for lease in first} == {"m0", "m1"}
    assert mt.need == 1
    assert t.pending == 1
    t.connect("late", 1, ["x"])
    second = t.fill(1.0)
    assert [lease.miner_id for lease in second] == ["late"]
    assert mt.need == 0
    assert set(mt.holders) == {"m0", "m1", "late"}


def test_slots_are_respected() -> None:
    t = table()
    (m0,) = connect_many(t, 1, slots=2)
    t.add_task("t1", "x", policy(replicas=1, quorum=1, max_replicas=1), list("abcde"))
    issued = t.fill(0.0)
    assert len(issued) == 2
    assert m0.free == 0
    assert len(m0.leases) == 2
    assert t.pending == 3
    assert t.fill(0.0) == []
    assert m0.free == 0
    # a result frees a slot and the next copy goes out
    result(t, issued[0], "pos")
    assert m0.free == 1
    again = t.fill(1.0)
    assert len(again) == 1
    assert m0.free == 0


def test_zero_slot_miner_never_gets_work() -> None:
    t = table()
    t.connect("idle", 0, ["x"])
    t.add_task("t1", "x", policy(replicas=1, quorum=1, max_replicas=1), ["a"])
    assert t.fill(0.0) == []
    assert t.miners["idle"].free == 0


def test_kinds_are_respected() -> None:
    t = table()
    t.connect("only-x", 5, ["x"])
    t.connect("only-y", 5, ["y"])
    t.connect("only-z", 5, ["z"])
    t.connect("both", 5, ["x", "y"])
    t.add_task("tx", "x", policy(replicas=2, quorum=1, max_replicas=2), ["a", "b"])
    t.add_task("ty", "y", policy(replicas=2, quorum=1, max_replicas=2), ["c", "d"])
    issued = t.fill(0.0)
    assert len(issued) == 8
    by_miner = Counter(lease.miner_id for lease in issued)
    assert by_miner == {"only-x": 2, "only-y": 2, "both": 4}
    for lease in issued:
        assert lease.microtask.kind in t.miners[lease.miner_id].kinds
    assert t.miners["only-z"].leases == {}


def test_a_miner_of_another_kind_does_not_unblock_work() -> None:
    t = table()
    t.add_task("t1", "x", policy(replicas=1, quorum=1, max_replicas=1), ["a"])
    t.connect("y-miner", 3, ["y"])
    assert t.fill(0.0) == []
    assert t.pending == 1


def test_multi_kind_miner_slots_shared_across_kinds() -> None:
    t = table()
    m = t.connect("both", 2, ["x", "y"])
    t.add_task("tx", "x", policy(replicas=1, quorum=1, max_replicas=1), ["a", "b"])
    t.add_task("ty", "y", policy(replicas=1, quorum=1, max_replicas=1), ["c", "d"])
    issued = t.fill(0.0)
    assert len(issued) == 2
    assert m.free == 0
    assert t.pending == 2


def test_placement_is_random_across_seeds() -> None:
    chosen: list[frozenset[str]] = []
    for seed in range(40):
        t = table(seed)
        connect_many(t, 30)
        t.add_task("t1", "x", policy(replicas=3), ["a"])
        chosen.append(frozenset(lease.miner_id for lease in t.fill(0.0)))
    assert all(len(c) == 3 for c in chosen)
    assert len(set(chosen)) >= 30  # 40 draws of 3 out of 30 rarely repeat
    everyone = frozenset().union(*chosen)
    assert len(everyone) >= 25
    # and the same seed gives the same placement
    again = table(7)
    connect_many(again, 30)
    again.add_task("t1", "x", policy(replicas=3), ["a"])
    assert frozenset(lease.miner_id for lease in again.fill(0.0)) == chosen[7]


def test_placement_spreads_load_within_one_table() -> None:
    t = table(3)
    connect_many(t, 10, slots=100)
    t.add_task("t1", "x", policy(replicas=1, quorum=1, max_replicas=1), range(500))
    issued = t.fill(0.0)
    assert len(issued) == 500
    counts = Counter(lease.miner_id for lease in issued)
    assert len(counts) == 10
    assert min(counts.values()) >= 20  # about 50 each


def test_unplaceable_microtask_does_not_block_the_queue() -> None:
    t = table()
    t.add_task("t1", "x", policy(replicas=3, quorum=3, max_replicas=5), ["a"])
    mt = t.tasks["t1"].microtasks[0]
    t.restore_result(mt, "m0", "pos", same)
    t.restore_result(mt, "m1", "pos", same)
    assert mt.need == 1
    t.add_task("t2", "x", policy(replicas=2, quorum=2, max_replicas=2), ["b"])
    connect_many(t, 2)
    issued = t.fill(0.0)
    assert sorted((lease.microtask.id, lease.miner_id) for lease in issued) == [
        ("t2:0", "m0"),
        ("t2:0", "m1"),
    ]
    assert mt.need == 1
    assert mt.holders == {}


def test_expired_copies_at_the_front_do_not_starve_eligible_work() -> None:
    t = table()
    t.connect("m0", 64, ["x"])
    one = policy(replicas=1, quorum=1, max_replicas=1)
    now = 0.0
    for round_ in range(4):  # 4 x 64 = SCAN_LIMIT copies that m0 let expire
        t.add_task(f"t{round_}", "x", one, range(64))
        assert len(t.fill(now)) == 64
        now += LEASE
        assert len(t.expire(now)) == 64
    assert t.pending == 256
    assert t.miners["m0"].free == 64
    t.add_task("new", "x", one, ["fresh"])
    # Each pass is bounded; the caller runs passes while the table says it is backlogged.
    issued = t.fill(now)
    passes = 1
    while t.backlogged:
        issued += t.fill(now)
        passes += 1
    # m0 is idle and never worked on "new:0": it gets it, in a bounded number of passes
    assert [lease.microtask.id for lease in issued] == ["new:0"]
    assert passes <= 3
    # Once everything left is blocked for every free miner, passes stop asking for more.
    assert t.fill(now) == [] and not t.backlogged


def test_connect_twice_is_refused() -> None:
    t = table()
    t.connect("m", 1, ["x"])
    with pytest.raises(ValueError, match="already connected"):
        t.connect("m", 2, ["x"])
    assert t.miners["m"].slots == 1


# -- disconnect and expiry -------------------------------------------------------


def test_disconnect_releases_leases_and_they_go_to_other_miners() -> None:
    t = table()
    connect_many(t, 3, slots=2)
    t.add_task("t1", "x", policy(replicas=3), ["a", "b"])
    t.fill(0.0)
    held = dict(t.miners["m1"].leases)
    assert len(held) == 2
    released = t.disconnect("m1")
    assert {lease.id for lease in released} == set(held)
    assert "m1" not in t.miners
    for lease in released:
        assert lease.state == lifecycle.RELEASED
        assert lease.id not in t.leases
        assert "m1" not in lease.microtask.holders
        assert lease.microtask.need == 1
    assert t.pending == 2
    assert t.fill(1.0) == []  # m0 and m2 already hold both
    t.connect("m3", 2, ["x"])
    reissued = t.fill(2.0)
    assert sorted(lease.microtask.id for lease in reissued) == ["t1:0", "t1:1"]
    assert all(lease.miner_id == "m3" for lease in reissued)
    assert all(lease.id not in held for lease in reissued)


def test_released_work_goes_to_the_front_of_the_queue() -> None:
    t = table()
    t.connect("m0", 1, ["x"])
    one = policy(replicas=1, quorum=1, max_replicas=1)
    t.add_task("t1", "x", one, ["a"])
    t.add_task("t2", "x", one, ["b"])
    t.add_task("t3", "x", one, ["c"])
    (first,) = t.fill(0.0)
    assert first.microtask.id == "t1:0"
    t.disconnect("m0")
    t.connect("m1", 1, ["x"])
    (again,) = t.fill(1.0)
    assert again.microtask.id == "t1:0"
    assert again.miner_id == "m1"


def test_a_reconnected_miner_may_get_released_work_again() -> None:
    t = table()
    t.connect("m0", 1, ["x"])
    t.add_task("t1", "x", policy(replicas=1, quorum=1, max_replicas=1), ["a"])
    (first,) = t.fill(0.0)
    t.disconnect("m0")
    t.connect("m0", 1, ["x"])
    (again,) = t.fill(1.0)
    assert again.microtask is first.microtask
    assert again.id != first.id


def test_disconnect_unknown_miner_is_harmless() -> None:
    t = table()
    assert t.disconnect("ghost") == []


def test_expire_at_the_deadline_reissues() -> None:
    t = table()
    connect_many(t, 1)
    t.add_task("t1", "x", policy(replicas=1, quorum=1, max_replicas=1), ["a"])
    (lease,) = t.fill(5.0)
    assert lease.deadline == 15.0
    assert t.next_deadline() == 15.0
    assert t.expire(14.999) == []
    assert lease.state == lifecycle.LEASED
    assert t.expire(15.0) == [lease]
    assert lease.state == lifecycle.EXPIRED
    assert t.leases == {}
    assert t.miners["m0"].free == 1
    assert lease.microtask.holders == {}
    assert lease.microtask.need == 1
    assert t.next_deadline() is None
    assert t.expire(100.0) == []
    # the miner that let it expire is excluded from this microtask from now on
    assert lease.microtask.excluded == {"m0"}
    assert t.fill(16.0) == []
    assert t.pending == 1
    t.connect("m1", 1, ["x"])
    (again,) = t.fill(16.0)
    assert again.microtask is lease.microtask
    assert again.miner_id == "m1"
    assert again.deadline == 26.0


def test_a_miner_that_let_a_copy_expire_still_gets_other_microtasks() -> None:
    t = table()
    t.connect("m0", 1, ["x"])
    one = policy(replicas=1, quorum=1, max_replicas=1)
    t.add_task("t1", "x", one, ["a"])
    (lease,) = t.fill(0.0)
    t.add_task("t2", "x", one, ["b"])
    assert t.expire(LEASE) == [lease]
    (other,) = t.fill(LEASE)
    assert other.microtask.id == "t2:0"
    assert other.miner_id == "m0"


def test_expired_copy_goes_to_the_front_and_to_another_miner() -> None:
    t = table()
    t.connect("slow", 1, ["x"])
    one = policy(replicas=1, quorum=1, max_replicas=1)
    t.add_task("t1", "x", one, ["a"])
    t.add_task("t2", "x", one, ["b"])
    (lease,) = t.fill(0.0)
    assert lease.microtask.id == "t1:0"
    t.expire(LEASE)
    t.disconnect("slow")
    t.connect("fast", 1, ["x"])
    (again,) = t.fill(LEASE)
    assert again.microtask.id == "t1:0"


def test_expire_returns_leases_in_deadline_order_and_next_deadline_skips_closed() -> None:
    t = table()
    connect_many(t, 3, slots=3)
    t.add_task("t1", "x", policy(replicas=1, quorum=1, max_replicas=1), ["a"])
    (a,) = t.fill(0.0)
    t.add_task("t2", "x", policy(replicas=1, quorum=1, max_replicas=1), ["b"])
    (b,) = t.fill(3.0)
    t.add_task("t3", "x", policy(replicas=1, quorum=1, max_replicas=1), ["c"])
    (c,) = t.fill(6.0)
    assert t.next_deadline() == 10.0
    result(t, a, "r")
    assert t.next_deadline() == 13.0
    assert t.expire(100.0) == [b, c]
    assert t.next_deadline() is None


# -- take refusals ---------------------------------------------------------------


@pytest.fixture
def leased() -> tuple[DispatchTable, list[Lease]]:
    t = table()
    connect_many(t, 3)
    t.add_task("t1", "x", policy(replicas=3, quorum=2, max_replicas=5), ["a", "b"])
    issued = t.fill(0.0)
    assert len(issued) == 3
    return t, issued


def test_take_accepts_a_valid_result(leased) -> None:
    t, issued = leased
    lease = issued[0]
    assert t.take(lease.miner_id, lease.id, lease.microtask.id, 0.0) is lease
    # take alone changes nothing
    assert lease.state == lifecycle.LEASED
    assert t.leases[lease.id] is lease


def test_take_unknown_assignment(leased) -> None:
    t, _ = leased
    assert refusal(t, "m0", "nope", "t1:0").reason == "unknown_assignment"


def test_take_not_your_assignment(leased) -> None:
    t, issued = leased
    lease = issued[0]
    other = next(m for m in t.miners if m != lease.miner_id)
    assert refusal(t, other, lease.id, lease.microtask.id).reason == "not_your_assignment"
    assert refusal(t, "stranger", lease.id, lease.microtask.id).reason == "not_your_assignment"
    assert lease.state == lifecycle.LEASED


def test_take_wrong_microtask(leased) -> None:
    t, issued = leased
    lease = issued[0]
    assert refusal(t, lease.miner_id, lease.id, "t1:1").reason == "wrong_microtask"
    assert refusal(t, lease.miner_id, lease.id, "zzz").reason == "wrong_microtask"


def test_take_late_after_the_deadline_but_before_expire(leased) -> None:
    t, issued = leased
    lease = issued[0]
    assert t.take(lease.miner_id, lease.id, lease.microtask.id, LEASE) is lease  # at deadline
    err = refusal(t, lease.miner_id, lease.id, lease.microtask.id, LEASE + 0.001)
    assert err.reason == "late"
    assert lease.state == lifecycle.LEASED  # closed by the next expire, not by take
    assert t.expire(LEASE + 0.001) == issued
    assert refusal(t, lease.miner_id, lease.id, lease.microtask.id, 99.0).reason == "late"


def test_take_duplicate_after_record(leased) -> None:
    t, issued = leased
    lease = issued[0]
    result(t, lease, "pos")
    assert lease.state == lifecycle.RETURNED
    assert refusal(t, lease.miner_id, lease.id, lease.microtask.id).reason == "duplicate"


def test_take_withdrawn_after_cancel(leased) -> None:
    t, issued = leased
    result(t, issued[0], "pos")
    outcome = result(t, issued[1], "pos")
    assert outcome.decided
    assert outcome.cancelled == [issued[2]]
    err = refusal(t, issued[2].miner_id, issued[2].id, issued[2].microtask.id)
    assert err.reason == "withdrawn"
    assert "cancelled" in err.message


def test_take_withdrawn_after_release(leased) -> None:
    t, issued = leased
    lease = issued[0]
    t.disconnect(lease.miner_id)
    err = refusal(t, lease.miner_id, lease.id, lease.microtask.id)
    assert err.reason == "withdrawn"
    assert "released" in err.message


def test_refusals_change_nothing(leased) -> None:
    t, issued = leased
    before = (dict(t.leases), {m: dict(x.leases) for m, x in t.miners.items()}, t.pending)
    for miner, aid, mt, now in [
        ("m0", "nope", "t1:0", 0.0),
        ("stranger", issued[0].id, "t1:0", 0.0),
        (issued[0].miner_id, issued[0].id, "t1:1", 0.0),
        (issued[0].miner_id, issued[0].id, "t1:0", 50.0),
    ]:
        with pytest.raises(ResultRefused):
            t.take(miner, aid, mt, now)
    after = (dict(t.leases), {m: dict(x.leases) for m, x in t.miners.items()}, t.pending)
    assert after == before


# -- record and the quorum ------------------------------------------------------------


def test_record_decides_at_quorum_and_cancels_outstanding(sentiment_agree) -> None:
    t = table()
    connect_many(t, 3)
    task = t.add_task("t1", "x", policy(replicas=3, quorum=2, max_replicas=5), ["a"])
    a, b, c = t.fill(0.0)
    mt = a.microtask
    first = result(t, a, "positive", agree=sentiment_agree)
    assert first.lease is a
    assert (first.decided, first.inconclusive, first.cancelled, first.task) == (
        False,
        False,
        [],
        None,
    )
    assert mt.state == lifecycle.PENDING
    assert mt.need == 0
    second = result(t, b, "positive", agree=sentiment_agree)
    assert second.decided is True
    assert second.inconclusive is False
    assert second.cancelled == [c]
    assert c.state == lifecycle.CANCELLED
    assert c.id not in t.leases
    assert t.miners[c.miner_id].leases == {}
    assert t.miners[c.miner_id].free == 1
    assert mt.state == lifecycle.DECIDED
    assert mt.decision == "positive"
    assert mt.holders == {}
    assert mt.excluded == {a.miner_id, b.miner_id}
    assert mt.need == 0
    assert second.task is task
    assert task.state == lifecycle.COMPLETED
    assert task.open == 0
    assert t.pending == 0
    assert t.leases == {}
    assert all(m.free == 1 for m in t.miners.values())
    assert t.fill(1.0) == []


def test_disagreement_asks_for_more_copies_then_decides() -> None:
    t = table()
    connect_many(t, 3)
    t.add_task("t1", "x", policy(replicas=3, quorum=2, max_replicas=5), ["a"])
    a, b, c = t.fill(0.0)
    mt = a.microtask
    result(t, a, "pos")
    result(t, b, "neg")
    assert mt.need == 0  # c is still out and could decide
    result(t, c, "neu")
    assert mt.need == 1
    assert t.pending == 1
    # the three who answered never get it again
    assert t.fill(1.0) == []
    t.connect("m3", 1, ["x"])
    (d,) = t.fill(2.0)
    assert d.miner_id == "m3"
    outcome = result(t, d, "neg")
    assert outcome.decided
    assert mt.decision == "neg"
    assert mt.tally.returned == 4


def test_disagreement_up_to_max_replicas_then_inconclusive() -> None:
    t = table()
    connect_many(t, 6)
    task = t.add_task("t1", "x", policy(replicas=3, quorum=2, max_replicas=4), ["a"])
    leases = t.fill(0.0)
    assert len(leases) == 3
    for lease, out in zip(leases, ["p", "q", "r"], strict=True):
        outcome = result(t, lease, out)
        assert not outcome.decided and not outcome.inconclusive
    mt = task.microtasks[0]
    assert mt.need == 1
    (last,) = t.fill(1.0)
    outcome = result(t, last, "s")
    assert outcome.inconclusive is True
    assert outcome.decided is False
    assert mt.state == lifecycle.INCONCLUSIVE
    assert mt.decision is None
    assert mt.tally.returned == 4  # never more than max_replicas
    assert outcome.task is task
    assert task.state == lifecycle.FAILED
    assert t.fill(2.0) == []


def test_inconclusive_immediately_cancels_the_rest() -> None:
    t = table()
    connect_many(t, 3)
    task = t.add_task("t1", "x", policy(replicas=3, quorum=3, max_replicas=3), ["a"])
    a, b, c = t.fill(0.0)
    result(t, a, "pos")
    outcome = result(t, b, "neg")
    assert outcome.inconclusive is True
    assert outcome.decided is False
    assert outcome.cancelled == [c]
    assert c.state == lifecycle.CANCELLED
    assert t.miners[c.miner_id].free == 1
    assert a.microtask.state == lifecycle.INCONCLUSIVE
    assert outcome.task is task
    assert task.state == lifecycle.FAILED
    assert refusal(t, c.miner_id, c.id, c.microtask.id).reason == "withdrawn"


def test_task_completes_only_when_the_last_microtask_settles() -> None:
    t = table()
    connect_many(t, 3, slots=3)
    task = t.add_task("t1", "x", policy(replicas=1, quorum=1, max_replicas=1), ["a", "b", "c"])
    issued = t.fill(0.0)
    assert len(issued) == 3
    outcomes = [result(t, lease, lease.microtask.input.upper()) for lease in issued]
    assert [o.decided for o in outcomes] == [True, True, True]
    assert [o.task for o in outcomes] == [None, None, task]
    assert task.state == lifecycle.COMPLETED
    assert [mt.decision for mt in task.microtasks] == ["A", "B", "C"]


def test_task_fails_when_a_microtask_is_inconclusive_but_only_at_the_end() -> None:
    t = table()
    connect_many(t, 4, slots=2)
    task = t.add_task("t1", "x", policy(replicas=2, quorum=2, max_replicas=2), ["a", "b"])
    issued = t.fill(0.0)
    by_mt: dict[str, list[Lease]] = {}
    for lease in issued:
        by_mt.setdefault(lease.microtask.id, []).append(lease)
    x0, x1 = by_mt["t1:0"]
    y0, y1 = by_mt["t1:1"]
    result(t, x0, "pos")
    bad = result(t, x1, "neg")
    assert bad.inconclusive
    assert bad.task is None
    assert task.state == lifecycle.RUNNING
    assert task.open == 1
    result(t, y0, "pos")
    last = result(t, y1, "pos")
    assert last.decided
    assert last.task is task
    assert task.state == lifecycle.FAILED


def test_two_tasks_are_independent() -> None:
    t = table()
    connect_many(t, 2, slots=2)
    one = policy(replicas=1, quorum=1, max_replicas=1)
    t1 = t.add_task("t1", "x", one, ["a"])
    t2 = t.add_task("t2", "x", one, ["b"])
    leases = {lease.microtask.task_id: lease for lease in t.fill(0.0)}
    assert result(t, leases["t2"], "B").task is t2
    assert t1.state == lifecycle.RUNNING
    assert result(t, leases["t1"], "A").task is t1


def test_a_miner_that_returned_never_gets_another_copy() -> None:
    t = table()
    connect_many(t, 2, slots=5)
    t.add_task("t1", "x", policy(replicas=2, quorum=2, max_replicas=5), ["a"])
    a, b = t.fill(0.0)
    result(t, a, "p")
    result(t, b, "q")
    mt = a.microtask
    assert mt.need == 1
    for step in range(5):
        assert t.fill(float(step)) == []
    t.connect("new", 1, ["x"])
    (c,) = t.fill(9.0)
    assert c.miner_id == "new"


# -- rebuilding from the store -------------------------------------------------------


def test_restore_two_agreeing_results_with_quorum_three_wants_one_more() -> None:
    t = table()
    task = t.add_task("t1", "x", policy(replicas=3, quorum=3, max_replicas=5), ["a", "b"])
    mt0, mt1 = task.microtasks
    t.restore_result(mt0, "old1", "pos", same)
    t.restore_result(mt0, "old2", "pos", same)
    assert mt0.tally.returned == 2
    assert mt0.tally.groups == [["pos", "pos"]]
    assert mt0.excluded == {"old1", "old2"}
    assert mt0.need == 1
    assert mt0.state == lifecycle.PENDING
    t.settle(mt1, lifecycle.DECIDED, "neg")
    assert mt1.state == lifecycle.DECIDED
    assert mt1.decision == "neg"
    assert mt1.need == 0
    assert task.open == 1
    assert t.pending == 1
    t.connect("old1", 3, ["x"])
    t.connect("old2", 3, ["x"])
    assert t.fill(0.0) == []
    t.connect("fresh", 3, ["x"])
    (lease,) = t.fill(0.0)
    assert (lease.miner_id, lease.microtask) == ("fresh", mt0)
    outcome = result(t, lease, "pos")
    assert outcome.decided
    assert outcome.task is task
    assert task.state == lifecycle.COMPLETED


def test_restore_disagreeing_results_wants_enough_to_still_decide() -> None:
    t = table()
    task = t.add_task("t1", "x", policy(replicas=3, quorum=3, max_replicas=6), ["a"])
    mt = task.microtasks[0]
    t.restore_result(mt, "o1", "p", same)
    t.restore_result(mt, "o2", "q", same)
    # best 1, missing 2, room 4: wants 2 (one already replaced by replicas - returned = 1)
    assert mt.need == 2
    connect_many(t, 4)
    issued = t.fill(0.0)
    assert len(issued) == 2
    assert {lease.miner_id for lease in issued} <= {"m0", "m1", "m2", "m3"}


def test_settle_inconclusive_and_task_open_counts() -> None:
    t = table()
    task = t.add_task("t1", "x", policy(), ["a", "b"])
    t.settle(task.microtasks[0], lifecycle.INCONCLUSIVE)
    assert task.microtasks[0].state == lifecycle.INCONCLUSIVE
    assert task.microtasks[0].decision is None
    assert task.open == 1
    assert t.pending == 3
    connect_many(t, 3)
    issued = t.fill(0.0)
    assert {lease.microtask.id for lease in issued} == {"t1:1"}


def test_restore_without_results_keeps_the_initial_replicas() -> None:
    t = table()
    task = t.add_task("t1", "x", policy(replicas=4, quorum=3, max_replicas=7), ["a"])
    assert task.microtasks[0].need == 4


# -- many random operations, checking invariants after every step ---------------------


KINDS = ("x", "y")


class World:
    """Drives a table with random operations and checks its invariants after each."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.t = DispatchTable(random.Random(seed + 1))
        self.now = 0.0
        self.n_miners = 0
        self.n_tasks = 0
        self.decided: dict[str, tuple[str, Any]] = {}
        self.outputs: dict[str, list[Any]] = {}
        self.closed: list[Lease] = []
        self.all_mts: dict[str, Microtask] = {}
        self.excluded: dict[str, set[str]] = {}  # returned or let expire

    # -- operations

    def connect(self) -> None:
        kinds = [k for k in KINDS if self.rng.random() < 0.7] or [self.rng.choice(KINDS)]
        self.t.connect(f"m{self.n_miners}", self.rng.randint(1, 3), kinds)
        self.n_miners += 1

    def disconnect(self) -> None:
        if not self.t.miners:
            return
        miner_id = self.rng.choice(sorted(self.t.miners))
        held = set(self.t.miners[miner_id].leases)
        released = self.t.disconnect(miner_id)
        assert {lease.id for lease in released} == held
        for lease in released:
            assert lease.state == lifecycle.RELEASED
        self.closed.extend(released)

    def add_task(self) -> None:
        r = self.rng.randint(1, 4)
        q = self.rng.randint(1, r)
        mx = self.rng.randint(r, 2 * r)
        n = self.rng.randint(1, 3)
        task = self.t.add_task(
            f"t{self.n_tasks}", self.rng.choice(KINDS), Policy(r, q, mx, LEASE), range(n)
        )
        self.n_tasks += 1
        for mt in task.microtasks:
            self.all_mts[mt.id] = mt
            self.outputs[mt.id] = []
            self.excluded[mt.id] = set()

    def fill(self) -> None:
        issued = self.t.fill(self.now)
        for lease in issued:
            assert lease.issued_at == self.now
            assert lease.deadline == self.now + LEASE
        self.check_fill_is_maximal()

    def result(self, honest: bool = False) -> None:
        if not self.t.leases:
            return
        lease = self.t.leases[self.rng.choice(sorted(self.t.leases))]
        if self.now > lease.deadline:
            with pytest.raises(ResultRefused) as info:
                self.t.take(lease.miner_id, lease.id, lease.microtask.id, self.now)
            assert info.value.reason == "late"
            return
        output = "A" if honest or self.rng.random() < 0.7 else self.rng.choice("BC")
        taken = self.t.take(lease.miner_id, lease.id, lease.microtask.id, self.now)
        outcome = self.t.record(taken, output, same)
        mt = lease.microtask
        self.outputs[mt.id].append(output)
        self.excluded[mt.id].add(lease.miner_id)
        self.closed.append(lease)
        self.closed.extend(outcome.cancelled)
        assert lease.state == lifecycle.RETURNED
        for c in outcome.cancelled:
            assert c.state == lifecycle.CANCELLED
            assert c.microtask is mt
            miner = self.t.miners.get(c.miner_id)
            if miner is not None:
                assert c.id not in miner.leases
        assert outcome.decided == (mt.state == lifecycle.DECIDED)
        assert outcome.inconclusive == (mt.state == lifecycle.INCONCLUSIVE)
        if outcome.decided or outcome.inconclusive:
            assert mt.id not in self.decided
            self.decided[mt.id] = (mt.state, mt.decision)
        else:
            assert outcome.cancelled == []
        task = self.t.tasks[mt.task_id]
        if outcome.task is not None:
            assert outcome.task is task
            assert task.open == 0
        else:
            assert task.state == lifecycle.RUNNING

    def stale_result(self) -> None:
        if not self.closed:
            return
        lease = self.rng.choice(self.closed)
        expected = {
            lifecycle.RETURNED: "duplicate",
            lifecycle.EXPIRED: "late",
            lifecycle.RELEASED: "withdrawn",
            lifecycle.CANCELLED: "withdrawn",
        }[lease.state]
        with pytest.raises(ResultRefused) as info:
            self.t.take(lease.miner_id, lease.id, lease.microtask.id, self.now)
        assert info.value.reason == expected

    def tick(self) -> None:
        self.now += self.rng.choice([0.5, 1.0, 3.0, 7.0])
        if self.rng.random() < 0.8:
            due = {aid for aid, lease in self.t.leases.items() if lease.deadline <= self.now}
            expired = self.t.expire(self.now)
            assert {lease.id for lease in expired} == due
            for lease in expired:
                assert lease.state == lifecycle.EXPIRED
                self.excluded[lease.microtask.id].add(lease.miner_id)
            self.closed.extend(expired)

    def step(self) -> None:
        op = self.rng.choices(
            [
                self.connect,
                self.disconnect,
                self.add_task,
                self.fill,
                self.result,
                self.stale_result,
                self.tick,
            ],
            weights=[3, 1, 3, 6, 10, 2, 3],
        )[0]
        op()
        self.check()

    # -- invariants

    def check(self) -> None:
        t = self.t
        live_pairs: Counter[tuple[str, str]] = Counter()
        for aid, lease in t.leases.items():
            assert lease.id == aid
            assert lease.state == lifecycle.LEASED
            miner = t.miners[lease.miner_id]
            assert miner.leases[aid] is lease
            assert lease.microtask.kind in miner.kinds
            mt = lease.microtask
            assert mt.state == lifecycle.PENDING
            assert mt.holders[lease.miner_id] == aid
            assert lease.miner_id not in mt.excluded
            live_pairs[lease.miner_id, mt.id] += 1
        assert all(n == 1 for n in live_pairs.values())
        for miner in t.miners.values():
            assert miner.free >= 0
            assert len(miner.leases) <= miner.slots
            for aid in miner.leases:
                assert aid in t.leases
        expected_pending = 0
        for mt in self.all_mts.values():
            for miner_id, aid in mt.holders.items():
                assert t.leases[aid].miner_id == miner_id
            assert not (set(mt.holders) & mt.excluded)
            # returned or expired: excluded; released by a disconnect: forgiven
            assert mt.excluded == self.excluded[mt.id]
            assert mt.tally.returned == len(self.outputs[mt.id]) or mt.id in self.decided
            if mt.id in self.decided:
                assert (mt.state, mt.decision) == self.decided[mt.id]
                assert mt.holders == {}
                assert mt.need == 0
            else:
                assert mt.state == lifecycle.PENDING
                p = mt.policy
                assert mt.need == mt.tally.verdict(p, len(mt.holders)).more
                assert mt.need + len(mt.holders) >= 1  # never stuck
                assert mt.tally.returned + len(mt.holders) + mt.need <= p.max_replicas
                expected_pending += mt.need
            if mt.state == lifecycle.DECIDED:
                agreeing = sum(1 for o in self.outputs[mt.id] if o == mt.decision)
                assert agreeing >= mt.policy.quorum
            assert mt.tally.returned <= mt.policy.max_replicas
        assert t.pending == expected_pending
        for task in t.tasks.values():
            open_mts = sum(1 for mt in task.microtasks if mt.state == lifecycle.PENDING)
            assert task.open == open_mts
            if open_mts:
                assert task.state == lifecycle.RUNNING
            else:
                failed = any(mt.state == lifecycle.INCONCLUSIVE for mt in task.microtasks)
                assert task.state == (lifecycle.FAILED if failed else lifecycle.COMPLETED)
        live = [lease.deadline for lease in t.leases.values()]
        assert t.next_deadline() == (min(live) if live else None)

    def check_fill_is_maximal(self) -> None:
        """After a fill no queued copy has an eligible miner with a free slot."""
        for mt in self.all_mts.values():
            if mt.state != lifecycle.PENDING or mt.need == 0:
                continue
            for miner in self.t.miners.values():
                if miner.free > 0 and mt.kind in miner.kinds:
                    assert miner.id in mt.holders or miner.id in mt.excluded

    def drain(self) -> None:
        """Honest, fast miners finish everything that is left."""
        self.now += LEASE + 1
        for lease in self.t.expire(self.now):
            self.closed.append(lease)
            self.excluded[lease.microtask.id].add(lease.miner_id)
        self.check()
        for i in range(12):
            self.t.connect(f"drain{i}", 8, KINDS)
        for _ in range(50):
            self.fill()
            self.check()
            if not self.t.leases:
                break
            for _ in range(len(self.t.leases)):
                self.result(honest=True)
                self.check()
        assert self.t.leases == {}
        assert self.t.pending == 0
        for task in self.t.tasks.values():
            assert task.open == 0
            assert task.state in (lifecycle.COMPLETED, lifecycle.FAILED)


@pytest.mark.parametrize("seed", range(25))
def test_random_operations_keep_the_invariants(seed: int) -> None:
    world = World(seed)
    for _ in range(400):
        world.step()
    world.drain()
    assert world.n_tasks > 0


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), steps=st.integers(1, 250))
def test_random_operations_property(seed: int, steps: int) -> None:
    world = World(seed)
    for _ in range(steps):
        world.step()
    world.drain()


def test_why_an_assignment_is_over_is_told_only_to_its_miner() -> None:
    t = table()
    connect_many(t, 3)
    t.add_task("t", "x", policy(replicas=2, quorum=2, max_replicas=2), ["in"])
    first, second = t.fill(0.0)
    result(t, first, "out")
    assert refusal(t, first.miner_id, first.id, first.microtask.id).reason == "duplicate"
    outsider = next(m for m in t.miners if m not in (first.miner_id, second.miner_id))
    # Another miner learns nothing: not that it was returned, nor that it ever existed.
    assert refusal(t, outsider, first.id, first.microtask.id).reason == "unknown_assignment"
    assert refusal(t, second.miner_id, first.id, first.microtask.id).reason == (
        "unknown_assignment"
    )
