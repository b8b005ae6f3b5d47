"""An honest operator's miners, in a process of their own.

    python benchmarks/trust/honest.py --url URL --kind KIND --keys FILE [--slots N]

``FILE`` holds a JSON list of ``{"seed": hex, "address": "198.18.n.m"}``, one
per identity; each connects with its address in ``X-Forwarded-For``. Every
copy is computed here with the kind's own ``compute`` (never asked of the
coordinator) after a random 50-200 ms delay, the time a real miner takes.

The process runs until it receives SIGTERM, then prints one JSON line:
per identity, its miner id, counts, every close code it received, and the
microtask ids of its first 20 results (the harness leaves those out of the
warmed-up redundancy figure).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import time
from pathlib import Path
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from qortex.kinds.matmul import MatmulKind
from qortex.kinds.sentiment import SentimentKind
from qortex.protocol.client import ClientSession, Reply, ResultAnswer, Welcomed, Withdrawn, Work
from qortex.signing import Signer

WARMUP = 20
BANNED = 4011


class HonestMiner:
    def __init__(self, url: str, kind: Any, signer: Signer, address: str, slots: int) -> None:
        self.url = url.replace("http://", "ws://") + "/ws/miner"
        self.kind = kind
        self.signer = signer
        self.address = address
        self.slots = slots
        self.rng = random.Random(signer.seed)
        self.results = 0
        self.accepted = 0
        self.refused = 0
        self.cancelled = 0
        self.first: list[str] = []
        self.closes: list[int] = []
        self.welcomed_at: float | None = None
        self._work: dict[str, asyncio.Task[None]] = {}

    def report(self) -> dict[str, Any]:
        return {
            "minerId": self.signer.miner_id,
            "address": self.address,
            "results": self.results,
            "accepted": self.accepted,
            "refused": self.refused,
            "cancelled": self.cancelled,
            "first": self.first,
            "closes": self.closes,
        }

    async def run(self) -> None:
        while True:
            try:
                async with connect(
                    self.url,
                    additional_headers={"X-Forwarded-For": self.address},
                    max_size=None,
                    open_timeout=10,
                ) as ws:
                    await self._converse(ws)
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else 1006
                self.closes.append(code)
                if code == BANNED:
                    return  # an honest operator stops a banned key and finds out why
            except (OSError, InvalidHandshake, TimeoutError):
                self.closes.append(1006)
            finally:
                for task in self._work.values():
                    task.cancel()
                self._work.clear()
            await asyncio.sleep(0.2)

    async def _converse(self, ws: ClientConnection) -> None:
        session = ClientSession(self.signer, self.slots, [self.kind.name], "trust-sim/honest")
        await ws.send(session.hello_frame().decode())
        beat: asyncio.Task[None] | None = None
        try:
            async for raw in ws:
                for event in session.receive_all(raw):
                    if isinstance(event, Reply):
                        await ws.send(event.frame.decode())
                    elif isinstance(event, Welcomed):
                        beat = asyncio.create_task(_heartbeat(ws, event.heartbeat_seconds))
                    elif isinstance(event, Work):
                        task = asyncio.create_task(self._compute(ws, session, event))
                        self._work[event.assign.assignment_id] = task
                    elif isinstance(event, ResultAnswer):
                        if event.accepted:
                            self.accepted += 1
                        else:
                            self.refused += 1
                    elif isinstance(event, Withdrawn):
                        task = self._work.pop(event.assignment_id, None)
                        if task is not None:
                            task.cancel()
                            self.cancelled += 1
        finally:
            if beat is not None:
                beat.cancel()

    async def _compute(self, ws: ClientConnection, session: ClientSession, work: Work) -> None:
        assign = work.assign
        try:
            await asyncio.sleep(self.rng.uniform(0.05, 0.2))
            output = self.kind.compute(msgspec.json.decode(assign.input))
            frame = session.result_frame(assign, msgspec.json.encode(output))
            with contextlib.suppress(ConnectionClosed):
                await ws.send(frame.decode())
            self.results += 1
            if len(self.first) < WARMUP:
                self.first.append(assign.microtask_id)
        finally:
            self._work.pop(assign.assignment_id, None)


async def _heartbeat(ws: ClientConnection, every: float) -> None:
    with contextlib.suppress(ConnectionClosed):
        while True:
            await asyncio.sleep(every)
            await ws.send(ClientSession.heartbeat_frame(int(time.time() * 1000)).decode())


async def main(args: argparse.Namespace) -> None:
    kind = SentimentKind(max_tweets=1000) if args.kind == "sentiment" else MatmulKind(tile=8)
    keys = json.loads(Path(args.keys).read_text())
    slots = args.slots
    miners = [
        HonestMiner(args.url, kind, Signer.from_seed(bytes.fromhex(k["seed"])), k["address"], slots)
        for k in keys
    ]
    runs = [asyncio.create_task(m.run()) for m in miners]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for run in runs:
        run.cancel()
    await asyncio.gather(*runs, return_exceptions=True)
    print(json.dumps({"miners": [m.report() for m in miners]}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--kind", required=True, choices=("sentiment", "matmul"))
    parser.add_argument("--keys", required=True)
    parser.add_argument("--slots", type=int, default=4)
    asyncio.run(main(parser.parse_args()))
