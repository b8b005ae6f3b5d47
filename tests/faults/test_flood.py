"""Fault class message flood: thousands of heartbeats and bogus results.

Faster than ``miner_rate``; slower than it; a miner that stops reading.

Each answer is held to docs/protocol.md; the honest tasks submitted meanwhile
must all complete with the right labels, with no 5xx and no error in the log.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter

import pytest
from websockets.exceptions import ConnectionClosed

from qortex.protocol.client import ClientSession
from tests.faults.campaign import Campaign, FaultRun, run_fault
from tests.faults.frames import (
    MINER_BURST,
    MINER_RATE,
    NO_TASK,
    SCALE,
    SEND_QUEUE,
    UNREAD_ARRAY,
    UNREAD_RCVBUF,
    result_frame,
    unread_bound,
)
from tests.faults.peer import Peer, ready_peer
from tests.faults.tally import Tally
from tests.helpers import timeout

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(timeout(600))]


async def message_flood(c: Campaign, t: Tally, rnd: int) -> None:
    beats, bogus = c.flood_heartbeats, c.flood_results

    async def heartbeats() -> None:
        peer = await ready_peer(c, t)
        before = peer.heartbeats
        frame = ClientSession.heartbeat_frame(1)
        started = time.monotonic()
        for i in range(beats):
            if not await peer.send(frame):
                break
            if i % 256 == 0:
                await asyncio.sleep(0)
        await peer.wait(lambda: peer.heartbeats - before >= beats, 30)
        elapsed = time.monotonic() - started
        answered = peer.heartbeats - before
        t.notes["heartbeats per second (answered)"] = max(
            t.notes["heartbeats per second (answered)"], int(answered / elapsed)
        )
        t.expect_many(
            "heartbeat flood, reading the replies",
            "§5.10 (one reply per heartbeat)",
            Counter({"heartbeat": answered, "no answer": beats - answered}),
            "heartbeat",
        )
        t.expect("connection after a heartbeat flood", "§9", await peer.alive(), "open")
        await peer.close()

    async def results() -> None:
        peer = await ready_peer(c, t)
        ids = [f"{rng.getrandbits(96):024x}" for _ in range(bogus)]
        frames = [
            result_frame(peer.signer, aid, f"{NO_TASK}:{i}", b'"positive"')
            for i, aid in enumerate(ids)
        ]
        started = time.monotonic()
        for i, frame in enumerate(frames):
            if not await peer.send(frame):
                break
            if i % 128 == 0:
                await asyncio.sleep(0)
        await peer.wait(lambda: all(aid in peer.verdicts for aid in ids), 30)
        elapsed = time.monotonic() - started
        answers = Counter(
            peer.verdicts[aid][0] if aid in peer.verdicts else "no answer" for aid in ids
        )
        t.notes["bogus results per second (answered)"] = max(
            t.notes["bogus results per second (answered)"],
            int(sum(answers.values()) / elapsed),
        )
        t.expect_many(
            "bogus result flood", "§7 unknown_assignment", answers, "refused unknown_assignment"
        )
        t.expect("connection after a result flood", "§9", await peer.alive(), "open")
        await peer.close()

    async def too_fast() -> None:
        """Heartbeats as fast as possible: the burst is answered, then 4010 (rate limit)."""
        peer = await ready_peer(c, t)
        before = peer.heartbeats
        frame = ClientSession.heartbeat_frame(1)
        sent = 0
        for i in range(3 * MINER_BURST):
            if not await peer.send(frame):
                break
            sent += 1
            if i % 256 == 0:
                await asyncio.sleep(0)
        await peer.wait(lambda: peer.heartbeats - before >= sent, 10)
        answered = peer.heartbeats - before
        expected = ["close 4010"]
        if peer.closed.is_set():
            closed = f"close {peer.close_code}"
            got = closed if answered >= MINER_BURST else f"{closed} after only {answered} replies"
            if closed == "close 4008" and sent - answered > SEND_QUEUE:
                # On a busy machine this reader may fall more than the send queue behind
                # before the flood passes the rate: then 4008 (§10) is the right answer.
                expected.append(got)
        elif answered == 0:
            got = "open, no reply"
        else:
            # Every frame answered: right only if the coordinator, busy itself, took
            # them in no faster than the rate allows (its own clock is in each reply).
            times = peer.heartbeat_ms[-answered:]
            span = (times[-1] - times[0]) / 1000
            got = f"open, all {sent} answered in {span:.1f} s"
            if span >= (sent - MINER_BURST) / MINER_RATE - 0.05:
                expected.append(got)
        t.expect(
            f"{3 * MINER_BURST} heartbeats as fast as possible",
            "§11 4010 (after the burst of miner_burst frames), §10 4008 if not read",
            got,
            *expected,
        )
        await peer.close()

    async def under_the_rate() -> None:
        """More frames than the burst, but slower than the rate: all answered, never closed."""
        peer = await ready_peer(c, t)
        before = peer.heartbeats
        frame = ClientSession.heartbeat_frame(1)
        per_tick, ticks = int(MINER_RATE * 0.75 / 10), 10 * c.paced_seconds
        for _ in range(ticks):
            for _ in range(per_tick):
                await peer.send(frame)
            await asyncio.sleep(0.1)
        sent = per_tick * ticks
        await peer.wait(lambda: peer.heartbeats - before >= sent, 10)
        got = f"{peer.heartbeats - before} of {sent} answered, {await peer.alive()}"
        t.expect(
            f"{sent} heartbeats at 75% of miner_rate",
            "§11 4010 (only beyond the rate)",
            got,
            f"{sent} of {sent} answered, open",
        )
        await peer.close()

    async def unread() -> None:
        """A miner that stops reading, within the rate: 4096 unread frames, then 4008 (§10).

        Results with 1 KB made-up assignment ids, 700 to an array, at 75% of the
        rate: each is refused at once with a frame echoing the id, so every
        buffer on the way fills with few frames and the bound is tight.
        """
        peer = await Peer(c, t).open(rcvbuf=UNREAD_RCVBUF)
        if not await peer.handshake():
            t.notes["handshake failed"] += 1
        # It still writes: heartbeats go on, so silence (4009) is never why it is closed,
        # and a close it cannot read is not cut short by the end of the closing handshake.
        peer.heartbeat()
        assert peer.ws is not None
        ids = [f"{i:08x}{rng.getrandbits(64):016x}" for i in range(c.flood_unread)]
        batches = [ids[i : i + UNREAD_ARRAY] for i in range(0, len(ids), UNREAD_ARRAY)]
        base = len(peer.verdicts)
        rss_before = c.server_rss()
        closed_before = await c.closes(4008)
        refused_before = await c.refused("unknown_assignment")
        peer.ws.transport.pause_reading()
        sent = 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        for batch in batches:
            # ~1 KB frames, as ever: the output carries the bulk the bounded ids no longer can.
            bulk = json.dumps("x" * 970).encode()
            body = ",".join(result_frame(peer.signer, aid, f"{NO_TASK}:0", bulk) for aid in batch)
            # Stay under the rate: the burst first, then 75% of miner_rate, with room for
            # the coordinator's own clock: 700 frames read late and then at once must not
            # look faster than the rate to it (it would close 4010, which we could not read).
            due = started + max(0.0, (sent + len(batch) - MINER_BURST) / (0.75 * MINER_RATE))
            await asyncio.sleep(max(0.0, due - loop.time()))
            if await c.closes(4008) > closed_before:
                # Closed already: read its close before the server's close handshake
                # times out and drops what is still buffered for us.
                break
            try:
                await asyncio.wait_for(peer.ws.send("[" + body + "]"), 10 * SCALE)
            except (ConnectionClosed, TimeoutError):
                break
            sent += len(batch)
        # Until the server has dealt with everything it received: closed us, or refused all.
        deadline = loop.time() + 10 * SCALE
        while loop.time() < deadline:
            if await c.closes(4008) > closed_before:
                break
            if await c.refused("unknown_assignment") - refused_before >= sent:
                break
            await asyncio.sleep(0.05)
        grown = max(0, c.server_rss() - rss_before)
        peer.ws.transport.resume_reading()
        await peer.wait(lambda: peer.closed.is_set() or len(peer.verdicts) - base >= sent, 60)
        await asyncio.sleep(0.2)
        read = len(peer.verdicts) - base
        reply = len(
            json.dumps(
                {
                    "type": "refused",
                    "assignmentId": ids[0],
                    "reason": "unknown_assignment",
                    "message": "no such assignment is leased",
                }
            )
        )
        bound = unread_bound(reply)
        if peer.closed.is_set():
            peer.identity.dropped_unread = peer.close_code == 4008
            got = f"close {peer.close_code}"
            if read > bound:
                got += f" only after {read} unread frames (bound {bound})"
        elif read > bound:
            got = f"no 4008: {read} unread frames were queued (bound {bound})"
        else:
            got = "open, every frame answered within the bound"
        t.notes["unread results sent, then read"] = f"{sent}, {read}"  # type: ignore[assignment]
        key = "server RSS growth for them, MB (largest round)"
        t.notes[key] = max(t.notes[key], round(grown / 2**20))
        t.expect(
            "a miner that stops reading, within the rate",
            "§10 (4096 unread frames), §11 4008",
            got,
            "close 4008",
            "open, every frame answered within the bound",
        )
        await peer.close()

    rng = random.Random(f"{c.seed}-flood-{rnd}")
    await heartbeats()
    await results()
    await too_fast()
    await under_the_rate()
    await unread()


async def test_flood(fault_server: FaultRun, rounds: int) -> None:
    run = await run_fault(fault_server, "flood", "message flood", message_flood, rounds)
    run.assert_clean()
