"""How long a start takes with a large backlog: recovery of N pending microtasks.

    python benchmarks/recovery.py [--pending 1000000] [--results 0] [--json]

Builds an SQLite file as ``kill -9`` would leave it under a backlog: running
sentiment tasks of 500 microtasks each, ``--pending`` microtasks in all, none
decided, and ``--results`` accepted results spread over the first microtasks
(so recovery replays votes too). Then it times two things on that file:

* ``in_process``: opening the store and ``Coordinator.start()`` in a fresh
  interpreter, with the load (SQLite to rows) and the rebuild (rows to the
  dispatch table) reported apart, how long after the start the inputs of
  the microtasks never begun are all read (a start answers before that, and
  placement takes each task as its inputs land), and the resident memory
  once they are;
* ``serve``: a real ``qortex serve`` process, from spawn until ``/health``
  answers on its port (what an operator waits for after a crash), and the same
  for an empty file, so the recovery's share is the difference.

Each is given as wall seconds and as CPU seconds (the process's user and
system time, all threads): on a machine others share, the CPU figure is the
one that holds up; on an idle one the two are close.

The file is built with plain SQL after the real migrations, so building it
takes seconds, not the minutes a million submits would.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from qortex.coordinator import Coordinator
from qortex.events import EventBus
from qortex.plugins import load_kinds
from qortex.settings import Settings
from qortex.store.database import Store, prepare

PER_TASK = 500
API_KEY = "recovery-benchmark-key-0000000000"
WORDS = ["love", "hate", "sky", "great", "awful", "table", "happy", "sad", "blue", "fine"]


def build(path: str, pending: int, results: int) -> None:
    """A file holding ``pending`` pending microtasks and ``results`` counted results."""
    prepare(path, "normal")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    tasks, microtasks = [], []
    for start in range(0, pending, PER_TASK):
        task_id = str(uuid.UUID(int=start + 1))
        count = min(PER_TASK, pending - start)
        tasks.append((task_id, float(start)))
        for i in range(count):
            n = start + i
            text = f'"I {WORDS[n % 10]} this {WORDS[(n // 10) % 10]} number {n}"'
            microtasks.append((f"{task_id}:{i}", task_id, i, text))
    conn.executemany(
        "INSERT INTO tasks (id, kind, status, input, replicas, quorum, max_replicas,"
        " lease_seconds, microtasks, created_at, target_error)"
        f" VALUES (?, 'sentiment', 'running', '[]', 3, 2, 5, 60, {PER_TASK}, ?, 0.001)",
        tasks,
    )
    conn.executemany(
        "INSERT INTO microtasks (id, task_id, idx, input, status) VALUES (?, ?, ?, ?, 'pending')",
        microtasks,
    )
    conn.executemany(
        "INSERT INTO results (assignment_id, microtask_id, miner_id, output, signature,"
        " received_at, network, error, version) VALUES (?, ?, ?, '\"positive\"', '', ?, ?, 0.5, 2)",
        [
            (f"{n:024x}", microtasks[n % len(microtasks)][0], f"{n % 97:032x}", n, f"n{n % 97}")
            for n in range(results)
        ],
    )
    conn.execute("COMMIT")
    conn.close()


async def in_process(path: str) -> dict[str, float]:
    settings = Settings(db=path, api_key=API_KEY)
    cpu = time.process_time()
    began = time.perf_counter()
    store = await Store.open(path, settings.sync, settings.commit_batch)
    opened = time.perf_counter()
    work = await store.load_open_work()
    loaded = time.perf_counter()
    del work
    coord = Coordinator(settings, store, load_kinds(settings), EventBus())
    started_at = time.perf_counter()
    await coord.start()
    started = time.perf_counter()
    cpu = time.process_time() - cpu
    tasks = list(coord.table.tasks.values())
    while tasks and tasks[0].inputs is None:  # the first in the queue: placeable from here
        await asyncio.sleep(0.001)
    first = time.perf_counter()
    while any(task.inputs is None for task in tasks):
        await asyncio.sleep(0.005)
    read = time.perf_counter()
    gc.collect()
    rss = _rss_mib()
    open_count = coord.table.open
    await coord.stop()
    await store.close()
    return {
        "open_store_s": round(opened - began, 3),
        "load_rows_s": round(loaded - opened, 3),
        "start_s": round(started - started_at, 3),
        "cpu_s": round(cpu, 3),
        "first_inputs_after_start_s": round(first - started, 3),
        "inputs_read_after_start_s": round(read - started, 3),
        "rss_mib": rss,
        "microtasks_open": open_count,
    }


def in_child(path: str) -> dict[str, float]:
    """:func:`in_process` in a fresh interpreter, so that its memory is its own."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_run_in_process, path).result()


def _run_in_process(path: str) -> dict[str, float]:
    return asyncio.run(in_process(path))


def _rss_mib() -> int:
    """This process's resident memory now, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    """User and system time of a running process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve_until_healthy(path: str) -> tuple[float, float]:
    """Wall and CPU seconds from spawning ``qortex serve`` on ``path`` until ``/health``
    answers."""
    port = _free_port()
    env = {
        **os.environ,
        "QORTEX_DB": path,
        "QORTEX_PORT": str(port),
        "QORTEX_API_KEY": API_KEY,
        "QORTEX_LOG_LEVEL": "warning",
    }
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "qortex", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(timeout=1.0) as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError("qortex serve exited during start-up")
                try:
                    if client.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                        return time.perf_counter() - began, _cpu_seconds(proc.pid)
                except httpx.TransportError:
                    pass
                time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--results", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="qortex-recovery-"))
    path, empty = str(tmp / "backlog.db"), str(tmp / "empty.db")
    try:
        began = time.perf_counter()
        build(path, args.pending, args.results)
        figures: dict[str, Any] = {
            "pending": args.pending,
            "results": args.results,
            "build_s": round(time.perf_counter() - began, 1),
            "in_process": in_child(path),
        }
        prepare(empty, "full")
        for name, file in (("empty", empty), ("backlog", path)):
            wall, cpu = serve_until_healthy(file)
            figures[f"serve_{name}_s"] = round(wall, 2)
            figures[f"serve_{name}_cpu_s"] = round(cpu, 2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>16}: {value}")


if __name__ == "__main__":
    main()
