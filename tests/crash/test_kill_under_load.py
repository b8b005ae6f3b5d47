"""Crash class: ``kill -9`` under load, at random moments and during a 20,000-tweet submit.

While a client submits sentiment tasks continuously, CLI miners (``qortex
miner``) and a few in-campaign protocol miners work, and an SSE client follows
``/api/v1/events`` (resuming with ``Last-Event-ID`` after every restart), the
coordinator is killed with SIGKILL a random 0.2-1.5 s after each time it
became healthy (at that moment, or at the instant one of the clients next
receives a 201, an ack, an event or a ``microtask.quorum`` event) and started
again on the same SQLite file; some kills come during the POST of a
20,000-tweet task. After the last restart everything is let finish, and the
file is held to the clients' and miners' own records (``tests/crash/verify.py``):
nothing acknowledged is lost, no microtask has two decisions, the event log
has no hole and the stream saw every id once.

Three kills by default; ``--long`` (or ``QORTEX_LONG=1``) makes it a hundred
and prints the figures docs/reliability.md records (``-s`` to see them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.processes import Server, end, spawn
from tests.crash.clients import (
    API_KEY,
    BAD_LOG,
    KILL_DELAY,
    LARGE_REPLICAS,
    LARGE_TWEETS,
    Follower,
    ProtocolMiner,
    Submitter,
    Trigger,
    coordinator,
    log,
    tweet,
)
from tests.crash.run import LONG, QUICK, Run, report, show
from tests.crash.verify import verify
from tests.helpers import timeout

pytestmark = pytest.mark.e2e


def large_body(rng: random.Random) -> tuple[list[str], bytes]:
    tweets = [f"{tweet(rng)} #{i}" for i in range(LARGE_TWEETS)]
    return tweets, json.dumps({"tweets": tweets, "replicas": LARGE_REPLICAS}).encode()


async def large_submit_kill(run: Run, server: Server, window: float) -> None:
    """Start the POST of a 20,000-tweet task and SIGKILL the server while it is in flight."""
    tweets, body = large_body(run.rng)
    record: dict[str, Any] = {"status": None, "taskId": None}
    headers = {"x-api-key": API_KEY, "content-type": "application/json"}

    async def post() -> None:
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
            try:
                response = await client.post("/api/v1/tasks", content=body)
            except httpx.TransportError as exc:
                record["status"] = type(exc).__name__
                return
            record["status"] = response.status_code
            if response.status_code == 201:
                record["taskId"] = response.json()["taskId"]
                run.large_tweets[record["taskId"]] = tweets

    delay = run.rng.uniform(0.01, window)
    began = time.monotonic()
    sending = asyncio.create_task(post())
    await asyncio.sleep(delay)
    in_flight = not sending.done()
    await server.kill9()
    await asyncio.wait_for(sending, 30)
    record.update(delay=round(delay, 3), inFlight=in_flight, bytes=len(body))
    record["elapsed"] = round(time.monotonic() - began, 3)
    run.large.append(record)
    log(f"large submit killed after {delay:.3f} s: {record['status']}")


async def wait_healthy_idle(server: Server, seconds: float) -> dict[str, Any]:
    """Until no task runs and no lease is out (or ``seconds`` pass); the last /health body."""
    deadline = time.monotonic() + seconds
    body: dict[str, Any] = {}
    headers = {"x-api-key": API_KEY}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as client:
        while time.monotonic() < deadline:
            if server.proc.returncode is not None:
                raise RuntimeError(f"the server exited while work was finishing: {server.tail()}")
            with contextlib.suppress(httpx.TransportError, ValueError):
                body = (await client.get("/health")).json()
                running = (await client.get("/api/v1/tasks?status=running&limit=1")).json()
                if body.get("tasksRunning") == 0 and not running["tasks"]:
                    return body
            await asyncio.sleep(0.25)
    return body


def last_event_id(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
    finally:
        conn.close()


async def kills_under_load(run: Run) -> None:
    """The kills of ``run.plan`` under load, the drain, then every check on the file."""
    plan = run.plan
    db = run.tmp / "qortex.db"
    server = coordinator(run.tmp, "serve", db)
    log(f"coordinator on {server.url}, file {db}")
    await server.start(60.0)
    miners_out = run.tmp / "miners.log"
    cli = await spawn(
        [
            sys.executable,
            "-m",
            "qortex",
            "miner",
            "--url",
            server.url,
            "--count",
            str(plan.cli_miners),
            "--concurrency",
            "4",
            "--key-dir",
            str(run.tmp / "keys"),
            "--name",
            "cli",
        ],
        server.env,
        run.tmp,
        miners_out,
    )
    trigger = Trigger()
    protocol_miners = [
        ProtocolMiner(server.url, i, 2, trigger) for i in range(plan.protocol_miners)
    ]
    submitter = Submitter(server.url, random.Random(run.rng.random()), plan.rate, trigger)
    follower = Follower(server.url, trigger)
    background = [asyncio.create_task(p.run()) for p in protocol_miners]
    follow_task = asyncio.create_task(follower.run())
    submit_task = asyncio.create_task(submitter.run())
    try:
        large_at = {
            round((i + 1) * plan.kills / (plan.large_kills + 1)) for i in range(plan.large_kills)
        }
        for i in range(plan.kills):
            if i in large_at:
                await large_submit_kill(run, server, plan.large_window)
                run.restart_seconds.append(await server.start(60.0))
                run.restarts += 1
            await asyncio.sleep(run.rng.uniform(*KILL_DELAY))
            how = run.rng.choice(Trigger.KINDS)
            if how != "timer":  # the next acknowledgement of that kind pulls the trigger
                trigger.arm(server, how)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(trigger.fired.wait(), 3)
                if trigger.armed is not None:  # none came: an ordinary kill
                    trigger.armed, how = None, "timer"
            await server.kill9(sent=how != "timer")
            run.kills += 1
            run.kills_by[how] += 1
            run.restart_seconds.append(await server.start(60.0))
            run.restarts += 1
            if (i + 1) % 10 == 0 or i + 1 == plan.kills:
                log(
                    f"kill {i + 1}/{plan.kills}: {len(submitter.accepted)} tasks accepted, "
                    f"{len(follower.ids)} events seen, {sum(len(p.acked) for p in protocol_miners)}"
                    " acks"
                )

        log("last restart done: the client stops, everything is let finish")
        for task in [*background, follow_task, submit_task]:  # a client that died is a finding
            if task.done() and not task.cancelled() and task.exception() is not None:
                run.errors.append(f"a campaign client stopped: {task.exception()!r}")
        submitter.stopping = True
        await asyncio.wait_for(submit_task, 30)
        idle = await wait_healthy_idle(server, plan.drain_seconds)
        run.figures["drainHealth"] = {
            k: idle.get(k) for k in ("tasksRunning", "leasesOut", "minersConnected")
        }
        # Miners stop first (their disconnections are events too); then the stream catches up.
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await end(cli, 10.0, signal.SIGINT)
        await asyncio.sleep(0.5)
        deadline = time.monotonic() + 30
        target = last_event_id(db)
        while follower.last < target and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            target = last_event_id(db)
        await asyncio.sleep(0.3)
        follow_task.cancel()
        await asyncio.gather(follow_task, return_exceptions=True)
        closed_at = last_event_id(db)
        if server.proc.returncode is not None:
            server.unexpected.append(f"exited by itself with {server.proc.returncode}")
        await server.stop()
    finally:
        submitter.stopping = True
        for task in [*background, follow_task, submit_task]:
            task.cancel()
        await asyncio.gather(*background, follow_task, submit_task, return_exceptions=True)
        await end(cli, 10.0, signal.SIGINT)
        await server.stop()

    verify(run, db, submitter, follower, protocol_miners, miners_out, closed_at)
    problems = [line for line in server.tail(10**7).splitlines() if BAD_LOG.search(line)]
    run.figures["serverLogProblems"] = len(problems)
    run.check(
        "server_sound",
        not server.unexpected and not problems,
        f"{len(server.unexpected)} exits nobody asked for, {len(problems)} error lines in its log"
        + (f": {server.unexpected[:3]}" if server.unexpected else "")
        + (f": {problems[:3]}" if problems else ""),
    )


# The fence for a hang outside the event loop; the run itself has its own budget below.
@pytest.mark.timeout(timeout(3600))
async def test_kills_under_load_lose_nothing_acknowledged(tmp_path: Path, long: bool) -> None:
    plan = LONG if long else QUICK
    seed = random.SystemRandom().randrange(1 << 32)
    run = Run(plan, seed, tmp_path, random.Random(seed))
    log(f"crash campaign: {plan.kills} kills, seed {seed}, in {tmp_path}")
    budget = 300 + 20 * (plan.kills + plan.large_kills) + plan.drain_seconds
    await asyncio.wait_for(kills_under_load(run), timeout(budget))
    out = report(run)
    if long:
        show(out)
    failed = {name: c["detail"] for name, c in out["checks"].items() if not c["ok"]}
    assert not failed, (seed, failed)
    assert out["kills"] == plan.kills
    assert out["restarts"] >= plan.kills
    assert out["specialKills"]["largeSubmit"] == plan.large_kills
    assert out["tasksSubmitted"] > 0
    assert out["tasksChecked"] == out["tasksSubmitted"]
    assert out["resultsAcked"] > 0
    assert isinstance(out["cliResultsAccepted"], int)  # the CLI miners' own count was read
    assert out["resultsChecked"] == out["resultsAcked"]
    assert out["eventsSeen"] == out["eventsLogged"] - out["eventsAfterStreamClosed"]
    assert out["duplicatesSeen"] == 0
    assert out["gaps"] == 0
    assert out["lost"] == 0
    assert out["ok"] is True
