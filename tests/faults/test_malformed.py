"""Fault class malformed frames: frames the protocol cannot take, each answered as documented.

Not JSON or not UTF-8, wrong types, unknown type, missing fields, wrong order,
nesting 100000 deep.

Each answer is held to docs/protocol.md; the honest tasks submitted meanwhile
must all complete with the right labels, with no 5xx and no error in the log.
"""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from qortex.signing import Signer
from tests.faults.campaign import Campaign, FaultRun, run_fault
from tests.faults.malformed_cases import Malformed, malformed_cases
from tests.faults.peer import Peer
from tests.faults.tally import Tally
from tests.helpers import timeout

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(timeout(600))]


async def malformed_frames(c: Campaign, t: Tally, rnd: int) -> None:
    rng = random.Random(f"{c.seed}-malformed-{rnd}")
    cases = malformed_cases(Signer(), rng, rnd)
    gate = asyncio.Semaphore(6)

    async def run(case: Malformed) -> None:
        stage, name, frames, expected, field_name = case
        async with gate:
            peer = await Peer(c, t).open()  # a fresh key per socket: no 4004 between cases
            if stage in ("hello", "ready"):
                await peer.send(peer.session.hello_frame().decode())
                await peer.wait(lambda: peer.nonce, 5)
            if stage == "ready":
                await peer.send(json.dumps({"type": "answer", "signature": peer.sign_nonce()}))
                await peer.wait(lambda: peer.welcome, 5)
            before = (peer.heartbeats, peer.nonce is not None)
            for frame in frames:
                if isinstance(frame, tuple):
                    await peer.send(frame[1], text=True)
                else:
                    await peer.send(frame)
            ok_answers = (expected,) if isinstance(expected, str) else tuple(expected)
            if "heartbeat" in ok_answers:
                ok = await peer.wait(lambda: peer.heartbeats > before[0] or peer.closed.is_set(), 3)
                got = "heartbeat" if peer.heartbeats > before[0] else await peer.closing(0.5)
            elif "challenge" in ok_answers:
                ok = await peer.wait(lambda: peer.nonce is not None, 3)
                got = "challenge" if ok else await peer.closing(0.5)
            else:
                got = await peer.closing(4)
            t.expect(name, "§1, §4, §5, §10, §11", got, *ok_answers)
            if field_name is not None and got in ok_answers:
                t.expect(
                    "close reason names the field",
                    "§11 4000",
                    "named" if field_name in peer.close_reason else f"{peer.close_reason!r:.60}",
                    "named",
                )
            await peer.close()

    await asyncio.gather(*(run(case) for case in cases))


async def test_malformed(fault_server: FaultRun, rounds: int) -> None:
    run = await run_fault(fault_server, "malformed", "malformed frames", malformed_frames, rounds)
    run.assert_clean()
