"""Qortex's leg of ``benchmarks/peers.py``: the real coordinator and real miner processes.

``qortex serve`` runs as its own process on a loopback port (``sync = "full"``,
replicas 3), started and supervised by ``scripts/bench.py``'s :class:`Server`;
the miners are ``scripts/bench_load.py`` processes (each WebSocket connection
its own ed25519 identity speaking the miner protocol), started by its
:class:`LoadGroup`. The driver submits the tweets as tasks over HTTP and
follows the event stream: the clock runs from just before the first submit
to the last ``microtask.quorum`` event, and every decided label is then read
back and compared with the kind's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from bench import LoadGroup, Server, log, post_task
from peers_cpu import CpuMeter
from peers_work import Job, expected, figures


class DecisionWatch:
    """One event stream: counts ``microtask.quorum`` and ``task.completed`` as they arrive.

    A reader that falls behind is dropped by the coordinator; it then resumes
    from the last id it saw, as any client does, and what it reads back from
    the log counts as arriving then (later than it happened, never earlier).
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.ready = asyncio.Event()
        self.decisions = 0
        self.last_decision = 0.0
        self.completed: set[str] = set()
        self.changed = asyncio.Event()
        self.last_id: bytes | None = None
        self.resumed = 0

    async def run(self) -> None:
        timeout = httpx.Timeout(10.0, read=None)
        async with self.server.client() as client:
            while True:
                params = {} if self.last_id is None else {"lastEventId": self.last_id.decode()}
                async with client.stream(
                    "GET", "/api/v1/events", params=params, timeout=timeout
                ) as response:
                    response.raise_for_status()
                    buffer = b""
                    async for chunk in response.aiter_bytes():
                        now = time.perf_counter()
                        buffer += chunk
                        *blocks, buffer = buffer.split(b"\n\n")
                        for block in blocks:
                            self._block(block, now)
                        self.ready.set()
                self.resumed += 1

    def _block(self, block: bytes, now: float) -> None:
        kind = data = None
        for line in block.split(b"\n"):
            if line.startswith(b"id: "):
                self.last_id = line[4:]
            elif line.startswith(b"event: "):
                kind = line[7:]
            elif line.startswith(b"data: "):
                data = line[6:]
        if kind == b"microtask.quorum":
            self.decisions += 1
            self.last_decision = now
        elif kind == b"task.completed" and data is not None:
            self.completed.add(json.loads(data)["taskId"])
            self.changed.set()
        elif kind == b"task.failed":
            raise RuntimeError(f"a task failed: {data!r}")


async def run(
    tmp: Path, work: list[Job], replicas: int, workers: int, identities: int, slots: int
) -> dict:
    """Decided microtasks per second for ``work`` on a fresh coordinator and miners."""
    server = Server(tmp, "qortex")
    await server.start()
    try:
        connections = workers * identities
        load = LoadGroup(
            tmp, server.url, "qortex", connections, workers, slots, "deflate", "peers", 3600
        )
        await load.start()
        try:
            await load.wait_welcomed(connections, 60)
            return await _measure(server, work, replicas)
        finally:
            await load.stop()
    finally:
        await server.stop()


async def _measure(
    server: Server, work: list[Job], replicas: int, task_size: int = 500
) -> dict[str, Any]:
    watch = DecisionWatch(server)
    watcher = asyncio.create_task(watch.run())
    try:
        await asyncio.wait_for(watch.ready.wait(), 30)
        tweets = [json.loads(job.raw) for job in work]
        tasks = math.ceil(len(tweets) / task_size)
        meter = CpuMeter()
        async with server.client() as client:
            meter.start()
            first_submit = time.perf_counter()
            ids = []
            for i in range(tasks):
                chunk = tweets[i * task_size : (i + 1) * task_size]
                body = json.dumps({"tweets": chunk, "replicas": replicas}).encode()
                ids.append(await post_task(client, body))
            log(f"qortex: {len(ids)} tasks submitted")
            while not watch.completed.issuperset(ids):
                if watcher.done():
                    await watcher  # raises why the stream ended
                server.check()
                watch.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(watch.changed.wait(), 1)
            cpu_seconds = meter.stop()
            labels = [label for task_id in ids for label in await _labels(client, task_id)]
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    if watch.decisions != len(work):
        raise RuntimeError(f"{watch.decisions} decisions for {len(work)} microtasks")
    wrong = sum(label != expected(job) for label, job in zip(labels, work, strict=True))
    if wrong:
        raise RuntimeError(f"{wrong} decisions differ from the kind's own labels")
    results = server.query("SELECT count(*) FROM results")
    out = figures(watch.decisions, watch.last_decision - first_submit, cpu_seconds, results)
    out["streamResumed"] = watch.resumed
    return out


async def _labels(client: httpx.AsyncClient, task_id: str) -> list[str]:
    """The decided label of each microtask of ``task_id``, in input order, as JSON text."""
    response = await client.get(f"/api/v1/tasks/{task_id}")
    response.raise_for_status()
    details = sorted(response.json()["microtaskDetails"], key=lambda d: d["index"])
    return [json.dumps(d["decision"]) for d in details]
