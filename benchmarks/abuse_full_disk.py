"""The abuse campaign's full-disk scenario: a real small filesystem under the database.

A tmpfs is mounted for the file (this needs root), five honest miners work,
and a client keeps submitting tasks while the disk is filled to the last
byte. While it is full: writes must be answered 503 with ``Retry-After``,
reads and the event stream must work, and the process must stay up. Then the
space is given back, and the scenario measures how long until the
coordinator accepts writes again (by itself, no restart), and checks that
every task that was ever answered 201 is in the file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

SCENARIO = "2. a full disk"


def fill(disk: Path) -> Path:
    """Write a file until the disk has no room left; removing it gives the space back."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    return filler
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)


class Submitter(threading.Thread):
    """Submits a small task every 50 ms and remembers every id answered 201."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(daemon=True)
        self.url, self.key = url, key
        self.accepted: list[str] = []
        self.answers: Counter[int] = Counter()
        self.retry_after: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers={"x-api-key": self.key}, timeout=60) as c:
            while not self.stop.is_set():
                try:
                    answer = c.post("/api/v1/tasks", json={"tweets": ["steady traffic"]})
                except httpx.TransportError:
                    self.answers[0] += 1
                    continue
                self.answers[answer.status_code] += 1
                if answer.status_code == 201:
                    self.accepted.append(answer.json()["taskId"])
                elif answer.status_code == 503:
                    self.retry_after.add(answer.headers.get("retry-after", ""))
                time.sleep(0.05)


def full_disk(coordinator: Any, honest_task: Any, short: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="qortex-abuse-full-disk-"))
    disk = tmp / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        return {"scenario": SCENARIO, "skipped": f"cannot mount: {mounted.stderr.strip()}"}
    server = coordinator(tmp, disk / "qortex.db")
    try:
        server.start()
        baseline, _ = honest_task(server.url)
        submitter = Submitter(server.url, server.target().api_key)
        submitter.start()
        time.sleep(0.5)
        filler = fill(disk)
        filled = time.monotonic()
        server.wait(lambda h: h.status_code == 503, 30, "writes refused")
        detected = time.monotonic() - filled
        health = httpx.get(server.url + "/health").json()
        reads = Counter()
        key = server.target().api_key
        with httpx.Client(base_url=server.url, headers={"x-api-key": key}) as c:
            hold = time.monotonic() + (3 if short else 10)
            while time.monotonic() < hold:
                reads[f"read {c.get('/api/v1/tasks').status_code}"] += 1
                stranger = c.post("/api/v1/miners/register", json={"publicKey": "ab" * 32})
                reads[f"register {stranger.status_code}"] += 1
                write = c.post("/api/v1/tasks", json={"tweets": ["while full"]}, timeout=5)
                reads[f"submit {write.status_code}"] += 1
                if write.status_code == 503:
                    submitter.retry_after.add(write.headers.get("retry-after", ""))
                time.sleep(0.1)
            with c.stream("GET", "/api/v1/events", params={"lastEventId": "0"}) as stream:
                first = next((line for line in stream.iter_lines() if line.startswith("id:")), "")
        alive_full = server.alive()
        filler.unlink()
        freed = time.monotonic()
        server.wait(lambda h: h.status_code == 200, 60, "writes resumed")
        resumed = time.monotonic() - freed
        after, _ = honest_task(server.url)
        submitter.stop.set()
        submitter.join(90)
        server.stop()
        with sqlite3.connect(server.db) as conn:
            stored = {row[0] for row in conn.execute("SELECT id FROM tasks")}
        lost = [task for task in submitter.accepted if task not in stored]
        return {
            "scenario": SCENARIO,
            "sent": sum(submitter.answers.values()) + sum(reads.values()),
            "answers": {str(k): v for k, v in (submitter.answers + reads).items()},
            "notes": {
                "healthWhileFull": f"{health['status']}: {health['writes']}",
                "retryAfter": sorted(submitter.retry_after),
                "secondsToDetect": round(detected, 2),
                "eventStreamWhileFull": bool(first),
                "aliveWhileFull": alive_full,
                "secondsToResume": round(resumed, 2),
                "acknowledgedTasks": len(submitter.accepted),
                "acknowledgedLost": len(lost),
            },
            "honestSeconds": None if baseline is None else round(baseline, 3),
            "honestAfterSeconds": None if after is None else round(after, 3),
            "alive": alive_full,
            "logErrors": server.log.read_text(errors="replace").count("Traceback"),
        }
    finally:
        server.stop()
        subprocess.run(["umount", "-l", str(disk)], check=False)
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp, ignore_errors=True)
