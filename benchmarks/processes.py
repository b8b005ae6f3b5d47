"""Supervision of the real processes a benchmark or a campaign runs: written once, used by all.

Everything runs on the loopback address only, on ports the kernel hands out,
with an environment from which any Qortex setting of the caller's has been
removed, so the defaults under test are the shipped ones. Every child runs in
its own process group and is told by the kernel to die with its parent, so a
crashed or interrupted run leaves nothing behind; :func:`kill_all` is the
synchronous last resort for a ``finally``.

Benchmarks run as ``python benchmarks/<name>.py`` import this as
``processes``; the test suite imports it as ``benchmarks.processes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from qortex.settings import SEED_ALIASES

HOST = "127.0.0.1"

_children: list[asyncio.subprocess.Process] = []
_libc: Any = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def base_env(tmp: Path) -> dict[str, str]:
    """This environment minus Qortex settings, with its own config dir under ``tmp``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("QORTEX_") and k not in SEED_ALIASES
    }
    env["XDG_CONFIG_HOME"] = str(tmp / "config")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def die_with_parent() -> None:
    """Runs in the child between fork and exec: the kernel SIGKILLs it when we die."""
    if _libc is not None:
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


async def spawn(
    argv: list[str], env: dict[str, str], cwd: Path, log_path: Path, pipe: bool = False
) -> asyncio.subprocess.Process:
    """A child in its own process group, killed with us, output appended to ``log_path``.

    With ``pipe`` its stdout is a pipe the caller reads; stderr still goes to the log.
    """
    with open(log_path, "ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if pipe else out,
            stderr=out,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    _children.append(proc)
    return proc


def children() -> list[asyncio.subprocess.Process]:
    """Every process :func:`spawn` started (ended ones included)."""
    return list(_children)


def signal_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    """Signal the process group of a child we started (its group id is its PID)."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


async def reap(proc: asyncio.subprocess.Process, seconds: float) -> bool:
    """Whether the process ended within ``seconds``."""
    try:
        await asyncio.wait_for(proc.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def end(
    proc: asyncio.subprocess.Process, grace: float = 5.0, sig: int = signal.SIGTERM
) -> None:
    """``sig`` to the process group, SIGKILL if it is still there after ``grace``."""
    signal_group(proc, sig)
    if not await reap(proc, grace):
        signal_group(proc, signal.SIGKILL)
        await reap(proc, 5)


async def end_all(grace: float = 3.0) -> None:
    """End every child still running, all at once."""
    await asyncio.gather(*(end(p, grace) for p in _children), return_exceptions=True)


def kill_all() -> None:
    """Last resort, synchronous: SIGKILL every process group still running."""
    for proc in _children:
        signal_group(proc, signal.SIGKILL)


async def port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class Server:
    """``qortex serve`` (or another server's ``argv``) as a real process on a loopback port.

    The port and the database file stay the same across :meth:`kill9` and
    :meth:`start`, so a restart recovers the very file the killed process wrote.
    Its folder is ``tmp / name``, its output ``server.log`` there.
    """

    def __init__(
        self,
        tmp: Path,
        name: str,
        api_key: str,
        settings: dict[str, str] | None = None,
        argv: list[str] | None = None,
        db: Path | None = None,
        port: int | None = None,
    ) -> None:
        self.dir = tmp / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.api_key = api_key
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.db = db or self.dir / "qortex.db"
        self.log = self.dir / "server.log"
        self.argv = argv or [sys.executable, "-m", "qortex", "serve"]
        self.env = base_env(tmp) | {
            "QORTEX_API_KEY": api_key,
            "QORTEX_DB": str(self.db),
            "QORTEX_HOST": HOST,
            "QORTEX_PORT": str(self.port),
            "QORTEX_LOG_LEVEL": "warning",
            **(settings or {}),
        }
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.expected_kill: int | None = None  # the signal we sent, if any
        self.unexpected: list[str] = []  # exits nobody asked for

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def spawn(self) -> asyncio.subprocess.Process:
        """Start the process without waiting for it to answer."""
        self.expected_kill = None
        self.proc = await spawn(self.argv, self.env, self.dir, self.log)
        self.starts += 1
        return self.proc

    async def start(self, timeout: float = 30.0, health: bool = True) -> float:
        """Start and wait until it answers (``/health``, or an open port); the seconds it took."""
        began = time.perf_counter()
        proc = await self.spawn()
        deadline = began + timeout
        async with httpx.AsyncClient(trust_env=False, timeout=1.0) as client:
            while time.perf_counter() < deadline:
                if proc.returncode is not None:
                    self.check()
                if health:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(self.url + "/health")).status_code == 200:
                            return time.perf_counter() - began
                elif await port_open(self.port):
                    return time.perf_counter() - began
                await asyncio.sleep(0.02)
        raise RuntimeError(f"{self.name} did not come up in {timeout:.0f}s: {self.tail()}")

    async def kill9(self, sent: bool = False) -> None:
        """SIGKILL (unless the caller ``sent`` it already): no shutdown code runs."""
        assert self.proc is not None
        if self.proc.returncode is not None and not sent:
            self.unexpected.append(f"exited by itself with {self.proc.returncode}")
        self.expected_kill = signal.SIGKILL
        signal_group(self.proc, signal.SIGKILL)
        await reap(self.proc, 10)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not ended within 8 s."""
        if self.proc is not None:
            if self.expected_kill is None:
                self.expected_kill = signal.SIGTERM
            await end(self.proc, grace=8.0)

    def check(self) -> None:
        """Raise if the process is gone, with how it ended and the end of its log."""
        if self.proc is not None and self.proc.returncode is not None:
            code = self.proc.returncode
            how = f"status {code}"
            if code < 0:
                how = f"signal {signal.Signals(-code).name}"
                if self.expected_kill is None:
                    how += " (not sent by us: another process killed it)"
            raise RuntimeError(f"{self.name} server ended with {how}: {self.tail()}")

    def rss(self) -> int:
        """Resident memory in bytes (Linux ``/proc``)."""
        self.check()
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        self.check()
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    async def cpu_percent(self, seconds: float) -> float:
        c0, t0 = self.cpu_seconds(), time.perf_counter()
        await asyncio.sleep(seconds)
        self.check()
        return 100 * (self.cpu_seconds() - c0) / (time.perf_counter() - t0)

    def tail(self, chars: int = 1500) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    def client(self, timeout: float = 30.0) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"x-api-key": self.api_key},
            timeout=timeout,
            trust_env=False,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )

    def query(self, sql: str) -> Any:
        """One value from the live database, read-only (WAL: no lock on the writer)."""
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql).fetchone()[0]
        finally:
            conn.close()
