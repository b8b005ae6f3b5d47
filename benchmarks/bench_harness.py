"""What every figure of ``benchmarks/bench.py`` shares: the plans, the servers
and load processes it runs, the API calls it makes, and the machine it runs on.

A :class:`Run` is one bench run: its options, its plan, its temporary folder and
the figures found so far (the JSON object ``bench.py`` prints); each figure's
module (``bench_throughput``, ``bench_latency``, ``bench_connections``,
``bench_backlog``) takes it and adds its own. The load processes are
``bench_load.py``, several at once (:class:`LoadGroup`), supervised by
``processes.py`` like every process the benchmarks start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_load
import httpx
from processes import Server, base_env, end, spawn
from rich.console import Console

HERE = Path(__file__).resolve().parent

API_KEY = "bench-" + secrets.token_hex(12)
REPLICAS = 3
BIG_TASK = 20_000  # tweets per task when seeding a backlog

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
    """Progress, on stderr: stdout is the table or the JSON object."""
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
    """The open-files limit raised as far as allowed: thousands of miners are sockets."""
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


# -- the API calls --------------------------------------------------------------


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


# -- one run --------------------------------------------------------------------


class Run:
    """One bench run: its options, its plan, its folder, and the figures found so far."""

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
        self.acks_per_microtask = 2.5  # until the throughput figure counts them

    def load(
        self, url: str, mode: str, name: str, connections: int | None = None, slots: int = 0
    ) -> LoadGroup:
        """``connections`` working miners (the run's own by default) in the run's processes."""
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


def machine() -> dict[str, Any]:
    """What the figures were measured on: CPUs, versions, event loop, load at the start."""
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
