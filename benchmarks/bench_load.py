"""Load-generating miner process for ``benchmarks/bench.py``: N WebSocket connections a process.

Each connection is its own ed25519 identity and speaks the real miner protocol
through :class:`qortex.protocol.client.ClientSession` (hello, challenge,
answer, welcome, heartbeats every ``heartbeatSeconds``). Modes:

``qortex``
    work for a coordinator: answer every ``assign`` at once with a signed
    sentiment label (cached per input, computed with ``SentimentKind``).
``idle``
    connect, authenticate and heartbeat; nothing else (any work pushed is
    still answered, so an idle miner never holds a lease hostage).
``ceiling``
    drive ``benchmarks/bench_ceiling.py``: after its welcome, keep ``slots``
    signed results in flight per connection, each built from a synthetic
    assignment through exactly the code that answers a real ``assign``.

Every ``--report`` seconds the process prints one JSON line of cumulative
counters with ``time.monotonic()`` (system-wide on Linux, so the parent can
compute rates over its own windows). It stops on SIGTERM/SIGINT, when its
parent goes away, or after ``--seconds``; the last line has ``"final": true``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import sys
import time
import uuid
from collections import Counter
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from qortex.kinds.sentiment import SentimentKind
from qortex.protocol import messages as m
from qortex.protocol.client import ClientSession, Reply, ResultAnswer, Welcomed, Withdrawn, Work
from qortex.signing import Signer, input_digest

SOFTWARE = "qortex-bench/1"
# Close codes after which reconnecting cannot help (docs/protocol.md, section 12).
FATAL = {m.AUTH_FAILED, m.UNSUPPORTED, m.BAD_HELLO, m.REPLACED}


def raise_nofile() -> int:
    """Raise the soft open-files limit to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.url = args.url.rstrip("/").replace("http://", "ws://", 1) + "/ws/miner"
        self.kind = SentimentKind()
        self.labels: dict[bytes, bytes] = {}
        self.counts: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.closes: Counter[str] = Counter()
        self.stop = asyncio.Event()
        self.handshakes = asyncio.Semaphore(args.connect_concurrency)
        self.parent = os.getppid()
        self.deadline = time.monotonic() + args.seconds
        self.task_id = str(uuid.uuid4())
        self.serial = 0

    # -- work ---------------------------------------------------------------

    def label(self, raw: bytes) -> bytes:
        out = self.labels.get(raw)
        if out is None:
            out = msgspec.json.encode(self.kind.compute(msgspec.json.decode(raw)))
            if len(self.labels) < 100_000:
                self.labels[raw] = out
        return out

    async def answer(self, ws: ClientConnection, session: ClientSession, assign: m.Assign) -> None:
        """What a miner does with an ``assign``: compute, sign, send."""
        frame = session.result_frame(assign, self.label(bytes(assign.input)))
        await ws.send(frame.decode())
        self.counts["results"] += 1

    def synthetic(self) -> m.Assign:
        """A made-up assignment for the ceiling server, shaped like a real one."""
        self.serial += 1
        microtask_id = f"{self.task_id}:{self.serial}"
        raw = synthetic_input(microtask_id)
        return m.Assign(
            f"{self.serial:024x}",
            microtask_id,
            self.task_id,
            "sentiment",
            msgspec.Raw(raw),
            int(time.time() * 1000) + 30_000,
            input_digest(raw),
        )

    # -- connections ----------------------------------------------------------

    async def miner(self, index: int) -> None:
        signer = Signer()
        attempt = 0
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            try:
                welcomed = await self.converse(signer, index)
                if welcomed:
                    attempt = 0
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else 1006
                self.closes[str(code)] += 1
                if code in FATAL:
                    return
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                self.closes[type(exc).__name__] += 1
            if self.stop.is_set():
                return
            attempt += 1
            delay = min(5.0, 0.25 * 2**attempt)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), random.uniform(delay / 2, delay))

    async def converse(self, signer: Signer, index: int) -> bool:
        args = self.args
        session = ClientSession(
            signer, args.slots, ["sentiment"], SOFTWARE, f"{args.name}-{os.getpid()}-{index}"
        )
        welcomed = False
        heartbeat: asyncio.Task[None] | None = None
        await self.handshakes.acquire()
        holding = True
        try:
            async with connect(
                self.url,
                open_timeout=30,
                ping_interval=None,  # as the reference miner: heartbeats are its liveness check
                max_size=None,
                proxy=None,
                compression=None if args.compression == "none" else "deflate",
            ) as ws:
                await ws.send(session.hello_frame().decode())
                async for raw in ws:
                    for event in session.receive_all(raw):
                        if isinstance(event, Work):
                            await self.answer(ws, session, event.assign)
                            self.counts["assigns"] += 1
                        elif isinstance(event, ResultAnswer):
                            if event.accepted:
                                self.counts["acks"] += 1
                                if args.mode == "ceiling":
                                    await self.answer(ws, session, self.synthetic())
                            else:
                                self.refused[event.reason] += 1
                                if args.mode == "ceiling":
                                    await self.answer(ws, session, self.synthetic())
                        elif isinstance(event, Withdrawn):
                            self.counts["cancels"] += 1
                        elif isinstance(event, Reply):
                            await ws.send(event.frame.decode())
                        elif isinstance(event, Welcomed):
                            welcomed = True
                            self.counts["welcomed"] += 1
                            self.handshakes.release()
                            holding = False
                            heartbeat = asyncio.create_task(
                                self.heartbeat(ws, event.heartbeat_seconds)
                            )
                            if args.mode == "ceiling":
                                for _ in range(args.slots):
                                    await self.answer(ws, session, self.synthetic())
                    if self.stop.is_set():
                        break
        finally:
            if holding:
                self.handshakes.release()
            if welcomed:
                self.counts["welcomed"] -= 1
            if heartbeat is not None:
                heartbeat.cancel()
        return welcomed

    async def heartbeat(self, ws: ClientConnection, every: float) -> None:
        # Miners connect at random moments; start at a random phase so that a
        # crowd connected in a burst does not beat in lockstep.
        await asyncio.sleep(random.uniform(0, every))
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.send(ClientSession.heartbeat_frame(int(time.time() * 1000)).decode())
                self.counts["heartbeats"] += 1
                await asyncio.sleep(every)

    # -- reporting ----------------------------------------------------------

    def line(self, final: bool = False) -> str:
        record: dict[str, Any] = {
            "t": time.monotonic(),
            "pid": os.getpid(),
            "welcomed": self.counts["welcomed"],
            "acks": self.counts["acks"],
            "results": self.counts["results"],
            "assigns": self.counts["assigns"],
            "cancels": self.counts["cancels"],
            "heartbeats": self.counts["heartbeats"],
            "refused": dict(self.refused),
            "closes": dict(self.closes),
        }
        if final:
            record["final"] = True
        return json.dumps(record, separators=(",", ":"))

    async def report(self) -> None:
        while not self.stop.is_set():
            print(self.line(), flush=True)
            if os.getppid() != self.parent or time.monotonic() > self.deadline:
                self.stop.set()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.args.report)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        reporter = asyncio.create_task(self.report())
        miners = [asyncio.create_task(self.miner(i)) for i in range(self.args.connections)]
        await self.stop.wait()
        for task in miners:
            task.cancel()
        await asyncio.gather(*miners, return_exceptions=True)
        await reporter
        print(self.line(final=True), flush=True)


def synthetic_input(microtask_id: str) -> bytes:
    """The input of a synthetic microtask ``<task>:<n>``: one of 64 tweets, as JSON.

    The ceiling server derives it from the id as well, so it can hash the
    input a result signs for without keeping any state.
    """
    serial = microtask_id.rpartition(":")[2]
    index = int(serial) % len(SYNTHETIC) if serial.isdigit() else 0
    return SYNTHETIC[index]


def tweets(count: int) -> list[str]:
    """Varied short tweets: positive, negative, negated and neutral ones."""
    subjects = ["this phone", "the new update", "my team", "the weather", "this movie", "lunch"]
    verdicts = ["is great", "is awful", "is not bad", "is fine I guess", "made me happy", "sucks"]
    extras = ["", " today", " honestly", "!!", " lol", " #mood"]
    out = []
    for i in range(count):
        out.append(f"{subjects[i % 6]} {verdicts[(i // 6) % 6]}{extras[(i // 36) % 6]} {i}")
    return out


SYNTHETIC = [msgspec.json.encode(t) for t in tweets(64)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--mode", choices=("qortex", "idle", "ceiling"), default="qortex")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=900.0, help="Give up after this long.")
    parser.add_argument("--report", type=float, default=0.25, help="Seconds between lines.")
    parser.add_argument("--connect-concurrency", type=int, default=64)
    parser.add_argument("--compression", choices=("deflate", "none"), default="deflate")
    parser.add_argument("--name", default="bench")
    args = parser.parse_args()
    raise_nofile()
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(Load(args).run())
    sys.stdout.flush()


if __name__ == "__main__":
    main()
