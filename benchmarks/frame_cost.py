"""CPU the coordinator spends per miner frame on its socket path, store and decisions aside.

    python benchmarks/frame_cost.py [--connections 64] [--seconds 10] [--json]

Starts a real ``qortex serve`` (fresh database, loopback, rate limit raised
out of the way) and opens ``--connections`` real WebSocket miners from this
process, each with its own key. After the handshake every miner sends a
``heartbeat`` and waits for the coordinator's reply before the next: one
message in, one message out, so nothing is batched. A heartbeat is the
cheapest frame there is (decode, note the time, encode a reply), so the
coordinator's CPU per round trip is what one frame in and one frame out cost
on the path between the socket and the miner session: the WebSocket protocol,
any interface between it and the endpoint, and the endpoint itself.

The figure is the server process's CPU time (user + system, from
``/proc/<pid>/stat``) over a window, divided by the round trips completed in
that window. Process CPU time holds up on a busy machine far better than a
rate does; the clients run in this process, not the server's. To compare two
versions, run it once per checkout with ``PYTHONPATH`` set to that checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import ClientConnection, connect

from qortex.protocol import messages as m
from qortex.protocol.client import ClientSession, Reply, Welcomed
from qortex.signing import Signer

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QORTEX_")}
    env |= {
        "QORTEX_DB": str(tmp / "qortex.db"),
        "QORTEX_PORT": str(port),
        "QORTEX_LOG_LEVEL": "warning",
        "QORTEX_MINER_RATE": "1000000",
        "QORTEX_MINER_BURST": "1000000",
        "XDG_CONFIG_HOME": str(tmp / "config"),
    }
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(
        [sys.executable, "-m", "qortex", "serve"], cwd=tmp, env=env, stdout=log, stderr=log
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    sys.exit(f"qortex serve did not start: {(tmp / 'server.log').read_text()[-2000:]}")


async def miner(url: str, counts: list[int], stop: asyncio.Event) -> None:
    session = ClientSession(Signer(), 1, ["sentiment"], "frame-cost")
    ws: ClientConnection
    async with connect(url, compression=None, max_queue=None) as ws:
        await ws.send(session.hello_frame().decode())
        (reply,) = session.receive_all(await ws.recv())
        assert isinstance(reply, Reply)
        await ws.send(reply.frame.decode())
        (welcome,) = session.receive_all(await ws.recv())
        assert isinstance(welcome, Welcomed)
        beat = m.encoder.encode(m.Heartbeat(1)).decode()
        counts.append(0)
        mine = len(counts) - 1
        while not stop.is_set():
            await ws.send(beat)
            await ws.recv()
            counts[mine] += 1


async def measure(port: int, pid: int, connections: int, seconds: float) -> dict[str, float]:
    url = f"ws://127.0.0.1:{port}/ws/miner"
    counts: list[int] = []
    stop = asyncio.Event()
    tasks = [asyncio.create_task(miner(url, counts, stop)) for _ in range(connections)]
    while len(counts) < connections:
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # warm up
    trips, (user, system), began = sum(counts), cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    user_after, system_after = cpu_seconds(pid)
    trips, user, system = sum(counts) - trips, user_after - user, system_after - system
    elapsed = time.monotonic() - began
    cpu = user + system
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "connections": connections,
        "round_trips": trips,
        "round_trips_per_s": round(trips / elapsed, 1),
        "server_cpu_percent": round(100 * cpu / elapsed, 1),
        "server_us_per_round_trip": round(1e6 * cpu / max(trips, 1), 1),
        "of_which_user_us": round(1e6 * user / max(trips, 1), 1),
        "of_which_system_us": round(1e6 * system / max(trips, 1), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qortex-frames-") as tmp:
        port = free_port()
        proc = start_server(Path(tmp), port)
        try:
            result = asyncio.run(measure(port, proc.pid, args.connections, args.seconds))
        finally:
            proc.terminate()
            proc.wait(30)
    result["load_average"] = round(os.getloadavg()[0], 1)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>26}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
