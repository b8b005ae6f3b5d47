"""Fault class huge frames: messages at and above ``maxMessageBytes``, bodies above 4 MiB.

Each answer is held to docs/protocol.md; the honest tasks submitted meanwhile
must all complete with the right labels, with no 5xx and no error in the log.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from qortex.signing import Signer
from tests.faults.campaign import Campaign, FaultRun, run_fault
from tests.faults.frames import (
    MAX_MESSAGE,
    MAX_REQUEST,
    NO_TASK,
    result_frame,
)
from tests.faults.peer import Peer, ready_peer
from tests.faults.tally import Tally
from tests.helpers import timeout

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(timeout(600))]


async def huge_frames(c: Campaign, t: Tally, rnd: int) -> None:
    def padded(size: int) -> str:
        head, tail = '{"type":"heartbeat","timeMs":1,"pad":"', '"}'
        return head + "x" * (size - len(head) - len(tail)) + tail

    async def at_limit() -> None:
        peer = await ready_peer(c, t)
        before = peer.heartbeats
        await peer.send(padded(MAX_MESSAGE))
        ok = await peer.wait(lambda: peer.heartbeats > before, 5)
        t.expect(
            "a message of exactly maxMessageBytes",
            "§10",
            "heartbeat" if ok else await peer.closing(1),
            "heartbeat",
        )
        await peer.close()

    async def too_big(name: str, data: str | bytes, stage: str) -> None:
        peer = await (ready_peer(c, t) if stage == "ready" else Peer(c, t).open())
        await peer.send(data)
        t.expect(name, "§10, §11 1009", await peer.closing(5), "close 1009")
        await peer.close()

    async def big_http_body() -> None:
        peer = await ready_peer(c, t)
        body = b'{"assignmentId":"' + b"a" * (MAX_REQUEST + 10) + b'"}'
        response = await c.request(
            t,
            "POST",
            f"/internal/miner/{peer.signer.miner_id}/result",
            content=body,
            headers={"content-type": "application/json"},
        )
        t.expect("HTTP result body over 4 MiB", "§13.1", f"HTTP {response.status_code}", "HTTP 413")
        await peer.close()

    signer = Signer()
    await asyncio.gather(
        at_limit(),
        too_big("maxMessageBytes + 1 after welcome", padded(MAX_MESSAGE + 1), "ready"),
        too_big("2 MiB instead of a hello", padded(2 * MAX_MESSAGE), "fresh"),
        too_big("4 MiB binary after welcome", b"x" * (4 * MAX_MESSAGE), "ready"),
        too_big(
            "a 1.5 MiB result",
            result_frame(
                signer, "a" * 24, f"{NO_TASK}:0", json.dumps("x" * (3 * MAX_MESSAGE // 2)).encode()
            ),
            "ready",
        ),
        big_http_body(),
    )


async def test_huge(fault_server: FaultRun, rounds: int) -> None:
    run = await run_fault(fault_server, "huge", "huge frames", huge_frames, rounds)
    run.assert_clean()
