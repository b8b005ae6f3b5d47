"""Fault class replayed result: another identity's signed result, spliced ids and outputs.

Each answer is held to docs/protocol.md; the honest tasks submitted meanwhile
must all complete with the right labels, with no 5xx and no error in the log.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.faults.campaign import Campaign, FaultRun, run_fault
from tests.faults.frames import (
    honest_output,
    live,
    result_frame,
)
from tests.faults.peer import lease_over, over_unless, ready_peer
from tests.faults.tally import Tally
from tests.helpers import timeout

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(timeout(600))]


async def replayed_result(c: Campaign, t: Tally, rnd: int) -> None:
    owner = await ready_peer(c, t, 2)
    owner.heartbeat()
    thief = await ready_peer(c, t, 1)
    thief.heartbeat()
    held = await owner.take(1, timeout=8, strict=True)
    if held:
        held = await owner.take(2, timeout=1.5, strict=True)
    if not held:
        t.notes["no work received"] += 1
        await asyncio.gather(owner.close(), thief.close())
        return
    first = held[0]
    aid, mid, output = first.assignment_id, first.microtask_id, honest_output(first)
    captured = result_frame(owner.signer, aid, mid, output)  # the owner's signed result
    got = await thief.result(aid, captured)
    t.expect(
        "another identity's signed result, replayed verbatim (lease live)",
        "§7 not_your_assignment (the assignment is checked before the signature)",
        got,
        "refused not_your_assignment",
        # On a busy machine the copy may be over (decided or expired) by the time it arrives.
        *(["refused unknown_assignment"] if await over_unless(got, owner, first) else []),
    )
    # A 401 or a 409 is not counted for the thief.
    _, answer = await c.post_result(t, thief.signer.miner_id, captured)
    t.expect(
        "the same replay over HTTP in the thief's name",
        "§7, §13.1 409 not_your_assignment (the assignment before the signature, uncounted)",
        answer,
        "HTTP 409 not_your_assignment",
        # A copy that is over by then is unknown to anyone but its miner.
        *(
            [answer]
            if answer == "HTTP 409 unknown_assignment" and await lease_over(owner, first)
            else []
        ),
    )
    text = result_frame(thief.signer, aid, mid, output)
    was_live = live(first)
    got = await thief.result(aid, text, index=1)
    if was_live:
        t.expect(
            "another identity's live assignment, re-signed with the thief's key",
            "§7 not_your_assignment",
            got,
            "refused not_your_assignment",
            *(["refused unknown_assignment"] if await over_unless(got, owner, first) else []),
        )
    if len(held) > 1 and live(held[1]):
        second = held[1]
        spliced = json.loads(captured)
        spliced.update(assignmentId=second.assignment_id, microtaskId=second.microtask_id)
        got = await owner.result(second.assignment_id, json.dumps(spliced))
        t.expect(
            "own signature moved onto another assignment",
            "§6.2, §7 bad_signature",
            got,
            "refused bad_signature",
        )
    other_label = b'"negative"' if output != b'"negative"' else b'"positive"'
    swapped = json.loads(captured)
    swapped["output"] = other_label.decode()
    got = await owner.result(aid, json.dumps(swapped))
    # Late is checked before the signature (§7): once the lease has run out, "late" is right.
    over = time.time() >= first.deadline_ms / 1000
    t.expect(
        "own signature with another output",
        "§6.2, §7 bad_signature",
        got,
        "refused bad_signature",
        *(["refused late"] if over else []),
    )
    counted = False
    if live(first):
        # Anyone may deliver the owner's signed result in the owner's name (§13.1).
        response, _ = await c.post_result(t, owner.signer.miner_id, captured)
        if response.status_code == 200:
            owner.identity.http_accepted += 1
            counted = True
        ended = response.status_code == 409 and await lease_over(owner, first)
        t.expect(
            "the owner's signed result relayed over HTTP in its name",
            "§13.1 (the signature is the authentication)",
            f"HTTP {response.status_code}",
            "HTTP 200",
            *(["HTTP 409"] if ended else []),  # on a busy machine the copy may be over by then
        )
        if counted:
            got = await owner.result(aid, captured, index=1)
            t.expect(
                "the owner replays its own accepted result",
                "§7 duplicate",
                got,
                "refused duplicate",
            )
    got = await thief.result(aid, captured, index=2)
    t.expect(
        "another identity's result replayed after it counted"
        if counted
        else "another identity's result replayed (its lease ran out before it was relayed)",
        "§7 unknown_assignment (an assignment that is over is told only to its miner)",
        got,
        "refused unknown_assignment",
        # Not relayed in time: the copy may still be leased to the owner, or over.
        *([] if counted else ["refused not_your_assignment"]),
    )
    got = await thief.result(aid, text, index=3)
    t.expect(
        "another identity's finished assignment, re-signed",
        "§7 unknown_assignment",
        got,
        "refused unknown_assignment",
        "refused not_your_assignment",
    )
    await asyncio.gather(owner.close(), thief.close())


async def test_replay(fault_server: FaultRun, rounds: int) -> None:
    run = await run_fault(fault_server, "replay", "replayed result", replayed_result, rounds)
    run.assert_clean()
