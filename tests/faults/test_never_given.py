"""Fault class work never given: made-up assignment ids, other miners' live work, wrong microtask.

Each answer is held to docs/protocol.md; the honest tasks submitted meanwhile
must all complete with the right labels, with no 5xx and no error in the log.
"""

from __future__ import annotations

import asyncio
import json
import random
import time

import pytest

from tests.faults.campaign import Campaign, FaultRun, run_fault
from tests.faults.frames import (
    LEASE,
    NO_TASK,
    honest_output,
    result_frame,
)
from tests.faults.peer import ready_peer
from tests.faults.tally import Tally
from tests.helpers import timeout

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(timeout(600))]


async def work_never_given(c: Campaign, t: Tally, rnd: int) -> None:
    # Slots enough that two of the first copies it gets are of quorum-3 tasks.
    holder = await ready_peer(c, t, 6)
    holder.heartbeat()
    claimer = await ready_peer(c, t, 1)
    claimer.heartbeat()
    signer = claimer.signer
    rng = random.Random(f"{c.seed}-never-{rnd}")
    made_up = [f"{rng.getrandbits(96):024x}", "5f0c3a9e1b2d4c6e8a7f9b10"]
    for aid in made_up:
        got = await claimer.result(aid, result_frame(signer, aid, f"{NO_TASK}:0", b'"positive"'))
        t.expect(
            "made-up assignment id", "§7 unknown_assignment", got, "refused unknown_assignment"
        )
    # Another miner's live leases, claimed with our own valid signature.
    held = await holder.take(2, timeout=8, strict=True)
    for assign in held:
        text = result_frame(
            signer, assign.assignment_id, assign.microtask_id, honest_output(assign)
        )
        live = time.time() < assign.deadline_ms / 1000 - 0.3
        got = await claimer.result(assign.assignment_id, text)
        if live:
            t.expect(
                "another miner's live assignment",
                "§7 not_your_assignment",
                got,
                "refused not_your_assignment",
            )
    # ... and once they are over (expired), nothing is said about them.
    if held:
        await holder.wait(lambda: all(a.assignment_id in holder.cancels for a in held), LEASE + 3)
        for assign in held:
            text = result_frame(
                signer, assign.assignment_id, assign.microtask_id, honest_output(assign)
            )
            got = await claimer.result(assign.assignment_id, text, index=1)
            t.expect(
                "another miner's finished assignment",
                "§7 unknown_assignment",
                got,
                "refused unknown_assignment",
            )
    else:
        t.notes["no work received"] += 1
    # Over HTTP: the same refusals, plus the HTTP-only answers.
    aid = f"{rng.getrandbits(96):024x}"
    frame = result_frame(signer, aid, f"{NO_TASK}:0", b'"positive"')
    _, answer = await c.post_result(t, signer.miner_id, frame)
    t.expect(
        "made-up assignment over HTTP",
        "§13.1 409 unknown_assignment",
        answer,
        "HTTP 409 unknown_assignment",
    )
    response, _ = await c.post_result(t, "0" * 32, frame)
    t.expect(
        "result for a miner id that never connected",
        "§13.1",
        f"HTTP {response.status_code}",
        "HTTP 404",
    )
    body = json.loads(frame)
    del body["type"]
    path = f"/internal/miner/{signer.miner_id}/result"
    response = await c.request(t, "POST", path, json={**body, "type": "result"})
    t.expect(
        "HTTP body with an unknown field",
        "§13 (unknown fields rejected)",
        f"HTTP {response.status_code}",
        "HTTP 400",
    )
    response = await c.request(
        t, "POST", path, content=b"{not json", headers={"content-type": "application/json"}
    )
    t.expect("HTTP body not JSON", "§13.1", f"HTTP {response.status_code}", "HTTP 400")
    response = await c.request(t, "POST", path, json={**body, "output": 5})
    t.expect("HTTP body with a wrong type", "§13.1", f"HTTP {response.status_code}", "HTTP 400")
    await asyncio.gather(holder.close(), claimer.close())


async def test_never_given(fault_server: FaultRun, rounds: int) -> None:
    run = await run_fault(fault_server, "never_given", "work never given", work_never_given, rounds)
    run.assert_clean()
