"""What one HTTP request costs on this machine, with and without Qortex's web stack.

    python benchmarks/http_floor.py [--requests 300] [--json]

Starts two servers on loopback ports under the same uvicorn set-up as
``qortex serve`` (uvloop, httptools): a bare Starlette app with one route
that answers a constant, and ``qortex serve`` itself. Then, one request at a
time from one keep-alive ``httpx`` client with a short pause between them (as
a script submitting tasks one by one would), it times the bare route,
Qortex's answer to an unknown path (``404``: every middleware, no handler),
``GET /health`` (one read of the file) and ``POST /api/v1/tasks`` of a
1-tweet task with no miners connected (validation, split, one ``sync =
"full"`` commit). Printed: the median and p90 of each, in milliseconds. The
bare route is the floor under any figure that starts with an HTTP request,
the latency of a task included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import processes

API_KEY = "qx_httpfloorbenchmarkkey0000000000"
BARE_APP = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def answer(request):
    return JSONResponse({"ok": True})


app = Starlette(routes=[Route("/bare", answer)])
"""


async def timed(server: processes.Server, method: str, path: str, count: int) -> dict[str, float]:
    times = []
    async with server.client() as client:
        for n in range(count):
            body = {"tweets": [f"a good day, number {n}"], "replicas": 3}
            began = time.perf_counter()
            if method == "POST":
                answer = await client.post(path, json=body)
            else:
                answer = await client.get(path)
            times.append((time.perf_counter() - began) * 1000)
            if answer.status_code >= 500:
                raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text}")
            await asyncio.sleep(0.005)
    times.sort()
    return {"p50": round(times[len(times) // 2], 2), "p90": round(times[len(times) * 9 // 10], 2)}


async def measure(count: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "bare_app.py").write_text(BARE_APP)
        uvicorn = [sys.executable, "-m", "uvicorn", "--app-dir", str(folder), "bare_app:app"]
        uvicorn += ["--loop", "uvloop", "--http", "httptools", "--log-level", "warning"]
        port = processes.free_port()
        uvicorn += ["--host", processes.HOST, "--port", str(port)]
        bare = processes.Server(folder, "bare", API_KEY, argv=uvicorn, port=port)
        qortex = processes.Server(folder, "qortex", API_KEY, {"QORTEX_API_RATE": "100000"})
        try:
            await bare.start(health=False)
            await qortex.start()
            return {
                "bare_route_ms": await timed(bare, "GET", "/bare", count),
                "qortex_404_ms": await timed(qortex, "GET", "/no-such-path", count),
                "qortex_health_ms": await timed(qortex, "GET", "/health", count),
                "qortex_submit_ms": await timed(qortex, "POST", "/api/v1/tasks", count),
            }
        finally:
            await bare.stop()
            await qortex.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out = asyncio.run(measure(args.requests))
    if args.json:
        print(json.dumps(out))
        return
    for name, cuts in out.items():
        print(f"{name:18} p50 {cuts['p50']:6.2f} ms   p90 {cuts['p90']:6.2f} ms")


if __name__ == "__main__":
    main()
