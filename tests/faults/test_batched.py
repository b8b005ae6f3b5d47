"""Fault class batched frames: arrays of frames: valid, mixed with bad ones, nested, empty, huge.

Each answer is held to docs/protocol.md; the honest tasks submitted meanwhile
must all complete with the right labels, with no 5xx and no error in the log.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from typing import Any

import pytest

from qortex.signing import Signer
from tests.faults.campaign import Campaign, FaultRun, run_fault
from tests.faults.frames import (
    MINER_BURST,
    NO_TASK,
    honest_output,
    result_frame,
)
from tests.faults.peer import Peer, ready_peer
from tests.faults.tally import Tally
from tests.helpers import timeout

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(timeout(600))]


async def batched_frames(c: Campaign, t: Tally, rnd: int) -> None:
    """Messages holding arrays of frames (§1): handled in order, as if each came alone."""
    beat = {"type": "heartbeat", "timeMs": 1}

    async def replies(name: str, message: Any, want: int) -> None:
        peer = await ready_peer(c, t)
        before = peer.heartbeats
        await peer.send(json.dumps(message, separators=(",", ":")))
        await peer.wait(lambda: peer.heartbeats - before >= want, 10)
        got = f"{peer.heartbeats - before} heartbeats"
        if peer.closed.is_set():
            got += f", then close {peer.close_code}"
        t.expect(name, "§1", got, f"{want} heartbeats")
        await peer.close()

    async def then_close(name: str, message: Any, answered: tuple[int, ...], code: int) -> None:
        peer = await ready_peer(c, t)
        before = peer.heartbeats
        await peer.send(json.dumps(message, separators=(",", ":")))
        closed = await peer.closing(4)
        got = f"{peer.heartbeats - before} heartbeat(s), then {closed}"
        t.expect(
            name,
            "§1 (as if each frame came in its own message), §11",
            got,
            *(f"{n} heartbeat(s), then close {code}" for n in answered),
        )
        await peer.close()

    async def results() -> None:
        peer = await ready_peer(c, t)
        ids = [f"{random.getrandbits(96):024x}" for _ in range(200)]
        frames = [
            json.loads(result_frame(peer.signer, aid, f"{NO_TASK}:{i}", b'"neutral"'))
            for i, aid in enumerate(ids)
        ]
        await peer.send(json.dumps(frames))
        await peer.wait(lambda: all(aid in peer.verdicts for aid in ids), 10)
        answers = Counter(
            peer.verdicts[aid][0] if aid in peer.verdicts else "no answer" for aid in ids
        )
        t.expect_many(
            "200 made-up results in one array",
            "§1, §7 unknown_assignment",
            answers,
            "refused unknown_assignment",
        )
        await peer.close()

    async def empty() -> None:
        peer = await ready_peer(c, t)
        await peer.send("[]")
        t.expect(
            "an empty array",
            "§1 (no frame: nothing to do, or a bad message)",
            await peer.alive(),
            "open",
            "close 4000",
        )
        await peer.close()

    async def hellos(name: str, count: int, want: str) -> None:
        peer = await Peer(c, t).open()
        hello = json.loads(peer.session.hello_frame())
        await peer.send(json.dumps([hello] * count))
        closed = await peer.closing(1.5 if count == 1 else 4)
        got = ("challenge" if peer.nonce else "no challenge") + (
            "" if closed == "open" else f", then {closed}"
        )
        t.expect(name, "§1, §4", got, want)
        await peer.close()

    async def own_lease() -> None:
        peer = await ready_peer(c, t, 1)
        peer.heartbeat()
        held = await peer.take(1, timeout=8, strict=True)
        if not held:
            t.notes["no work received"] += 1
            await peer.close()
            return
        a = held[0]
        output = honest_output(a)
        bad = json.loads(result_frame(Signer(), a.assignment_id, a.microtask_id, output))
        good = json.loads(result_frame(peer.signer, a.assignment_id, a.microtask_id, output))
        await peer.send(json.dumps([bad, good]))
        await peer.wait(lambda: len(peer.verdicts.get(a.assignment_id, ())) >= 2, 5)
        got = " + ".join(peer.verdicts.get(a.assignment_id, [])) or "no answer"
        t.expect(
            "[badly signed result, corrected result] for a live lease",
            "§1, §7 (in order; a refusal leaves the lease open)",
            got,
            "refused bad_signature + ack",
        )
        await peer.close()

    await asyncio.gather(
        replies("3 heartbeats in one array", [beat] * 3, 3),
        replies(
            f"{MINER_BURST} heartbeats in one array (the burst)", [beat] * MINER_BURST, MINER_BURST
        ),
        then_close(
            f"{MINER_BURST + 1} heartbeats in one array",
            [beat] * (MINER_BURST + 1),
            (0, MINER_BURST),  # the whole array refused, or the burst handled first (§1)
            4010,
        ),
        then_close("[heartbeat, not a frame]", [beat, "x"], (1,), 4000),
        then_close("[heartbeat, unknown type]", [beat, {"type": "bogus"}], (1,), 4000),
        then_close("[heartbeat, second hello]", [beat, {"type": "hello"}], (1,), 4000),
        then_close("an array inside an array", [[beat]], (0,), 4000),
        results(),
        empty(),
        hellos("[hello]", 1, "challenge"),
        hellos("[hello, hello]", 2, "challenge, then close 4002"),
        own_lease(),
    )


async def test_batched(fault_server: FaultRun, rounds: int) -> None:
    run = await run_fault(fault_server, "batched", "batched frames", batched_frames, rounds)
    run.assert_clean()
