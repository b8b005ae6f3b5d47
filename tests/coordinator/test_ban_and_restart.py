"""A ban takes a liar's votes back; a restart from the same file carries on where it stopped."""

from __future__ import annotations

import asyncio
import json

import msgspec
import pytest

from qortex.core import lifecycle
from qortex.core.credibility import SUSPECT_ERROR
from qortex.errors import ProtocolViolation, ResultRefused
from qortex.protocol import messages as m
from qortex.signing import Signer
from qortex.web.tasks import GoldItem
from tests.coordinator.conftest import Start
from tests.coordinator.harness import FakeClock, ListMiner
from tests.helpers import TWEETS, labels

WRONG = {"positive": "negative", "negative": "neutral", "neutral": "positive"}


async def test_a_ban_strikes_the_liars_votes_and_reopens_what_they_decided(start: Start) -> None:
    # No checker: only the known-answer item catches the liar, and its earlier
    # vote, never checked, is struck. Quorum 2 needs both voters.
    h = await start(replicas=2, quorum=2, max_replicas=2, target_error=0.05)
    liar, honest = h.miner(slots=2), h.miner(slots=2)
    first = await h.submit(TWEETS[:1])
    await h.until(lambda: liar.work() and honest.work(), "both miners have a copy")
    await liar.answer(liar.work()[0])  # honest, this time
    await honest.answer(honest.work()[0])
    await h.until(lambda: h.events("task.completed"), "the first task completes")

    known = GoldItem(TWEETS[2], labels(TWEETS[2:3])[0])
    second = await h.submit(TWEETS[1:2], gold=[known])
    await h.until(lambda: len(liar.work()) == 3, "the liar has both copies of the second task")
    second_microtasks = {f"{second}:0", f"{second}:1"}
    [gold] = [w for w in liar.work() if msgspec.json.decode(w.input) == known.input]
    with pytest.raises(ResultRefused) as refused:
        await liar.answer(gold, WRONG[known.output])
    assert refused.value.reason == "failed_check"
    assert liar.link.closed == [(m.BANNED, f"banned: result {gold.assignment_id} failed a check")]

    [reopened] = await h.until(lambda: h.events("microtask.reopened"), "its decision reopens")
    assert reopened["microtaskId"] == f"{first}:0" and reopened["minerId"] == liar.miner_id
    [revised] = await h.until(lambda: h.events("task.revised"), "the finished task runs again")
    assert revised["taskId"] == first and revised["status"] == lifecycle.RUNNING
    await h.durable()
    [(status,)] = h.rows("SELECT status FROM tasks WHERE id = ?", first)
    assert status == lifecycle.RUNNING
    revoked = h.rows("SELECT revoked FROM results WHERE miner_id = ?", liar.miner_id)
    assert revoked and all(r[0] for r in revoked), revoked
    mt = h.coord.table.tasks[first].microtasks[0]
    assert mt.state == lifecycle.PENDING
    assert [v.miner_id for g in mt.tally.groups for v in g.votes] == [honest.miner_id]

    # A newcomer gets the copies the ban made necessary; the liar gets nothing more.
    newcomer = h.miner(slots=3)
    await h.until(
        lambda: f"{first}:0" in {w.microtask_id for w in newcomer.work()},
        "the reopened microtask is issued again",
    )
    assert {w.microtask_id for w in newcomer.work()} <= {f"{first}:0", *second_microtasks}
    with pytest.raises(ProtocolViolation) as turned_away:
        liar.connect()
    assert turned_away.value.close_code == m.BANNED


async def test_a_restart_from_the_same_file_carries_on(start: Start) -> None:
    clock = FakeClock()
    rule = {"replicas": 2, "quorum": 2, "max_replicas": 2, "target_error": 0.05}
    signers = [Signer(), Signer()]
    h = await start(clock=clock, **rule)
    a, b = (h.miner(slots=2, signer=s) for s in signers)
    task_id = await h.submit(TWEETS[:2])
    decided, undecided = f"{task_id}:0", f"{task_id}:1"
    await h.until(lambda: len(a.work()) == 2 and len(b.work()) == 2, "both copies each")
    for assign in a.work():
        await a.answer(assign)
    [b_first] = [w for w in b.work() if w.microtask_id == decided]
    await b.answer(b_first)  # b's copy of the other microtask is still out at the stop
    await h.until(lambda: h.events("microtask.quorum"), "the first microtask is decided")
    await h.stop()
    [(last_event,)] = h.rows("SELECT max(id) FROM events")

    clock.advance(60)
    # Another process, so other randomness: assignment ids are drawn from it.
    h = await start(seed=8, clock=clock, **rule)
    task = h.coord.table.tasks[task_id]
    states = {mt.id: mt.state for mt in task.microtasks}
    assert states == {decided: lifecycle.DECIDED, undecided: lifecycle.PENDING}
    [kept] = [mt for mt in task.microtasks if mt.id == undecided]
    assert [v.miner_id for g in kept.tally.groups for v in g.votes] == [a.miner_id]
    assert h.coord.snapshot().leases_out == 0, "a copy out at the stop is void"
    await h.durable()
    # The log goes on from the last id it held, with the disconnect b missed.
    after = h.rows(
        "SELECT id, type, miner_id, data FROM events WHERE id > ? ORDER BY id", last_event
    )
    assert [row[0] for row in after] == list(range(last_event + 1, last_event + 1 + len(after)))
    missed = [json.loads(row[3]) for row in after if row[1:3] == ("miner.disconnected", b.miner_id)]
    assert [notice["reason"] for notice in missed] == ["coordinator restarted"]

    # Miners come back; whoever may take the open copy finishes the task.
    miners = [h.miner(slots=2, signer=s) for s in signers] + [h.miner()]
    holders = await h.until(lambda: [m for m in miners if m.work()], "the open copy is placed")
    [holder] = holders
    [assign] = holder.work()
    assert assign.microtask_id == undecided and holder.miner_id != a.miner_id
    await holder.answer(assign)
    [completed] = await h.until(lambda: h.events("task.completed"), "the task completes")
    assert completed["id"] > last_event, "event ids go on from where they stopped"
    await h.durable()
    [(status, output)] = h.rows("SELECT status, output FROM tasks WHERE id = ?", task_id)
    assert status == lifecycle.COMPLETED
    assert [item["label"] for item in json.loads(output)] == labels(TWEETS[:2])


async def test_two_liars_banned_at_once_revise_their_finished_task_once(start: Start) -> None:
    # Both liars voted on a finished task and are caught in the same moment:
    # their re-examinations must not each load the task anew, or the copies
    # issued by the first would decide an orphan and the task never finish.
    h = await start(replicas=3, quorum=3, max_replicas=3, target_error=0.05)
    liars = [h.miner(slots=2), h.miner(slots=2)]
    honest = h.miner(slots=2)
    first = await h.submit(TWEETS[:1])
    await h.until(lambda: all(x.work() for x in [*liars, honest]), "every miner has a copy")
    for miner in [*liars, honest]:
        await miner.answer(miner.work()[0])  # honest, this time
    await h.until(lambda: h.events("task.completed"), "the first task completes")

    known = GoldItem(TWEETS[2], labels(TWEETS[2:3])[0])
    await h.submit(TWEETS[1:2], gold=[known])
    await h.until(lambda: all(len(x.work()) == 3 for x in liars), "the liars have the gold item")
    caught = []
    for liar in liars:
        [gold] = [w for w in liar.work() if msgspec.json.decode(w.input) == known.input]
        caught.append(liar.answer(gold, WRONG[known.output]))  # both before either ban settles
    for refusal in await asyncio.gather(*caught, return_exceptions=True):
        assert isinstance(refusal, ResultRefused) and refusal.reason == "failed_check"
    await h.until(lambda: len(h.events("miner.banned")) == 2, "both liars are banned")
    await h.until(lambda: h.events("task.revised"), "the finished task runs again")

    newcomers = [h.miner(slots=3), h.miner(slots=3)]

    def reissued() -> list[tuple[ListMiner, m.Assign]]:
        return [(x, w) for x in newcomers for w in x.work() if w.microtask_id == f"{first}:0"]

    await h.until(lambda: len(reissued()) == 2, "the reopened microtask is issued again")
    for miner, assign in reissued():
        await miner.answer(assign)
    await h.until(lambda: len(h.events("task.completed")) >= 2, "the revised task completes")
    await h.durable()
    [(status,)] = h.rows("SELECT status FROM tasks WHERE id = ?", first)
    assert status == lifecycle.COMPLETED
    assert first not in h.coord.table.tasks, "a finished task is not kept in memory"


async def test_a_liars_next_key_from_the_same_network_counts_for_nothing(start: Start) -> None:
    # Without suspicion, a banned liar's fresh key on the same /24 would count
    # as a new identity (the fault fraction) at once, and again after a restart.
    h = await start(replicas=1, quorum=1, max_replicas=3)
    liar = h.miner(slots=2, address="198.51.100.7")
    known = GoldItem(TWEETS[2], labels(TWEETS[2:3])[0])
    await h.submit(TWEETS[1:2], gold=[known])
    await h.until(lambda: len(liar.work()) == 2, "the liar has both copies")
    [gold] = [w for w in liar.work() if msgspec.json.decode(w.input) == known.input]
    with pytest.raises(ResultRefused):
        await liar.answer(gold, WRONG[known.output])

    async def unchecked(miner: ListMiner, copies: int) -> list[float]:
        """What the miner's results that no check proved were counted as."""
        await h.until(lambda: len(miner.work()) == copies, "the miner gets its copies")
        for assign in miner.work():
            await miner.answer(assign)
        await h.durable()
        sql = "SELECT error FROM results WHERE miner_id = ? AND NOT coalesce(checked, 0)"
        return [error for (error,) in h.rows(sql, miner.miner_id)]

    assert await unchecked(h.miner(slots=2, address="198.51.100.200"), 2) == [SUSPECT_ERROR]
    await h.submit(TWEETS[3:4])
    elsewhere = h.miner(address="203.0.113.9")
    assert await unchecked(elsewhere, 1) == [h.settings.fault_fraction]
    await h.stop()

    h = await start(replicas=1, quorum=1, max_replicas=3)
    await h.submit(TWEETS[4:5])
    assert await unchecked(h.miner(address="198.51.100.31"), 1) == [SUSPECT_ERROR]


async def test_an_operators_ban_of_an_absent_miner_makes_its_last_network_suspect(
    start: Start,
) -> None:
    h = await start(replicas=1, quorum=1, max_replicas=3)
    gone = h.miner(address="198.51.100.7")
    await h.durable()  # its row, with the address it was seen at
    gone.disconnect()
    await h.coord.control.set_miner_status(gone.miner_id, "banned", "not welcome here")
    await h.until(lambda: h.events("miner.banned"), "the ban is made")
    newcomer = h.miner(address="198.51.100.99")
    await h.until(
        lambda: (
            h.coord.ledger.vote_error(newcomer.miner_id, "198.51.100.0/24", h.clock())
            == SUSPECT_ERROR
        ),
        "its network is suspect",
    )
    await h.submit(TWEETS[:1])
    await h.until(newcomer.work, "the newcomer gets the copy")
    await newcomer.answer(newcomer.work()[0])
    await h.durable()
    [(error,)] = h.rows("SELECT error FROM results WHERE miner_id = ?", newcomer.miner_id)
    assert error == SUSPECT_ERROR
