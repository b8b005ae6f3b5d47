"""Celery's leg of ``benchmarks/peers.py``: a Redis broker and result backend, worker processes.

This module is also the Celery app the workers load (``celery -A peers_celery
worker``): the task is :func:`peers_work.work`. ``redis-server`` runs as our
own child on a free loopback port with persistence off (no RDB snapshots, no
append-only file), which spares Celery the durable writes Qortex makes. The
driver sends every copy with ``apply_async`` and verifies and votes on the
results as the backend delivers them (``ResultSet.join_native``, Redis
pub/sub); copies it must hand out again go in a further round. Each worker
process consumes its own queue, so the driver places every copy.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import peers_work
import redis
from celery import Celery
from celery.result import ResultSet
from peers_cpu import CpuMeter
from processes import end, free_port, spawn

URL_VARIABLE = "PEERS_REDIS_URL"
QUEUE = "peers-w{}"  # one per worker process

app = Celery("peers", broker=os.environ.get(URL_VARIABLE), backend=os.environ.get(URL_VARIABLE))
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=3600,
)
work = app.task(name="peers.work")(peers_work.work)


def redis_server() -> str:
    """The ``redis-server`` binary, installed from the distribution's packages when missing."""
    found = shutil.which("redis-server")
    if found:
        return found
    if not shutil.which("apt-get") or os.geteuid() != 0:
        raise RuntimeError(
            "redis-server is missing and cannot be installed here (that needs root and"
            " apt-get): install the distribution's redis-server package, or run --qortex-only"
        )
    print("installing redis-server from the distribution's packages", file=sys.stderr)
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=True, env=env)
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("apt-get installed redis-server but it is not on PATH")
    return found


async def run(
    tmp: Path, work_list: list[peers_work.Job], replicas: int, workers: int, identities: int
) -> dict:
    """Decided microtasks per second for ``work_list`` through Redis and Celery workers."""
    here = Path(__file__).resolve().parent
    folder = tmp / "celery"
    folder.mkdir()
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    argv = [redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(folder), "--daemonize", "no"]
    env = os.environ | {URL_VARIABLE: url, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [await spawn(argv, env, folder, folder / "redis.log")]
    try:
        await _wait_redis(url)
        for i in range(workers):
            worker = [sys.executable, "-m", "celery", "-A", "peers_celery", "worker"]
            worker += [
                "-P",
                "threads",
                "-c",
                str(identities),
                "-Q",
                QUEUE.format(i),
                "-n",
                f"w{i}@peers",
            ]
            worker += ["-l", "warning", "--without-gossip", "--without-mingle"]
            log_path = folder / f"worker{i}.log"
            procs.append(await spawn(worker, env, here, log_path))
        return await asyncio.to_thread(_drive, url, work_list, replicas, workers, identities)
    finally:
        await asyncio.gather(*(end(p) for p in procs))


async def _wait_redis(url: str) -> None:
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
        finally:
            client.close()


def _drive(
    url: str, work_list: list[peers_work.Job], replicas: int, workers: int, identities: int
) -> dict:
    """Runs in a thread: wait for the workers, then submit, verify and vote."""
    app.conf.update(broker_url=url, result_backend=url)
    deadline = time.monotonic() + 60
    while len(app.control.ping(timeout=0.5)) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {workers} Celery workers answered within 60s")
    meter = CpuMeter()
    meter.start()
    tally = peers_work.Tally(work_list, replicas, workers, identities)
    pending = [tally.assign(job.microtask_id) for job in work_list for _ in range(replicas)]
    while pending:
        pending = _round(tally, pending)
    return tally.figures(meter.stop())


def _round(tally: peers_work.Tally, copies: list[tuple[int, peers_work.Args]]) -> list:
    """Send ``copies``, judge each result as it arrives; returns the copies to send again."""
    sent, handles, again = {}, [], []
    for process, args in copies:
        handle = work.apply_async(args, queue=QUEUE.format(process))
        sent[handle.id] = args
        handles.append(handle)

    def judge(task_id: str, value: list[str]) -> None:
        args = sent[task_id]
        if tally.offer(args, (value[0], value[1], value[2])) == "again":
            again.append(tally.assign(args[0]))

    ResultSet(handles).join_native(timeout=600, callback=judge)
    return again
