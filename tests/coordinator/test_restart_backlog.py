"""A restart builds only the microtasks begun before the stop; the rest are built as
placement reaches them, and every one is decided all the same."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from qortex.core import lifecycle
from qortex.signing import Signer
from qortex.web.tasks import GoldItem
from tests.coordinator.conftest import Start
from tests.coordinator.harness import FakeClock
from tests.helpers import TWEETS, labels


async def test_a_partly_started_task_is_finished_after_a_restart(start: Start) -> None:
    clock = FakeClock()
    rule = {"replicas": 2, "quorum": 2, "max_replicas": 2, "target_error": 0.05}
    tweets = TWEETS[:4]
    known = GoldItem(TWEETS[4], labels(TWEETS[4:])[0])
    h = await start(clock=clock, **rule)
    signer = Signer()
    first = h.miner(signer=signer)
    task_id = await h.submit(tweets, gold=[known])
    [assign] = await h.until(first.work, "the first copy is out")
    begun = assign.microtask_id
    await first.answer(assign)  # counted; its next copy is out at the stop, and void
    await h.until(lambda: len(first.work()) == 2, "the next copy is out")
    await h.stop()

    clock.advance(60)
    h = await start(seed=8, clock=clock, **rule)
    task = h.coord.table.tasks[task_id]
    assert [mt.id for mt in task.built()] == [begun], "only the begun microtask is built"
    assert h.coord.snapshot().microtasks_open == len(tweets) + 1

    # The begun microtask is placed first, then the rest as placement reaches them.
    newcomer = h.miner()
    [again] = await h.until(newcomer.work, "the begun microtask is placed again")
    assert again.microtask_id == begun
    miners = [newcomer, h.miner(slots=2, signer=signer), h.miner(slots=2)]
    answered: dict[str, asyncio.Future[None]] = {}

    def answer_all() -> list[dict[str, Any]]:
        for miner in miners:
            for work in miner.work():
                if work.assignment_id not in answered:
                    answered[work.assignment_id] = miner.answer(work)
        return h.events("task.completed")

    [completed] = await h.until(answer_all, "every microtask is decided and the task completes")
    assert completed["taskId"] == task_id
    await asyncio.gather(*answered.values())  # every result was accepted
    await h.durable()
    [(status, output)] = h.rows("SELECT status, output FROM tasks WHERE id = ?", task_id)
    assert status == lifecycle.COMPLETED
    assert [item["label"] for item in json.loads(output)] == labels(tweets)
    rows = h.rows("SELECT status FROM microtasks WHERE task_id = ?", task_id)
    assert [row[0] for row in rows] == [lifecycle.DECIDED] * (len(tweets) + 1)
