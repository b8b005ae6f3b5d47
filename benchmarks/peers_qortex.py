"""Qortex's leg of ``benchmarks/peers.py``: the real coordinator and real miner processes.

``qortex serve`` runs as its own process on a loopback port (``sync = "full"``,
replicas 3), started and supervised by ``benchmarks/processes.py``'s :class:`Server`;
the miners are ``benchmarks/bench_load.py`` processes (each WebSocket connection
its own ed25519 identity speaking the miner protocol), started by its
:class:`LoadGroup`. The driver submits the tweets as tasks of 500 over HTTP;
the clock runs from just before the first submit until a read-only reader of
the SQLite file (polling every 10 ms) sees no microtask pending any more, that
is, every decision committed. Every decided label is then read back over HTTP and compared with
the kind's own.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
from bench_harness import LoadGroup, bench_server, log, post_task
from peers_cpu import CpuMeter
from peers_work import Job, expected, figures
from processes import Server

PENDING = "SELECT count(*) FROM microtasks WHERE status = 'pending'"  # a partial index
DECIDED = "SELECT count(*) FROM microtasks WHERE status = 'decided' AND gold IS NULL"
POLL = 0.01  # seconds between two looks at the file


async def run(
    tmp: Path, work: list[Job], replicas: int, workers: int, identities: int, slots: int
) -> dict:
    """Decided microtasks per second for ``work`` on a fresh coordinator and miners."""
    server = bench_server(tmp, "qortex")
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
    tweets = [json.loads(job.raw) for job in work]
    meter = CpuMeter()
    async with server.client() as client:
        meter.start()
        first_submit = time.perf_counter()
        ids = []
        for start in range(0, len(tweets), task_size):
            chunk = tweets[start : start + task_size]
            body = json.dumps({"tweets": chunk, "replicas": replicas}).encode()
            ids.append(await post_task(client, body))
        submitted = time.perf_counter() - first_submit
        log(f"qortex: {len(ids)} tasks submitted in {submitted:.2f} s")
        deadline = time.monotonic() + 600
        while (pending := server.query(PENDING)) > 0:
            server.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{pending} microtasks still pending after 600 s")
            await asyncio.sleep(POLL)
        last_decision = time.perf_counter()
        cpu_seconds = meter.stop()
        decided = server.query(DECIDED)
        if decided != len(work):
            raise RuntimeError(f"{len(work) - decided} microtasks ended undecided")
        labels = [label for task_id in ids for label in await _labels(client, task_id)]
    wrong = sum(label != expected(job) for label, job in zip(labels, work, strict=True))
    if wrong:
        raise RuntimeError(f"{wrong} decisions differ from the kind's own labels")
    results = server.query("SELECT count(*) FROM results")
    out = figures(decided, last_decision - first_submit, cpu_seconds, results)
    out["submitSeconds"] = round(submitted, 3)
    return out


async def _labels(client: httpx.AsyncClient, task_id: str) -> list[str]:
    """The decided label of each microtask of ``task_id``, in input order, as JSON text."""
    response = await client.get(f"/api/v1/tasks/{task_id}")
    response.raise_for_status()
    details = sorted(response.json()["microtaskDetails"], key=lambda d: d["index"])
    return [json.dumps(d["decision"]) for d in details]
