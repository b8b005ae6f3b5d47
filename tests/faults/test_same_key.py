"""Fault class same key, two sockets: one identity on two sockets, one after the other or at once.

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
    honest_output,
    result_frame,
)
from tests.faults.peer import Peer, ready_peer
from tests.faults.tally import Tally
from tests.helpers import timeout

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(timeout(600))]


async def same_key_two_sockets(c: Campaign, t: Tally, rnd: int) -> None:
    async def sequential() -> None:
        signer = Signer()
        older = await ready_peer(c, t, 1, signer)
        older.heartbeat()
        held = await older.take(1, timeout=6, strict=True)
        newer = await ready_peer(c, t, 1, signer)
        t.expect(
            "older socket when the key authenticates again",
            "§1, §11 4004",
            await older.closing(3),
            "close 4004",
        )
        t.expect("newer socket keeps working", "§1", await newer.alive(), "open")
        for assign in held:
            text = result_frame(
                signer, assign.assignment_id, assign.microtask_id, honest_output(assign)
            )
            t.expect(
                "result for the older socket's lease, sent on the newer",
                "§7 withdrawn (same miner, new connection)",
                await newer.result(assign.assignment_id, text),
                "refused withdrawn",
            )
            c.expect_closed_as(
                t, "replaced socket's lease released", assign.assignment_id, "closed released"
            )
        await newer.close()

    async def simultaneous() -> None:
        signer = Signer()
        a, b = Peer(c, t, signer), Peer(c, t, signer)
        await asyncio.gather(a.open(), b.open())
        hello = a.session.hello_frame().decode()
        await asyncio.gather(a.send(hello), b.send(hello))
        await asyncio.gather(*(p.wait(lambda p=p: p.nonce, 5) for p in (a, b)))
        await asyncio.gather(
            a.send(json.dumps({"type": "answer", "signature": a.sign_nonce()})),
            b.send(json.dumps({"type": "answer", "signature": b.sign_nonce()})),
        )
        # Like any miner, both keep up their heartbeats: the one left must not fall silent.
        a.heartbeat()
        b.heartbeat()
        # Until the replacement is over: one socket closed (its welcome came before its
        # close), and the one left has had its welcome.
        await a.wait(lambda: a.closed.is_set() or b.closed.is_set(), 2)
        await asyncio.gather(
            *(p.wait(lambda p=p: p.welcome, 1) for p in (a, b) if not p.closed.is_set())
        )
        outcome = sorted([await a.alive(), await b.alive()])
        t.expect(
            "two sockets authenticate at once",
            "§1 (the newer wins, the older closes 4004)",
            " + ".join(outcome),
            "close 4004 + open",
        )
        welcomed = sum(p.welcome is not None for p in (a, b))
        t.expect(
            "both got a welcome before one was replaced", "§4", f"{welcomed} welcomes", "2 welcomes"
        )
        await asyncio.gather(a.close(), b.close())

    await asyncio.gather(sequential(), simultaneous())


async def test_same_key(fault_server: FaultRun, rounds: int) -> None:
    run = await run_fault(
        fault_server, "same_key", "same key, two sockets", same_key_two_sockets, rounds
    )
    run.assert_clean()
