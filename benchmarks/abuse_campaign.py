"""Abuse campaign: attack a real ``qortex serve`` as a stranger without a key would.

One scenario per way in (benchmarks/abuse_attacks.py holds the attacks). Each
starts its own coordinator with the shipped defaults on a fresh file and five
honest CLI miners (``qortex miner --count 5``), times an honest 5-tweet task
from submit to completion, then attacks and times the same task again during
the attack, and reports:

* the attacker's traffic (requests, frames or connections, and the answers);
* the coordinator's peak RSS and open descriptors during the attack (and RSS
  once it is over);
* the database's growth, net of the honest task's own, per attacking request
  (sizes of ``VACUUM INTO`` copies, so free pages and the WAL do not count);
* whether the process is still up, and error lines in its log.

The short mode (the suite's) runs smaller attacks, all but the full disk on
one shared coordinator started with quicker head and handshake timeouts; each
scenario's strangers have addresses of their own, so quotas do not meet.

The full-disk scenario mounts a small tmpfs under the database (root only;
otherwise it is reported as skipped), fills it, and checks that writes are
refused with 503 and ``Retry-After`` while reads and the event stream work,
that nothing acknowledged is lost, and how long service takes to resume once
space returns.

Usage::

    python benchmarks/abuse_campaign.py              # every scenario, the sizes of docs/security.md
    python benchmarks/abuse_campaign.py --short      # small sizes: the suite's mode
    python benchmarks/abuse_campaign.py --only hoarders --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import abuse_attacks as attacks
import httpx
from abuse_attacks import SCENARIOS, Target, Traffic
from processes import HOST, base_env, free_port
from rich.console import Console
from rich.table import Table

API_KEY = "abuse-campaign-key-0123456789"
TWEETS = ["I love this", "This is awful", "The sky is blue", "not bad at all", "great day"]
err = Console(stderr=True)


class Coordinator:
    """``qortex serve`` with the shipped defaults, on loopback, in a directory of its own."""

    def __init__(self, tmp: Path, db: Path, log_level: str = "warning", **settings: object) -> None:
        self.tmp, self.db, self.port = tmp, db, free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log = tmp / "serve.log"
        self.env = base_env(tmp) | {
            "QORTEX_API_KEY": API_KEY,
            "QORTEX_DB": str(db),
            "QORTEX_PORT": str(self.port),
            "QORTEX_LOG_LEVEL": log_level,
            **{f"QORTEX_{name.upper()}": str(value) for name, value in settings.items()},
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.miners: subprocess.Popen[bytes] | None = None

    def start(self, miners: int = 5) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "qortex", "serve"], cwd=self.tmp, env=self.env, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.wait(lambda h: h.status_code == 200, 60, "healthy")
        with open(self.tmp / "miners.log", "ab") as out:
            argv = [sys.executable, "-m", "qortex", "miner", "--url", self.url]
            argv += ["--count", str(miners), "--key-dir", str(self.tmp / "keys")]
            self.miners = subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.wait(lambda h: h.json()["minersConnected"] >= miners, 60, "miners connected")

    def wait(self, ok: Any, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"coordinator exited: {self.log.read_text()[-1500:]}")
            try:
                if ok(httpx.get(self.url + "/health", timeout=5)):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"timed out waiting until {what}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        for proc in (self.miners, self.proc):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def target(self) -> Target:
        return Target(self.url, HOST, self.port, API_KEY)

    def log_errors(self) -> int:
        text = self.log.read_text(errors="replace")
        return text.count("Traceback") + text.count(" ERROR ")


class Sampler(threading.Thread):
    """Peak RSS and open descriptors of one process, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_rss, self.peak_fds = pid, 0, 0
        self.done = threading.Event()

    def rss(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.peak_rss = max(self.peak_rss, self.rss())
                self.peak_fds = max(self.peak_fds, len(os.listdir(f"/proc/{self.pid}/fd")))
            except OSError:
                return
            time.sleep(0.05)


def honest_task(url: str, seconds: float = 60.0) -> tuple[float | None, str]:
    """Seconds from submitting 5 tweets to ``completed``, or ``None``; and the task id."""
    with httpx.Client(base_url=url, headers={"x-api-key": API_KEY}, timeout=30) as client:
        started = time.monotonic()
        answer = client.post("/api/v1/tasks", json={"tweets": TWEETS})
        if answer.status_code != 201:
            return None, ""
        task_id = answer.json()["taskId"]
        while time.monotonic() - started < seconds:
            if client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "completed":
                return time.monotonic() - started, task_id
            time.sleep(0.01)
    return None, task_id


HONEST_ROWS = (
    "DELETE FROM results WHERE microtask_id IN (SELECT id FROM microtasks WHERE task_id = ?1)",
    "DELETE FROM microtasks WHERE task_id = ?1",
    "DELETE FROM events WHERE task_id = ?1",
    "DELETE FROM tasks WHERE id = ?1",
)


def compact_size(db: Path, tmp: Path, honest: list[str]) -> int:
    """Bytes the file's content takes without the honest tasks' rows.

    A ``VACUUM INTO`` copy (no free pages, no WAL) with the honest tasks removed
    and vacuumed again, so what is left to grow is what the attacker stored.
    """
    copy = tmp / "compact.db"
    copy.unlink(missing_ok=True)
    with sqlite3.connect(db) as conn:
        conn.execute("VACUUM INTO ?", (str(copy),))
    with sqlite3.connect(copy, isolation_level=None) as conn:
        for task_id in honest:
            for sql in HONEST_ROWS:
                conn.execute(sql, (task_id,))
        conn.execute("VACUUM")
    size = copy.stat().st_size
    copy.unlink()
    return size


#: The short mode's quicker timeouts, so its slow connections need not be held long.
SHORT = {"head_seconds": 2.0, "handshake_seconds": 2.0}


def attack_of(name: str, target: Target, short: bool, task_id: str) -> Any:
    if name == "disk":
        return attacks.fill_disk(target, 20 if short else 200)
    if name == "pipelining":
        return attacks.pipelining(target, 5 if short else 30, 2 if short else 5)
    if name == "slow_readers":
        return attacks.slow_readers(target, 1, 3 if short else 20)
    if name == "hoarders":
        return attacks.hoarders(target, 20 if short else 50, 4 if short else 40)
    if name == "slow_connections":
        return attacks.slow_connections(target, 200 if short else 1000, 4 if short else 20)
    if name == "api_key":
        return attacks.key_guessing(target, 100 if short else 3000)
    if name == "smaller":
        return attacks.smaller(target, 20 if short else 200, task_id, 1 if short else 5)
    raise ValueError(name)


def scenario(name: str, short: bool, server: Coordinator, first: int) -> dict[str, Any]:
    """One attack on a running coordinator, from strangers numbered from ``first``."""
    tmp = server.tmp
    logged = len(server.log.read_text(errors="replace"))
    baseline, task_id = honest_task(server.url)
    size1 = compact_size(server.db, tmp, [task_id])
    assert server.proc is not None
    sampler = Sampler(server.proc.pid)
    sampler.start()
    outcome: dict[str, Traffic] = {}
    target = server.target()
    target.first = first

    def attack() -> None:
        outcome["traffic"] = asyncio.run(attack_of(name, target, short, task_id))

    attacker = threading.Thread(target=attack)
    attacker.start()
    time.sleep(0.5 if short else 1.0)  # let the attack get going
    during, during_id = honest_task(server.url) if attacker.is_alive() else (None, "")
    attacker.join()
    time.sleep(0.5 if short else 2.0)  # what memory is still held once it is over
    sampler.done.set()
    rss_after = sampler.rss() if server.alive() else 0
    traffic = outcome.get("traffic", Traffic())
    growth = compact_size(server.db, tmp, [task_id, during_id]) - size1
    log = server.log.read_text(errors="replace")[logged:]
    report = {
        "scenario": SCENARIOS[name],
        "sent": traffic.sent,
        "answers": dict(traffic.answers),
        "notes": traffic.notes,
        "peakRssMiB": round(sampler.peak_rss / 2**20, 1),
        "rssAfterMiB": round(rss_after / 2**20, 1),
        "peakFds": sampler.peak_fds,
        "dbGrowthBytes": growth,
        "bytesPerRequest": round(max(growth, 0) / max(traffic.sent, 1), 1),
        "honestSeconds": _round(baseline),
        "honestDuringSeconds": _round(during),
        "alive": server.alive(),
        "logErrors": log.count("Traceback") + log.count(" ERROR "),
    }
    if name == "api_key":
        report["notes"]["keyInLog"] = API_KEY in log
        report["notes"]["shortKeyRefused"] = short_key_refused(tmp)
    return report


def run(names: list[str], short: bool) -> dict[str, Any]:
    """Every scenario on a coordinator of its own; in the short mode, all on one."""
    from abuse_full_disk import full_disk

    reports: dict[str, Any] = {}
    shared: Coordinator | None = None
    try:
        for index, name in enumerate(names):
            err.print(f"[bold]{SCENARIOS[name]}[/]")
            started = time.monotonic()
            if name == "full_disk":
                reports[name] = full_disk(Coordinator, honest_task, short)
            else:
                server = shared
                if server is None:
                    tmp = Path(tempfile.mkdtemp(prefix=f"qortex-abuse-{name}-"))
                    server = Coordinator(tmp, tmp / "qortex.db", "info", **SHORT if short else {})
                    server.start()
                    shared = server if short else None
                try:
                    reports[name] = scenario(name, short, server, 100 * index)
                finally:
                    if server is not shared:
                        _remove(server)
            reports[name]["wallSeconds"] = round(time.monotonic() - started, 1)
            err.print(json.dumps(reports[name]))
    finally:
        if shared is not None:
            _remove(shared)
    return reports


def _remove(server: Coordinator) -> None:
    server.stop()
    shutil.rmtree(server.tmp, ignore_errors=True)


def short_key_refused(tmp: Path) -> str:
    env = base_env(tmp) | {"QORTEX_API_KEY": "k", "QORTEX_DB": str(tmp / "k.db")}
    done = subprocess.run(
        [sys.executable, "-m", "qortex", "serve"], env=env, cwd=tmp, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    said = " ".join(done.stderr.split())
    return f"exit {done.returncode}: {said[:100]}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="small sizes, for the suite")
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    reports = run(args.only or list(SCENARIOS), args.short)
    if args.json:
        print(json.dumps({"short": args.short, "scenarios": reports}))
        return
    table = Table("scenario", "sent", "peak RSS MiB", "peak fds", "DB B/request", "honest s",
                  "during s", "alive")  # fmt: skip
    for report in reports.values():
        table.add_row(
            report["scenario"], str(report.get("sent", "")), str(report.get("peakRssMiB", "")),
            str(report.get("peakFds", "")), str(report.get("bytesPerRequest", "")),
            str(report.get("honestSeconds")), str(report.get("honestDuringSeconds")),
            str(report.get("alive")),
        )  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
