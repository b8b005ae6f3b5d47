"""The CLI miner computes and signs only inputs that hash to their ``inputSha256``.

A real WebSocket server on loopback plays the coordinator with the
coordinator's own :class:`ServerSession`, so the miner under test is the real
one and every frame crosses a real socket. The server can lie about inputs,
which the real coordinator never does; that is the point.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import msgspec
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from qortex.core.kinds import KindRegistry
from qortex.kinds.sentiment import SentimentKind
from qortex.miner.runner import Miner
from qortex.protocol import messages as m
from qortex.protocol.server import Authenticated, Challenged, ResultIn, ServerSession
from qortex.signing import Signer, input_digest
from tests.helpers import timeout

KINDS = frozenset({"sentiment"})
TASK = "3f0c0d4e-0000-4000-8000-000000000009"
BAD, GOOD = "ba" * 12, "60" * 12  # assignment ids, in their format


def assign(aid: str, index: int, raw_input: bytes, digest: str) -> bytes:
    frame = m.Assign(
        aid, f"{TASK}:{index}", TASK, "sentiment", msgspec.Raw(raw_input), 2**42, digest
    )
    return m.encoder.encode(frame)


async def coordinate(
    first_assigns: list[bytes], results: asyncio.Queue[tuple[ResultIn, bool]]
) -> Callable[[ServerConnection], Awaitable[None]]:
    """A handler that authenticates the miner, sends ``first_assigns`` and checks results."""
    digests = {}
    for frame in first_assigns:
        sent = m.server_decoder.decode(frame)
        assert isinstance(sent, m.Assign)
        digests[sent.assignment_id] = input_digest(bytes(sent.input))  # what was really sent

    async def handler(ws: ServerConnection) -> None:
        session = ServerSession("00" * 16, KINDS)
        with contextlib.suppress(ConnectionClosed):  # the miner is stopped mid-conversation
            await converse(ws, session)

    async def converse(ws: ServerConnection, session: ServerSession) -> None:
        async for data in ws:
            for event in session.receive_all(data):
                if isinstance(event, Challenged):
                    await ws.send(event.frame.decode())
                elif isinstance(event, Authenticated):
                    welcome = session.welcome_frame(60.0, 1 << 20, "test")
                    await ws.send(m.batch([welcome, *first_assigns]).decode())
                elif isinstance(event, ResultIn):
                    digest = digests[event.result.assignment_id]
                    await results.put((event, session.check(event, digest)))

    return handler


@pytest.mark.parametrize(
    ("sent", "claimed"),
    [
        (b'"I hate it"', b'"I love it"'),  # the input was swapped after the digest was taken
        (b'"caf\\u00e9"', '"café"'.encode()),  # the same value, but other bytes
    ],
)
async def test_an_input_that_does_not_match_its_digest_is_skipped(
    sent: bytes, claimed: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    good = b'"what a lovely day"'
    frames = [
        assign(BAD, 0, sent, input_digest(claimed)),
        assign(GOOD, 1, good, input_digest(good)),
    ]
    results: asyncio.Queue[tuple[ResultIn, bool]] = asyncio.Queue()
    handler = await coordinate(frames, results)
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        miner = Miner(f"http://127.0.0.1:{port}", Signer(), KindRegistry([SentimentKind()]))
        running = asyncio.create_task(miner.run())
        try:
            with caplog.at_level(logging.ERROR, logger="qortex.miner"):
                event, signed = await asyncio.wait_for(results.get(), timeout(10))
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
    # Frames are handled in order, so by the time the good result is in, the bad
    # assign has been looked at: it was skipped, not computed, and never signed.
    assert event.result.assignment_id == GOOD and signed
    assert event.output == b'"positive"'
    assert results.empty()
    assert (miner.stats.mismatched, miner.stats.computed) == (1, 1)
    (record,) = [r for r in caplog.records if r.name == "qortex.miner"]
    assert f"assignment {BAD} skipped" in record.getMessage()
    assert input_digest(sent) in record.getMessage()
