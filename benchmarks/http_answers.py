"""What the main JSON answers cost a real coordinator: server CPU per request, and requests/s.

    python benchmarks/http_answers.py [--tasks 20] [--tweets 5] [--requests 2000] [--json]

Starts ``qortex serve`` and three ``qortex miner`` processes on loopback,
submits ``--tasks`` sentiment tasks of ``--tweets`` tweets each and waits for
them to complete, so that every answer below carries real decisions and
votes. Then, per route, sends ``--requests`` requests from 8 concurrent
connections and prints the coordinator's own CPU per request (user + system
time of its process, from /proc, so the client's share of the machine does not
count) and the requests per second seen by the client. The submit row posts
one-tweet tasks (each answered only once durable).

The coordinator runs the ``qortex`` that ``python -m qortex`` finds, so the
same script measures two trees when run with ``PYTHONPATH`` set to each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers import API_KEY, TWEETS, Server, start_miners

CONNECTIONS = 8
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def hammer(url: str, method: str, path: str, body: Any, requests: int) -> float:
    """Send ``requests`` requests over ``CONNECTIONS`` connections; the seconds it took."""
    headers = {"x-api-key": API_KEY}
    limits = httpx.Limits(max_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as c:
        left = requests

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                response = await c.request(method, path, json=body)
                assert response.status_code in (200, 201), (path, response.status_code)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        return time.perf_counter() - started


def measure(server: Server, name: str, method: str, path: str, body: Any, n: int) -> dict[str, Any]:
    assert server.proc is not None
    before = cpu_seconds(server.proc.pid)
    seconds = asyncio.run(hammer(server.url, method, path, body, n))
    used = cpu_seconds(server.proc.pid) - before
    return {
        "route": name,
        "serverCpuMicrosPerRequest": round(used / n * 1e6, 1),
        "requestsPerSecond": round(n / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--tweets", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # The key's rate limit would turn the measurement into 429s.
        server = Server(tmp, log_level="warning", api_rate=10**6, api_burst=10**9).start()
        miners = start_miners(server, 3, tmp / "keys")
        try:
            with server.client() as client:
                tweets = (TWEETS * args.tweets)[: args.tweets]
                answers = [
                    client.post("/api/v1/tasks", json={"tweets": tweets}) for _ in range(args.tasks)
                ]
                ids = [answer.json()["taskId"] for answer in answers]
                deadline = time.monotonic() + 300
                while client.get("/api/v1/stats").json()["tasks"]["completed"] < args.tasks:
                    assert time.monotonic() < deadline, "the tasks did not complete"
                    time.sleep(0.2)
                miner_id = client.get("/api/v1/miners").json()["miners"][0]["minerId"]
            n = args.requests
            routes = [
                ("GET task ?outputs=true", "GET", f"/api/v1/tasks/{ids[0]}?outputs=true", None, n),
                ("GET tasks (a page of 50)", "GET", "/api/v1/tasks?limit=50", None, n),
                ("GET miner", "GET", f"/api/v1/miners/{miner_id}", None, n),
                ("GET miners", "GET", "/api/v1/miners", None, n),
                ("GET stats", "GET", "/api/v1/stats", None, n),
                ("GET health", "GET", "/health", None, n),
                ("GET events/log", "GET", "/api/v1/events/log?limit=100", None, n),
                ("POST tasks (submit)", "POST", "/api/v1/tasks", {"tweets": ["hi"]}, n // 4),
            ]
            rows = [measure(server, *route) for route in routes]
        finally:
            miners.stop()
            server.stop()
    if args.json:
        print(json.dumps({"connections": CONNECTIONS, **vars(args), "rows": rows}))
        return
    print(f"{'route':<28} {'server CPU µs/req':>18} {'req/s':>8}")
    for row in rows:
        cpu, rate = row["serverCpuMicrosPerRequest"], row["requestsPerSecond"]
        print(f"{row['route']:<28} {cpu:>18} {rate:>8}")


if __name__ == "__main__":
    main()
