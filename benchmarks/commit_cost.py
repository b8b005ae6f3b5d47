"""What one durable commit costs on this disk: the floor under a task's latency.

    python benchmarks/commit_cost.py [--commits 300] [--dir DIR] [--json]

A 1-microtask task is decided after two commits that follow each other (the
task's own, before ``201``; then the deciding result's, before the event),
so with ``sync = "full"`` its latency cannot be lower than two of these.
Each commit here is one small row in one transaction on a connection set up
as the store sets up its own (``qortex.store.schema.configure``: WAL, the
``synchronous`` level of the ``sync`` setting), in a file under ``--dir``
(default: a temporary directory; pass the directory the database lives in
to measure that disk). Printed: p50, p90 and p99 of the commit's wall time
in milliseconds, for ``full`` and ``normal``, and a bare ``fsync`` of a file
for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from qortex.store.schema import configure


def _percentiles(seconds: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles([1e3 * s for s in seconds], n=100, method="inclusive")
    return {"p50": round(cuts[49], 2), "p90": round(cuts[89], 2), "p99": round(cuts[98], 2)}


def commits(folder: Path, sync: str, count: int) -> dict[str, float]:
    path = folder / f"commit-{sync}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        configure(conn, sync)
        conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body BLOB)")
        times = []
        for _ in range(count):
            began = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (body) VALUES (?)", (os.urandom(200),))
            conn.execute("COMMIT")
            times.append(time.perf_counter() - began)
        return _percentiles(times)
    finally:
        conn.close()


def fsyncs(folder: Path, count: int) -> dict[str, float]:
    fd = os.open(folder / "fsync.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        times = []
        for _ in range(count):
            os.write(fd, os.urandom(4096))
            began = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - began)
        return _percentiles(times)
    finally:
        os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--dir", type=Path, default=None, help="where to put the test files")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        out = {
            "commit_full_ms": commits(folder, "full", args.commits),
            "commit_normal_ms": commits(folder, "normal", args.commits),
            "fsync_ms": fsyncs(folder, args.commits),
        }
    out["latency_floor_full_ms"] = round(2 * out["commit_full_ms"]["p50"], 2)
    if args.json:
        print(json.dumps(out))
        return
    for name, cuts in out.items():
        print(f"{name:24} {cuts}")


if __name__ == "__main__":
    main()
