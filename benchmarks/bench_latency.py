"""Figure 3 of ``benchmarks/bench.py``: latency from submit to decision.

Client-side time from ``POST /api/v1/tasks`` to the task's ``microtask.quorum``
event on one SSE stream, for 1-microtask tasks: one at a time on an otherwise
idle coordinator, then under an open-loop background load worth half the
throughput just measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import httpx
from bench_harness import LoadGroup, Run, log, post_task, task_body, tweets
from processes import Server


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class QuorumWatch:
    """One SSE stream, no filter: when did each task's first ``microtask.quorum`` arrive."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.early: dict[str, float] = {}
        self.last_id: int | None = None
        self.ready = asyncio.Event()
        self.streams = 0
        self.events = 0
        self.posted: list[float] = []  # per task of the last series: ms until its 201

    async def run(self) -> None:
        timeout = httpx.Timeout(10.0, read=60.0)
        async with self.server.client() as client:
            while True:
                params = {} if self.last_id is None else {"lastEventId": str(self.last_id)}
                self.streams += 1
                with contextlib.suppress(httpx.HTTPError):
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
                await asyncio.sleep(0.1)  # dropped (too slow a reader) or closed: resume

    def _block(self, block: bytes, now: float) -> None:
        kind = data = None
        for line in block.split(b"\n"):
            if line.startswith(b"id: "):
                self.last_id = int(line[4:])
                self.events += 1
            elif line.startswith(b"event: "):
                kind = line[7:]
            elif line.startswith(b"data: "):
                data = line[6:]
        if kind != b"microtask.quorum" or data is None:
            return
        task_id = json.loads(data).get("taskId")
        future = self.waiting.pop(task_id, None)
        if future is not None:
            if not future.done():
                future.set_result(now)
        elif task_id not in self.early:
            self.early[task_id] = now

    async def series(
        self, client: httpx.AsyncClient, body: Any, count: int, seconds: float
    ) -> list[float]:
        """Time ``count`` tasks one after the other, stopping early after ``seconds``."""
        out: list[float] = []
        self.posted = []
        deadline = time.monotonic() + seconds
        while len(out) < count and time.monotonic() < deadline:
            out.append(await self.time_task(client, body(), 30))
        return out

    async def time_task(self, client: httpx.AsyncClient, body: bytes, timeout: float) -> float:
        """Milliseconds from just before the POST to the task's quorum event."""
        t0 = time.perf_counter()
        task_id = await post_task(client, body)
        self.posted.append((time.perf_counter() - t0) * 1000)
        t1 = self.early.pop(task_id, None)
        if t1 is None:
            future = asyncio.get_running_loop().create_future()
            self.waiting[task_id] = future
            try:
                t1 = await asyncio.wait_for(future, timeout)
            finally:
                self.waiting.pop(task_id, None)
        return (t1 - t0) * 1000


async def latency(run: Run, server: Server, load: LoadGroup) -> None:
    """p50 and p99 of one task at a time, alone and under half the measured throughput."""
    plan = run.plan
    out = run.result["latency_ms"]
    watch = QuorumWatch(server)
    watcher = asyncio.create_task(watch.run())
    pool = tweets(997)
    serial = 0

    def one() -> bytes:
        nonlocal serial
        serial += 1
        return task_body([pool[serial % len(pool)]])

    try:
        await asyncio.wait_for(watch.ready.wait(), 10)
        async with server.client(timeout=30) as client:
            # light load: one task at a time
            light = await watch.series(client, one, plan.light_tasks, plan.latency_seconds)
            out["light_p50"] = round(percentile(light, 50), 2)
            out["light_p99"] = round(percentile(light, 99), 2)
            out["light_max"] = round(max(light), 2)
            out["light_n"] = len(light)
            out["light_post_p50"] = round(percentile(watch.posted, 50), 2)
            log(f"latency, light: p50 {out['light_p50']} ms, p99 {out['light_p99']} ms")
            # half load: open-loop background tasks worth half the measured throughput
            throughput = run.result["throughput_per_s"]
            if not throughput:
                raise RuntimeError("no throughput figure to take half of")
            target = throughput / 2
            microtasks_per_s = target / run.acks_per_microtask
            chunk = max(1, round(microtasks_per_s * 0.1))
            every = chunk / microtasks_per_s
            stop = asyncio.Event()
            loading = asyncio.create_task(background(server, task_body(tweets(chunk)), every, stop))
            try:
                await asyncio.sleep(max(2.0, plan.warmup / 2))
                if loading.done():
                    await loading
                before = load.mark()
                half = await watch.series(client, one, plan.half_tasks, plan.latency_seconds)
                server.check()
                achieved = load.rate(before, load.mark())
            finally:
                stop.set()
                (outcome,) = await asyncio.gather(loading, return_exceptions=True)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    out["half_p50"] = round(percentile(half, 50), 2)
    out["half_p99"] = round(percentile(half, 99), 2)
    out["half_max"] = round(max(half), 2)
    out["half_n"] = len(half)
    out["half_post_p50"] = round(percentile(watch.posted, 50), 2)
    out["half_target_per_s"] = round(target, 1)
    out["half_rate_per_s"] = round(achieved, 1)
    out["half_background_task"] = chunk
    if isinstance(outcome, BaseException):
        raise RuntimeError(f"background load failed: {outcome!r}")
    out["half_background_skipped"], out["half_background_failed"] = outcome
    if outcome[1]:
        log(f"[yellow]{outcome[1]} background task submissions failed[/]")
    out["sse_streams"] = watch.streams
    log(
        f"latency, half load ({achieved:,.0f}/s of {target:,.0f}/s targeted):"
        f" p50 {out['half_p50']} ms, p99 {out['half_p99']} ms"
    )


async def background(
    server: Server, body: bytes, every: float, stop: asyncio.Event
) -> tuple[int, int]:
    """Submit ``body`` every ``every`` seconds (open loop); returns (skipped, failed)."""
    skipped = failed = 0
    outstanding: set[asyncio.Task[str]] = set()

    def done(task: asyncio.Task[str]) -> None:
        nonlocal failed
        outstanding.discard(task)
        if not task.cancelled() and task.exception() is not None:
            failed += 1

    async with server.client() as client:
        tick = time.perf_counter()
        while not stop.is_set():
            if len(outstanding) < 8:
                task = asyncio.create_task(post_task(client, body))
                outstanding.add(task)
                task.add_done_callback(done)
            else:
                skipped += 1
            tick += every
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, tick - time.perf_counter()))
        await asyncio.gather(*outstanding, return_exceptions=True)
    return skipped, failed
