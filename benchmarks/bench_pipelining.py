"""Memory held by pipelined requests, per HTTP server implementation: the measurement behind
the choice of ``qortex.web.guard``.

The coordinator app is served by uvicorn with one of three HTTP protocols,
each in its own process on a fresh file: uvicorn's ``httptools`` protocol as
it ships, its ``h11`` protocol, and ``guarded`` (Qortex's subclass of the
httptools protocol, what ``qortex serve`` runs). Then ``--connections``
connections each write ``--requests`` pipelined requests without reading
(``GET /health``, then signed-result POSTs with a bad signature), read one
chunk and close. Reported per implementation: peak RSS during the attack, RSS
two seconds after it, and how many requests were answered.

Usage::

    python benchmarks/bench_pipelining.py                      # 30 x 3000, as in docs/security.md
    python benchmarks/bench_pipelining.py --requests 500 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from abuse_attacks import Target, pipelined
from abuse_campaign import Sampler
from processes import HOST, base_env, free_port

SERVE = """
import sys, uvicorn
from qortex.settings import Settings
from qortex.web import guard
from qortex.web.app import create_app
kind, port, db = sys.argv[1], int(sys.argv[2]), sys.argv[3]
settings = Settings(db=db, api_key="bench-pipelining-key-0123", port=port)
http, ws = guard.protocols(settings) if kind == "guarded" else (kind, "auto")
uvicorn.run(create_app(settings), host="127.0.0.1", port=port, http=http, ws=ws,
            log_level="critical")
"""


def measure(kind: str, connections: int, requests: int) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="qortex-pipelining-"))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, kind, str(port), str(tmp / "q.db")],
        env=base_env(tmp),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://{HOST}:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} did not start") from None
                time.sleep(0.1)
        sampler = Sampler(proc.pid)
        before = sampler.rss()
        sampler.start()
        target = Target(f"http://{HOST}:{port}", HOST, port, "")
        health = f"GET /health HTTP/1.1\r\nhost: {HOST}\r\n\r\n".encode()
        started = time.monotonic()
        answers = asyncio.run(_attack(target, health, connections, requests))
        seconds = time.monotonic() - started
        time.sleep(2.0)
        after = sampler.rss()
        sampler.done.set()
        return {
            "implementation": kind,
            "rssBeforeMiB": round(before / 2**20, 1),
            "peakRssMiB": round(sampler.peak_rss / 2**20, 1),
            "rssAfterMiB": round(after / 2**20, 1),
            "bytesAnswered": answers,
            "seconds": round(seconds, 1),
        }
    finally:
        proc.terminate()
        proc.wait(20)


async def _attack(target: Target, request: bytes, connections: int, requests: int) -> int:
    read = await asyncio.gather(
        *(pipelined(target, n, request, requests) for n in range(connections))
    )
    return sum(got for got, _ in read)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=30)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [measure(k, args.connections, args.requests) for k in ("httptools", "h11", "guarded")]
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{args.connections} connections x {args.requests} pipelined GET /health, then a close")
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
