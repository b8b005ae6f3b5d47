"""Placement and results, straight through the coordinator: copies, decisions, disagreement."""

from __future__ import annotations

import itertools
from collections import defaultdict

from qortex.core import lifecycle
from qortex.protocol.client import Withdrawn
from qortex.signing import Signer
from tests.coordinator.conftest import Start
from tests.coordinator.harness import ListMiner
from tests.helpers import TWEETS, labels

WRONG = {"positive": "negative", "negative": "neutral", "neutral": "positive"}


def copies_by_microtask(miners: list[ListMiner]) -> dict[str, list[str]]:
    """Which miners hold a copy of each microtask, from the frames they were sent."""
    holders: dict[str, list[str]] = defaultdict(list)
    for miner in miners:
        for assign in miner.work():
            holders[assign.microtask_id].append(miner.miner_id)
    return holders


async def test_the_copies_of_a_microtask_go_to_distinct_miners(start: Start) -> None:
    # Three votes of new miners cannot meet the default target, so the table
    # places up to max_replicas (5) copies; only four miners can take one each.
    h = await start(replicas=3, max_replicas=5)
    miners = [h.miner(slots=3) for _ in range(4)]
    task_id = await h.submit(TWEETS[:3])
    holders = await h.until(
        lambda: (c := copies_by_microtask(miners)) and sum(map(len, c.values())) == 12 and c,
        "every slot holds a copy",
    )
    assert sorted(holders) == [f"{task_id}:{i}" for i in range(3)]
    for microtask_id, miner_ids in holders.items():
        assert sorted(miner_ids) == sorted(m.miner_id for m in miners), microtask_id
    assigned = await h.until(
        lambda: len(e := h.events("microtask.assigned")) == 12 and e, "every copy is announced"
    )
    assert sorted((e["microtaskId"], e["minerId"]) for e in assigned) == sorted(
        (mt, miner) for mt, miner_ids in holders.items() for miner in miner_ids
    )
    assert h.coord.snapshot().leases_out == 12


async def test_the_same_seed_places_the_same_way(start: Start) -> None:
    """Placement is a random pick, and the coordinator's randomness is its ``rng`` alone."""
    signers = [Signer.from_seed(bytes([i]) * 32) for i in range(5)]

    async def placement(seed: int) -> list[list[str]]:
        h = await start(seed=seed, db=f"seed-{seed}-{next(runs)}.db", replicas=2, max_replicas=2)
        miners = [h.miner(signer=s) for s in signers]
        task_id = await h.submit(TWEETS[:2])
        holders = await h.until(
            lambda: (c := copies_by_microtask(miners)) and sum(map(len, c.values())) == 4 and c,
            "four copies were sent",
        )
        await h.stop()
        return [sorted(holders[f"{task_id}:{i}"]) for i in range(2)]

    runs = itertools.count()
    first = await placement(11)
    assert await placement(11) == first
    others = [await placement(seed) for seed in (12, 13, 14, 15)]
    assert any(other != first for other in others), "placement ignores the seed"


async def test_agreeing_results_are_accepted_and_decide_the_microtask(start: Start) -> None:
    h = await start(replicas=3, quorum=2, max_replicas=5, target_error=0.05)
    miners = [h.miner() for _ in range(3)]
    task_id = await h.submit(TWEETS[:1])
    await h.until(lambda: all(miner.work() for miner in miners), "each miner has a copy")
    first, second, third = miners
    await first.answer(first.work()[0])  # resolves once the result is durable
    assert h.events("microtask.quorum") == []
    await second.answer(second.work()[0])
    [quorum] = await h.until(lambda: h.events("microtask.quorum"), "the microtask is decided")
    assert quorum["status"] == lifecycle.DECIDED
    assert quorum["decision"] == labels(TWEETS[:1])[0]
    assert quorum["votes"] == 2 and quorum["cancelled"] == 1
    # The third copy is no longer needed: its miner is told so.
    withdrawn = await h.until(third.withdrawn, "the third copy is withdrawn")
    assert withdrawn == [Withdrawn(third.work()[0].assignment_id, lifecycle.DECIDED)]
    [completed] = await h.until(lambda: h.events("task.completed"), "the task completes")
    assert completed["taskId"] == task_id
    await h.durable()
    [(status, output)] = h.rows("SELECT status, output FROM tasks WHERE id = ?", task_id)
    assert status == "completed" and labels(TWEETS[:1])[0] in output
    results = h.rows("SELECT miner_id FROM results WHERE microtask_id = ?", f"{task_id}:0")
    assert sorted(r[0] for r in results) == sorted([first.miner_id, second.miner_id])
    seen = h.coord.snapshot()
    assert (seen.results_accepted, seen.microtasks_decided, seen.leases_out) == (2, 1, 0)


async def test_disagreement_asks_for_one_more_copy(start: Start) -> None:
    h = await start(replicas=2, quorum=2, max_replicas=4, target_error=0.05)
    a, b = h.miner(), h.miner()
    task_id = await h.submit(TWEETS[:1])
    await h.until(lambda: a.work() and b.work(), "both miners have a copy")
    spare = h.miner()
    assert spare.work() == [], "no third copy before the results disagree"
    truth = labels(TWEETS[:1])[0]
    await a.answer(a.work()[0])
    await b.answer(b.work()[0], WRONG[truth])
    [extra] = await h.until(spare.work, "a third copy is issued")
    assert extra.microtask_id == f"{task_id}:0"
    await h.durable()
    assert h.events("microtask.quorum") == []
    [(state,)] = h.rows("SELECT status FROM microtasks WHERE id = ?", extra.microtask_id)
    assert state == lifecycle.PENDING
