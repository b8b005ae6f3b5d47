"""Benchmark Qortex end to end with real processes on loopback.

    python benchmarks/bench.py [--quick] [--json]

Five figures, in one run (docs/performance.md explains each):

1. ceiling: verified round trips per second that a bare uvicorn + Starlette
   WebSocket app (``benchmarks/bench_ceiling.py``) sustains with the same load
   clients, i.e. what the machine allows before Qortex does anything;
2. throughput: results per second Qortex acknowledges (verified, quorum
   applied, committed with ``sync = "full"``, events written), and its ratio
   to the ceiling;
3. latency: client-side time from ``POST /api/v1/tasks`` to the
   ``microtask.quorum`` event on the SSE stream, for 1-microtask tasks, alone
   and under a background load of half the throughput;
4. connections: the coordinator's resident memory per idle miner and its CPU
   at idle, with thousands of miners connected and heartbeating;
5. backlog: throughput with many pending microtasks, and the time to restart
   after ``kill -9`` with the largest backlog.

Everything runs on 127.0.0.1 in a temporary directory that is removed at the
end, as is every process started (on errors and Ctrl-C too; children are
also told to die with this process). Progress goes to stderr; stdout gets
a table, or one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import secrets
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_load
import httpx
from processes import Server, base_env, end, end_all, kill_all, spawn
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent

API_KEY = "bench-" + secrets.token_hex(12)
REPLICAS = 3
BIG_TASK = 20_000  # tweets per task when seeding a backlog
FEED_TASK = 500  # tweets per task when keeping the queue just busy
FEED_RUNNING = 3  # tasks kept running by the feeder: at most 1,500 microtasks pending

err = Console(stderr=True)


@dataclass(frozen=True)
class Plan:
    mode: str
    ceiling_warmup: float
    ceiling_window: float
    warmup: float
    window: float
    light_tasks: int
    half_tasks: int
    latency_seconds: float  # each latency series also stops after this long
    miners: tuple[int, ...]
    cpu_window: float
    backlogs: tuple[int, ...]
    backlog_warmup: float
    backlog_window: float


QUICK = Plan("quick", 1.5, 4, 2, 5, 100, 100, 8, (1000, 2000), 3, (100_000,), 2, 4)
#: What ``--only`` may name (``throughput`` includes the latency series).
FIGURES = ("ceiling", "throughput", "connections", "backlog")
FULL = Plan("full", 5, 20, 10, 30, 300, 300, 90, (1000, 10_000), 5, (100_000, 1_000_000), 5, 20)


def log(message: str) -> None:
    err.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}")


def bench_server(tmp: Path, name: str, argv: list[str] | None = None) -> Server:
    """``qortex serve`` (or the ceiling app) as the bench runs it: ``sync = "full"``, replicas 3."""
    return Server(
        tmp,
        name,
        API_KEY,
        {
            "QORTEX_SYNC": "full",
            "QORTEX_REPLICAS": str(REPLICAS),
            "QORTEX_MAX_TWEETS_PER_TASK": str(BIG_TASK),
            "QORTEX_MAX_REQUEST_BYTES": str(64 << 20),
        },
        argv,
    )


def raise_nofile() -> int:
    return bench_load.raise_nofile()


class LoadGroup:
    """Several ``bench_load.py`` processes sharing ``connections`` between them."""

    def __init__(
        self,
        tmp: Path,
        url: str,
        mode: str,
        connections: int,
        procs: int,
        slots: int,
        compression: str,
        name: str,
        seconds: float,
    ) -> None:
        self.tmp, self.url, self.mode, self.name = tmp, url, mode, name
        self.connections, self.slots, self.compression = connections, slots, compression
        self.procs_wanted = max(1, min(procs, connections))
        self.seconds = seconds
        self.procs: list[asyncio.subprocess.Process] = []
        self.latest: list[dict[str, Any]] = []
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> LoadGroup:
        n = self.procs_wanted
        shares = [self.connections // n + (i < self.connections % n) for i in range(n)]
        for i, share in enumerate(shares):
            argv = [
                sys.executable,
                str(HERE / "bench_load.py"),
                "--url",
                self.url,
                "--mode",
                self.mode,
                "--connections",
                str(share),
                "--slots",
                str(self.slots),
                "--seconds",
                str(self.seconds),
                "--compression",
                self.compression,
                "--name",
                f"{self.name}{i}",
            ]
            env = base_env(self.tmp)
            proc = await spawn(argv, env, self.tmp, self.tmp / f"load-{self.name}{i}.log", True)
            self.procs.append(proc)
            self.latest.append({"t": time.monotonic(), "acks": 0, "welcomed": 0})
            self._readers.append(asyncio.create_task(self._read(i, proc)))
        return self

    async def _read(self, i: int, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            with contextlib.suppress(ValueError):
                self.latest[i] = json.loads(line)

    def total(self, key: str) -> int:
        return sum(int(r.get(key, 0)) for r in self.latest)

    def refused(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.latest:
            for k, v in r.get("refused", {}).items():
                out[k] = out.get(k, 0) + v
        return out

    def mark(self) -> list[dict[str, Any]]:
        return list(self.latest)

    @staticmethod
    def rate(before: list[dict[str, Any]], after: list[dict[str, Any]], key: str = "acks") -> float:
        """Sum over processes of each one's own counter rate between two marks."""
        total = 0.0
        for a, b in zip(before, after, strict=True):
            dt = b["t"] - a["t"]
            if dt > 0:
                total += (b.get(key, 0) - a.get(key, 0)) / dt
        return total

    def check(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.returncode is not None:
                log_path = self.tmp / f"load-{self.name}{i}.log"
                tail = log_path.read_text(errors="replace")[-800:] if log_path.exists() else ""
                raise RuntimeError(f"load process {i} exited with {proc.returncode}: {tail}")

    async def wait_welcomed(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.total("welcomed") < count:
            self.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.total('welcomed')}/{count} miners welcomed")
            await asyncio.sleep(0.05)

    async def window(self, server: Server, warmup: float, seconds: float) -> float:
        """Acks per second over ``seconds`` after ``warmup``, as the processes report them."""
        await asyncio.sleep(warmup)
        self.check()
        server.check()
        before = self.mark()
        await asyncio.sleep(seconds)
        self.check()
        server.check()
        return self.rate(before, self.mark())

    async def stop(self) -> None:
        await asyncio.gather(*(end(p, grace=5.0) for p in self.procs))
        for reader in self._readers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader, 2)


# -- helpers --------------------------------------------------------------------


def tweets(count: int) -> list[str]:
    return bench_load.tweets(count)


def task_body(items: list[str]) -> bytes:
    return json.dumps({"tweets": items, "replicas": REPLICAS}).encode()


async def post_task(client: httpx.AsyncClient, body: bytes) -> str:
    response = await client.post(
        "/api/v1/tasks", content=body, headers={"content-type": "application/json"}
    )
    if response.status_code != 201:
        raise RuntimeError(f"POST /api/v1/tasks: {response.status_code} {response.text[:300]}")
    return response.json()["taskId"]


async def health(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/health")
    response.raise_for_status()
    return response.json()


async def wait_health(
    client: httpx.AsyncClient, what: str, ok: Any, timeout: float, every: float = 0.2
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = await health(client)
        if ok(state):
            return state
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}: {state}")
        await asyncio.sleep(every)


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
        deadline = time.monotonic() + seconds
        while len(out) < count and time.monotonic() < deadline:
            out.append(await self.time_task(client, body(), 30))
        return out

    async def time_task(self, client: httpx.AsyncClient, body: bytes, timeout: float) -> float:
        """Milliseconds from just before the POST to the task's quorum event."""
        t0 = time.perf_counter()
        task_id = await post_task(client, body)
        t1 = self.early.pop(task_id, None)
        if t1 is None:
            future = asyncio.get_running_loop().create_future()
            self.waiting[task_id] = future
            try:
                t1 = await asyncio.wait_for(future, timeout)
            finally:
                self.waiting.pop(task_id, None)
        return (t1 - t0) * 1000


# -- the run --------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, plan: Plan, tmp: Path) -> None:
        self.args = args
        self.plan = plan
        self.tmp = tmp
        self.result: dict[str, Any] = {
            "mode": plan.mode,
            "ceiling_per_s": None,
            "throughput_per_s": None,
            "ratio": None,
            "latency_ms": {},
            "connections": {},
            "backlog": {},
            "machine": machine(),
            "config": {
                "load_procs": args.procs,
                "connections": args.connections,
                "slots": args.slots,
                "compression": args.compression,
                "replicas": REPLICAS,
                "sync": "full",
            },
            "errors": {},
        }
        self.acks_per_microtask = 2.5

    def load(self, url: str, mode: str, name: str, connections: int | None = None, slots: int = 0):
        return LoadGroup(
            self.tmp,
            url,
            mode,
            connections or self.args.connections,
            self.args.procs,
            slots or self.args.slots,
            self.args.compression,
            name,
            seconds=3600,
        )

    async def phase(self, name: str, coro: Any) -> Any:
        log(f"[bold]{name}[/]")
        began = time.perf_counter()
        try:
            return await coro
        except Exception as exc:  # one failed figure should not lose the others
            self.result["errors"][name] = f"{type(exc).__name__}: {exc}"
            log(f"[red]{name} failed:[/] {exc}")
            return None
        finally:
            log(f"{name} took {time.perf_counter() - began:.1f}s")

    async def run(self) -> dict[str, Any]:
        began = time.perf_counter()
        only = self.args.only
        if "ceiling" in only:
            await self.phase("ceiling", self.ceiling())
        if "throughput" in only:
            await self.phase("throughput and latency", self.throughput_and_latency())
        if "connections" in only:
            await self.phase("connections", self.connections())
        if "backlog" in only:
            await self.phase("backlog", self.backlog())
        self.result["duration_seconds"] = round(time.perf_counter() - began, 1)
        return self.result

    # 1. ceiling ---------------------------------------------------------------

    async def ceiling(self) -> None:
        argv = [sys.executable, str(HERE / "bench_ceiling.py")]
        server = bench_server(self.tmp, "ceiling", argv)
        try:
            await server.start(health=False)
            load = await self.load(server.url, "ceiling", "ceiling").start()
            try:
                await load.wait_welcomed(self.args.connections, 30)
                rate = await load.window(server, self.plan.ceiling_warmup, self.plan.ceiling_window)
            finally:
                await load.stop()
        finally:
            await server.stop()
        self.result["ceiling_per_s"] = round(rate, 1)
        log(f"ceiling: {rate:,.0f} verified round trips/s")

    # 2 and 3. throughput, then latency on the same coordinator ----------------

    async def throughput_and_latency(self) -> None:
        server = bench_server(self.tmp, "throughput")
        try:
            started = await server.start()
            self.result["start_seconds_empty"] = round(started, 3)
            load = await self.load(server.url, "qortex", "work").start()
            try:
                await load.wait_welcomed(self.args.connections, 30)
                await self.throughput(server, load)
                await self.latency(server, load)
            finally:
                await load.stop()
        finally:
            await server.stop()

    async def throughput(self, server: Server, load: LoadGroup) -> None:
        plan = self.plan
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
            profiler = await self.profile(server, "throughput", plan.window)
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
        self.result["throughput_per_s"] = round(rate, 1)
        if self.result["ceiling_per_s"]:
            self.result["ratio"] = round(rate / self.result["ceiling_per_s"], 3)
        results = server.query("SELECT count(*) FROM results")
        decided = server.query("SELECT count(*) FROM microtasks WHERE status = 'decided'")
        if decided:
            self.acks_per_microtask = results / decided
        self.result["refused"] = load.refused()
        log(
            f"throughput: {rate:,.0f} acks/s ({self.acks_per_microtask:.2f} per decided microtask,"
            f" refused {load.refused()})"
        )
        async with server.client() as client:  # let the queue drain before timing latency
            await wait_health(
                client, "the queue to drain", lambda h: h["tasksRunning"] == 0, 60 + plan.window
            )

    async def latency(self, server: Server, load: LoadGroup) -> None:
        plan = self.plan
        out = self.result["latency_ms"]
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
                log(f"latency, light: p50 {out['light_p50']} ms, p99 {out['light_p99']} ms")
                # half load: open-loop background tasks worth half the measured throughput
                throughput = self.result["throughput_per_s"]
                if not throughput:
                    raise RuntimeError("no throughput figure to take half of")
                target = throughput / 2
                microtasks_per_s = target / self.acks_per_microtask
                chunk = max(1, round(microtasks_per_s * 0.1))
                every = chunk / microtasks_per_s
                stop = asyncio.Event()
                background = asyncio.create_task(
                    self.background(server, task_body(tweets(chunk)), every, stop)
                )
                try:
                    await asyncio.sleep(max(2.0, plan.warmup / 2))
                    if background.done():
                        await background
                    before = load.mark()
                    half = await watch.series(client, one, plan.half_tasks, plan.latency_seconds)
                    server.check()
                    achieved = load.rate(before, load.mark())
                finally:
                    stop.set()
                    (outcome,) = await asyncio.gather(background, return_exceptions=True)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        out["half_p50"] = round(percentile(half, 50), 2)
        out["half_p99"] = round(percentile(half, 99), 2)
        out["half_max"] = round(max(half), 2)
        out["half_n"] = len(half)
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
        self, server: Server, body: bytes, every: float, stop: asyncio.Event
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

    async def profile(self, server: Server, name: str, seconds: float) -> Any:
        if not self.args.profile:
            return None
        # On PATH, or installed beside this Python (a virtual environment not activated).
        pyspy = shutil.which("py-spy") or shutil.which("py-spy", path=Path(sys.executable).parent)
        if pyspy is None:
            log("[yellow]--profile: py-spy is not installed (pip install py-spy)[/]")
            return None
        target = Path(self.args.profile).resolve()
        target.mkdir(parents=True, exist_ok=True)
        # Raw (collapsed) stacks: benchmarks/engine_share.py reads them, flame graph tools too.
        argv = [pyspy, "record", "--pid", str(server.pid), "--duration", str(int(seconds))]
        argv += ["--rate", "100", "--nonblocking", "--format", "raw"]
        argv += ["-o", str(target / f"{name}.txt")]
        return await spawn(argv, base_env(self.tmp), self.tmp, self.tmp / "py-spy.log")

    # 4. connections -------------------------------------------------------------

    async def connections(self) -> None:
        plan = self.plan
        out = self.result["connections"]
        server = bench_server(self.tmp, "connections")
        groups: list[LoadGroup] = []
        miners, rss, cpu = [0], [], []
        try:
            await server.start()
            await asyncio.sleep(1.0)
            rss.append(server.rss())
            cpu.append(round(await server.cpu_percent(plan.cpu_window), 2))
            current = 0
            async with server.client() as client:
                for n in plan.miners:
                    group = self.load(
                        server.url, "idle", f"idle{n}-", connections=n - current, slots=1
                    )
                    groups.append(await group.start())
                    try:
                        await wait_health(
                            client,
                            f"{n} miners",
                            lambda h, n=n: h["minersConnected"] >= n,
                            timeout=30 + n / 50,
                            every=0.5,
                        )
                    except RuntimeError as exc:
                        closes = [r.get("closes") for g in groups for r in g.latest]
                        raise RuntimeError(f"{exc}; closes seen by the miners: {closes}") from None
                    current = n
                    await asyncio.sleep(self.args.settle)  # connect-time writes settle
                    miners.append(n)
                    rss.append(server.rss())
                    beats = sum(g.total("heartbeats") for g in groups)
                    cpu.append(round(await server.cpu_percent(plan.cpu_window), 2))
                    beats = sum(g.total("heartbeats") for g in groups) - beats
                    state = await health(client)
                    log(
                        f"{state['minersConnected']} idle miners: RSS {rss[-1] / 2**20:.1f} MiB,"
                        f" CPU {cpu[-1]}%, ~{beats / plan.cpu_window:.0f} heartbeats/s"
                    )
        finally:
            await asyncio.gather(*(g.stop() for g in groups))
            await server.stop()
        out["miners"] = miners
        out["rss_bytes"] = rss
        per = [round((r - rss[0]) / n) for n, r in zip(miners[1:], rss[1:], strict=True)]
        out["bytes_per_miner_each"] = per
        out["bytes_per_miner"] = per[-1] if per else None
        out["idle_cpu_percent_each"] = cpu
        out["idle_cpu_percent"] = cpu[-1]

    # 5. backlog -------------------------------------------------------------

    async def backlog(self) -> None:
        plan = self.plan
        out = self.result["backlog"]
        out["pending"] = [0]
        out["throughput_per_s"] = [self.result["throughput_per_s"]]
        out["seed_seconds"] = [0.0]
        out["rss_bytes"] = [None]
        for size in plan.backlogs:
            largest = size == plan.backlogs[-1]
            server = bench_server(self.tmp, f"backlog{size}")
            try:
                await server.start()
                seeded = await self.seed(server, size)
                out["seed_seconds"].append(round(seeded, 2))
                out["rss_bytes"].append(server.rss())
                load = await self.load(server.url, "qortex", f"backlog{size}-").start()
                try:
                    await load.wait_welcomed(self.args.connections, 30)
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
                    log(
                        f"restart after kill -9 with {out['restart_pending']:,} pending:"
                        f" {took:.2f}s"
                    )
            finally:
                await server.stop()

    async def seed(self, server: Server, size: int) -> float:
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


def machine() -> dict[str, Any]:
    import uvicorn
    import websockets
    from uvicorn.protocols.http.auto import AutoHTTPProtocol
    from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    mem = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) * 1024
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "memory_bytes": mem,
        "sqlite": sqlite3.sqlite_version,
        "uvicorn": uvicorn.__version__,
        "websockets": websockets.__version__,
        "loop": loop,
        "http": AutoHTTPProtocol.__name__ if AutoHTTPProtocol else None,
        "ws": AutoWebSocketsProtocol.__name__ if AutoWebSocketsProtocol else None,
        "load_average": list(os.getloadavg()),
    }


# -- output ---------------------------------------------------------------------


def _n(value: Any, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}{unit}"


def table(r: dict[str, Any]) -> Table:
    cfg, lat, con, bl, mach = (
        r["config"],
        r["latency_ms"],
        r["connections"],
        r["backlog"],
        r["machine"],
    )
    t = Table(title=f"Qortex benchmark ({r['mode']} mode, {r.get('duration_seconds', '?')}s)")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("how")
    load = f"{cfg['load_procs']} load proc(s), {cfg['connections']} miners x {cfg['slots']} slots"
    t.add_row("1. ceiling", _n(r["ceiling_per_s"], "/s"), f"bare uvicorn: verify + ack; {load}")
    t.add_row(
        "2. throughput",
        _n(r["throughput_per_s"], "/s"),
        f"acked results, replicas {cfg['replicas']}, sync full",
    )
    t.add_row("   ratio", _n(r["ratio"], "", 3), "throughput / ceiling")
    t.add_row(
        "3. latency, light",
        f"{_n(lat.get('light_p50'), '', 1)} / {_n(lat.get('light_p99'), '', 1)} ms",
        f"p50 / p99, POST to microtask.quorum, {lat.get('light_n', 0)} tasks one at a time",
    )
    t.add_row(
        "   latency, half load",
        f"{_n(lat.get('half_p50'), '', 1)} / {_n(lat.get('half_p99'), '', 1)} ms",
        f"p50 / p99, {lat.get('half_n', 0)} tasks, background at"
        f" {_n(lat.get('half_rate_per_s'), '/s')}"
        f" (target {_n(lat.get('half_target_per_s'), '/s')})",
    )
    miners = con.get("miners", [])
    if miners:
        rss = ", ".join(
            f"{m:,}: {b / 2**20:.0f} MiB" for m, b in zip(miners, con["rss_bytes"], strict=False)
        )
        t.add_row("4. memory per miner", _n(con.get("bytes_per_miner"), " B"), f"RSS {rss}")
        cpus = ", ".join(
            f"{m:,}: {c}%" for m, c in zip(miners, con["idle_cpu_percent_each"], strict=False)
        )
        t.add_row("   CPU at idle", _n(con.get("idle_cpu_percent"), "%", 1), cpus)
    pending = bl.get("pending", [])
    if pending:
        rates = ", ".join(
            f"{p:,}: {_n(v, '/s')}"
            for p, v in zip(pending, bl.get("throughput_per_s", []), strict=False)
        )
        t.add_row("5. backlog throughput", "", rates)
        seeds = bl.get("seed_seconds", [])
        if len(seeds) > 1:
            t.add_row(
                "   seeding",
                f"{seeds[-1]:.1f} s",
                f"{pending[-1]:,} microtasks via POST /api/v1/tasks ({BIG_TASK:,} per task)",
            )
        t.add_row(
            "   restart after kill -9",
            _n(bl.get("restart_seconds"), " s", 2),
            f"{_n(bl.get('restart_pending'))} pending; to /health 200 (empty DB:"
            f" {_n(r.get('start_seconds_empty'), ' s', 2)})",
        )
    t.caption = (
        f"{mach['nproc']} CPU(s) {mach['cpu_model']}, Python {mach['python']},"
        f" uvicorn {mach['uvicorn']} ({mach['loop']}, {mach['http']}, {mach['ws']})"
    )
    for phase, message in r["errors"].items():
        t.add_row(f"[red]error: {phase}[/]", "", message)
    return t


# -- main -----------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    cores = len(os.sched_getaffinity(0))
    parser = argparse.ArgumentParser(description="Benchmark Qortex on loopback (see module doc).")
    parser.add_argument("--quick", action="store_true", help="about a minute, scaled down")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--procs", type=int, default=max(1, cores - 1), help="load processes (default cores-1)"
    )
    parser.add_argument("--connections", type=int, default=32, help="working miners in all")
    parser.add_argument("--slots", type=int, default=16, help="slots per working miner")
    parser.add_argument(
        "--compression",
        choices=("deflate", "none"),
        default="deflate",
        help="what the load clients offer (deflate: like the CLI miner and browsers)",
    )
    parser.add_argument("--profile", metavar="DIR", help="py-spy the throughput window into DIR")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, DBs)")
    parser.add_argument(
        "--only",
        default=",".join(FIGURES),
        help=f"comma-separated figures to measure, of {','.join(FIGURES)} (default: all)",
    )
    parser.add_argument(
        "--miners", help="idle miner counts for the connections figure, e.g. 1000,10000"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=1.5,
        help="seconds between the last idle miner connecting and measuring (default 1.5)",
    )
    args = parser.parse_args()
    args.only = set(args.only.split(","))
    if args.only - set(FIGURES):
        parser.error(f"--only takes {', '.join(FIGURES)}")
    if args.miners is not None:
        try:
            args.miners = tuple(int(n) for n in args.miners.split(","))
        except ValueError:
            parser.error("--miners takes counts such as 1000,10000")
    if args.connections < REPLICAS:
        parser.error(f"--connections must be at least {REPLICAS} (replicas)")
    if not 1 <= args.slots <= 64:
        parser.error("--slots must be between 1 and 64")
    return args


async def amain(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    try:
        plan = QUICK if args.quick else FULL
        if args.miners is not None:
            plan = dataclasses.replace(plan, miners=args.miners)
        return await Bench(args, plan, tmp).run()
    finally:
        await end_all(grace=3.0)


def main() -> int:
    args = parse_args()
    limit = raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="qortex-bench-"))
    log(f"{'quick' if args.quick else 'full'} run in {tmp}; open files limit {limit}")
    try:
        result = asyncio.run(amain(args, tmp))
    except (KeyboardInterrupt, asyncio.CancelledError):
        err.print("[red]interrupted[/]")
        return 130
    finally:
        kill_all()
        if args.keep:
            err.print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        Console().print(table(result))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
