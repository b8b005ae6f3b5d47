"""What the operator's console costs the coordinator, and how fast it first renders.

Fills a database with ``--tasks`` finished tasks, starts ``qortex serve`` on it,
connects ``--miners`` idle miners (``bench_load.py --mode idle``: handshake,
then heartbeats), and measures the coordinator's CPU (its own process, from
/proc) over ``--window`` seconds twice: without the console, then with
``/dashboard`` open and signed in in headless Chromium. Then it times the
page's first render (navigation to every panel filled) ``--renders`` times.
Prints the figures and a JSON line; docs/console.md records a run.

    .test-env/bin/python benchmarks/bench_console.py --miners 10000 --tasks 100000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from processes import HOST, base_env, free_port

from qortex.store.schema import migrate

HERE = Path(__file__).resolve().parent
KEY = "bench-console-key-0123456789"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def fill(db: Path, tasks: int) -> None:
    """``tasks`` finished one-microtask tasks, written straight into a fresh file."""
    conn = sqlite3.connect(db, isolation_level=None)
    migrate(conn)
    now = time.time() - tasks
    rows = [(str(uuid.uuid4()), now + i) for i in range(tasks)]
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO tasks (id, kind, status, input, replicas, quorum, max_replicas,"
        " lease_seconds, microtasks, output, created_at, finished_at)"
        " VALUES (?, 'sentiment', 'completed', '{\"tweets\":[\"x\"]}', 1, 1, 1, 30, 1,"
        " '[]', ?, ?)",
        [(task_id, at, at) for task_id, at in rows],
    )
    conn.executemany(
        "INSERT INTO microtasks (id, task_id, idx, input, status, decision, decided_at)"
        " VALUES (?, ?, 0, '\"x\"', 'decided', '\"neutral\"', ?)",
        [(f"{task_id}:0", task_id, at) for task_id, at in rows],
    )
    conn.execute("COMMIT")
    conn.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_percent(pid: int, window: float) -> float:
    """The process's CPU over ``window`` seconds, in percent of one core."""
    start, began = cpu_seconds(pid), time.monotonic()
    time.sleep(window)
    return 100 * (cpu_seconds(pid) - start) / (time.monotonic() - began)


def wait_for(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


def connected(client: httpx.Client) -> int:
    count: int = client.get("/health").json()["minersConnected"]
    return count


def reach(client: httpx.Client, target: int, seconds: float) -> int:
    """Wait for ``target`` miners, or until ``seconds`` pass; the count reached.

    On a loaded machine some connections churn (pings answered too late); the
    figures then say how many miners were connected while they were measured.
    """
    began = said = time.monotonic()
    count = 0
    while time.monotonic() - began < seconds:
        try:
            count = connected(client)
        except httpx.HTTPError:  # a coordinator busy with a crowd of handshakes
            count = 0
        if count >= target:
            break
        if time.monotonic() - said > 15:
            said = time.monotonic()
            print(f"  {count:,} miners connected after {said - began:.0f} s")
        time.sleep(0.5)
    return count


def render_times(url: str, count: int) -> list[float]:
    """Seconds from navigation start to the console's first full render, ``count`` loads."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("chromium is not installed")
    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_init_script(f"sessionStorage.setItem('qortex.console.key', {KEY!r})")
        page = context.new_page()
        for _ in range(count):
            page.goto(url + "/dashboard")
            page.wait_for_function("() => document.documentElement.dataset.ready === 'true'")
            # The page's own clock: from navigation start to every panel filled.
            ready = page.evaluate("() => document.documentElement.dataset.readyMs")
            times.append(int(ready) / 1000)
        browser.close()
    return times


def with_console_open(url: str, pid: int, window: float) -> float:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_init_script(f"sessionStorage.setItem('qortex.console.key', {KEY!r})")
        page = context.new_page()
        page.goto(url + "/dashboard")
        page.wait_for_function("() => document.documentElement.dataset.ready === 'true'")
        page.wait_for_function("() => document.getElementById('live').dataset.state === 'on'")
        time.sleep(2)  # past the first loads
        # The page runs on Playwright's event loop only while Playwright waits on it.
        began, start = time.monotonic(), cpu_seconds(pid)
        page.wait_for_timeout(window * 1000)
        used = cpu_seconds(pid) - start
        percent = 100 * used / (time.monotonic() - began)
        browser.close()
    return percent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miners", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--window", type=float, default=30.0, help="seconds per CPU measurement")
    parser.add_argument("--renders", type=int, default=5)
    parser.add_argument("--procs", type=int, default=2, help="load processes for the miners")
    parser.add_argument(
        "--load-nice",
        type=int,
        default=19,
        help="niceness of the load processes: the miners stand for machines elsewhere,"
        " so they yield the cores to the coordinator and the browser (0: compete)",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="qortex-console-"))
    children: list[subprocess.Popen[bytes]] = []
    try:
        db = tmp / "qortex.db"
        began = time.monotonic()
        fill(db, args.tasks)
        print(f"{args.tasks:,} finished tasks written in {time.monotonic() - began:.1f} s")
        port = free_port()
        url = f"http://{HOST}:{port}"
        env = base_env(tmp) | {
            "QORTEX_DB": str(db),
            "QORTEX_PORT": str(port),
            "QORTEX_API_KEY": KEY,
            "QORTEX_LOG_LEVEL": "warning",
        }
        with open(tmp / "serve.log", "wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "qortex", "serve"], env=env, stdout=log, stderr=log
            )
        children.append(server)
        client = httpx.Client(base_url=url, headers={"x-api-key": KEY}, timeout=120)
        wait_for(lambda: client.get("/health").status_code == 200, 60, "the coordinator")

        share = [
            args.miners // args.procs + (i < args.miners % args.procs) for i in range(args.procs)
        ]
        for i, n in enumerate(share):
            with open(tmp / f"load{i}.log", "wb") as log:
                children.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            str(HERE / "bench_load.py"),
                            "--url",
                            url,
                            "--mode",
                            "idle",
                            "--connections",
                            str(n),
                            "--slots",
                            "1",
                            "--report",
                            "5",
                            "--name",
                            f"idle{i}-",
                        ],
                        env=base_env(tmp),
                        stdout=subprocess.DEVNULL,
                        stderr=log,
                        preexec_fn=lambda: os.nice(args.load_nice),
                    )
                )
        began = time.monotonic()
        count = reach(client, args.miners, 60 + args.miners / 20)
        print(f"{count:,} idle miners connected after {time.monotonic() - began:.0f} s")
        time.sleep(5)  # connect-time writes and events settle

        online = [connected(client)]
        idle = cpu_percent(server.pid, args.window)
        online.append(connected(client))
        print(f"coordinator CPU, console closed: {idle:.2f}% of a core ({online[0]:,} miners)")
        opened = with_console_open(url, server.pid, args.window)
        online.append(connected(client))
        print(f"coordinator CPU, console open:   {opened:.2f}% of a core ({online[2]:,} miners)")
        renders = render_times(url, args.renders)
        print(
            f"first render: median {statistics.median(renders) * 1000:.0f} ms,"
            f" max {max(renders) * 1000:.0f} ms over {len(renders)} loads"
        )
        figures = {
            "miners": args.miners,
            "miners_online": online,
            "tasks": args.tasks,
            "window_s": args.window,
            "cpu_closed_percent": round(idle, 2),
            "cpu_open_percent": round(opened, 2),
            "cpu_console_percent": round(opened - idle, 2),
            "first_render_ms": [round(t * 1000) for t in renders],
        }
        print(json.dumps(figures))
        return 0
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(15)
                except subprocess.TimeoutExpired:
                    child.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
