"""Figures 1 and 2 of ``benchmarks/bench.py``: the ceiling, Qortex's throughput, their ratio.

The ceiling is what a bare uvicorn + Starlette WebSocket app
(``bench_ceiling.py``) sustains with the same load clients: verify a signed
result, acknowledge it. The throughput is what Qortex acknowledges with the
same clients (verified, quorum applied, committed with ``sync = "full"``,
events written) while a feeder keeps a few tasks running; the latency series
(``bench_latency``) then run on the same coordinator.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from pathlib import Path
from typing import Any

from bench_harness import (
    HERE,
    LoadGroup,
    Run,
    bench_server,
    health,
    log,
    post_task,
    task_body,
    tweets,
    wait_health,
)
from bench_latency import latency
from processes import Server, base_env, spawn

FEED_TASK = 500  # tweets per task when keeping the queue just busy
FEED_RUNNING = 3  # tasks kept running by the feeder: at most 1,500 microtasks pending


async def ceiling(run: Run) -> None:
    """Verified round trips per second through the bare app, with the run's load clients."""
    argv = [sys.executable, str(HERE / "bench_ceiling.py")]
    server = bench_server(run.tmp, "ceiling", argv)
    try:
        await server.start(health=False)
        load = await run.load(server.url, "ceiling", "ceiling").start()
        try:
            await load.wait_welcomed(run.args.connections, 30)
            rate = await load.window(server, run.plan.ceiling_warmup, run.plan.ceiling_window)
        finally:
            await load.stop()
    finally:
        await server.stop()
    run.result["ceiling_per_s"] = round(rate, 1)
    log(f"ceiling: {rate:,.0f} verified round trips/s")


async def throughput_and_latency(run: Run) -> None:
    """Throughput, then the latency series, on one coordinator with the same miners."""
    server = bench_server(run.tmp, "throughput")
    try:
        started = await server.start()
        run.result["start_seconds_empty"] = round(started, 3)
        load = await run.load(server.url, "qortex", "work").start()
        try:
            await load.wait_welcomed(run.args.connections, 30)
            await throughput(run, server, load)
            await latency(run, server, load)
        finally:
            await load.stop()
    finally:
        await server.stop()


async def throughput(run: Run, server: Server, load: LoadGroup) -> None:
    """Results acknowledged per second while a feeder keeps a few tasks running."""
    plan = run.plan
    body = task_body(tweets(FEED_TASK))
    stop = asyncio.Event()

    async def feed() -> None:
        async with server.client() as client:
            while not stop.is_set():
                if (await health(client))["tasksRunning"] < FEED_RUNNING:
                    await post_task(client, body)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.1)

    feeder = asyncio.create_task(feed())
    profiler = None
    try:
        await asyncio.sleep(plan.warmup)
        if feeder.done():
            await feeder  # raises what stopped it
        before = load.mark()
        profiler = await profile(run, server, "throughput", plan.window)
        await asyncio.sleep(plan.window)
        load.check()
        server.check()
        rate = load.rate(before, load.mark())
        if feeder.done():
            await feeder  # the queue ran dry during the window: say why
    finally:
        stop.set()
        await asyncio.gather(feeder, return_exceptions=True)
        if profiler is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(profiler.wait(), 30)
    run.result["throughput_per_s"] = round(rate, 1)
    if run.result["ceiling_per_s"]:
        run.result["ratio"] = round(rate / run.result["ceiling_per_s"], 3)
    results = server.query("SELECT count(*) FROM results")
    decided = server.query("SELECT count(*) FROM microtasks WHERE status = 'decided'")
    if decided:
        run.acks_per_microtask = results / decided
    run.result["refused"] = load.refused()
    log(
        f"throughput: {rate:,.0f} acks/s ({run.acks_per_microtask:.2f} per decided microtask,"
        f" refused {load.refused()})"
    )
    async with server.client() as client:  # let the queue drain before timing latency
        await wait_health(
            client, "the queue to drain", lambda h: h["tasksRunning"] == 0, 60 + plan.window
        )


async def profile(run: Run, server: Server, name: str, seconds: float) -> Any:
    """With ``--profile``, py-spy on the coordinator for ``seconds``; its process, or None."""
    if not run.args.profile:
        return None
    # On PATH, or installed beside this Python (a virtual environment not activated).
    pyspy = shutil.which("py-spy") or shutil.which("py-spy", path=Path(sys.executable).parent)
    if pyspy is None:
        log("[yellow]--profile: py-spy is not installed (pip install py-spy)[/]")
        return None
    target = Path(run.args.profile).resolve()
    target.mkdir(parents=True, exist_ok=True)
    # Raw (collapsed) stacks: benchmarks/engine_share.py reads them, flame graph tools too.
    argv = [pyspy, "record", "--pid", str(server.pid), "--duration", str(int(seconds))]
    argv += ["--rate", "100", "--nonblocking", "--format", "raw"]
    argv += ["-o", str(target / f"{name}.txt")]
    return await spawn(argv, base_env(run.tmp), run.tmp, run.tmp / "py-spy.log")
