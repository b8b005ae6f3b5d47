"""Fault class wrong key: challenge and results signed with the wrong key or malformed.

Each answer is held to docs/protocol.md; the honest tasks submitted meanwhile
must all complete with the right labels, with no 5xx and no error in the log.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest

from qortex.protocol import messages as m
from qortex.signing import Signer, hello_message
from tests.faults.campaign import Campaign, FaultRun, run_fault
from tests.faults.frames import (
    honest_output,
    next_microtask,
    result_frame,
    signed,
)
from tests.faults.peer import Peer, ready_peer
from tests.faults.tally import Tally
from tests.helpers import timeout

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(timeout(600))]


async def own_lease_refusals(c: Campaign, t: Tally, peer: Peer, assign: m.Assign) -> None:
    """On a live lease of our own: every refusal leaves it open, the corrected result counts."""
    signer, aid, mid = peer.signer, assign.assignment_id, assign.microtask_id
    output = honest_output(assign)
    other = Signer()
    sent = 0
    attempts: list[tuple[str, str, str, tuple[str, ...]]] = [
        (
            "result signed with another key",
            "§6.2, §7 bad_signature",
            result_frame(other, aid, mid, output),
            ("refused bad_signature",),
        ),
        (
            "signature of the hello domain",
            "§6, §7 bad_signature",
            result_frame(signer, aid, mid, output, signature=signer.sign(hello_message(aid))),
            ("refused bad_signature",),
        ),
        (
            "signature over the output with a trailing newline",
            "§6.2, §7 bad_signature",
            result_frame(
                signer,
                aid,
                mid,
                output,
                signature=signed(signer, aid, mid, output + b"\n"),
            ),
            ("refused bad_signature",),
        ),
        (
            "signature truncated to 127 hex characters",
            "§7 bad_signature",
            result_frame(
                signer,
                aid,
                mid,
                output,
                signature=signed(signer, aid, mid, output)[:127],
            ),
            ("refused bad_signature",),
        ),
        (
            "signature not hex",
            "§7 bad_signature",
            result_frame(signer, aid, mid, output, signature="zz" * 64),
            ("refused bad_signature",),
        ),
        (
            "right signature, microtaskId of another microtask",
            "§7 wrong_microtask",
            result_frame(signer, aid, next_microtask(mid), output),
            ("refused wrong_microtask",),
        ),
        (
            "output that is not JSON",
            "§5.6, §7 bad_output",
            result_frame(signer, aid, mid, b"positive"),
            ("refused bad_output",),
        ),
        (
            "output of an unterminated JSON text",
            "§5.6, §7 bad_output",
            result_frame(signer, aid, mid, b'"positive'),
            ("refused bad_output",),
        ),
    ]
    for check, doc, text, ok in attempts:
        if time.time() > assign.deadline_ms / 1000 - 0.5:
            t.notes["lease too close to its deadline for more attempts"] += 1
            return
        got = await peer.result(aid, text, index=sent)
        sent += 1
        t.expect(check, doc, got, *ok)
    # A signature that is not 128 hex characters: the same 64 bytes with whitespace in it.
    signature = signed(signer, aid, mid, output)
    spaced = " ".join(signature[i : i + 32] for i in range(0, 128, 32))
    got = await peer.result(aid, result_frame(signer, aid, mid, output, signature=spaced), sent)
    sent += 1
    t.expect(
        "signature with whitespace (131 characters)",
        "§5.6, §7 bad_signature",
        got,
        "refused bad_signature",
    )
    if got == "ack":
        c.signature_checks.append((t, aid, spaced))
        final = "refused duplicate"
    else:
        final = "ack"
    if time.time() > assign.deadline_ms / 1000 - 0.3:
        t.notes["lease too close to its deadline for the corrected result"] += 1
        return
    text = result_frame(signer, aid, mid, output)
    got = await peer.result(aid, text, sent)
    t.expect(
        "corrected result after refusals, before the deadline",
        "§7 (a refused result leaves the lease open)",
        got,
        final,
    )
    if got == "ack":
        c.signature_checks.append((t, aid, ""))
    got = await peer.result(aid, text, sent + 1)
    t.expect("the same result again", "§7 duplicate", got, "refused duplicate")


async def wrong_key(c: Campaign, t: Tally, rnd: int) -> None:
    async def bad_answer(check: str, make: Callable[[Peer], str]) -> None:
        peer = await Peer(c, t).open()
        await peer.send(peer.session.hello_frame().decode())
        await peer.wait(lambda: peer.nonce, 5)
        await peer.send(json.dumps({"type": "answer", "signature": make(peer)}))
        t.expect(check, "§4, §11 4001", await peer.closing(4), "close 4001")

    other = Signer()
    await asyncio.gather(
        bad_answer("answer signed with another key", lambda p: p.sign_nonce(other)),
        bad_answer("answer signing another nonce", lambda p: p.signer.sign(hello_message("0"))),
        bad_answer(
            "answer signing the bare nonce", lambda p: p.signer.sign((p.nonce or "").encode())
        ),
        bad_answer("answer not hex", lambda p: "not a signature"),
        bad_answer("answer empty", lambda p: ""),
        bad_answer("answer of 64 zero bytes", lambda p: "00" * 64),
    )
    peer = await ready_peer(c, t, 1)
    peer.heartbeat()
    held = await peer.take(1, timeout=8, strict=True)
    if not held:
        t.notes["no work received"] += 1
    else:
        # Over HTTP a wrong signature on a live lease is answered 401 and not counted
        # against the miner; the lease stays open for what follows.
        assign = held[0]
        frame = result_frame(
            other, assign.assignment_id, assign.microtask_id, honest_output(assign)
        )
        _, answer = await c.post_result(t, peer.signer.miner_id, frame)
        t.expect(
            "result signed with another key, over HTTP",
            "§13.1 401 bad_signature",
            answer,
            "HTTP 401 bad_signature",
        )
        await own_lease_refusals(c, t, peer, assign)
    await peer.close()


async def test_wrong_key(fault_server: FaultRun, rounds: int) -> None:
    run = await run_fault(fault_server, "wrong_key", "wrong key", wrong_key, rounds)
    run.assert_clean()
