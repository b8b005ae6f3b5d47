"""Figure 5 of ``benchmarks/bench.py``: throughput with many microtasks pending,
and the time to restart after ``kill -9`` with the largest backlog.
"""

from __future__ import annotations

import time

from bench_harness import BIG_TASK, Run, bench_server, log, post_task, task_body, tweets
from processes import Server


async def backlog(run: Run) -> None:
    """Throughput behind each backlog of ``plan.backlogs``; restart time with the largest."""
    plan = run.plan
    out = run.result["backlog"]
    out["pending"] = [0]
    out["throughput_per_s"] = [run.result["throughput_per_s"]]
    out["seed_seconds"] = [0.0]
    out["rss_bytes"] = [None]
    for size in plan.backlogs:
        largest = size == plan.backlogs[-1]
        server = bench_server(run.tmp, f"backlog{size}")
        try:
            await server.start()
            seeded = await seed(server, size)
            out["seed_seconds"].append(round(seeded, 2))
            out["rss_bytes"].append(server.rss())
            load = await run.load(server.url, "qortex", f"backlog{size}-").start()
            try:
                await load.wait_welcomed(run.args.connections, 30)
                rate = await load.window(server, plan.backlog_warmup, plan.backlog_window)
            finally:
                await load.stop()
            out["pending"].append(size)
            out["throughput_per_s"].append(round(rate, 1))
            log(f"backlog {size:,}: seeded in {seeded:.1f}s, {rate:,.0f} acks/s")
            if largest:
                await server.kill9()
                took = await server.start(timeout=600)
                out["restart_seconds"] = round(took, 3)
                out["restart_pending"] = server.query(
                    "SELECT count(*) FROM microtasks WHERE status = 'pending'"
                )
                log(f"restart after kill -9 with {out['restart_pending']:,} pending: {took:.2f}s")
        finally:
            await server.stop()


async def seed(server: Server, size: int) -> float:
    """Queue ``size`` microtasks through the API, in tasks of :data:`BIG_TASK` tweets."""
    pool = tweets(BIG_TASK)
    full = task_body(pool)
    began = time.perf_counter()
    async with server.client(timeout=300) as client:
        left = size
        while left > 0:
            await post_task(client, full if left >= BIG_TASK else task_body(pool[:left]))
            left -= BIG_TASK
    return time.perf_counter() - began
