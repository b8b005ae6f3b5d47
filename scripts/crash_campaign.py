"""Crash campaign: ``kill -9`` the coordinator at random moments under load, then check promises.

While a client submits sentiment tasks continuously, CLI miners (``qortex miner``)
and a few in-campaign protocol miners work, and an SSE client follows
``/api/v1/events`` (resuming with ``Last-Event-ID`` after every restart), the
coordinator is killed with SIGKILL a random 0.2-1.5 s after each time it became
healthy (at that moment, or at the instant one of the clients next receives a
201, an ack, an event or a ``microtask.quorum`` event) and started again on the
same SQLite file. Two special kinds of kill come on top: during the POST of a
20,000-tweet task, and during the migration of a fresh database (killed within
milliseconds of the file appearing, many times over, the file checked after
each kill).

After the last restart the client stops, everything is let finish (bounded),
and the file is checked against the clients' and miners' own records:

* every task that got a 201 exists and ended ``completed`` with a decision for
  every microtask (the honest label), or ``failed`` with inconclusive
  microtasks (reported apart);
* every result a protocol miner got an ``ack`` for is in ``results``;
* no microtask has two decisions (the column, and every ``microtask.quorum``
  event for it, logged or seen on the stream, carry the same one);
* the event log is 1..max without a hole, and the SSE client saw every id
  exactly once across all its reconnects, each with the type and data the log
  has;
* no lease is left out once all is done; every task in the file ended and has all
  its microtasks (a submit is atomic); each miner's ``accepted`` count equals
  its stored results; the coordinator never exited by itself or logged an error;
* every migration kill left ``PRAGMA user_version`` at 0 (no table) or at a
  migration's number with exactly the schema of the migrations up to it (each
  migration commits on its own), and the file passes ``integrity_check``.

Usage::

    python scripts/crash_campaign.py                 # short: 5 kills, under a minute
    python scripts/crash_campaign.py --kills 100     # long: the figures in docs/reliability.md
    python scripts/crash_campaign.py --json          # one JSON object on stdout

Progress goes to stderr. The exit status is 1 if any check failed (or the run
could not finish), 0 otherwise. Every process runs in its own process group
with a parent-death signal, and is stopped by its PID on the way out; the
temporary directory is removed unless ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
from loopback import HOST, base_env, free_port
from rich.console import Console
from rich.table import Table
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from qortex.errors import ProtocolViolation
from qortex.kinds.sentiment import SentimentKind
from qortex.protocol import messages as m
from qortex.protocol.client import ClientSession, Reply, ResultAnswer, Welcomed, Withdrawn, Work
from qortex.signing import Signer
from qortex.store.schema import LATEST, MIGRATIONS, migrate

API_KEY = "crash-campaign-key-0123456789"
REPLICAS = 3
LARGE_TWEETS = 20_000
LARGE_REPLICAS = 1  # the large task tests atomic submits and big recoveries, not quorum
KILL_DELAY = (0.2, 1.5)
BAD_LOG = re.compile(r"Traceback|\bCRITICAL\b|\bERROR\b|fatal:")
WORDS = [
    *("i", "love", "this", "so", "much", "hate", "it", "awful", "great", "day", "the", "sky"),
    *("is", "blue", "not", "bad", "at", "all", "what", "a", "good", "terrible", "wonderful"),
    *("never", "happy", "sad", "no", "nothing", "boring", "amazing", "movie", "food", "service"),
]

err = Console(stderr=True)
_libc = (
    ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform == "linux" else None
)
_children: list[asyncio.subprocess.Process] = []


def log(message: str) -> None:
    err.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}", highlight=False)


# -- processes -----------------------------------------------------------------


def _die_with_parent() -> None:  # in the child, between fork and exec
    if _libc is not None:
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


async def spawn(argv: list[str], env: dict[str, str], cwd: Path, out: Path) -> Any:
    """A child in its own process group, killed with us, output appended to ``out``."""
    with open(out, "ab") as sink:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    _children.append(proc)
    return proc


def signal_group(proc: Any, sig: int) -> None:
    """Signal the process group of a child we started (its group id is its PID)."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


async def reap(proc: Any, seconds: float) -> bool:
    try:
        await asyncio.wait_for(proc.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def end(proc: Any, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
    """``sig`` to the group, then SIGKILL if it is still there after ``grace``."""
    signal_group(proc, sig)
    if not await reap(proc, grace):
        signal_group(proc, signal.SIGKILL)
        await reap(proc, 5)


def kill_all() -> None:
    for proc in _children:
        signal_group(proc, signal.SIGKILL)


class Server:
    """``qortex serve`` on one SQLite file, killed and started again on the same port."""

    def __init__(self, tmp: Path, db: Path, name: str, port: int | None = None) -> None:
        self.dir = tmp
        self.db = db
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log = tmp / f"{name}.log"
        self.env = base_env(tmp) | {
            "QORTEX_API_KEY": API_KEY,
            "QORTEX_DB": str(db),
            "QORTEX_HOST": HOST,
            "QORTEX_PORT": str(self.port),
            "QORTEX_LOG_LEVEL": "warning",
            "QORTEX_SYNC": "full",
            "QORTEX_REPLICAS": str(REPLICAS),
            "QORTEX_MAX_TWEETS_PER_TASK": str(LARGE_TWEETS),
            "QORTEX_MAX_REQUEST_BYTES": str(64 << 20),
        }
        self.proc: Any = None
        self.starts = 0
        self.unexpected: list[str] = []  # exits nobody asked for

    async def spawn(self) -> None:
        self.proc = await spawn(
            [sys.executable, "-m", "qortex", "serve"], self.env, self.dir, self.log
        )
        self.starts += 1

    async def start(self, seconds: float = 60.0) -> float:
        """Start and wait for a 200 from /health; returns the seconds that took."""
        began = time.monotonic()
        await self.spawn()
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() - began < seconds:
                if self.proc.returncode is not None:
                    raise CampaignError(f"the server exited on start: {self.tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(self.url + "/health")).status_code == 200:
                        return time.monotonic() - began
                await asyncio.sleep(0.02)
        raise CampaignError(f"the server did not become healthy in {seconds:g} s: {self.tail()}")

    async def kill9(self, sent: bool = False) -> None:
        """SIGKILL (unless a trigger ``sent`` it already): no shutdown code runs."""
        if self.proc.returncode is not None and not sent:
            self.unexpected.append(f"exited by itself with {self.proc.returncode}")
        signal_group(self.proc, signal.SIGKILL)
        await reap(self.proc, 10)

    async def stop(self) -> None:
        if self.proc is not None:
            await end(self.proc)

    def tail(self, chars: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class CampaignError(Exception):
    """The campaign could not go on (a server that does not start, a deadline passed)."""


class Trigger:
    """Kill the server the instant a client receives a given kind of acknowledgement.

    A promise of "durable before acknowledged" is broken only in the short
    window between an acknowledgement leaving and its commit finishing; a kill
    fired from inside the client's handler of that acknowledgement lands in
    that window if it exists. The clients call :meth:`fire` for each
    ``201``, ``ack`` and event they receive; ``quorum`` fires on a
    ``microtask.quorum`` event, often a task's last decision, whose task's
    completion is then still to be written.
    """

    KINDS = ("timer", "201", "ack", "event", "quorum")

    def __init__(self) -> None:
        self.server: Server | None = None
        self.armed: str | None = None
        self.fired = asyncio.Event()

    def arm(self, server: Server, kind: str) -> None:
        self.server, self.armed = server, kind
        self.fired.clear()

    def fire(self, kind: str) -> None:
        if self.armed == kind and self.server is not None:
            signal_group(self.server.proc, signal.SIGKILL)
            self.armed = None
            self.fired.set()


# -- the clients -----------------------------------------------------------------


def tweet(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(2, 9)))


class Submitter:
    """Submits small tasks continuously; keeps its own record of every 201."""

    def __init__(self, url: str, rng: random.Random, rate: float, trigger: Trigger) -> None:
        self.url = url
        self.trigger = trigger
        self.rng = rng
        self.pause = 1 / rate
        self.accepted: dict[str, list[str]] = {}
        self.statuses: Counter[str] = Counter()
        self.stopping = False

    async def run(self) -> None:
        headers = {"x-api-key": API_KEY}
        async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10) as client:
            while not self.stopping:
                tweets = [tweet(self.rng) for _ in range(self.rng.randint(1, 5))]
                body = {"tweets": tweets, "replicas": REPLICAS}
                try:
                    response = await client.post("/api/v1/tasks", json=body)
                except httpx.TransportError as exc:
                    self.statuses[type(exc).__name__] += 1
                    await asyncio.sleep(0.05)
                    continue
                self.statuses[str(response.status_code)] += 1
                if response.status_code == 201:
                    self.accepted[response.json()["taskId"]] = tweets
                    self.trigger.fire("201")
                await asyncio.sleep(self.pause)


class Follower:
    """An SSE client that resumes with ``Last-Event-ID``; records every event id it gets."""

    def __init__(self, url: str, trigger: Trigger) -> None:
        self.url = url
        self.trigger = trigger
        self.last = 0
        self.ids: list[int] = []
        self.types: dict[int, tuple[str, int]] = {}  # id: (type, hash of the data line)
        self.quorum: dict[str, set[str]] = defaultdict(set)
        self.backwards = 0  # an id not above the one before it
        self.connects = 0

    async def run(self) -> None:
        headers = {"x-api-key": API_KEY}
        timeout = httpx.Timeout(5, read=60)
        async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout) as client:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    resume = {"last-event-id": str(self.last)}
                    async with client.stream("GET", "/api/v1/events", headers=resume) as response:
                        if response.status_code == 200:
                            self.connects += 1
                            await self._read(response)
                await asyncio.sleep(0.05)

    async def _read(self, response: httpx.Response) -> None:
        event_id, event_type = None, ""
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("event: "):
                event_type = line[7:]
            elif line.startswith("data: ") and event_id is not None:
                if event_id <= self.last:
                    self.backwards += 1
                self.ids.append(event_id)
                self.types.setdefault(event_id, (event_type, hash(line[6:])))
                if event_type == "microtask.quorum":
                    data = json.loads(line[6:])
                    if data.get("status") == "decided":
                        self.quorum[data["microtaskId"]].add(json.dumps(data["decision"]))
                self.last = event_id
                self.trigger.fire("event")
                if event_type == "microtask.quorum":
                    self.trigger.fire("quorum")
                event_id = None


def events_of(session: ClientSession, raw: str | bytes) -> list[Any]:
    """Every event in one message (a frame, or an array of frames where the server batches)."""
    receive_all = getattr(session, "receive_all", None)
    if receive_all is not None:
        return receive_all(raw)
    event = session.receive(raw)
    return [] if event is None else [event]


class ProtocolMiner:
    """A real protocol miner that answers correctly and records every ack it gets."""

    def __init__(self, url: str, index: int, slots: int, trigger: Trigger) -> None:
        self.url = url.replace("http://", "ws://", 1) + "/ws/miner"
        self.trigger = trigger
        self.index = index
        self.slots = slots
        self.signer = Signer()
        self.kind = SentimentKind()
        self.acked: set[str] = set()
        self.sent = 0
        self.refused: Counter[str] = Counter()
        self.cancelled = 0
        self.connects = 0
        self.errors: Counter[str] = Counter()

    async def run(self) -> None:
        while True:
            try:
                async with connect(self.url, open_timeout=5, max_size=None) as ws:
                    await self._converse(ws)
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
                self.errors[type(exc).__name__] += 1
            except ProtocolViolation as exc:  # a frame our session could not read: a finding
                self.errors[f"ProtocolViolation: {exc.message}"] += 1
            await asyncio.sleep(random.uniform(0.05, 0.3))

    async def _converse(self, ws: ClientConnection) -> None:
        session = ClientSession(
            self.signer, self.slots, ["sentiment"], "crash-campaign/1", f"campaign-{self.index}"
        )
        await ws.send(session.hello_frame().decode())
        work: set[asyncio.Task[None]] = set()
        heartbeat: asyncio.Task[None] | None = None
        try:
            async for raw in ws:
                for event in events_of(session, raw):
                    await self._on(ws, session, event, work)
                    if isinstance(event, Welcomed):
                        heartbeat = asyncio.create_task(
                            self._heartbeat(ws, event.heartbeat_seconds)
                        )
        finally:
            for task in [*work, heartbeat]:
                if task is not None:
                    task.cancel()

    async def _on(
        self, ws: ClientConnection, session: ClientSession, event: Any, work: set[Any]
    ) -> None:
        if isinstance(event, Reply):
            await ws.send(event.frame.decode())
        elif isinstance(event, Welcomed):
            self.connects += 1
        elif isinstance(event, Work):
            task = asyncio.create_task(self._answer(ws, session, event.assign))
            work.add(task)
            task.add_done_callback(work.discard)
        elif isinstance(event, ResultAnswer):
            if event.accepted:
                self.acked.add(event.assignment_id)
                self.trigger.fire("ack")
            else:
                self.refused[event.reason] += 1
        elif isinstance(event, Withdrawn):
            self.cancelled += 1

    async def _answer(self, ws: ClientConnection, session: ClientSession, assign: m.Assign) -> None:
        await asyncio.sleep(random.uniform(0, 0.005))  # keep some copies out at any moment
        label = self.kind.compute(msgspec.json.decode(assign.input))
        frame = session.result_frame(assign, msgspec.json.encode(label))
        with contextlib.suppress(ConnectionClosed):
            await ws.send(frame.decode())
            self.sent += 1

    @staticmethod
    async def _heartbeat(ws: ClientConnection, every: float) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(every)
                await ws.send(ClientSession.heartbeat_frame(int(time.time() * 1000)).decode())


# -- the campaign ------------------------------------------------------------------


@dataclass
class Check:
    ok: bool
    detail: str


@dataclass
class Run:
    args: argparse.Namespace
    tmp: Path
    rng: random.Random
    started: float = field(default_factory=time.monotonic)
    kills: int = 0
    kills_by: Counter[str] = field(default_factory=Counter)
    restarts: int = 0
    restart_seconds: list[float] = field(default_factory=list)
    large: list[dict[str, Any]] = field(default_factory=list)
    large_tweets: dict[str, list[str]] = field(default_factory=dict)
    migration: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Check] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks[name] = Check(bool(ok), detail)
        mark = "[green]ok[/]" if ok else "[bold red]FAILED[/]"
        log(f"check {name}: {mark} {detail}")


def schema_of(conn: sqlite3.Connection) -> set[tuple[str, str]]:
    rows = conn.execute(
        "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
    ).fetchall()
    return {(t, n) for t, n in rows}


def reference_schemas(tmp: Path) -> dict[int, set[tuple[str, str]]]:
    """The schema a file has at each version, from migrating a file of our own step by step."""
    schemas: dict[int, set[tuple[str, str]]] = {}
    for version in range(1, LATEST + 1):
        conn = sqlite3.connect(tmp / f"reference-{version}.db", isolation_level=None)
        try:
            migrate(conn, MIGRATIONS[:version])
            schemas[version] = schema_of(conn)
        finally:
            conn.close()
    return schemas


def inspect_file(
    path: Path, references: dict[int, set[tuple[str, str]]]
) -> tuple[int | None, str | None]:
    """(user_version, problem) of a file a migration may have been killed in."""
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        return None, f"does not open: {exc}"
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        schema = schema_of(conn)
    except sqlite3.Error as exc:
        return None, f"cannot be read: {exc}"
    finally:
        conn.close()
    if integrity != "ok":
        return version, f"integrity_check: {integrity}"
    if version == 0 and schema:
        return version, f"user_version 0 but {len(schema)} schema objects"
    if version != 0 and version not in references:
        return version, f"user_version {version} is not a migration of this Qortex"
    if version and schema != references[version]:
        diff = sorted(schema ^ references[version])
        return version, f"user_version {version} but schema differs: {diff}"
    return version, None


async def migration_kills(run: Run, attempts: int) -> None:
    """Start on a fresh file and SIGKILL within milliseconds of it appearing, again and again."""
    base = run.tmp / "migration"
    base.mkdir()
    references = reference_schemas(base)
    versions: Counter[int] = Counter()
    problems: list[str] = []
    fresh = 0
    appear: list[float] = []  # seconds from spawn to the file appearing
    last_version: int | None = None
    db = base / "fresh-0.db"
    server = Server(base, db, "migration")
    for attempt in range(attempts):
        if attempt == 0 or last_version == LATEST:  # migrated: the next kill gets a fresh copy
            fresh += 1
            db = base / f"fresh-{fresh}.db"
            server = Server(base, db, "migration", server.port)
        existed = db.exists()
        await server.spawn()
        began = time.monotonic()
        if existed:  # the file is there already: aim at the moment it was opened last time
            opened = sum(appear) / len(appear) if appear else 0.8
            await asyncio.sleep(max(0.0, opened + run.rng.uniform(-0.03, 0.03)))
        else:  # kill within milliseconds of the file appearing: the migration takes a few
            # milliseconds, so this spins (blocking the loop is fine: nothing else runs yet).
            while not db.exists() and time.monotonic() - began < 30:
                if server.proc.returncode is not None:
                    break
                time.sleep(0.0001)
            appear.append(time.monotonic() - began)
            time.sleep(run.rng.uniform(0, 0.006))
        signal_group(server.proc, signal.SIGKILL)
        await reap(server.proc, 10)
        if not db.exists():
            versions[-1] += 1  # killed before the file existed
            last_version = None
            continue
        version, problem = inspect_file(db, references)
        last_version = version
        versions[version if version is not None else -2] += 1
        if problem:
            problems.append(f"attempt {attempt} ({db.name}): {problem}")
    # The last file must still start, and end up at the latest version.
    elapsed = await server.start()
    await server.stop()
    version, problem = inspect_file(db, references)
    if problem or version != LATEST:
        problems.append(f"after a full start: user_version {version}, {problem}")
    run.migration = {
        "kills": attempts,
        "freshFiles": fresh,
        "outcomes": {
            "noFile" if v == -1 else "unreadable" if v == -2 else f"userVersion{v}": n
            for v, n in sorted(versions.items())
        },
        "finalStartSeconds": round(elapsed, 3),
        "fileAppearsSeconds": round(sum(appear) / len(appear), 3) if appear else None,
        "problems": problems,
    }
    run.check(
        "migration",
        not problems,
        f"{attempts} kills on {fresh} fresh files, outcomes {run.migration['outcomes']}"
        + (f"; {problems[:3]}" if problems else "; every file opens, schema as migrated"),
    )


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
                raise CampaignError(f"the server exited while work was finishing: {server.tail()}")
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


async def campaign(run: Run) -> None:
    args = run.args
    if args.migration_kills:
        log(f"migration: {args.migration_kills} kills on fresh files")
        await migration_kills(run, args.migration_kills)

    db = run.tmp / "qortex.db"
    server = Server(run.tmp, db, "serve")
    log(f"coordinator on {server.url}, file {db}")
    await server.start()
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
            str(args.cli_miners),
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
        ProtocolMiner(server.url, i, 2, trigger) for i in range(args.protocol_miners)
    ]
    submitter = Submitter(server.url, random.Random(run.rng.random()), args.rate, trigger)
    follower = Follower(server.url, trigger)
    background = [asyncio.create_task(p.run()) for p in protocol_miners]
    follow_task = asyncio.create_task(follower.run())
    submit_task = asyncio.create_task(submitter.run())
    try:
        large_at = {
            round((i + 1) * args.kills / (args.large_kills + 1)) for i in range(args.large_kills)
        }
        for i in range(args.kills):
            if i in large_at:
                await large_submit_kill(run, server, args.large_window)
                run.restart_seconds.append(await server.start())
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
            run.restart_seconds.append(await server.start())
            run.restarts += 1
            if (i + 1) % 10 == 0 or i + 1 == args.kills:
                log(
                    f"kill {i + 1}/{args.kills}: {len(submitter.accepted)} tasks accepted, "
                    f"{len(follower.ids)} events seen, {sum(len(p.acked) for p in protocol_miners)}"
                    " acks"
                )

        log("last restart done: the client stops, everything is let finish")
        for task in [*background, follow_task, submit_task]:  # a client that died is a finding
            if task.done() and not task.cancelled() and task.exception() is not None:
                run.errors.append(f"a campaign client stopped: {task.exception()!r}")
        submitter.stopping = True
        await asyncio.wait_for(submit_task, 30)
        idle = await wait_healthy_idle(server, args.drain_seconds)
        run.figures["drainHealth"] = {
            k: idle.get(k) for k in ("tasksRunning", "leasesOut", "minersConnected")
        }
        # Miners stop first (their disconnections are events too); then the stream catches up.
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await end(cli, signal.SIGINT)
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
        await end(cli, signal.SIGINT)
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


# -- the checks ------------------------------------------------------------------


def verify(
    run: Run,
    db: Path,
    submitter: Submitter,
    follower: Follower,
    protocol_miners: list[ProtocolMiner],
    miners_out: Path,
    closed_at: int,
) -> None:
    conn = sqlite3.connect(db)
    try:
        _verify(run, conn, submitter, follower, protocol_miners, miners_out, closed_at)
    finally:
        conn.close()


def _verify(
    run: Run,
    conn: sqlite3.Connection,
    submitter: Submitter,
    follower: Follower,
    protocol_miners: list[ProtocolMiner],
    miners_out: Path,
    closed_at: int,
) -> None:
    kind = SentimentKind()
    tasks = {
        row[0]: row[1:]
        for row in conn.execute("SELECT id, status, microtasks, output, input FROM tasks")
    }
    microtasks: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in conn.execute("SELECT task_id, idx, id, status, decision FROM microtasks"):
        microtasks[row[0]].append(row[1:])

    # 1. Every 201 is a task that ended, each microtask decided with the honest label.
    acknowledged = dict(submitter.accepted)
    acknowledged.update(run.large_tweets)
    missing, unfinished, wrong, failed, completed = [], [], [], [], 0
    for task_id, tweets in acknowledged.items():
        row = tasks.get(task_id)
        if row is None:
            missing.append(task_id)
            continue
        status = row[0]
        mts = sorted(microtasks[task_id])
        if status == "completed":
            completed += 1
            honest = [kind.compute(text) for text in tweets]
            bad = [
                mt
                for mt, label in zip(mts, honest, strict=False)
                if mt[2] != "decided" or mt[3] is None or json.loads(mt[3]) != label
            ]
            output = json.loads(row[2]) if row[2] is not None else None
            labels = [o.get("label") for o in output] if isinstance(output, list) else None
            if bad or len(mts) != len(tweets) or labels != honest:
                wrong.append(task_id)
        elif status == "failed":
            if any(mt[2] == "inconclusive" for mt in mts):
                failed.append(task_id)
            else:
                wrong.append(task_id)
        else:
            unfinished.append(task_id)
    run.figures.update(
        tasksSubmitted=len(acknowledged),
        tasksChecked=len(acknowledged) - len(missing),
        tasksCompleted=completed,
        tasksFailedInconclusive=len(failed),
        tasksLost=len(missing),
    )
    run.check(
        "tasks",
        not (missing or unfinished or wrong),
        f"{len(acknowledged)} acknowledged: {completed} completed with the right labels, "
        f"{len(failed)} failed (inconclusive), {len(missing)} missing, "
        f"{len(unfinished)} not finished, {len(wrong)} wrong"
        + (f" e.g. {(missing + unfinished + wrong)[:3]}" if missing or unfinished or wrong else ""),
    )

    # 1b. Every task in the file (with or without a 201) ended, with all its microtasks.
    unacknowledged = [t for t in tasks if t not in acknowledged]
    open_tasks = [t for t, row in tasks.items() if row[0] == "running"]
    partial = [t for t, row in tasks.items() if len(microtasks[t]) != row[1]]
    run.figures["tasksUnacknowledged"] = len(unacknowledged)
    run.figures["tasksInFile"] = len(tasks)
    run.check(
        "every_task_ends",
        not (open_tasks or partial),
        f"{len(tasks)} tasks in the file ({len(unacknowledged)} committed without a 201 reaching"
        f" the client): {len(open_tasks)} still running, {len(partial)} with missing microtasks",
    )
    large_in_file = [t for t, row in tasks.items() if row[1] == LARGE_TWEETS]
    run.figures["largeCommitted"] = len(large_in_file)

    # 2. Every acked result is stored.
    stored = {row[0] for row in conn.execute("SELECT assignment_id FROM results")}
    acked = set().union(*(p.acked for p in protocol_miners)) if protocol_miners else set()
    lost_results = acked - stored
    cli_accepted = _cli_accepted(miners_out)
    cli_stored = conn.execute(
        "SELECT COUNT(*) FROM results r JOIN miners m ON m.id = r.miner_id"
        " WHERE m.name LIKE 'cli-%'"
    ).fetchone()[0]
    run.figures.update(
        resultsAcked=len(acked),
        resultsChecked=len(acked) - len(lost_results),
        resultsLost=len(lost_results),
        resultsStored=len(stored),
        cliResultsAccepted=cli_accepted,
        cliResultsStored=cli_stored,
    )
    cli_ok = cli_accepted is None or cli_stored >= cli_accepted
    run.check(
        "acked_results",
        not lost_results and cli_ok and bool(acked),
        f"{len(acked)} results acked to the protocol miners, {len(lost_results)} not in results"
        + (f" e.g. {sorted(lost_results)[:3]}" if lost_results else "")
        + f"; CLI miners counted {cli_accepted} acks, {cli_stored} of their results stored",
    )

    # 3. One decision per microtask: the column, the logged quorum events, the seen ones.
    decided = {
        row[0]: row[1]
        for row in conn.execute("SELECT id, decision FROM microtasks WHERE status = 'decided'")
    }
    logged: dict[str, list[str]] = defaultdict(list)
    for (data,) in conn.execute("SELECT data FROM events WHERE type = 'microtask.quorum'"):
        event = json.loads(data)
        if event.get("status") == "decided":
            logged[event["microtaskId"]].append(json.dumps(event["decision"]))
    two = []
    for mt_id, decisions in logged.items():
        column = decided.get(mt_id)
        if (
            len(set(decisions)) > 1
            or column is None
            or json.loads(column) != json.loads(decisions[0])
        ):
            two.append(mt_id)
    for mt_id, seen in follower.quorum.items():
        column = decided.get(mt_id)
        if len(seen) > 1 or column is None or {json.dumps(json.loads(column))} != seen:
            two.append(mt_id)
    silent = [mt_id for mt_id in decided if mt_id not in logged]
    repeated = sum(len(d) > 1 for d in logged.values())
    null_decided = conn.execute(
        "SELECT COUNT(*) FROM microtasks WHERE status = 'decided' AND decision IS NULL"
    ).fetchone()[0]
    run.figures.update(microtasksDecided=len(decided), quorumEventsRepeated=repeated)
    run.check(
        "one_decision",
        not (two or silent or null_decided),
        f"{len(decided)} microtasks decided; {len(set(two))} with two decisions, "
        f"{len(silent)} without a quorum event, {null_decided} decided without a decision, "
        f"{repeated} with the same decision logged more than once",
    )

    # 4. The log has no hole; the stream saw every id exactly once, as logged.
    ids = [row[0] for row in conn.execute("SELECT id FROM events ORDER BY id")]
    types = {i: (t, hash(d)) for i, t, d in conn.execute("SELECT id, type, data FROM events")}
    top = ids[-1] if ids else 0
    holes = top - len(ids) if ids and ids[0] >= 1 else len(ids)
    gap_at = next((i + 1 for i, v in enumerate(ids) if v != i + 1), None)
    seen = Counter(follower.ids)
    duplicates = sum(n - 1 for n in seen.values() if n > 1)
    unseen = [i for i in range(1, closed_at + 1) if i not in seen]
    not_logged = [i for i in seen if i not in types]
    retyped = [i for i, t in follower.types.items() if i in types and types[i] != t]
    run.figures.update(
        eventsLogged=len(ids),
        eventsSeen=len(follower.ids),
        eventsSeenUnique=len(seen),
        eventsAfterStreamClosed=top - closed_at,
        duplicatesSeen=duplicates,
        gaps=holes,
        sseConnects=follower.connects,
    )
    run.check(
        "event_log",
        holes == 0 and gap_at is None,
        f"{len(ids)} events logged, ids 1..{top}"
        + (f"; first hole at {gap_at}, {holes} missing" if gap_at is not None else ", no hole"),
    )
    run.check(
        "event_stream",
        not (duplicates or unseen or not_logged or retyped or follower.backwards),
        f"{len(follower.ids)} received over {follower.connects} connections: {duplicates} twice, "
        f"{len(unseen)} of 1..{closed_at} never, {len(not_logged)} not in the log, "
        f"{len(retyped)} not as logged (type or data), {follower.backwards} out of order"
        + (f"; unseen e.g. {unseen[:5]}" if unseen else "")
        + (f"; not logged e.g. {not_logged[:5]}" if not_logged else "")
        + (f"; retyped e.g. {retyped[:5]}" if retyped else ""),
    )

    # 5. No lease left (leases live in memory only: /health is where they are seen).
    drain = run.figures.get("drainHealth", {})
    run.figures["leasedLeft"] = drain.get("leasesOut")
    run.check(
        "no_lease_left",
        drain.get("leasesOut") == 0,
        f"/health said {drain.get('leasesOut')} leases out once all was done",
    )

    # 5b. Counters committed with the rows they count; miners told gone after a restart.
    drift = conn.execute(
        "SELECT COUNT(*) FROM miners m WHERE m.accepted !="
        " (SELECT COUNT(*) FROM results r WHERE r.miner_id = m.id)"
    ).fetchone()[0]
    run.figures["minersGoneAtRestart"] = conn.execute(
        "SELECT COUNT(*) FROM events WHERE type = 'miner.disconnected'"
        " AND json_extract(data, '$.reason') = 'coordinator restarted'"
    ).fetchone()[0]
    run.check(
        "miner_counts",
        drift == 0,
        f"{drift} miners whose accepted count differs from their stored results",
    )

    # 6. The large submits: atomic, and a 201 means the task is there.
    acked_large = [r["taskId"] for r in run.large if r["taskId"]]
    run.check(
        "large_submit",
        all(t in tasks for t in acked_large)
        and all(len(microtasks[t]) == LARGE_TWEETS for t in large_in_file),
        f"{len(run.large)} kills during a {LARGE_TWEETS:,}-tweet POST "
        f"({sum(bool(r['inFlight']) for r in run.large)} with the POST still in flight): "
        f"{len(acked_large)} got a 201, {len(large_in_file)} committed, each whole",
    )
    run.figures["lost"] = len(missing) + len(lost_results) + len(not_logged) + len(retyped)
    run.figures["refusedToProtocolMiners"] = dict(
        sum((p.refused for p in protocol_miners), Counter())
    )
    run.figures["submitStatuses"] = dict(submitter.statuses)
    run.figures["protocolMiners"] = [
        {
            "connects": p.connects,
            "sent": p.sent,
            "acked": len(p.acked),
            "cancelled": p.cancelled,
            "errors": dict(p.errors),
        }
        for p in protocol_miners
    ]


def _cli_accepted(path: Path) -> int | None:
    """The CLI miners' own count of acks, from the line ``qortex miner`` prints as it stops."""
    found = re.findall(r"\d+ miner\(s\): .*?(\d+) accepted,", path.read_text())
    return sum(int(n) for n in found) if found else None


# -- output ------------------------------------------------------------------------


def report(run: Run) -> dict[str, Any]:
    f = run.figures
    restarts = run.restart_seconds
    return {
        "ok": bool(run.checks) and all(c.ok for c in run.checks.values()) and not run.errors,
        "seed": run.args.seed,
        "kills": run.kills,
        "killsBy": {k: run.kills_by[k] for k in Trigger.KINDS},
        "specialKills": {
            "largeSubmit": len(run.large),
            "migration": run.migration.get("kills", 0),
        },
        "killsTotal": run.kills + len(run.large) + run.migration.get("kills", 0),
        "restarts": run.restarts,
        "restartSeconds": {
            "mean": round(sum(restarts) / len(restarts), 3) if restarts else None,
            "max": round(max(restarts), 3) if restarts else None,
        },
        **f,
        "largeSubmits": run.large,
        "migration": run.migration,
        "checks": {name: {"ok": c.ok, "detail": c.detail} for name, c in run.checks.items()},
        "errors": run.errors,
        "seconds": round(time.monotonic() - run.started, 1),
        "machine": machine(),
    }


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "nproc": os.cpu_count(),
        "cpuModel": model,
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "kernel": os.uname().release,
        "loadAverage": [round(x, 2) for x in os.getloadavg()],
    }


FIGURES = [
    ("kills survived (random, under load)", "kills"),
    ("  at once / on a 201 / ack / event / quorum", "killsBy"),
    ("kills during a 20k-tweet submit", ("specialKills", "largeSubmit")),
    ("kills during migration", ("specialKills", "migration")),
    ("restarts", "restarts"),
    ("restart to healthy, mean / max (s)", "restartSeconds"),
    ("tasks submitted (201s)", "tasksSubmitted"),
    ("tasks checked", "tasksChecked"),
    ("  completed, right labels", "tasksCompleted"),
    ("  failed, inconclusive", "tasksFailedInconclusive"),
    ("tasks committed without a 201", "tasksUnacknowledged"),
    ("results acked (protocol miners)", "resultsAcked"),
    ("results acked and found stored", "resultsChecked"),
    ("CLI miner acks / their results stored", ("cliResultsAccepted", "cliResultsStored")),
    ("microtasks decided", "microtasksDecided"),
    ("events logged", "eventsLogged"),
    ("events seen (SSE, all reconnects)", "eventsSeen"),
    ("SSE connections", "sseConnects"),
    ("duplicates seen", "duplicatesSeen"),
    ("gaps in the log", "gaps"),
    ("leases out after the drain", "leasedLeft"),
    ("lost", "lost"),
    ("time taken (s)", "seconds"),
]


def show(out: dict[str, Any]) -> None:
    console = Console()
    table = Table(title="Crash campaign", show_header=True)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for label, key in FIGURES:
        if key == "killsBy":
            value = " / ".join(str(n) for n in out[key].values())
        elif key == "restartSeconds":
            value = f"{out[key]['mean']} / {out[key]['max']}"
        elif isinstance(key, tuple) and key[0] == "specialKills":
            value = str(out["specialKills"][key[1]])
        elif isinstance(key, tuple):
            value = " / ".join(str(out.get(k)) for k in key)
        else:
            value = str(out.get(key))
        table.add_row(label, value)
    console.print(table)
    checks = Table(title="Checks", show_header=True)
    checks.add_column("check")
    checks.add_column("")
    checks.add_column("detail")
    for name, c in out["checks"].items():
        checks.add_row(name, "[green]ok[/]" if c["ok"] else "[bold red]FAILED[/]", c["detail"])
    console.print(checks)
    for error in out["errors"]:
        console.print(f"[bold red]error:[/] {error}")
    console.print("[bold green]all checks passed[/]" if out["ok"] else "[bold red]FAILED[/]")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=5, help="random kills under load (default 5)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--seed", type=int, default=None, help="seed for delays and tweets")
    p.add_argument("--large-kills", type=int, default=None, help="kills during a 20k submit")
    p.add_argument("--migration-kills", type=int, default=None, help="kills during migration")
    p.add_argument("--large-window", type=float, default=None, help="max delay of a large kill (s)")
    p.add_argument("--rate", type=float, default=20.0, help="small tasks submitted per second")
    p.add_argument("--cli-miners", type=int, default=4, help="miners in `qortex miner --count`")
    p.add_argument("--protocol-miners", type=int, default=3, help="in-campaign miners")
    p.add_argument("--drain-seconds", type=float, default=240.0, help="bound on the final wait")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 32)
    if args.large_kills is None:
        args.large_kills = 1 if args.kills < 20 else max(2, args.kills // 25)
    if args.large_window is None:  # long runs also kill after the commit, with 20k to recover
        args.large_window = 0.3 if args.kills < 20 else 0.6
    if args.migration_kills is None:
        args.migration_kills = 4 if args.kills < 20 else max(8, args.kills // 5)
    if args.kills < 1 or args.protocol_miners < 1:
        p.error("--kills and --protocol-miners must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    tmp = Path(tempfile.mkdtemp(prefix="qortex-crash-"))
    run = Run(args, tmp, random.Random(args.seed))
    log(f"crash campaign: {args.kills} kills, seed {args.seed}, in {tmp}")

    def stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    budget = 300 + 20 * (args.kills + args.large_kills) + 5 * args.migration_kills
    budget += args.drain_seconds
    try:
        asyncio.run(asyncio.wait_for(campaign(run), budget))
    except TimeoutError:
        run.errors.append(f"the campaign did not finish within {budget:g} s")
    except CampaignError as exc:
        run.errors.append(str(exc))
    except KeyboardInterrupt:
        run.errors.append("interrupted")
    finally:
        kill_all()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    out = report(run)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        show(out)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
