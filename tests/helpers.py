"""Shared test plumbing: real servers, real miners, real files; timeouts scaled by one env var."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.processes import free_port
from qortex.kinds.sentiment import SentimentKind
from qortex.signing import Signer

API_KEY = "test-key-0123456789"
SCALE = float(os.environ.get("QORTEX_TEST_TIMEOUT_SCALE", "1"))
WORK_TABLES = ("tasks", "microtasks", "results")


def timeout(seconds: float) -> float:
    return seconds * SCALE


def snapshot(db: str | Path, tables: tuple[str, ...] | None = None) -> dict[str, list[Any]]:
    """Every row of the given tables (all of them by default), for before/after comparisons."""
    conn = sqlite3.connect(db)
    try:
        names = tables or tuple(
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        )
        return {name: sorted(conn.execute(f"SELECT * FROM {name}").fetchall()) for name in names}
    finally:
        conn.close()


def labels(tweets: list[str]) -> list[str]:
    kind = SentimentKind()
    return [kind.compute(t) for t in tweets]


TWEETS = [
    "I love this so much",
    "This is awful and I hate it",
    "The sky is blue",
    "not bad at all",
    "what a great day",
]


class Server:
    """``qortex serve`` as a real subprocess on a free loopback port."""

    def __init__(self, tmp: Path, **settings: Any) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = str(tmp / "qortex.db")
        self.env = {
            **os.environ,
            "QORTEX_API_KEY": API_KEY,
            "QORTEX_DB": self.db,
            "QORTEX_PORT": str(self.port),
            "QORTEX_LOG_LEVEL": "warning",
            "XDG_CONFIG_HOME": str(tmp / "config"),
            **{f"QORTEX_{k.upper()}": str(v) for k, v in settings.items()},
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "serve.log"

    def start(self) -> Server:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "qortex", "serve"],
                cwd=self.tmp,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout(60)  # a cap: a busy machine starts slowly
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                healthy = httpx.get(self.url + "/health", timeout=1).status_code == 200
            except httpx.TransportError:
                healthy = False
            # The line qortex serve prints once listening, after saving a new API key.
            if healthy and f"listening on {self.url}" in self.log.read_text(errors="replace"):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"server did not become healthy: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout(10))
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"x-api-key": API_KEY}, timeout=timeout(10))


class MinerProcesses:
    """``qortex miner`` as a real subprocess."""

    def __init__(
        self,
        server: Server,
        count: int,
        key_dir: Path,
        concurrency: int = 1,
        log_name: str | None = None,
    ) -> None:
        self.log = key_dir.parent / (log_name or f"miner-{key_dir.name}.log")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "qortex",
                    "miner",
                    "--url",
                    server.url,
                    "--count",
                    str(count),
                    "--concurrency",
                    str(concurrency),
                    "--key-dir",
                    str(key_dir),
                ],
                env=server.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def tally(self) -> dict[str, int]:
        """The counts in the summary line the process wrote when it stopped."""
        import re

        line = next(
            line for line in self.log.read_text().splitlines() if re.match(r"\d+ miner\(s\):", line)
        )
        return {name: int(n) for n, name in re.findall(r"(\d+) (\w+)", line.split(":", 1)[1])}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_miners(server: Server, count: int, key_dir: Path) -> MinerProcesses:
    """``qortex miner --count N``, returned once all N are connected."""
    miners = MinerProcesses(server, count, key_dir)
    with server.client() as client:
        wait_until(
            lambda: client.get("/health").json()["minersConnected"] >= count,
            20,
            f"{count} miners connected",
        )
    return miners


def wait_until(predicate: Any, seconds: float, message: str) -> Any:
    deadline = time.monotonic() + timeout(seconds)
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out: {message}")


def new_signer() -> Signer:
    return Signer()


class StuckMiner:
    """A real protocol client that takes work and never answers: a hung or vanished miner."""

    def __init__(self, server: Server, slots: int, signer: Signer | None = None) -> None:
        from websockets.sync.client import connect

        from qortex.protocol.client import ClientSession, Reply, Welcomed

        self.signer = signer or Signer()
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(server.url.replace("http", "ws") + "/ws/miner"))
        self.session = ClientSession(self.signer, slots, ["sentiment"], "stuck")
        self.ws.send(self.session.hello_frame().decode())
        (reply,) = self.session.receive_all(self.ws.recv(timeout(10)))
        assert isinstance(reply, Reply)
        self.ws.send(reply.frame.decode())
        (welcome,) = self.session.receive_all(self.ws.recv(timeout(10)))
        assert isinstance(welcome, Welcomed)

    def take(self, count: int) -> list[Any]:
        from qortex.protocol.client import Work

        taken = []
        while len(taken) < count:
            for event in self.session.receive_all(self.ws.recv(timeout(10))):
                if isinstance(event, Work):
                    taken.append(event.assign)
        return taken

    def close(self) -> None:
        self._stack.close()


def follow_events(
    server: Server,
    last: int = 0,
    until: Any = None,
    seconds: float = 20,
    last_event_header: bool = False,
    **filters: str,
) -> list[dict[str, Any]]:
    """Read the SSE stream from ``last`` until ``until(event)`` is true.

    A live-only event (no ``id:`` line) comes with id 0.
    """
    import json

    params = dict(filters)
    headers = {}
    if last_event_header:
        headers["last-event-id"] = str(last)
    else:
        params["lastEventId"] = str(last)
    seen: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with (
        server.client() as client,
        client.stream(
            "GET", "/api/v1/events", params=params, headers=headers, timeout=timeout(seconds)
        ) as stream,
    ):
        for line in stream.iter_lines():
            if line.startswith("id: "):
                current["id"] = int(line[4:])
            elif line.startswith("event: "):
                current["type"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
                current.setdefault("id", 0)
                seen.append(current)
                current = {}
                if until is not None and until(seen[-1]):
                    break
    return seen
