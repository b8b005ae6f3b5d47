"""CPU per accepted result in the coordinator itself: what deciding costs, sockets aside.

    python benchmarks/engine_cost.py [--results 30000] [--pending 0] [--json]

Runs the real coordinator and store (an SQLite file, ``sync = "full"``, group
commit) in this process, with miners that are plain objects: each takes the
frames the coordinator sends, computes the sentiment label and hands the
result straight to the coordinator's result pipeline. Signatures are not
checked here (they cost the same with or without the trust engine), so the
figure is the CPU the coordinator spends per accepted result on placement,
checks, credibility, decisions, facts and events, measured as process CPU
time (all threads, so the store's writer thread counts) over the steady part
of the run. Process CPU time, unlike wall time, holds up on a busy machine.
It also counts the rows SQLite wrote per accepted result (``total_changes``
of the writer's connection over the same part: inserts, updates, deletes).
``--pending N`` queues N more microtasks before the run, behind the work the
miners do, to see what a backlog costs.

To compare two versions, run it once per checkout with ``PYTHONPATH`` set to
that checkout; it speaks both the result pipeline (``coord.intake``) and the
older ``coord.accept``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from qortex.coordinator import Coordinator
from qortex.errors import ResultRefused
from qortex.events import EventBus
from qortex.kinds.sentiment import SentimentKind
from qortex.plugins import load_kinds
from qortex.protocol import messages as m
from qortex.protocol.server import Authenticated
from qortex.settings import Settings
from qortex.store.database import Store

TWEETS_PER_TASK = 500
WORDS = ["love", "hate", "sky", "great", "awful", "table", "happy", "sad", "blue", "fine"]


class Link:
    """A miner's connection as the coordinator sees it: frames queue up here."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.last_seen = 0.0

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)

    def close(self, code: int, reason: str) -> None:
        pass


def tweets(start: int, count: int) -> list[str]:
    return [
        f"I {WORDS[i % 10]} this {WORDS[(i // 10) % 10]} number {i}"
        for i in range(start, start + count)
    ]


async def changes(store: Store) -> int:
    """Rows SQLite has written on the writer's connection so far."""
    return await store.writer.run(lambda conn: conn.total_changes)


async def run(
    results: int, miners: int, slots: int, checker: bool, pending: int = 0
) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="qortex-engine-"))
    settings = Settings(
        db=str(tmp / "q.db"),
        api_key="engine-cost-benchmark-key-000000",
        verify_threads=0,
        replicas=3,
        quorum=2,
        max_tweets_per_task=TWEETS_PER_TASK,
        max_pending=10_000_000,
        **({} if checker else {"checker": False}),
    )
    store = await Store.open(settings.db, settings.sync, settings.commit_batch)
    coord = Coordinator(settings, store, load_kinds(settings), EventBus())
    await coord.start()
    kind = SentimentKind()
    links: dict[str, Link] = {}
    for i in range(miners):
        miner_id = f"{i:032x}"
        info = Authenticated(miner_id, "00" * 32, slots, ("sentiment",), "bench", f"m{i}")
        links[miner_id] = Link()
        if hasattr(coord, "intake"):
            coord.connect(info, links[miner_id], f"198.18.{i}.1")
        else:
            coord.connect(info, links[miner_id])
    submit = coord.book.submit if hasattr(coord, "book") else coord.submit

    def accept(miner_id: str, assign: m.Assign, output: bytes) -> None:
        try:
            if hasattr(coord, "intake"):
                network = coord.connections[miner_id].network
                coord.intake.accept(
                    miner_id, assign.assignment_id, assign.microtask_id, output, "00" * 64, network
                )
            else:
                coord.accept(miner_id, assign.assignment_id, assign.microtask_id, output, "00" * 64)
        except ResultRefused:  # a copy cancelled meanwhile: not counted
            pass

    labels: dict[bytes, bytes] = {}
    submitted = 0
    accepted_at_start = start_cpu = start_wall = None
    rows_at_start = 0
    warmup = results // 5
    while coord.stats.accepted < warmup + results:
        if coord.table.open < pending + 2 * TWEETS_PER_TASK:
            await submit("sentiment", {"tweets": tweets(submitted, TWEETS_PER_TASK)}, replicas=3)
            submitted += TWEETS_PER_TASK
            continue
        if start_cpu is None and coord.stats.accepted >= warmup:
            accepted_at_start = coord.stats.accepted
            rows_at_start = await changes(store)
            start_cpu, start_wall = time.process_time(), time.perf_counter()
        for miner_id, link in links.items():
            frames, link.frames = link.frames, []
            for raw in frames:
                frame = m.server_decoder.decode(raw)
                if isinstance(frame, m.Assign):
                    key = bytes(frame.input)
                    if key not in labels:
                        labels[key] = msgspec.json.encode(kind.compute(msgspec.json.decode(key)))
                    accept(miner_id, frame, labels[key])
        await asyncio.sleep(0)
    await store.writer.drain()
    cpu = time.process_time() - start_cpu
    wall = time.perf_counter() - start_wall
    counted = coord.stats.accepted - accepted_at_start
    rows = await changes(store) - rows_at_start
    decided = coord.stats.decided
    await coord.stop()
    await store.close()
    return {
        "results": counted,
        "cpu_us_per_result": round(cpu / counted * 1e6, 1),
        "results_per_cpu_second": round(counted / cpu),
        "wall_seconds": round(wall, 2),
        "decided": decided,
        "results_per_decided": round(coord.stats.accepted / max(1, decided), 3),
        "rows_per_result": round(rows / counted, 2),
        "pending": pending,
        "engine": "trust" if hasattr(coord, "intake") else "majority",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=int, default=30_000)
    parser.add_argument("--miners", type=int, default=32)
    parser.add_argument("--slots", type=int, default=16)
    parser.add_argument("--pending", type=int, default=0, help="microtasks queued behind the run")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--no-checker", action="store_true", help="turn the kinds' checkers off (trust engine)"
    )
    args = parser.parse_args()
    figures = asyncio.run(
        run(args.results, args.miners, args.slots, not args.no_checker, args.pending)
    )
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>24}: {value}")
    sys.exit(0)


if __name__ == "__main__":
    main()
