"""Stateful fuzzing of the dispatch table with the credibility-based quorum.

:class:`DispatchFuzz` connects and disconnects miners (random slots, earned
slots, kinds, networks shared or not, error rates from new to credible),
re-rates them as the ledger would, adds tasks (random floors, targets and
known-answer items), fills, returns agreeing or disagreeing results (some
checked, some failing a check, some through a kind's ``agree`` that raises),
bans miners and strikes their votes, sends results the table must refuse,
and moves time on. After every step it checks the invariants below. The
server side of the protocol has its own machine in test_session_fuzz.py.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from qortex.core import lifecycle
from qortex.core.credibility import CHECKED_ERROR, Vote
from qortex.core.dispatch import DispatchTable
from qortex.core.quorum import Policy
from qortex.core.work import NO_GOLD, Lease, Microtask, Task, evaluate, wants_copy
from qortex.errors import ResultRefused
from tests.core.fuzzing import PROFILE, TIMEOUT
from tests.core.tables import fingerprint, queued_ids, unbuilt

KINDS = ("x", "y")  # "y" has a checker
OUTPUTS = ("A", "B", "C")
NETWORKS = ("n0", "n1", "n2", "own")
ERRORS = (0.1, 0.02, 1e-4)  # new, on its way, credible
EXPECTED_FOR_CLOSED = {
    lifecycle.RETURNED: "duplicate",
    lifecycle.EXPIRED: "late",
    lifecycle.RELEASED: "withdrawn",
    lifecycle.CANCELLED: "withdrawn",
}


def same(a: Any, b: Any) -> bool:
    return a == b


def broken(a: Any, b: Any) -> bool:
    raise RuntimeError("a plugin's agree failed")


class DispatchFuzz(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.t = DispatchTable(random.Random(0), checkable=["y"])
        self.now = 0.0
        self.serial = itertools.count()
        self.gone: dict[str, str] = {}  # disconnected miner -> its network
        self.banned: set[str] = set()
        self.tasks: list[Task] = []  # every task added, its microtasks built lazily
        self.unread: dict[str, list[str]] = {}  # task -> its inputs, not given to it yet
        self.settled: dict[str, tuple[str, str]] = {}  # state and decision, as last moved
        self.closed: list[Lease] = []
        self.shrunk: set[str] = set()  # miners whose earned slots fell below what they hold

    @initialize(
        seed=st.integers(0, 2**32 - 1),
        miners=st.integers(1, 6),
        tasks=st.integers(0, 2),
        data=st.data(),
    )
    def populate(self, seed: int, miners: int, tasks: int, data: st.DataObject) -> None:
        """A seeded table with a few miners and tasks, so that work is in flight early."""
        ids = itertools.count()
        self.t = DispatchTable(random.Random(seed), new_id=lambda: f"a{next(ids)}", checkable=["y"])
        for _ in range(miners):
            self.connect(data)
        for _ in range(tasks):
            self.add_task(data)
        self.fill()

    # -- miners

    @rule(data=st.data())
    def connect(self, data: st.DataObject) -> None:
        miner_id = f"m{next(self.serial)}"
        network = data.draw(st.sampled_from(NETWORKS))
        self._connect(data, miner_id, miner_id if network == "own" else network)

    def _connect(self, data: st.DataObject, miner_id: str, network: str) -> None:
        slots = data.draw(st.integers(0, 3), label="slots")
        kinds = data.draw(st.sets(st.sampled_from(KINDS), min_size=1), label="kinds")
        error = data.draw(st.sampled_from(ERRORS), label="error")
        allowance = data.draw(st.integers(1, 3), label="allowance")
        self.t.connect(miner_id, slots, sorted(kinds), network, error, allowance)

    @precondition(lambda self: self.gone)
    @rule(data=st.data())
    def reconnect(self, data: st.DataObject) -> None:
        miner_id = data.draw(st.sampled_from(sorted(self.gone)))
        self._connect(data, miner_id, self.gone.pop(miner_id))

    @precondition(lambda self: self.t.miners)
    @rule(data=st.data())
    def disconnect(self, data: st.DataObject) -> None:
        miner_id = data.draw(st.sampled_from(sorted(self.t.miners)))
        self._disconnect(miner_id)

    def _disconnect(self, miner_id: str) -> None:
        held = set(self.t.miners[miner_id].leases)
        network = self.t.miners[miner_id].network
        released = self.t.disconnect(miner_id)
        assert {lease.id for lease in released} == held
        for lease in released:
            assert lease.state == lifecycle.RELEASED
            assert miner_id in lease.microtask.excluded  # dropping counts as letting go
        self.closed += released
        self.shrunk.discard(miner_id)
        if miner_id not in self.banned:
            self.gone[miner_id] = network

    @precondition(lambda self: self.t.miners)
    @rule(data=st.data(), error=st.sampled_from(ERRORS), allowance=st.integers(0, 4))
    def rate(self, data: st.DataObject, error: float, allowance: int) -> None:
        miner = self.t.miners[data.draw(st.sampled_from(sorted(self.t.miners)))]
        self.t.rate(miner.id, error, allowance)
        assert miner.error == error and miner.allowance == max(1, allowance)
        if miner.free < 0:
            self.shrunk.add(miner.id)

    # -- work

    @rule(data=st.data())
    def add_task(self, data: st.DataObject) -> None:
        replicas = data.draw(st.integers(1, 3), label="replicas")
        quorum = data.draw(st.integers(1, replicas), label="quorum")
        most = data.draw(st.integers(replicas, 2 * replicas + 3), label="max_replicas")
        lease = data.draw(st.sampled_from([1.0, 2.0, 5.0]), label="lease")
        target = data.draw(st.sampled_from([1e-3, 1e-2]), label="target")
        count = data.draw(st.integers(1, 3), label="microtasks")
        gold = data.draw(st.sets(st.integers(0, count - 1), max_size=1), label="gold")
        policy = Policy(replicas, quorum, most, lease, target)
        inputs = [f"in{i}" for i in range(count)]
        later = data.draw(st.booleans(), label="inputs later")  # as after a start
        task = self.t.add_task(
            f"t{next(self.serial)}",
            data.draw(st.sampled_from(KINDS), label="kind"),
            policy,
            None if later else inputs,
            {i: "A" for i in gold},
            count=count,
        )
        self.tasks.append(task)
        if later:
            self.unread[task.id] = inputs

    @precondition(lambda self: self.unread)
    @rule(data=st.data())
    def inputs_arrive(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(sorted(self.unread)))
        [task] = [task for task in self.tasks if task.id == task_id]
        task.inputs = self.unread.pop(task_id)

    @precondition(lambda self: self.t.tasks)
    @rule(data=st.data(), event=st.sampled_from(["cancel", "fail"]))
    def withdraw(self, data: st.DataObject, event: str) -> None:
        task = self.t.tasks[data.draw(st.sampled_from(sorted(self.t.tasks)))]
        if task.state != lifecycle.RUNNING:
            return
        open_before = self.t.open - task.open
        withdrawn = self.t.withdraw_task(task, event)
        assert all(lease.state == lifecycle.CANCELLED for lease in withdrawn)
        assert task.id not in self.t.tasks and task.open == 0 and self.t.open == open_before
        for mt in task.built():
            assert mt.state != lifecycle.PENDING and not mt.holders
            if mt.state == lifecycle.CANCELLED:
                self.moved(mt)
        self.closed += withdrawn

    @rule()
    def fill(self) -> None:
        before = {mid: len(miner.leases) for mid, miner in self.t.miners.items()}
        issued = self.t.fill(self.now)
        for lease in issued:
            assert lease.state == lifecycle.LEASED
            assert (lease.issued_at, lease.deadline) == (
                self.now,
                self.now + lease.microtask.policy.lease_seconds,
            )
            assert lease.miner_id not in lease.microtask.excluded
        for miner_id, n in Counter(lease.miner_id for lease in issued).items():
            miner = self.t.miners[miner_id]
            assert before[miner_id] + n <= min(miner.slots, miner.allowance)
        # Nothing placeable is left behind (far fewer microtasks here than SCAN_LIMIT),
        # but for kinds where placement waits for a task's inputs.
        waiting = {task.kind for task in self.t.tasks.values() if task.inputs is None}
        for task in self.t.tasks.values():
            if task.kind in waiting:
                continue
            if task.state == lifecycle.RUNNING and unbuilt(task):
                assert not any(
                    miner.free > 0 and task.kind in miner.kinds for miner in self.t.miners.values()
                ), f"{task.id} has fresh microtasks left while a miner is free"
        for mt in self.mts.values():
            if not wants_copy(mt) or mt.kind in waiting:
                continue
            networks = mt.networks()
            for miner in self.t.miners.values():
                if miner.free > 0 and mt.kind in miner.kinds:
                    assert (
                        miner.id in mt.holders
                        or miner.id in mt.excluded
                        or miner.network in networks
                    )

    # -- results

    @precondition(lambda self: self.t.leases)
    @rule(data=st.data(), how=st.sampled_from(["agree", "disagree", "checked", "lie", "raise"]))
    def result(self, data: st.DataObject, how: str) -> None:
        lease = self.t.leases[data.draw(st.sampled_from(sorted(self.t.leases)))]
        mt = lease.microtask
        if self.now > lease.deadline:
            self.refused(lease.miner_id, lease.id, mt.id, "late")
            return
        taken = self.t.take(lease.miner_id, lease.id, mt.id, self.now)
        assert taken is lease
        miner = self.t.miners[lease.miner_id]
        if how == "raise" and not mt.tally.groups:
            how = "disagree"  # agree is only called against an earlier result
        output = "A" if how in ("agree", "checked") else data.draw(st.sampled_from(OUTPUTS[1:]))
        checkable = mt.gold is not NO_GOLD or mt.kind == "y"
        if how == "lie" and checkable:  # caught: the copy closes and the liar is banned
            self.t.returned(lease)
            self.closed.append(lease)
            self.ban(lease.miner_id, mt)
            return
        checked = checkable and how == "checked"
        vote = Vote(miner.id, miner.network, CHECKED_ERROR if checked else miner.error)
        if how == "raise":
            before = self.fingerprint()
            with pytest.raises(RuntimeError):
                evaluate(lease, vote, output, broken)
            assert self.fingerprint() == before, "a raising agree changed the table"
            outcome = self.t.fail(mt, "agree raised", lease)
        else:
            outcome = self.t.apply(evaluate(lease, vote, output, same))
        self.closed += [lease, *outcome.cancelled]
        assert lease.state == lifecycle.RETURNED and lease.miner_id in mt.excluded
        assert all(c.state == lifecycle.CANCELLED and c.microtask is mt for c in outcome.cancelled)
        assert outcome.decided == (mt.state == lifecycle.DECIDED)
        assert outcome.inconclusive == (mt.state == lifecycle.INCONCLUSIVE)
        if outcome.decided or outcome.inconclusive:
            self.moved(mt)
        else:
            assert outcome.cancelled == []
        hypothesis.event(f"result: {how}, decided: {outcome.decided}")

    @precondition(lambda self: self.t.miners)
    @rule(data=st.data())
    def ban_someone(self, data: st.DataObject) -> None:
        self.ban(data.draw(st.sampled_from(sorted(self.t.miners))))

    def ban(self, miner_id: str, caught: Microtask | None = None) -> None:
        """Banned: disconnected, then struck from every microtask it returned (backtracking)."""
        self.banned.add(miner_id)
        self._disconnect(miner_id)
        for mt in self.mts.values():
            if miner_id not in mt.tally.voters() and mt is not caught:
                continue
            if mt.task_id not in self.t.tasks:  # withdrawn: it stays as it ended
                continue
            was = mt.state
            reopened, outcome = self.t.strike(mt, miner_id)
            # Only votes proven right by a check outlive a ban.
            assert all(
                v.error <= CHECKED_ERROR
                for g in mt.tally.groups
                for v in g.votes
                if v.miner_id == miner_id
            )
            if reopened:
                assert was != lifecycle.PENDING
                hypothesis.event("strike reopened a decision")
            if reopened or outcome is not None:
                self.moved(mt)
            if outcome is not None:
                assert outcome.decided and mt.state == lifecycle.DECIDED
                self.closed += outcome.cancelled

    def moved(self, mt: Microtask) -> None:
        """A microtask was settled, reopened or re-decided by the rule that did it."""
        self.settled[mt.id] = (mt.state, repr(mt.decision))

    @rule(
        data=st.data(),
        how=st.sampled_from(["made_up", "other_miner", "wrong_microtask", "closed_own", "late"]),
    )
    def wrong_result(self, data: st.DataObject, how: str) -> None:
        """A result the table must refuse, for the documented reason, changing nothing."""
        live = sorted(self.t.leases)
        late = sorted(a for a, lease in self.t.leases.items() if self.now > lease.deadline)
        if (how in ("other_miner", "wrong_microtask") and not live) or (
            (how == "closed_own" and not self.closed) or (how == "late" and not late)
        ):
            how = "made_up"
        miners = [*sorted(self.t.miners), "stranger"]
        if how == "made_up":
            aid = data.draw(st.text(max_size=30).filter(lambda a: a not in live))
            if aid in {lease.id for lease in self.closed}:
                return
            miner_id = data.draw(st.sampled_from(miners))
            self.refused(miner_id, aid, data.draw(st.text(max_size=10)), "unknown_assignment")
        elif how == "other_miner":
            lease = self.t.leases[data.draw(st.sampled_from(live))]
            miner_id = data.draw(st.sampled_from([m for m in miners if m != lease.miner_id]))
            self.refused(miner_id, lease.id, lease.microtask.id, "not_your_assignment")
        elif how == "wrong_microtask":
            lease = self.t.leases[data.draw(st.sampled_from(live))]
            self.refused(lease.miner_id, lease.id, lease.microtask.id + "x", "wrong_microtask")
        elif how == "closed_own":
            lease = data.draw(st.sampled_from(self.closed))
            expected = EXPECTED_FOR_CLOSED[lease.state]
            self.refused(lease.miner_id, lease.id, lease.microtask.id, expected)
            others = [m for m in miners if m != lease.miner_id]
            other = data.draw(st.sampled_from(others))
            self.refused(other, lease.id, lease.microtask.id, "unknown_assignment")
        else:
            lease = self.t.leases[data.draw(st.sampled_from(late))]
            self.refused(lease.miner_id, lease.id, lease.microtask.id, "late")

    def refused(self, miner_id: str, aid: str, microtask_id: str, reason: str) -> None:
        before = self.fingerprint()
        with pytest.raises(ResultRefused) as info:
            self.t.take(miner_id, aid, microtask_id, self.now)
        assert info.value.reason == reason
        hypothesis.event(f"refused: {reason}")
        assert self.fingerprint() == before, "a refused take changed the table"

    # -- time

    @rule(seconds=st.sampled_from([0.25, 0.5, 1.0, 3.0, 7.0]))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def expire(self) -> None:
        due = {aid for aid, lease in self.t.leases.items() if lease.deadline <= self.now}
        expired = self.t.expire(self.now)
        assert {lease.id for lease in expired} == due
        for lease in expired:
            assert lease.state == lifecycle.EXPIRED
            assert lease.miner_id in lease.microtask.excluded
        self.closed += expired

    # -- invariants, after every step

    @property
    def mts(self) -> dict[str, Microtask]:
        """Every microtask built so far (a fresh one is built when placement takes it)."""
        return {mt.id: mt for task in self.tasks for mt in task.built()}

    def fingerprint(self) -> tuple[Any, ...]:
        return fingerprint(self.t, self.mts.values())

    @invariant()
    def a_miner_holds_at_most_one_live_copy_of_a_microtask(self) -> None:
        pairs = Counter((x.miner_id, x.microtask.id) for x in self.t.leases.values())
        assert all(n == 1 for n in pairs.values()), pairs.most_common(1)

    @invariant()
    def copies_and_votes_of_a_microtask_are_on_distinct_networks(self) -> None:
        for mt in self.mts.values():
            nets = [lease.projected.network for lease in mt.holders.values()]
            nets += [v.network for g in mt.tally.groups for v in g.votes]
            assert len(nets) == len(set(nets)), (mt.id, nets)

    @invariant()
    def a_settled_microtask_changes_only_through_its_rules(self) -> None:
        for mt in self.mts.values():
            now = (mt.state, repr(mt.decision))
            if mt.state == lifecycle.PENDING:
                assert self.settled.get(mt.id, now) == now, f"{mt.id} reopened silently"
                continue
            assert self.settled.get(mt.id) == now, f"{mt.id} changed outside its rules"
            assert mt.holders == {} and mt.id not in queued_ids(self.t)

    @invariant()
    def a_decision_meets_its_target_and_floor(self) -> None:
        for mt in self.mts.values():
            if mt.state == lifecycle.DECIDED:
                verdict = mt.tally.verdict(mt.policy, [])
                assert verdict.is_decided and verdict.decided == mt.decision
                assert mt.error == verdict.error <= mt.policy.target_error
                assert verdict.votes >= mt.policy.quorum

    @invariant()
    def slots_are_never_overdrawn(self) -> None:
        for miner in self.t.miners.values():
            assert len(miner.leases) <= miner.slots
            if miner.free >= 0:
                self.shrunk.discard(miner.id)
            assert miner.free >= 0 or miner.id in self.shrunk, miner.id

    @invariant()
    def every_count_of_leases_agrees(self) -> None:
        by_miner = sum(len(miner.leases) for miner in self.t.miners.values())
        by_microtask = sum(len(mt.holders) for mt in self.mts.values())
        assert len(self.t.leases) == by_miner == by_microtask
        for aid, lease in self.t.leases.items():
            assert lease.id == aid and lease.state == lifecycle.LEASED
            assert self.t.miners[lease.miner_id].leases[aid] is lease
            assert lease.microtask.holders[lease.miner_id] is lease
            assert lease.microtask.state == lifecycle.PENDING
            assert lease.miner_id not in lease.microtask.excluded
        live = [lease.deadline for lease in self.t.leases.values()]
        assert self.t.next_deadline() == (min(live) if live else None)

    @invariant()
    def pending_work_is_queued_or_out(self) -> None:
        queued = set(queued_ids(self.t))
        for task in self.t.tasks.values():
            for index in unbuilt(task):
                assert f"{task.id}:{index}" in queued, f"{task.id}:{index} is never offered"
        for mt in self.mts.values():
            if mt.state != lifecycle.PENDING:
                continue
            assert (mt.id in queued) == wants_copy(mt), mt.id
            assert mt.holders or mt.id in queued, f"{mt.id} is stuck: nothing out, not queued"
            assert mt.tally.returned + len(mt.holders) <= mt.policy.max_replicas

    @invariant()
    def a_banned_miner_counts_nowhere(self) -> None:
        """Nowhere but in votes a check proved right (a withdrawn task stays as it ended)."""
        for mt in self.mts.values():
            if mt.task_id not in self.t.tasks:
                continue
            for group in mt.tally.groups:
                for vote in group.votes:
                    assert vote.miner_id not in self.banned or vote.error <= CHECKED_ERROR, mt.id

    @invariant()
    def tasks_finish_with_their_last_microtask(self) -> None:
        for task in self.t.tasks.values():
            open_ = sum(mt.state == lifecycle.PENDING for mt in task.built()) + len(unbuilt(task))
            assert task.open == open_
            if open_:
                assert task.state == lifecycle.RUNNING
            else:
                failed = any(mt.state == lifecycle.INCONCLUSIVE for mt in task.built())
                assert task.state == (lifecycle.FAILED if failed else lifecycle.COMPLETED)
        assert self.t.open == sum(task.open for task in self.t.tasks.values())


TestDispatchFuzz = DispatchFuzz.TestCase
TestDispatchFuzz.settings = PROFILE
TestDispatchFuzz.pytestmark = TIMEOUT
