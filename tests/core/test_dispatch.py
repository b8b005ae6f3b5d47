"""The dispatch table: placement, leases, deadlines, refusals, and decisions inline.

Time is a number and randomness is a seeded ``random.Random``. Miners here
are credible (their word alone meets the target) unless a test says otherwise,
so that ``replicas`` and ``quorum`` floors decide what happens.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter

import pytest

from qortex.core import lifecycle
from qortex.core.credibility import Vote
from qortex.core.dispatch import SCAN_LIMIT, DispatchTable
from qortex.core.stragglers import Stragglers
from qortex.core.work import NO_GOLD, Lease
from tests.core.tables import LEASE, F, connect, policy, queued, refusal, result, table

# -- adding work -------------------------------------------------------------------


def test_add_task_queues_pending_microtasks() -> None:
    t = table()
    task = t.add_task("t1", "x", policy(replicas=3), [b'"a"', b"1", b"null"], gold={2: None})
    assert t.tasks == {"t1": task}
    assert (task.state, task.open, t.open) == (lifecycle.RUNNING, 3, 3)
    assert [mt.id for mt in task.microtasks] == ["t1:0", "t1:1", "t1:2"]
    for i, mt in enumerate(task.microtasks):
        assert (mt.task_id, mt.index, mt.kind, mt.state) == ("t1", i, "x", lifecycle.PENDING)
        assert mt.holders == {} and not mt.excluded and mt.tally.returned == 0
    assert [mt.gold is NO_GOLD for mt in task.microtasks] == [True, True, False]
    assert task.microtasks[0].input_digest() == hashlib.sha256(b'"a"').hexdigest()
    assert queued(t) == 3
    assert t.leases == {} and t.next_deadline() is None


def test_fill_needs_both_miners_and_work() -> None:
    t = table()
    t.add_task("t1", "x", policy(), ["a"])
    assert t.fill(0.0) == []
    other = table()
    connect(other, 3)
    assert other.fill(0.0) == []


def test_drop_task_forgets_it() -> None:
    t = table()
    t.add_task("t1", "x", policy(), ["a"])
    t.drop_task("t1")
    t.drop_task("never")
    assert t.tasks == {}


# -- placement ---------------------------------------------------------------------


def test_the_replicas_floor_goes_to_distinct_miners() -> None:
    t = table()
    connect(t, 5, slots=4)
    t.add_task("t1", "x", policy(replicas=3), ["a"])
    issued = t.fill(100.0)
    mt = t.tasks["t1"].microtasks[0]
    assert len(issued) == 3 and len({lease.miner_id for lease in issued}) == 3
    assert mt.holders == {lease.miner_id: lease for lease in issued}
    assert queued(t) == 0
    for lease in issued:
        assert lease.state == lifecycle.LEASED and lease.microtask is mt
        assert (lease.issued_at, lease.deadline) == (100.0, 100.0 + LEASE)
        assert t.leases[lease.id] is lease
        assert t.miners[lease.miner_id].leases == {lease.id: lease}
    assert sum(m.free for m in t.miners.values()) == 5 * 4 - 3
    assert t.next_deadline() == 100.0 + LEASE


def test_a_miner_with_many_slots_gets_one_copy_per_microtask() -> None:
    t = table()
    connect(t, 1, slots=10)
    t.add_task("t1", "x", policy(replicas=3), ["a", "b"])
    issued = t.fill(0.0)
    assert sorted(lease.microtask.id for lease in issued) == ["t1:0", "t1:1"]
    assert t.miners["m0"].free == 8
    assert t.fill(1.0) == []  # m0 already holds both


def test_copies_wait_for_a_miner_that_may_take_them() -> None:
    t = table()
    connect(t, 2)
    t.add_task("t1", "x", policy(replicas=3), ["a"])
    assert {lease.miner_id for lease in t.fill(0.0)} == {"m0", "m1"}
    assert queued(t) == 1
    connect(t, 1, prefix="late")
    assert [lease.miner_id for lease in t.fill(1.0)] == ["late0"]
    assert set(t.tasks["t1"].microtasks[0].holders) == {"m0", "m1", "late0"}


def test_slots_are_respected_and_a_result_frees_one() -> None:
    t = table()
    connect(t, 1, slots=2)
    t.add_task("t1", "x", policy(), list("abcde"))
    issued = t.fill(0.0)
    assert len(issued) == 2 and t.miners["m0"].free == 0
    assert t.fill(0.0) == []
    result(t, issued[0], "pos")
    assert t.miners["m0"].free == 1
    assert len(t.fill(1.0)) == 1


def test_zero_slot_miner_never_gets_work() -> None:
    t = table()
    t.connect("idle", 0, ["x"], "net-idle", 1e-4, allowance=4)
    t.add_task("t1", "x", policy(), ["a"])
    assert t.fill(0.0) == [] and t.miners["idle"].free == 0


def test_kinds_are_respected_and_slots_shared_across_kinds() -> None:
    t = table()
    connect(t, 1, slots=5, kinds=["x"], prefix="only-x")
    connect(t, 1, slots=5, kinds=["y"], prefix="only-y")
    connect(t, 1, slots=5, kinds=["z"], prefix="only-z")
    connect(t, 1, slots=3, kinds=["x", "y"], prefix="both")
    t.add_task("tx", "x", policy(replicas=2), ["a", "b"])
    t.add_task("ty", "y", policy(replicas=2), ["c", "d"])
    by_miner = Counter(lease.miner_id for lease in t.fill(0.0))
    assert by_miner["only-z0"] == 0
    assert by_miner["both0"] == 3  # its three slots, over both kinds
    assert by_miner["only-x0"] == 2 and by_miner["only-y0"] == 2
    assert queued(t) == 1


def test_placement_is_random_and_spreads_the_load() -> None:
    def first_choice(seed: int) -> str:
        t = table(seed)
        connect(t, 10)
        t.add_task("t", "x", policy(), ["a"])
        return t.fill(0.0)[0].miner_id

    assert len({first_choice(seed) for seed in range(40)}) >= 6
    t = table(3)
    connect(t, 10, slots=100)
    t.add_task("t", "x", policy(), [f"i{i}" for i in range(500)])
    counts = Counter(lease.miner_id for lease in t.fill(0.0))
    assert len(counts) == 10 and max(counts.values()) < 3 * min(counts.values())


def test_a_blocked_stretch_is_scanned_in_bounded_passes() -> None:
    t = table()
    connect(t, 1, slots=10_000)
    t.add_task("t", "x", policy(replicas=2, max_replicas=2), [f"i{i}" for i in range(600)])
    passes, issued = 0, 0
    while True:
        passes += 1
        got = len(t.fill(0.0))
        assert got <= SCAN_LIMIT
        issued += got
        if not t.backlogged:
            break
    assert issued == 600  # one copy each: the second must go to another miner
    assert passes <= 2 * (600 // SCAN_LIMIT + 1)  # every pass bounded, none wasted
    connect(t, 1, slots=10_000, prefix="second")
    assert len(t.fill(1.0)) == 600 and queued(t) == 0


def test_connect_twice_is_refused() -> None:
    t = table()
    connect(t, 1)
    with pytest.raises(ValueError):
        connect(t, 1)


# -- disconnects and deadlines -------------------------------------------------------


def test_disconnect_releases_leases_to_the_front_for_other_miners() -> None:
    t = table()
    connect(t, 1, slots=2)
    t.add_task("t1", "x", policy(), ["a", "b", "c", "d"])
    held = t.fill(0.0)
    released = t.disconnect("m0")
    assert {lease.id for lease in released} == {lease.id for lease in held}
    assert all(lease.state == lifecycle.RELEASED for lease in released)
    assert t.leases == {} and "m0" not in t.miners
    connect(t, 1, slots=2, prefix="n")
    again = t.fill(1.0)
    assert {lease.microtask.id for lease in again} == {lease.microtask.id for lease in held}
    assert t.disconnect("nobody") == []


def test_expire_at_the_deadline_requeues_at_the_front_for_another_miner() -> None:
    t = table()
    connect(t, 2, slots=1)
    t.add_task("t1", "x", policy(), ["a", "b", "c"])
    first = t.fill(0.0)
    assert t.expire(LEASE - 0.5) == []
    expired = t.expire(LEASE)
    assert {lease.id for lease in expired} == {lease.id for lease in first}
    assert all(lease.state == lifecycle.EXPIRED for lease in expired)
    again = t.fill(LEASE)
    # the expired copies come first, each to the miner that did not hold it
    assert {lease.microtask.id for lease in again} == {lease.microtask.id for lease in first}
    for old in first:
        new = next(lease for lease in again if lease.microtask is old.microtask)
        assert new.miner_id != old.miner_id


def test_expire_in_deadline_order_and_next_deadline_skips_closed() -> None:
    t = table()
    connect(t, 3)
    t.add_task("a", "x", policy(lease=5.0), ["i"])
    t.add_task("b", "x", policy(lease=1.0), ["i"])
    t.add_task("c", "x", policy(lease=3.0), ["i"])
    leases = t.fill(0.0)
    assert t.next_deadline() == 1.0
    early = next(lease for lease in leases if lease.deadline == 1.0)
    result(t, early, "out")
    assert t.next_deadline() == 3.0
    assert [lease.deadline for lease in t.expire(10.0)] == [3.0, 5.0]
    assert t.next_deadline() is None


# -- refusals ----------------------------------------------------------------------


@pytest.fixture
def leased() -> tuple[DispatchTable, list[Lease]]:
    t = table()
    connect(t, 4)
    t.add_task("t1", "x", policy(replicas=3, quorum=2), ["a"])
    return t, t.fill(0.0)


def test_take_accepts_a_valid_result(leased) -> None:
    t, (lease, *_) = leased
    assert t.take(lease.miner_id, lease.id, lease.microtask.id, LEASE) is lease


def test_refusals_name_the_reason_and_change_nothing(leased) -> None:
    t, (a, b, _) = leased
    before = (dict(t.leases), {k: dict(m.leases) for k, m in t.miners.items()}, queued(t))
    assert refusal(t, "m0", "nope", a.microtask.id).reason == "unknown_assignment"
    assert refusal(t, b.miner_id, a.id, a.microtask.id).reason == "not_your_assignment"
    assert refusal(t, a.miner_id, a.id, "t1:9").reason == "wrong_microtask"
    assert refusal(t, a.miner_id, a.id, a.microtask.id, LEASE + 0.1).reason == "late"
    assert before == (dict(t.leases), {k: dict(m.leases) for k, m in t.miners.items()}, queued(t))
    assert a.state == lifecycle.LEASED


def test_closed_assignments_are_refused_for_why_they_closed(leased) -> None:
    t, (a, b, c) = leased
    result(t, a, "x")
    assert refusal(t, a.miner_id, a.id, a.microtask.id).reason == "duplicate"
    outcome = result(t, b, "x")
    assert outcome.decided and outcome.cancelled == [c]
    assert refusal(t, c.miner_id, c.id, c.microtask.id).reason == "withdrawn"


def test_released_and_expired_assignments_are_refused() -> None:
    t = table()
    connect(t, 2)
    t.add_task("t1", "x", policy(), ["a", "b"])
    one, two = t.fill(0.0)
    t.disconnect(one.miner_id)
    assert refusal(t, one.miner_id, one.id, one.microtask.id).reason == "withdrawn"
    t.expire(LEASE)
    assert refusal(t, two.miner_id, two.id, two.microtask.id, LEASE).reason == "late"


def test_why_an_assignment_is_over_is_told_only_to_its_miner(leased) -> None:
    t, (a, b, c) = leased
    result(t, a, "out")
    assert refusal(t, a.miner_id, a.id, a.microtask.id).reason == "duplicate"
    (outsider,) = set(t.miners) - {a.miner_id, b.miner_id, c.miner_id}
    for other in (outsider, b.miner_id):
        assert refusal(t, other, a.id, a.microtask.id).reason == "unknown_assignment"


# -- decisions inline ----------------------------------------------------------------


def test_the_quorum_floor_decides_and_cancels_outstanding_copies(leased) -> None:
    t, (a, b, c) = leased
    mt = a.microtask
    first = result(t, a, "x")
    assert not first.decided and mt.state == lifecycle.PENDING and a.state == lifecycle.RETURNED
    outcome = result(t, b, "x")
    assert outcome.decided and not outcome.inconclusive
    assert (mt.state, mt.decision) == (lifecycle.DECIDED, "x")
    assert mt.error <= mt.policy.target_error
    assert outcome.cancelled == [c] and c.state == lifecycle.CANCELLED
    assert mt.holders == {} and c.id not in t.miners[c.miner_id].leases
    assert outcome.task is t.tasks["t1"] and outcome.task.state == lifecycle.COMPLETED
    assert t.open == 0


def test_disagreement_asks_for_another_copy_then_decides() -> None:
    t = table()
    connect(t, 4)
    t.add_task("t1", "x", policy(replicas=2, quorum=2, max_replicas=4), ["a"])
    a, b = t.fill(0.0)
    result(t, a, "x")
    assert not result(t, b, "y").decided
    assert queued(t) == 1
    (c,) = t.fill(1.0)
    assert c.miner_id not in (a.miner_id, b.miner_id)
    outcome = result(t, c, "x", now=1.0)
    assert outcome.decided and a.microtask.decision == "x"


def test_disagreement_at_max_replicas_is_inconclusive_and_cancels_the_rest() -> None:
    t = table()
    connect(t, 3)
    t.add_task("t1", "x", policy(replicas=3, quorum=3, max_replicas=3), ["a"])
    a, b, c = t.fill(0.0)
    result(t, a, "x")
    outcome = result(t, b, "y")
    assert outcome.inconclusive and not outcome.decided
    assert outcome.cancelled == [c]
    assert a.microtask.state == lifecycle.INCONCLUSIVE
    assert outcome.task is not None and outcome.task.state == lifecycle.FAILED


def test_a_task_finishes_only_with_its_last_microtask() -> None:
    t = table()
    connect(t, 2)
    t.add_task("t1", "x", policy(max_replicas=1), ["a", "b"])
    one, two = t.fill(0.0)
    assert result(t, one, "x").task is None
    assert t.tasks["t1"].state == lifecycle.RUNNING and t.tasks["t1"].open == 1
    assert result(t, two, "x").task is t.tasks["t1"]


def test_a_miner_that_returned_never_gets_another_copy() -> None:
    t = table()
    connect(t, 2)
    t.add_task("t1", "x", policy(replicas=2, quorum=2, max_replicas=5), ["a"])
    a, b = t.fill(0.0)
    result(t, a, "x")
    result(t, b, "y")
    assert t.fill(1.0) == []  # both voted; nobody else may take it
    assert queued(t) == 1 and t.tasks["t1"].microtasks[0].excluded == {"m0", "m1"}


def test_fail_gives_a_microtask_up_with_its_reason() -> None:
    t = table()
    connect(t, 2)
    t.add_task("t1", "x", policy(replicas=2), ["a"])
    a, b = t.fill(0.0)
    outcome = t.fail(a.microtask, "the kind failed", a)
    assert outcome.inconclusive and outcome.cancelled == [b]
    assert a.state == lifecycle.RETURNED and a.microtask.reason == "the kind failed"
    assert outcome.task is not None and outcome.task.state == lifecycle.FAILED


# -- rebuilding from the store ---------------------------------------------------------


def test_restored_results_count_and_the_rest_is_requeued() -> None:
    t = table()
    task = t.add_task("t1", "x", policy(replicas=3, quorum=3), ["a"])
    mt = task.microtasks[0]
    sure = 1e-4
    t.restore_result(mt, Vote("m0", "n0", sure), "x", lambda a, b: a == b)
    t.restore_result(mt, Vote("m1", "n1", sure), "x", lambda a, b: a == b)
    assert mt.tally.returned == 2 and mt.excluded == {"m0", "m1"}
    connect(t, 3)
    (lease,) = t.fill(0.0)
    assert lease.miner_id == "m2"
    assert result(t, lease, "x").decided


def test_settle_marks_a_microtask_and_counts_it_closed() -> None:
    t = table()
    task = t.add_task("t1", "x", policy(), ["a", "b"])
    t.settle(task.microtasks[0], lifecycle.DECIDED, "x", 1e-5)
    assert (task.open, t.open, queued(t)) == (1, 1, 1)
    assert task.microtasks[0].decision == "x" and task.microtasks[0].error == 1e-5


def test_seeded_tables_place_alike() -> None:
    def run() -> list[tuple[str, str]]:
        t = DispatchTable(random.Random(7))
        connect(t, 5, slots=2)
        t.add_task("t", "x", policy(replicas=2), [f"i{i}" for i in range(6)])
        return [(lease.miner_id, lease.microtask.id) for lease in t.fill(0.0)]

    assert run() == run()


# -- slow copies --------------------------------------------------------------------


def test_a_copy_held_past_its_patience_gets_a_companion_on_a_proven_miner() -> None:
    t = table(checkable=("x",))  # a new miner's copy is checked: it needs no company
    newcomers = connect(t, 40, slots=1, prefix="new", error=F)
    t.add_task("warm", "x", policy(), ["w"])
    (warm,) = t.fill(0.0)
    result(t, warm, "out", now=0.05, checked=True)  # results of kind x take 50 ms
    assert t.stragglers.patience("x", LEASE) == 1.0  # four times 50 ms is under the floor
    t.add_task("t1", "x", policy(), ["a"])
    (sitter,) = t.fill(1.0)
    assert sitter.miner_id in newcomers
    connect(t, 3, prefix="proven")  # passed checks: their error rate is under F
    mt = sitter.microtask
    assert t.nudge(1.5) == 0 and t.fill(1.5) == []  # not yet past its patience
    assert t.nudge(2.0) == 1 and sitter.slow
    (companion,) = t.fill(2.0)
    assert companion.microtask is mt and companion.miner_id.startswith("proven")
    assert mt.outstanding() == [companion.projected]  # the slow copy is not counted on
    assert t.nudge(2.9) == 0  # one companion per slow copy (until it is slow itself)
    outcome = result(t, companion, "a!", now=2.01, checked=True)
    assert outcome.decided and outcome.cancelled == [sitter]
    assert sitter.state == lifecycle.CANCELLED and sitter.id not in t.leases


def test_a_slow_copy_that_answers_first_still_counts() -> None:
    t = table()
    connect(t, 2, slots=2)
    t.add_task("t1", "x", policy(), ["a"])
    (slow,) = t.fill(0.0)
    assert t.nudge(LEASE / 2) == 1  # nothing observed yet: half the lease
    (companion,) = t.fill(LEASE / 2)
    outcome = result(t, slow, "out", now=LEASE / 2 + 0.1, checked=True)
    assert outcome.decided and outcome.cancelled == [companion]
    assert t.stragglers.patience("x", LEASE) == LEASE / 2  # four times 5.1 s, capped at half


def test_copies_out_before_the_first_result_get_its_patience_once_it_comes() -> None:
    # On a fresh table nothing says how long copies take: the first ones
    # would wait half the lease, for a hoarder among them too.
    t = table()
    connect(t, 3, slots=1)
    t.add_task("t1", "x", policy(), ["a", "b"])
    first, held = t.fill(0.0)
    result(t, first, "out", now=0.05)  # usual is now 50 ms; the floor says 1 s
    assert t.nudge(0.9) == 0
    assert t.nudge(1.0) == 1 and held.slow  # not LEASE / 2
    (companion,) = t.fill(1.0)
    assert companion.microtask is held.microtask


def test_patience_follows_how_long_results_take_within_its_bounds() -> None:
    t = table()
    s = t.stragglers
    assert s.patience("x", 30.0) == 15.0  # nothing observed: half the lease
    s.observe("x", 2.0)
    assert s.patience("x", 30.0) == 8.0
    for _ in range(3):
        s.observe("x", 0.01)
    assert s.patience("x", 30.0) == 1.0  # a slow first result does not linger; the floor
    for _ in range(40):
        s.observe("x", 20.0)
    assert s.patience("x", 30.0) == 15.0  # never over half the lease
    assert s.patience("y", 30.0) == 15.0  # each kind its own


def test_a_floor_of_zero_turns_companions_off() -> None:
    t = DispatchTable(random.Random(0), stragglers=Stragglers(0.0))
    connect(t, 2)
    t.add_task("t1", "x", policy(), ["a"])
    (held,) = t.fill(0.0)
    assert t.nudge(LEASE - 0.01) == 0 and not held.slow and t.fill(LEASE - 0.01) == []
