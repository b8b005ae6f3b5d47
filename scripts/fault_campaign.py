#!/usr/bin/env python3
"""Fault campaign: a real coordinator, honest miners, and one faulty miner per fault class.

Starts ``qortex serve`` (replicas 3, 2 s leases, 1 s heartbeats, 2 s handshake
deadline, so every deadline comes quickly) and ``qortex miner --count 3`` as
the honest miners, keeps submitting sentiment tasks, and meanwhile runs
attackers written with :class:`qortex.protocol.client.ClientSession` over the
``websockets`` client, one coroutine per fault class:

========================  ==================================================================
disconnect mid-lease      take leases, drop the socket (abort or close), come back, send them
stall past deadline       hold leases, stay connected, send heartbeats
silent (timeouts)         say nothing, or stop after hello / after welcome
same key, two sockets     the same identity on two sockets, one after the other or at once
malformed frames          not JSON or not UTF-8, wrong types, unknown type, missing fields,
                          wrong order, nesting 100000 deep
batched frames            arrays of frames: valid, mixed with bad ones, nested, empty, huge
huge frames               messages at and above ``maxMessageBytes``, bodies above 4 MiB
message flood             thousands of heartbeats and bogus results; faster than
                          ``miner_rate``; slower than it; a miner that stops reading
work never given          made-up assignment ids, other miners' live work, wrong microtask
replayed result           another identity's signed result, spliced ids and outputs
wrong key                 challenge and results signed with the wrong key or malformed
late results              results after the lease's deadline
========================  ==================================================================

The floods run on their own after the other classes (they keep the
coordinator's event loop busy); the honest stream runs throughout. Half of the
honest tasks ask for a quorum of 3 of 3, so a copy an attacker holds stays live
until its deadline whatever the honest miners do.

Every bad input gets an expected answer taken from ``docs/protocol.md`` (a
close code, a ``refused`` reason, an HTTP status, or a normal reply where the
document says the input is tolerated). Afterwards the server's own records are
checked too: the ``refused`` and ``accepted`` counts of every attacker identity
in ``GET /api/v1/miners``, its ``result.refused`` events, and how the
assignments the attackers dropped, stalled or let expire were closed. Every
submitted task must end ``completed`` with the labels
``SentimentKind().compute`` gives, no HTTP answer may be a 5xx, and the server
must log no error.

Usage::

    python scripts/fault_campaign.py             # short mode: one round, well under 45 s
    python scripts/fault_campaign.py --rounds 15 # long mode: 15 rounds, a few minutes
    python scripts/fault_campaign.py --json      # one JSON object on stdout instead of the table

Exits 0 when every answer matched the document and every task completed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
from loopback import free_port
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from qortex.kinds.sentiment import SentimentKind
from qortex.protocol import messages as m
from qortex.protocol.client import ClientSession
from qortex.signing import Signer, hello_message, result_message

API_KEY = "fault-campaign-key-0123456789"
SOFTWARE = "qortex-fault/1"
REPLICAS = 3
# The one knob for a slow or busy machine (the test suite's own): every deadline
# the campaign waits on, and the coordinator's timing settings, stretch with it.
SCALE = float(os.environ.get("QORTEX_TEST_TIMEOUT_SCALE", "1"))
LEASE = 2.0 * SCALE
HEARTBEAT = 1.0 * SCALE
HANDSHAKE = 2.0 * SCALE
MAX_MESSAGE = 1024 * 1024
MAX_REQUEST = 4 * 1024 * 1024
SILENCE = 3 * HEARTBEAT
SEND_QUEUE = 4096  # unread frames the coordinator keeps for a miner (§10)
UNREAD_RCVBUF = 16 * 1024
UNREAD_ARRAY = 700  # results per message for the unread flood
#: A task that does not exist, for microtask ids of the right shape (``<uuid>:<index>``).
NO_TASK = "00000000-0000-4000-8000-000000000000"
MINER_RATE = 2000  # frames a second a miner may send (§11 4010), set explicitly below
MINER_BURST = 4000
KIND = SentimentKind()

try:
    _libc: Any = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:  # not Linux: children are still ended in ``finally``
    _libc = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _libc is not None:
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def tweets(rng: random.Random, count: int) -> list[str]:
    """Varied tweets: positive, negative, negated, neutral, emoji and non-ASCII ones."""
    subjects = ["this phone", "the update", "my team", "the weather", "this café", "lunch 🍕"]
    verdicts = [
        "is great",
        "is awful",
        "is not bad",
        "is fine I guess",
        "made me happy",
        "sucks",
        "isn't helpful",
        "was never boring",
        "is on Thursday",
    ]
    extras = [
        "",
        " today",
        " honestly",
        "!!",
        " lol",
        " #fail",
        " 😍",
        " \u2019don\u2019t like it\u2019",
    ]
    return [
        f"{rng.choice(subjects)} {rng.choice(verdicts)}{rng.choice(extras)} {rng.randrange(10**6)}"
        for _ in range(count)
    ]


def unread_bound(frame_bytes: int) -> int:
    """Frames a non-reading miner may be sent before 4008: the queue, plus what buffers hold.

    Generous on purpose: the server's socket send buffer at its largest, the
    client's (capped) receive buffer and both sides' transport buffers, all
    counted as full of frames of ``frame_bytes``.
    """
    try:
        wmem = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        wmem = 4 * 2**20
    buffered = wmem + 2 * UNREAD_RCVBUF + 4 * 64 * 1024
    return SEND_QUEUE + buffered // frame_bytes


async def lease_over(holder: Peer, assign: m.Assign) -> bool:
    """Whether ``assign`` has ended (cancelled to its holder, or past its deadline).

    Asked only to judge an answer that would be wrong for a live copy, so the
    short wait for a cancel still on its way costs nothing on the usual path.
    """
    return bool(
        await holder.wait(
            lambda: (
                assign.assignment_id in holder.cancels or time.time() >= assign.deadline_ms / 1000
            ),
            1.0,
        )
    )


async def over_unless(got: str, holder: Peer, assign: m.Assign) -> bool:
    """For a copy expected live: if the answer says it is over, whether it really was."""
    return got == "refused unknown_assignment" and await lease_over(holder, assign)


def live(assign: m.Assign, margin: float = 0.3) -> bool:
    """Whether the lease is surely still live (its deadline more than ``margin`` s away)."""
    return time.time() < assign.deadline_ms / 1000 - margin


def honest_output(assign: m.Assign) -> bytes:
    return msgspec.json.encode(KIND.compute(msgspec.json.decode(assign.input)))


#: assignment id -> the ``inputSha256`` its assign frame carried. Results are
#: signed over it (protocol 2); a made-up assignment has none and signs "".
INPUT_DIGESTS: dict[str, str] = {}


def signed(signer: Signer, assignment_id: str, microtask_id: str, output: bytes) -> str:
    """The protocol 2 signature of a result, over the digest of the input assigned."""
    digest = INPUT_DIGESTS.get(assignment_id, "")
    return signer.sign(result_message(assignment_id, microtask_id, digest, output))


def _next_microtask(microtask_id: str) -> str:
    """The id of the microtask after this one in the same task."""
    task, index = microtask_id.rsplit(":", 1)
    return f"{task}:{int(index) + 1}"


def result_frame(
    signer: Signer,
    assignment_id: str,
    microtask_id: str,
    output: bytes,
    signature: str | None = None,
    **extra: Any,
) -> str:
    if signature is None:
        signature = signed(signer, assignment_id, microtask_id, output)
    body = {
        "type": "result",
        "assignmentId": assignment_id,
        "microtaskId": microtask_id,
        "output": output.decode(),
        "signature": signature,
        **extra,
    }
    return json.dumps(body)


def hello_body(signer: Signer, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "hello",
        "publicKey": signer.public_hex,
        "protocol": 2,
        "software": SOFTWARE,
        "slots": 1,
        "kinds": ["sentiment"],
        "name": "fault",
    }
    body.update(over)
    return {k: v for k, v in body.items() if v is not _DROP}


_DROP = object()


# -- bookkeeping ------------------------------------------------------------------


@dataclass
class Check:
    doc: str
    expected: tuple[str, ...]
    answers: Counter[str] = field(default_factory=Counter)


class Tally:
    """One fault class: every bad input tried, how it was answered, what the doc says."""

    def __init__(self, key: str, title: str) -> None:
        self.key = key
        self.title = title
        self.checks: dict[str, Check] = {}
        self.unexpected: list[str] = []
        self.http_5xx = 0
        self.notes: Counter[str] = Counter()

    def expect(self, check: str, doc: str, got: str, *ok: str) -> bool:
        return self.expect_many(check, doc, Counter({got: 1}), *ok)

    def expect_many(self, check: str, doc: str, answers: Counter[str], *ok: str) -> bool:
        answers = +answers  # answers counted zero times were not given
        entry = self.checks.setdefault(check, Check(doc, ok))
        entry.answers.update(answers)
        bad = {a: n for a, n in answers.items() if a not in ok}
        for answer, n in bad.items():
            if len(self.unexpected) < 40:
                times = f" (x{n})" if n > 1 else ""
                self.unexpected.append(
                    f"{check}: got {answer!r}{times}; {doc} says {' or '.join(ok)}"
                )
        return not bad

    @property
    def tried(self) -> int:
        return sum(sum(c.answers.values()) for c in self.checks.values())

    @property
    def documented(self) -> int:
        return sum(n for c in self.checks.values() for a, n in c.answers.items() if a in c.expected)

    def as_json(self) -> dict[str, Any]:
        return {
            "class": self.key,
            "title": self.title,
            "tried": self.tried,
            "documented": self.documented,
            "unexpected": self.tried - self.documented,
            "http5xx": self.http_5xx,
            "checks": {
                name: {
                    "doc": c.doc,
                    "expected": list(c.expected),
                    "answers": dict(c.answers),
                }
                for name, c in self.checks.items()
            },
            "unexpectedDetails": self.unexpected,
            "notes": dict(self.notes),
        }


@dataclass
class Identity:
    """What one attacker key saw, to compare with what the server recorded about it."""

    tally: Tally
    refused: Counter[str] = field(default_factory=Counter)  # over the socket
    acks: int = 0
    http_accepted: int = 0
    # 401s, and 409s for assignments that are not live (no input digest to check
    # the signature by): not counted
    http_unattributed: int = 0
    # Closed for not reading (4008): answers still queued were dropped, by design,
    # so it saw fewer answers than the server counted.
    dropped_unread: bool = False


def _agree(ident: Identity, seen: tuple[int, int], counted: tuple[int, int] | None) -> bool:
    """The server's counts match what the miner saw (or exceed it, for a dropped reader)."""
    if counted is None or seen == counted:
        return counted is not None
    return ident.dropped_unread and all(c >= s for s, c in zip(seen, counted, strict=True))


# -- one attacker connection ------------------------------------------------------


class Peer:
    """A raw miner socket: sends whatever it is told, records everything it receives."""

    def __init__(
        self,
        campaign: Campaign,
        tally: Tally,
        signer: Signer | None = None,
        slots: int = 1,
    ) -> None:
        self.c = campaign
        self.tally = tally
        self.signer = signer or Signer()
        self.slots = slots
        self.session = ClientSession(self.signer, slots, ["sentiment"], SOFTWARE, tally.key)
        self.identity = campaign.identity(self.signer, tally)
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.beats: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed_at = 0.0
        self.opened_at = 0.0
        self.sent_at = 0.0  # when the last frame went out: the server heard nothing since
        self.nonce: str | None = None
        self.welcome: dict[str, Any] | None = None
        self.heartbeats = 0
        self.heartbeat_ms: list[int] = []  # the server's clock in each heartbeat reply
        self.heartbeats_before_welcome = 0
        self.assigns: dict[str, m.Assign] = {}
        self.assign_order: list[str] = []
        self.verdicts: dict[str, list[str]] = {}
        self.cancels: dict[str, tuple[str, float]] = {}
        self.frames = 0
        self.messages = 0
        self._changed = asyncio.Event()

    # -- plumbing

    async def open(self, rcvbuf: int | None = None) -> Peer:
        """Connect; ``rcvbuf`` caps the kernel's receive buffer (for a miner that stops reading)."""
        sock = None
        if rcvbuf is not None:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.c.port))
        self.ws = await connect(
            self.c.ws_url,
            sock=sock,
            max_size=None,
            open_timeout=10,
            ping_interval=None,
            close_timeout=2,
            compression=None,
            proxy=None,
        )
        self.opened_at = time.time()
        self.reader = asyncio.create_task(self._read())
        self.c.peers.append(self)
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                self._on(raw)
        except ConnectionClosed:
            pass
        finally:
            rcvd = self.ws.protocol.close_rcvd
            self.close_code = rcvd.code if rcvd is not None else 1006
            self.close_reason = rcvd.reason if rcvd is not None else ""
            self.closed_at = time.time()
            self.closed.set()
            self._changed.set()

    def _on(self, raw: str | bytes) -> None:
        """One message: a frame, or an array of frames handled in order (§1)."""
        self.messages += 1
        message = json.loads(raw)
        for frame in message if isinstance(message, list) else [message]:
            self._frame(frame)
        self._changed.set()

    def _frame(self, frame: dict[str, Any]) -> None:
        now = time.time()
        self.frames += 1
        kind = frame.get("type")
        if kind == "heartbeat":
            self.heartbeats += 1
            self.heartbeat_ms.append(int(frame.get("timeMs") or 0))
            if self.welcome is None:
                self.heartbeats_before_welcome += 1
        elif kind == "challenge":
            self.nonce = frame["nonce"]
        elif kind == "welcome":
            self.welcome = frame
        elif kind == "assign":
            assign = m.server_decoder.decode(json.dumps(frame))
            assert isinstance(assign, m.Assign)
            self.assigns[assign.assignment_id] = assign
            INPUT_DIGESTS[assign.assignment_id] = assign.input_sha256
            self.assign_order.append(assign.assignment_id)
        elif kind in ("ack", "refused"):
            aid = frame["assignmentId"]
            if kind == "ack":
                self.identity.acks += 1
                answer = "ack"
            else:
                self.identity.refused[frame["reason"]] += 1
                answer = f"refused {frame['reason']}"
            self.verdicts.setdefault(aid, []).append(answer)
        elif kind == "cancel":
            self.cancels[frame["assignmentId"]] = (frame.get("reason", "decided"), now)

    async def wait(self, predicate: Callable[[], Any], timeout: float) -> Any:
        """``predicate()`` once it is true, or its last (false) value after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout * SCALE
        while True:
            value = predicate()
            if value or self.closed.is_set():
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                return value
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.1))

    async def send(self, data: str | bytes, text: bool | None = None) -> bool:
        assert self.ws is not None
        self.sent_at = time.time()
        try:
            await self.ws.send(data, text=text)
        except ConnectionClosed:
            return False
        return True

    async def close(self) -> None:
        if self.beats is not None:
            self.beats.cancel()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 3)
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.reader, 3)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame, as a crashed miner would."""
        if self.beats is not None:
            self.beats.cancel()
        assert self.ws is not None
        self.ws.transport.abort()

    # -- conversation

    async def handshake(self) -> bool:
        await self.send(self.session.hello_frame().decode())
        if not await self.wait(lambda: self.nonce is not None, 10):
            return False
        await self.send(json.dumps({"type": "answer", "signature": self.sign_nonce()}))
        return bool(await self.wait(lambda: self.welcome is not None, 10))

    def sign_nonce(self, signer: Signer | None = None) -> str:
        assert self.nonce is not None
        return (signer or self.signer).sign(hello_message(self.nonce))

    def heartbeat(self, every: float = HEARTBEAT / 2) -> None:
        async def beat() -> None:
            with contextlib.suppress(ConnectionClosed):
                while True:
                    assert self.ws is not None
                    self.sent_at = time.time()
                    await self.ws.send(ClientSession.heartbeat_frame(int(time.time() * 1000)))
                    await asyncio.sleep(every)

        self.beats = asyncio.create_task(beat())

    async def take(self, count: int, timeout: float = 10.0, strict: bool = False) -> list[m.Assign]:
        """The first ``count`` assignments received (fewer if none come in time).

        ``strict`` takes only copies of quorum-3 tasks: with three replicas, such
        a copy stays live until its deadline, whatever the other miners do.
        """

        def chosen() -> list[m.Assign]:
            found = [self.assigns[aid] for aid in self.assign_order]
            if strict:
                found = [a for a in found if a.task_id in self.c.strict]
            return found[:count]

        await self.wait(lambda: len(chosen()) >= count, timeout)
        return chosen()

    async def verdict(self, assignment_id: str, index: int = 0, timeout: float = 5.0) -> str:
        """The ``index``-th answer to results for ``assignment_id``: ack, refused x, or none."""
        got = await self.wait(lambda: len(self.verdicts.get(assignment_id, ())) > index, timeout)
        if got:
            return self.verdicts[assignment_id][index]
        if self.closed.is_set():
            return f"close {self.close_code}"
        return "no answer"

    async def result(self, assignment_id: str, text: str, index: int = 0) -> str:
        """Send one result frame and wait for its answer."""
        if not await self.send(text):
            return f"close {self.close_code}"
        return await self.verdict(assignment_id, index)

    async def closing(self, timeout: float) -> str:
        """How the connection ended within ``timeout``: ``close <code>`` or ``open``."""
        await self.wait(self.closed.is_set, timeout)
        return f"close {self.close_code}" if self.closed.is_set() else "open"

    async def alive(self) -> str:
        """``open`` if a heartbeat is still answered, else how the connection ended."""
        before = self.heartbeats
        if not await self.send(ClientSession.heartbeat_frame(int(time.time() * 1000))):
            return f"close {self.close_code}"
        if await self.wait(lambda: self.heartbeats > before, 5):
            return "open"
        return f"close {self.close_code}" if self.closed.is_set() else "no heartbeat reply"


# -- the campaign -----------------------------------------------------------------


class Campaign:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.rng = random.Random(args.seed)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws/miner"
        self.db = tmp / "qortex.db"
        self.env = {
            **os.environ,
            "QORTEX_API_KEY": API_KEY,
            "QORTEX_DB": str(self.db),
            "QORTEX_PORT": str(self.port),
            "QORTEX_REPLICAS": str(REPLICAS),
            "QORTEX_LEASE_SECONDS": str(LEASE),
            "QORTEX_HEARTBEAT_SECONDS": str(HEARTBEAT),
            "QORTEX_HANDSHAKE_SECONDS": str(HANDSHAKE),
            # The stall and late classes hold copies past their deadline to see them
            # expire; with companions on, the honest miners would decide them first.
            "QORTEX_PATIENCE_SECONDS": "0",
            # A miner that stops reading cannot answer pings either; keep the keepalive
            # (close 1011 after 20 s without a pong, §9) out of the unread flood's window.
            "QORTEX_WS_PING_SECONDS": "120",
            # The client's own request rate is not under test here (it polls every task).
            "QORTEX_API_RATE": "100000",
            "QORTEX_API_BURST": "100000",
            "QORTEX_MINER_RATE": str(MINER_RATE),
            "QORTEX_MINER_BURST": str(MINER_BURST),
            "QORTEX_LOG_LEVEL": "warning",
            "XDG_CONFIG_HOME": str(tmp / "config"),
        }
        self.server: asyncio.subprocess.Process | None = None
        self.miners: asyncio.subprocess.Process | None = None
        self.http: httpx.AsyncClient | None = None
        self.tally: dict[str, Tally] = {}
        self.identities: dict[str, Identity] = {}
        self.peers: list[Peer] = []
        self.tasks: dict[str, list[str]] = {}
        self.strict: set[str] = set()  # tasks with quorum 3 of 3 replicas
        self.stream_5xx = 0
        self.submit_errors: Counter[str] = Counter()
        self.db_checks: list[tuple[Tally, str, str, str, tuple[str, ...]]] = []
        self.signature_checks: list[tuple[Tally, str, str]] = []
        self.stored_checks: list[tuple[Tally, str, str, str, bool]] = []
        self.stop_stream = asyncio.Event()
        self.honest: dict[str, Any] = {}
        self.server_side: dict[str, Any] = {}

    # -- processes

    async def spawn(self, argv: list[str], log: str) -> asyncio.subprocess.Process:
        with open(self.tmp / log, "ab") as out:
            return await asyncio.create_subprocess_exec(
                *argv,
                cwd=self.tmp,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                preexec_fn=_die_with_parent,
            )

    async def start(self) -> None:
        self.server = await self.spawn([sys.executable, "-m", "qortex", "serve"], "serve.log")
        self.http = httpx.AsyncClient(base_url=self.url, headers={"x-api-key": API_KEY}, timeout=20)
        deadline = time.monotonic() + 30 * SCALE
        while True:
            if self.server.returncode is not None:
                raise RuntimeError(f"server exited: {self.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                if (await self.http.get("/health", timeout=1)).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not become healthy: {self.log_tail()}")
            await asyncio.sleep(0.05)
        argv = [sys.executable, "-m", "qortex", "miner", "--url", self.url, "--count", "3"]
        argv += ["--key-dir", str(self.tmp / "honest-keys")]
        self.miners = await self.spawn(argv, "miners.log")

    def server_rss(self) -> int:
        """The server's resident memory in bytes (Linux), 0 if unknown."""
        assert self.server is not None
        try:
            text = Path(f"/proc/{self.server.pid}/status").read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def log_tail(self) -> str:
        path = self.tmp / "serve.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    async def end(self, proc: asyncio.subprocess.Process | None, sig: int) -> None:
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def shutdown(self) -> None:
        for peer in self.peers:
            if not peer.closed.is_set():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(peer.close(), 4)
        await self.end(self.miners, signal.SIGINT)
        await self.end(self.server, signal.SIGTERM)
        if self.http is not None:
            await self.http.aclose()

    # -- http

    async def request(self, tally: Tally | None, method: str, path: str, **kw: Any) -> Any:
        """One HTTP request (a 429 is waited out and retried a few times); 5xx are counted."""
        assert self.http is not None
        for _ in range(5):
            response = await self.http.request(method, path, **kw)
            if response.status_code != 429:
                break
            await asyncio.sleep(min(5.0, float(response.headers.get("retry-after") or 1)))
        if response.status_code >= 500:
            if tally is None:
                self.stream_5xx += 1
            else:
                tally.http_5xx += 1
        return response

    # -- identities

    def identity(self, signer: Signer, tally: Tally) -> Identity:
        return self.identities.setdefault(signer.miner_id, Identity(tally))

    def new_tally(self, key: str, title: str) -> Tally:
        return self.tally.setdefault(key, Tally(key, title))

    def expect_closed_as(self, tally: Tally, check: str, assignment_id: str, *status: str) -> None:
        """After the run, the log must say the assignment was taken back as ``status``
        (leases have no rows: their ``microtask.reassigned`` is their record)."""
        self.db_checks.append((tally, check, "§5.5, §8", assignment_id, status))

    # -- the honest stream

    async def stream(self) -> None:
        """Submit a task every 0.25 s until told to stop (at least a few).

        Every other task asks for a quorum of 3 of its 3 replicas, so that a copy
        an attacker holds stays live until its deadline (nothing can decide the
        microtask without it); the others use the default quorum of 2.
        """
        rng = random.Random(self.args.seed + 1)
        submitted = 0
        while not self.stop_stream.is_set() or submitted < 4:
            texts = tweets(rng, 5)
            body: dict[str, Any] = {"tweets": texts}
            if submitted % 2:
                body.update(replicas=REPLICAS, quorum=REPLICAS)
            try:
                response = await self.request(None, "POST", "/api/v1/tasks", json=body)
            except httpx.HTTPError as exc:
                self.submit_errors[type(exc).__name__] += 1
            else:
                if response.status_code == 201:
                    self.tasks[response.json()["taskId"]] = texts
                    if submitted % 2:
                        self.strict.add(response.json()["taskId"])
                else:
                    self.submit_errors[f"HTTP {response.status_code}"] += 1
            submitted += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_stream.wait(), 0.25)

    async def honest_miners_connected(self) -> None:
        """Wait until the three honest CLI miners are connected (or give up after a while)."""
        deadline = time.monotonic() + 30 * SCALE
        while time.monotonic() < deadline:
            health = await self.request(None, "GET", "/health")
            if health.status_code == 200 and health.json().get("minersConnected", 0) >= 3:
                return
            await asyncio.sleep(0.05)

    async def closes(self, code: int) -> int:
        """How many miner sockets the coordinator has closed with ``code`` (``/metrics``)."""
        text = (await self.request(None, "GET", "/metrics")).text
        for line in text.splitlines():
            if line.startswith(f'qortex_miner_closes_total{{code="{code}"}} '):
                return int(float(line.split()[-1]))
        return 0

    async def refused(self, reason: str) -> int:
        """How many results the coordinator has refused for ``reason`` (``/metrics``)."""
        text = (await self.request(None, "GET", "/metrics")).text
        for line in text.splitlines():
            if line.startswith(f'qortex_results_refused_total{{reason="{reason}"}} '):
                return int(float(line.split()[-1]))
        return 0

    async def wait_for_honest_tasks(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds * SCALE
        status: dict[str, Any] = {}
        while True:
            for task_id in self.tasks:
                if status.get(task_id, {}).get("status") in ("completed", "failed"):
                    continue
                response = await self.request(None, "GET", f"/api/v1/tasks/{task_id}")
                if response.status_code == 200:
                    status[task_id] = response.json()
            done = sum(1 for s in status.values() if s.get("status") in ("completed", "failed"))
            if done == len(self.tasks) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        completed = wrong = 0
        states: Counter[str] = Counter()
        for task_id, texts in self.tasks.items():
            body = status.get(task_id, {})
            states[body.get("status", "unknown")] += 1
            if body.get("status") != "completed":
                continue
            completed += 1
            got = [(o["tweet"], o["label"]) for o in body.get("output") or []]
            if got != [(t, KIND.compute(t)) for t in texts]:
                wrong += 1
        self.honest = {
            "submitted": len(self.tasks),
            "completed": completed,
            "wrongLabels": wrong,
            "states": dict(states),
            "submitErrors": dict(self.submit_errors),
            "http5xx": self.stream_5xx,
        }

    # -- after the run: what the server recorded

    async def check_miner_counts(self) -> None:
        """``refused``/``accepted`` of each attacker identity in ``GET /api/v1/miners``."""
        deadline = time.monotonic() + 10
        while True:
            rows: dict[str, dict[str, Any]] = {}
            offset = 0
            while True:
                response = await self.request(
                    None, "GET", "/api/v1/miners", params={"limit": 1000, "offset": offset}
                )
                page = response.json()["miners"]
                rows.update({row["minerId"]: row for row in page})
                if len(page) < 1000:
                    break
                offset += 1000
            diffs = {}
            for miner_id, ident in self.identities.items():
                want = (
                    sum(n for r, n in ident.refused.items() if r != "withdrawn"),
                    ident.acks + ident.http_accepted,
                )
                row = rows.get(miner_id)
                have = (row["refused"], row["accepted"]) if row else None
                diffs[miner_id] = (want, have)
            if (
                all(
                    _agree(self.identities[mid], w, h)
                    for mid, (w, h) in diffs.items()
                    if h is not None
                )
                or time.monotonic() > deadline
            ):
                break
            await asyncio.sleep(0.25)
        honest = [r for mid, r in rows.items() if mid not in self.identities]
        self.server_side["honestMiners"] = [
            {"minerId": r["minerId"], "accepted": r["accepted"], "refused": r["refused"]}
            for r in honest
        ]
        for miner_id, (want, have) in diffs.items():
            tally = self.identities[miner_id].tally
            if have is None:
                # Never completed a handshake (a refused hello, a bad answer): never recorded.
                continue
            ok = _agree(self.identities[miner_id], want, have)
            got = "match" if ok else f"server {have} != seen {want}"
            tally.expect(
                "GET /api/v1/miners refused/accepted = answers seen",
                "§7 (refusals counted except withdrawn and HTTP bad_signature)",
                got,
                "match",
            )

    def check_database(self) -> None:
        """Events and assignment rows, read from the file once the server has stopped."""
        conn = sqlite3.connect(self.db)
        try:
            events: dict[str, Counter[str]] = {}
            for miner_id, data in conn.execute(
                "SELECT miner_id, data FROM events WHERE type = 'result.refused'"
            ):
                events.setdefault(miner_id, Counter())[json.loads(data)["reason"]] += 1
            for miner_id, ident in self.identities.items():
                seen = Counter({r: n for r, n in ident.refused.items() if r != "withdrawn"})
                have = events.get(miner_id, Counter())
                ok = +have == +seen or (ident.dropped_unread and not +seen - +have)
                got = "match" if ok else f"events {dict(have)} != seen {dict(seen)}"
                ident.tally.expect(
                    "result.refused events per reason = refusals seen",
                    "§7",
                    got,
                    "match",
                )
            for tally, check, doc, assignment_id, status in self.db_checks:
                row = conn.execute(
                    "SELECT json_extract(data, '$.reason') FROM events"
                    " WHERE type = 'microtask.reassigned'"
                    " AND json_extract(data, '$.assignmentId') = ?",
                    (assignment_id,),
                ).fetchone()
                tally.expect(check, doc, f"closed {row[0]}" if row else "no event", *status)
            for tally, assignment_id, _sent in self.signature_checks:
                row = conn.execute(
                    "SELECT signature FROM results WHERE assignment_id = ?", (assignment_id,)
                ).fetchone()
                stored = row[0] if row else None
                ok = stored is not None and len(stored) == 128 and stored == stored.lower()
                tally.expect(
                    "stored signature is 128 lowercase hex",
                    "§5.6, §13.1 proof",
                    "canonical" if ok else f"stored {stored!r:.40}",
                    "canonical",
                )
            for tally, check, doc, assignment_id, want in self.stored_checks:
                row = conn.execute(
                    "SELECT 1 FROM results WHERE assignment_id = ?", (assignment_id,)
                ).fetchone()
                got = "stored" if row else "not stored"
                tally.expect(check, doc, got, "stored" if want else "not stored")
            reassigned: Counter[str] = Counter()
            for (data,) in conn.execute(
                "SELECT data FROM events WHERE type = 'microtask.reassigned'"
            ):
                reassigned[json.loads(data)["reason"]] += 1
            refusals: Counter[str] = Counter()
            for (data,) in conn.execute("SELECT data FROM events WHERE type = 'result.refused'"):
                refusals[json.loads(data)["reason"]] += 1
            closes: Counter[str] = Counter()
            for (data,) in conn.execute(
                "SELECT data FROM events WHERE type = 'miner.disconnected'"
            ):
                closes[json.loads(data)["reason"][:40]] += 1
            self.server_side["refusedEvents"] = dict(refusals)
            self.server_side["reassignedEvents"] = dict(reassigned)
            self.server_side["disconnectReasons"] = dict(closes.most_common(15))
        finally:
            conn.close()

    def check_server_log(self) -> None:
        """Errors the server logged. uvicorn's own report of a text message that is not
        UTF-8 (it then closes 1007, as documented) is counted apart: it is not Qortex's."""
        text = (self.tmp / "serve.log").read_text(errors="replace")
        lines = text.splitlines()
        utf8 = sum("Invalid UTF-8 sequence received from client" in line for line in lines)
        crashes = [line for line in lines if "Exception in ASGI application" in line]
        errors = [
            line
            for line in lines
            if line.startswith("ERROR") or " ERROR " in line
            if "Invalid UTF-8 sequence received from client" not in line
        ]
        causes: Counter[str] = Counter()
        crashing = False
        for line in lines:
            if "Exception in ASGI application" in line:
                crashing = True
            elif crashing and line and not line.startswith((" ", "Traceback")):
                head = line.split(":")[0]
                if head.endswith(("Error", "Exception")):
                    causes[head] += 1
                    crashing = False
        self.server_side["logErrors"] = len(errors)
        self.server_side["handlerCrashes"] = len(crashes)
        self.server_side["crashCauses"] = dict(causes)
        self.server_side["uvicornInvalidUtf8Reports"] = utf8
        self.server_side["logErrorSample"] = errors[:5]
        self.server_side["exitCode"] = self.server.returncode if self.server else None


# -- fault classes ----------------------------------------------------------------
#
# Each takes the campaign, its tally and a round number; every attacker uses
# fresh identities, so rounds do not interfere with each other.


async def ready_peer(c: Campaign, t: Tally, slots: int = 1, signer: Signer | None = None) -> Peer:
    peer = await Peer(c, t, signer, slots).open()
    if not await peer.handshake():
        t.notes["handshake failed"] += 1
    return peer


async def disconnect_mid_lease(c: Campaign, t: Tally, rnd: int) -> None:
    for variant in ("abort", "close"):
        signer = Signer()
        first = await ready_peer(c, t, 2, signer)
        first.heartbeat()
        held = await first.take(1, timeout=8, strict=True)
        if not held:
            t.notes["no work received"] += 1
            await first.close()
            continue
        held = await first.take(2, timeout=0.3, strict=True)
        if variant == "abort":
            first.abort()
        else:
            await first.close()
        await asyncio.sleep(0.2)
        again = await ready_peer(c, t, 1, signer)
        for assign in held:
            text = result_frame(
                signer, assign.assignment_id, assign.microtask_id, honest_output(assign)
            )
            got = await again.result(assign.assignment_id, text)
            t.expect(
                f"result for a lease released by {variant}, on a new connection",
                "§8, §7 withdrawn",
                got,
                "refused withdrawn",
            )
            c.expect_closed_as(
                t, "dropped lease closed as released", assign.assignment_id, ("closed released")
            )
        await again.close()


async def stall_past_deadline(c: Campaign, t: Tally, rnd: int) -> None:
    async def one() -> None:
        peer = await ready_peer(c, t, 2)
        peer.heartbeat()
        held = await peer.take(1, timeout=6)
        if not held:
            t.notes["no work received"] += 1
            await peer.close()
            return
        started = time.time()
        # Hold everything for longer than both a lease and the silence limit.
        await asyncio.sleep(max(LEASE, SILENCE) + 1.5)
        for aid in list(peer.assign_order):
            assign = peer.assigns[aid]
            deadline = assign.deadline_ms / 1000
            if deadline + 1.5 > time.time():
                continue  # issued late in the window; its deadline has not been reached yet
            cancel = peer.cancels.get(aid)
            if cancel is None:
                got = "no cancel"
            elif cancel[0] != "expired":
                got = f"cancel {cancel[0]}"  # a decided copy may be cancelled first: fine
            elif cancel[1] < deadline - 0.05:
                got = "cancel expired before the deadline"
            elif cancel[1] > deadline + 1.5:
                got = f"cancel expired {cancel[1] - deadline:.1f} s after the deadline"
            else:
                got = "cancel expired"
            t.expect(
                "held lease is cancelled at its deadline",
                "§5.5, §8 expired",
                got,
                "cancel expired",
                "cancel decided",
                "cancel inconclusive",
            )
            if cancel is not None and cancel[0] == "expired":
                c.expect_closed_as(t, "stalled lease closed as expired", aid, "closed expired")
        t.expect(
            f"stalled miner sending heartbeats stays connected ({time.time() - started:.0f} s)",
            "§9",
            await peer.alive(),
            "open",
        )
        per_microtask = Counter(peer.assigns[aid].microtask_id for aid in peer.assign_order)
        t.expect(
            "an expired microtask is never leased to the same miner again",
            "§5.5",
            "never again" if max(per_microtask.values()) == 1 else "leased again",
            "never again",
        )
        await peer.close()

    await asyncio.gather(one(), one())


async def silent(c: Campaign, t: Tally, rnd: int) -> None:
    async def timed(check: str, peer: Peer, start: float, limit: float, slack: float) -> None:
        got = await peer.closing(limit + slack + 2)
        if got.startswith("close") and peer.closed_at - start < limit - 0.2:
            got += f" early ({peer.closed_at - start:.1f} s)"
        elif got.startswith("close") and peer.closed_at - start > limit + slack * SCALE:
            got += f" late ({peer.closed_at - start:.1f} s)"
        t.expect(check, "§9, §11 4009", got, "close 4009")

    async def nothing() -> None:
        peer = await Peer(c, t).open()
        await timed("silent after opening", peer, peer.opened_at, HANDSHAKE, 1.0)

    async def hello_only() -> None:
        peer = await Peer(c, t).open()
        await peer.send(peer.session.hello_frame().decode())
        await timed("hello but no answer", peer, peer.opened_at, HANDSHAKE, 1.0)

    async def heartbeats_before_welcome() -> None:
        peer = await Peer(c, t).open()
        await peer.send(peer.session.hello_frame().decode())
        for _ in range(int(HANDSHAKE * 4) + 2):
            if not await peer.send(ClientSession.heartbeat_frame(1)):
                break
            await asyncio.sleep(0.25)
        await timed("heartbeats do not extend the handshake", peer, peer.opened_at, HANDSHAKE, 1.0)
        t.expect(
            "heartbeats before welcome get no reply",
            "§4",
            f"{peer.heartbeats_before_welcome} replies",
            "0 replies",
        )

    async def after_welcome() -> None:
        peer = await ready_peer(c, t, 1)
        # Silence is counted from the last frame the server received (the answer),
        # which left here no later than ``sent_at``; not from when the welcome was read.
        await timed("silent after welcome", peer, peer.sent_at, SILENCE, 1.5)

    await asyncio.gather(nothing(), hello_only(), heartbeats_before_welcome(), after_welcome())


async def same_key_two_sockets(c: Campaign, t: Tally, rnd: int) -> None:
    async def sequential() -> None:
        signer = Signer()
        older = await ready_peer(c, t, 1, signer)
        older.heartbeat()
        held = await older.take(1, timeout=6, strict=True)
        newer = await ready_peer(c, t, 1, signer)
        t.expect(
            "older socket when the key authenticates again",
            "§1, §11 4004",
            await older.closing(3),
            "close 4004",
        )
        t.expect("newer socket keeps working", "§1", await newer.alive(), "open")
        for assign in held:
            text = result_frame(
                signer, assign.assignment_id, assign.microtask_id, honest_output(assign)
            )
            t.expect(
                "result for the older socket's lease, sent on the newer",
                "§7 withdrawn (same miner, new connection)",
                await newer.result(assign.assignment_id, text),
                "refused withdrawn",
            )
            c.expect_closed_as(
                t, "replaced socket's lease released", assign.assignment_id, "closed released"
            )
        await newer.close()

    async def simultaneous() -> None:
        signer = Signer()
        a, b = Peer(c, t, signer), Peer(c, t, signer)
        await asyncio.gather(a.open(), b.open())
        hello = a.session.hello_frame().decode()
        await asyncio.gather(a.send(hello), b.send(hello))
        await asyncio.gather(*(p.wait(lambda p=p: p.nonce, 5) for p in (a, b)))
        await asyncio.gather(
            a.send(json.dumps({"type": "answer", "signature": a.sign_nonce()})),
            b.send(json.dumps({"type": "answer", "signature": b.sign_nonce()})),
        )
        await asyncio.gather(a.closing(2), b.closing(2))
        outcome = sorted([await a.alive(), await b.alive()])
        t.expect(
            "two sockets authenticate at once",
            "§1 (the newer wins, the older closes 4004)",
            " + ".join(outcome),
            "close 4004 + open",
        )
        welcomed = sum(p.welcome is not None for p in (a, b))
        t.expect(
            "both got a welcome before one was replaced", "§4", f"{welcomed} welcomes", "2 welcomes"
        )
        await asyncio.gather(a.close(), b.close())

    await asyncio.gather(sequential(), simultaneous())


# (stage, name, frames, expected answer(s), field the close reason must name)
Malformed = tuple[str, str, Sequence[Any], str | tuple[str, ...], str | None]


def malformed_cases(signer: Signer, rng: random.Random, rnd: int) -> list[Malformed]:
    pk = signer.public_hex
    h = hello_body
    cases: list[Malformed] = [
        ("fresh", "not JSON", ["hello?"], "close 4000", None),
        ("fresh", "JSON array", ["[1, 2]"], "close 4000", None),
        ("fresh", "JSON string", ['"hello"'], "close 4000", None),
        ("fresh", "empty object", ["{}"], "close 4000", None),
        ("fresh", "empty text", [""], "close 4000", None),
        ("fresh", "unknown type", [json.dumps({"type": "bogus"})], "close 4000", None),
        (
            "fresh",
            "type is case-sensitive",
            [json.dumps(h(signer, type="HELLO"))],
            "close 4000",
            None,
        ),
        ("fresh", "type not a string", [json.dumps(h(signer, type=1))], "close 4000", None),
        (
            "fresh",
            "hello without publicKey",
            [json.dumps(h(signer, publicKey=_DROP))],
            "close 4000",
            "publicKey",
        ),
        (
            "fresh",
            "hello without kinds",
            [json.dumps(h(signer, kinds=_DROP))],
            "close 4000",
            "kinds",
        ),
        ("fresh", "slots as a string", [json.dumps(h(signer, slots="2"))], "close 4000", "slots"),
        ("fresh", "slots as 2.0", [json.dumps(h(signer, slots=2.0))], "close 4000", "slots"),
        ("fresh", "slots as true", [json.dumps(h(signer, slots=True))], "close 4000", "slots"),
        (
            "fresh",
            "kinds as a string",
            [json.dumps(h(signer, kinds="sentiment"))],
            "close 4000",
            "kinds",
        ),
        (
            "fresh",
            "kinds with a number",
            [json.dumps(h(signer, kinds=["sentiment", 3]))],
            "close 4000",
            "kinds",
        ),
        ("fresh", "name null", [json.dumps(h(signer, name=None))], "close 4000", "name"),
        (
            "fresh",
            "protocol as a string",
            [json.dumps(h(signer, protocol="1"))],
            "close 4000",
            "protocol",
        ),
        (
            "fresh",
            "publicKey as a number",
            [json.dumps(h(signer, publicKey=12))],
            "close 4000",
            "publicKey",
        ),
        ("fresh", "protocol 1", [json.dumps(h(signer, protocol=1))], "close 4003", None),
        ("fresh", "protocol 3", [json.dumps(h(signer, protocol=3))], "close 4003", None),
        ("fresh", "protocol 0", [json.dumps(h(signer, protocol=0))], "close 4003", None),
        (
            "fresh",
            "publicKey not hex",
            [json.dumps(h(signer, publicKey="zz" * 32))],
            "close 4005",
            None,
        ),
        (
            "fresh",
            "publicKey too short",
            [json.dumps(h(signer, publicKey=pk[:62]))],
            "close 4005",
            None,
        ),
        (
            "fresh",
            "publicKey too long",
            [json.dumps(h(signer, publicKey=pk + "00"))],
            "close 4005",
            None,
        ),
        (
            "fresh",
            "publicKey with spaces",
            [json.dumps(h(signer, publicKey=" " + pk[:63]))],
            "close 4005",
            None,
        ),
        ("fresh", "slots 0", [json.dumps(h(signer, slots=0))], "close 4005", None),
        ("fresh", "slots 65", [json.dumps(h(signer, slots=65))], "close 4005", None),
        ("fresh", "slots -1", [json.dumps(h(signer, slots=-1))], "close 4005", None),
        ("fresh", "kinds empty", [json.dumps(h(signer, kinds=[]))], "close 4005", None),
        ("fresh", "no kind in common", [json.dumps(h(signer, kinds=["nope"]))], "close 4005", None),
        (
            "fresh",
            "protocol checked before publicKey",
            [json.dumps(h(signer, protocol=3, publicKey="x"))],
            "close 4003",
            None,
        ),
        (
            "fresh",
            "answer before hello",
            [json.dumps({"type": "answer", "signature": "00"})],
            "close 4002",
            None,
        ),
        (
            "fresh",
            "result before hello",
            [result_frame(signer, "a" * 24, f"{NO_TASK}:0", b'"positive"')],
            "close 4002",
            None,
        ),
        ("fresh", "binary frame, not UTF-8", [b"\xff\xfe\x00garbage"], "close 4000", None),
        (
            "fresh",
            "binary hello, publicKey not UTF-8",
            [b'{"type":"hello","publicKey":"\xc3\x28","kinds":["sentiment"]}'],
            "close 4000",
            None,
        ),
        ("fresh", "array nested 100000 deep", ["[" * 100_000 + "]" * 100_000], "close 4000", None),
        (
            "fresh",
            "hello with a field nested 100000 deep",
            [json.dumps(h(signer))[:-1] + ',"x":' + "[" * 100_000 + "]" * 100_000 + "}"],
            "close 4000",
            None,
        ),
        ("fresh", "text frame, not UTF-8", [("text", b'{"type":"\xff"}')], "close 1007", None),
        ("hello", "second hello", [json.dumps(h(signer))], "close 4002", None),
        (
            "hello",
            "result before welcome",
            [result_frame(signer, "a" * 24, f"{NO_TASK}:0", b'"positive"')],
            "close 4002",
            None,
        ),
        (
            "hello",
            "answer without signature",
            [json.dumps({"type": "answer"})],
            "close 4000",
            "signature",
        ),
        (
            "hello",
            "answer signature a number",
            [json.dumps({"type": "answer", "signature": 7})],
            "close 4000",
            "signature",
        ),
        (
            "hello",
            "unknown type while awaiting the answer",
            [json.dumps({"type": "x"})],
            "close 4000",
            None,
        ),
        ("ready", "second hello after welcome", [json.dumps(h(signer))], "close 4002", None),
        (
            "ready",
            "answer after welcome",
            [json.dumps({"type": "answer", "signature": "00"})],
            "close 4002",
            None,
        ),
        ("ready", "unknown type after welcome", [json.dumps({"type": "ping"})], "close 4000", None),
        (
            "ready",
            "server frame type sent by the miner",
            [json.dumps({"type": "ack", "assignmentId": "x"})],
            "close 4000",
            None,
        ),
        ("ready", "not JSON after welcome", ["{not json"], "close 4000", None),
        ("ready", "truncated JSON", ['{"type":"heartbeat","timeMs":1'], "close 4000", None),
        ("ready", "JSON number", ["42"], "close 4000", None),
        (
            "ready",
            "heartbeat timeMs a string",
            [json.dumps({"type": "heartbeat", "timeMs": "x"})],
            "close 4000",
            "timeMs",
        ),
        (
            "ready",
            "heartbeat timeMs 1.5",
            [json.dumps({"type": "heartbeat", "timeMs": 1.5})],
            "close 4000",
            "timeMs",
        ),
        (
            "ready",
            "heartbeat timeMs null",
            [json.dumps({"type": "heartbeat", "timeMs": None})],
            "close 4000",
            "timeMs",
        ),
        (
            "ready",
            "text frame, not UTF-8, after welcome",
            [("text", b"\xc3\x28")],
            "close 1007",
            None,
        ),
        (
            "ready",
            "binary result, output not UTF-8",
            [
                b'{"type":"result","assignmentId":"a","microtaskId":"b","output":"\xff",'
                b'"signature":"00"}'
            ],
            "close 4000",
            None,
        ),
        (
            "ready",
            "heartbeat with a field nested 100000 deep",
            ['{"type":"heartbeat","x":' + "[" * 100_000 + "]" * 100_000 + "}"],
            ("heartbeat", "close 4000"),  # valid JSON in an unknown field: ignore it, or refuse
            None,
        ),
        # Tolerated by the document: these must be answered normally, not closed over.
        (
            "ready",
            "heartbeat with unknown fields",
            [json.dumps({"type": "heartbeat", "timeMs": 1, "extra": {"a": [1]}})],
            "heartbeat",
            None,
        ),
        (
            "ready",
            "heartbeat in a binary frame",
            [b'{"type":"heartbeat","timeMs":1}'],
            "heartbeat",
            None,
        ),
        (
            "ready",
            "heartbeat without timeMs",
            [json.dumps({"type": "heartbeat"})],
            "heartbeat",
            None,
        ),
        (
            "ready",
            "heartbeat with a huge timeMs",
            [json.dumps({"type": "heartbeat", "timeMs": 10**30})],
            "heartbeat",
            None,
        ),
        (
            "ready",
            "fields in another order",
            ['{"timeMs":5,"type":"heartbeat"}'],
            "heartbeat",
            None,
        ),
        (
            "fresh",
            "heartbeat before hello, then hello",
            [json.dumps({"type": "heartbeat"}), json.dumps(h(signer))],
            "challenge",
            None,
        ),
        (
            "fresh",
            "uppercase publicKey",
            [json.dumps(h(signer, publicKey=pk.upper()))],
            "challenge",
            None,
        ),
        (
            "fresh",
            "duplicate and unknown kinds",
            [json.dumps(h(signer, kinds=["x", "sentiment", "sentiment"]))],
            "challenge",
            None,
        ),
        (
            "fresh",
            "long software and name",
            [json.dumps(h(signer, software="s" * 5000, name="n" * 5000))],
            "challenge",
            None,
        ),
    ]
    # Identifiers out of their format: 4000 before anything is looked up or stored.
    for bad in ("", "x", "a" * 10_000, "ünïcödé ✓ 🚀", "../../etc/passwd", "' OR 1=1 --"):
        frame = result_frame(signer, bad, f"{NO_TASK}:0", b'"positive"')
        cases.append(("ready", "assignmentId out of format", [frame], "close 4000", "assignmentId"))
        frame = result_frame(signer, "a" * 24, bad, b'"positive"')
        cases.append(("ready", "microtaskId out of format", [frame], "close 4000", "microtaskId"))
    # Results with one field removed or of the wrong type: 4000, naming the field.
    base = json.loads(result_frame(signer, "a" * 24, f"{NO_TASK}:0", b'"positive"'))
    wrong_values: list[Any] = [1, 2.5, True, None, [], {}, ["x"]]
    for name in ("assignmentId", "microtaskId", "output", "signature"):
        body = dict(base)
        del body[name]
        cases.append(("ready", f"result without {name}", [json.dumps(body)], "close 4000", name))
        body = dict(base)
        body[name] = rng.choice(wrong_values)
        cases.append(
            ("ready", f"result {name} of the wrong type", [json.dumps(body)], "close 4000", name)
        )
    # Random binary garbage: never a JSON object, always 4000.
    for _ in range(2 if rnd == 0 else 4):
        junk = rng.randbytes(rng.randint(1, 300))
        cases.append((rng.choice(["fresh", "ready"]), "random bytes", [junk], "close 4000", None))
    return cases


async def malformed_frames(c: Campaign, t: Tally, rnd: int) -> None:
    rng = random.Random(f"{c.args.seed}-malformed-{rnd}")
    cases = malformed_cases(Signer(), rng, rnd)
    gate = asyncio.Semaphore(6)

    async def run(case: Malformed) -> None:
        stage, name, frames, expected, field_name = case
        async with gate:
            peer = await Peer(c, t).open()  # a fresh key per socket: no 4004 between cases
            if stage in ("hello", "ready"):
                await peer.send(peer.session.hello_frame().decode())
                await peer.wait(lambda: peer.nonce, 5)
            if stage == "ready":
                await peer.send(json.dumps({"type": "answer", "signature": peer.sign_nonce()}))
                await peer.wait(lambda: peer.welcome, 5)
            before = (peer.heartbeats, peer.nonce is not None)
            for frame in frames:
                if isinstance(frame, tuple):
                    await peer.send(frame[1], text=True)
                else:
                    await peer.send(frame)
            ok_answers = (expected,) if isinstance(expected, str) else tuple(expected)
            if "heartbeat" in ok_answers:
                ok = await peer.wait(lambda: peer.heartbeats > before[0] or peer.closed.is_set(), 3)
                got = "heartbeat" if peer.heartbeats > before[0] else await peer.closing(0.5)
            elif "challenge" in ok_answers:
                ok = await peer.wait(lambda: peer.nonce is not None, 3)
                got = "challenge" if ok else await peer.closing(0.5)
            else:
                got = await peer.closing(4)
            t.expect(name, "§1, §4, §5, §10, §11", got, *ok_answers)
            if field_name is not None and got in ok_answers:
                t.expect(
                    "close reason names the field",
                    "§11 4000",
                    "named" if field_name in peer.close_reason else f"{peer.close_reason!r:.60}",
                    "named",
                )
            await peer.close()

    await asyncio.gather(*(run(case) for case in cases))


async def huge_frames(c: Campaign, t: Tally, rnd: int) -> None:
    def padded(size: int) -> str:
        head, tail = '{"type":"heartbeat","timeMs":1,"pad":"', '"}'
        return head + "x" * (size - len(head) - len(tail)) + tail

    async def at_limit() -> None:
        peer = await ready_peer(c, t)
        before = peer.heartbeats
        await peer.send(padded(MAX_MESSAGE))
        ok = await peer.wait(lambda: peer.heartbeats > before, 5)
        t.expect(
            "a message of exactly maxMessageBytes",
            "§10",
            "heartbeat" if ok else await peer.closing(1),
            "heartbeat",
        )
        await peer.close()

    async def too_big(name: str, data: str | bytes, stage: str) -> None:
        peer = await (ready_peer(c, t) if stage == "ready" else Peer(c, t).open())
        await peer.send(data)
        t.expect(name, "§10, §11 1009", await peer.closing(5), "close 1009")
        await peer.close()

    async def big_http_body() -> None:
        peer = await ready_peer(c, t)
        body = b'{"assignmentId":"' + b"a" * (MAX_REQUEST + 10) + b'"}'
        response = await c.request(
            t,
            "POST",
            f"/internal/miner/{peer.signer.miner_id}/result",
            content=body,
            headers={"content-type": "application/json"},
        )
        t.expect("HTTP result body over 4 MiB", "§13.1", f"HTTP {response.status_code}", "HTTP 413")
        await peer.close()

    signer = Signer()
    await asyncio.gather(
        at_limit(),
        too_big("maxMessageBytes + 1 after welcome", padded(MAX_MESSAGE + 1), "ready"),
        too_big("2 MiB instead of a hello", padded(2 * MAX_MESSAGE), "fresh"),
        too_big("4 MiB binary after welcome", b"x" * (4 * MAX_MESSAGE), "ready"),
        too_big(
            "a 1.5 MiB result",
            result_frame(
                signer, "a" * 24, f"{NO_TASK}:0", json.dumps("x" * (3 * MAX_MESSAGE // 2)).encode()
            ),
            "ready",
        ),
        big_http_body(),
    )


async def message_flood(c: Campaign, t: Tally, rnd: int) -> None:
    beats, bogus = c.args.flood_heartbeats, c.args.flood_results

    async def heartbeats() -> None:
        peer = await ready_peer(c, t)
        before = peer.heartbeats
        frame = ClientSession.heartbeat_frame(1)
        started = time.monotonic()
        for i in range(beats):
            if not await peer.send(frame):
                break
            if i % 256 == 0:
                await asyncio.sleep(0)
        await peer.wait(lambda: peer.heartbeats - before >= beats, 30)
        elapsed = time.monotonic() - started
        answered = peer.heartbeats - before
        t.notes["heartbeats per second (answered)"] = max(
            t.notes["heartbeats per second (answered)"], int(answered / elapsed)
        )
        t.expect_many(
            "heartbeat flood, reading the replies",
            "§5.10 (one reply per heartbeat)",
            Counter({"heartbeat": answered, "no answer": beats - answered}),
            "heartbeat",
        )
        t.expect("connection after a heartbeat flood", "§9", await peer.alive(), "open")
        await peer.close()

    async def results() -> None:
        peer = await ready_peer(c, t)
        ids = [f"{rng.getrandbits(96):024x}" for _ in range(bogus)]
        frames = [
            result_frame(peer.signer, aid, f"{NO_TASK}:{i}", b'"positive"')
            for i, aid in enumerate(ids)
        ]
        started = time.monotonic()
        for i, frame in enumerate(frames):
            if not await peer.send(frame):
                break
            if i % 128 == 0:
                await asyncio.sleep(0)
        await peer.wait(lambda: all(aid in peer.verdicts for aid in ids), 30)
        elapsed = time.monotonic() - started
        answers = Counter(
            peer.verdicts[aid][0] if aid in peer.verdicts else "no answer" for aid in ids
        )
        t.notes["bogus results per second (answered)"] = max(
            t.notes["bogus results per second (answered)"],
            int(sum(answers.values()) / elapsed),
        )
        t.expect_many(
            "bogus result flood", "§7 unknown_assignment", answers, "refused unknown_assignment"
        )
        t.expect("connection after a result flood", "§9", await peer.alive(), "open")
        await peer.close()

    async def too_fast() -> None:
        """Heartbeats as fast as possible: the burst is answered, then 4010 (rate limit)."""
        peer = await ready_peer(c, t)
        before = peer.heartbeats
        frame = ClientSession.heartbeat_frame(1)
        sent = 0
        for i in range(3 * MINER_BURST):
            if not await peer.send(frame):
                break
            sent += 1
            if i % 256 == 0:
                await asyncio.sleep(0)
        await peer.wait(lambda: peer.heartbeats - before >= sent, 10)
        answered = peer.heartbeats - before
        expected = ["close 4010"]
        if peer.closed.is_set():
            closed = f"close {peer.close_code}"
            got = closed if answered >= MINER_BURST else f"{closed} after only {answered} replies"
            if closed == "close 4008" and sent - answered > SEND_QUEUE:
                # On a busy machine this reader may fall more than the send queue behind
                # before the flood passes the rate: then 4008 (§10) is the right answer.
                expected.append(got)
        elif answered == 0:
            got = "open, no reply"
        else:
            # Every frame answered: right only if the coordinator, busy itself, took
            # them in no faster than the rate allows (its own clock is in each reply).
            times = peer.heartbeat_ms[-answered:]
            span = (times[-1] - times[0]) / 1000
            got = f"open, all {sent} answered in {span:.1f} s"
            if span >= (sent - MINER_BURST) / MINER_RATE - 0.05:
                expected.append(got)
        t.expect(
            f"{3 * MINER_BURST} heartbeats as fast as possible",
            "§11 4010 (after the burst of miner_burst frames), §10 4008 if not read",
            got,
            *expected,
        )
        await peer.close()

    async def under_the_rate() -> None:
        """More frames than the burst, but slower than the rate: all answered, never closed."""
        peer = await ready_peer(c, t)
        before = peer.heartbeats
        frame = ClientSession.heartbeat_frame(1)
        per_tick, ticks = int(MINER_RATE * 0.75 / 10), 10 * c.args.paced_seconds
        for _ in range(ticks):
            for _ in range(per_tick):
                await peer.send(frame)
            await asyncio.sleep(0.1)
        sent = per_tick * ticks
        await peer.wait(lambda: peer.heartbeats - before >= sent, 10)
        got = f"{peer.heartbeats - before} of {sent} answered, {await peer.alive()}"
        t.expect(
            f"{sent} heartbeats at 75% of miner_rate",
            "§11 4010 (only beyond the rate)",
            got,
            f"{sent} of {sent} answered, open",
        )
        await peer.close()

    async def unread() -> None:
        """A miner that stops reading, within the rate: 4096 unread frames, then 4008 (§10).

        Results with 1 KB made-up assignment ids, 700 to an array, at 90% of the
        rate: each is refused at once with a frame echoing the id, so every
        buffer on the way fills with few frames and the bound is tight.
        """
        peer = await Peer(c, t).open(rcvbuf=UNREAD_RCVBUF)
        if not await peer.handshake():
            t.notes["handshake failed"] += 1
        assert peer.ws is not None
        ids = [f"{i:08x}{rng.getrandbits(64):016x}" for i in range(c.args.flood_unread)]
        batches = [ids[i : i + UNREAD_ARRAY] for i in range(0, len(ids), UNREAD_ARRAY)]
        base = len(peer.verdicts)
        rss_before = c.server_rss()
        closed_before = await c.closes(4008)
        refused_before = await c.refused("unknown_assignment")
        peer.ws.transport.pause_reading()
        sent = 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        for batch in batches:
            # ~1 KB frames, as ever: the output carries the bulk the bounded ids no longer can.
            bulk = json.dumps("x" * 970).encode()
            body = ",".join(result_frame(peer.signer, aid, f"{NO_TASK}:0", bulk) for aid in batch)
            # Stay under the rate: the burst first, then 90% of miner_rate.
            due = started + max(0.0, (sent + len(batch) - MINER_BURST) / (0.9 * MINER_RATE))
            await asyncio.sleep(max(0.0, due - loop.time()))
            if await c.closes(4008) > closed_before:
                # Closed already: read its close before the server's close handshake
                # times out and drops what is still buffered for us.
                break
            try:
                await asyncio.wait_for(peer.ws.send("[" + body + "]"), 10 * SCALE)
            except (ConnectionClosed, TimeoutError):
                break
            sent += len(batch)
        # Until the server has dealt with everything it received: closed us, or refused all.
        deadline = loop.time() + 10 * SCALE
        while loop.time() < deadline:
            if await c.closes(4008) > closed_before:
                break
            if await c.refused("unknown_assignment") - refused_before >= sent:
                break
            await asyncio.sleep(0.05)
        grown = max(0, c.server_rss() - rss_before)
        peer.ws.transport.resume_reading()
        await peer.wait(lambda: peer.closed.is_set() or len(peer.verdicts) - base >= sent, 60)
        await asyncio.sleep(0.2)
        read = len(peer.verdicts) - base
        reply = len(
            json.dumps(
                {
                    "type": "refused",
                    "assignmentId": ids[0],
                    "reason": "unknown_assignment",
                    "message": "no such assignment is leased",
                }
            )
        )
        bound = unread_bound(reply)
        if peer.closed.is_set():
            peer.identity.dropped_unread = peer.close_code == 4008
            got = f"close {peer.close_code}"
            if read > bound:
                got += f" only after {read} unread frames (bound {bound})"
        elif read > bound:
            got = f"no 4008: {read} unread frames were queued (bound {bound})"
        else:
            got = "open, every frame answered within the bound"
        t.notes["unread results sent, then read"] = f"{sent}, {read}"  # type: ignore[assignment]
        key = "server RSS growth for them, MB (largest round)"
        t.notes[key] = max(t.notes[key], round(grown / 2**20))
        t.expect(
            "a miner that stops reading, within the rate",
            "§10 (4096 unread frames), §11 4008",
            got,
            "close 4008",
            "open, every frame answered within the bound",
        )
        await peer.close()

    rng = random.Random(f"{c.args.seed}-flood-{rnd}")
    await heartbeats()
    await results()
    await too_fast()
    await under_the_rate()
    await unread()


async def batched_frames(c: Campaign, t: Tally, rnd: int) -> None:
    """Messages holding arrays of frames (§1): handled in order, as if each came alone."""
    beat = {"type": "heartbeat", "timeMs": 1}

    async def replies(name: str, message: Any, want: int) -> None:
        peer = await ready_peer(c, t)
        before = peer.heartbeats
        await peer.send(json.dumps(message, separators=(",", ":")))
        await peer.wait(lambda: peer.heartbeats - before >= want, 10)
        got = f"{peer.heartbeats - before} heartbeats"
        if peer.closed.is_set():
            got += f", then close {peer.close_code}"
        t.expect(name, "§1", got, f"{want} heartbeats")
        await peer.close()

    async def then_close(name: str, message: Any, answered: tuple[int, ...], code: int) -> None:
        peer = await ready_peer(c, t)
        before = peer.heartbeats
        await peer.send(json.dumps(message, separators=(",", ":")))
        closed = await peer.closing(4)
        got = f"{peer.heartbeats - before} heartbeat(s), then {closed}"
        t.expect(
            name,
            "§1 (as if each frame came in its own message), §11",
            got,
            *(f"{n} heartbeat(s), then close {code}" for n in answered),
        )
        await peer.close()

    async def results() -> None:
        peer = await ready_peer(c, t)
        ids = [f"{random.getrandbits(96):024x}" for _ in range(200)]
        frames = [
            json.loads(result_frame(peer.signer, aid, f"{NO_TASK}:{i}", b'"neutral"'))
            for i, aid in enumerate(ids)
        ]
        await peer.send(json.dumps(frames))
        await peer.wait(lambda: all(aid in peer.verdicts for aid in ids), 10)
        answers = Counter(
            peer.verdicts[aid][0] if aid in peer.verdicts else "no answer" for aid in ids
        )
        t.expect_many(
            "200 made-up results in one array",
            "§1, §7 unknown_assignment",
            answers,
            "refused unknown_assignment",
        )
        await peer.close()

    async def empty() -> None:
        peer = await ready_peer(c, t)
        await peer.send("[]")
        t.expect(
            "an empty array",
            "§1 (no frame: nothing to do, or a bad message)",
            await peer.alive(),
            "open",
            "close 4000",
        )
        await peer.close()

    async def hellos(name: str, count: int, want: str) -> None:
        peer = await Peer(c, t).open()
        hello = json.loads(peer.session.hello_frame())
        await peer.send(json.dumps([hello] * count))
        closed = await peer.closing(1.5 if count == 1 else 4)
        got = ("challenge" if peer.nonce else "no challenge") + (
            "" if closed == "open" else f", then {closed}"
        )
        t.expect(name, "§1, §4", got, want)
        await peer.close()

    async def own_lease() -> None:
        peer = await ready_peer(c, t, 1)
        peer.heartbeat()
        held = await peer.take(1, timeout=8, strict=True)
        if not held:
            t.notes["no work received"] += 1
            await peer.close()
            return
        a = held[0]
        output = honest_output(a)
        bad = json.loads(result_frame(Signer(), a.assignment_id, a.microtask_id, output))
        good = json.loads(result_frame(peer.signer, a.assignment_id, a.microtask_id, output))
        await peer.send(json.dumps([bad, good]))
        await peer.wait(lambda: len(peer.verdicts.get(a.assignment_id, ())) >= 2, 5)
        got = " + ".join(peer.verdicts.get(a.assignment_id, [])) or "no answer"
        t.expect(
            "[badly signed result, corrected result] for a live lease",
            "§1, §7 (in order; a refusal leaves the lease open)",
            got,
            "refused bad_signature + ack",
        )
        await peer.close()

    await asyncio.gather(
        replies("3 heartbeats in one array", [beat] * 3, 3),
        replies(
            f"{MINER_BURST} heartbeats in one array (the burst)", [beat] * MINER_BURST, MINER_BURST
        ),
        then_close(
            f"{MINER_BURST + 1} heartbeats in one array",
            [beat] * (MINER_BURST + 1),
            (0, MINER_BURST),  # the whole array refused, or the burst handled first (§1)
            4010,
        ),
        then_close("[heartbeat, not a frame]", [beat, "x"], (1,), 4000),
        then_close("[heartbeat, unknown type]", [beat, {"type": "bogus"}], (1,), 4000),
        then_close("[heartbeat, second hello]", [beat, {"type": "hello"}], (1,), 4000),
        then_close("an array inside an array", [[beat]], (0,), 4000),
        results(),
        empty(),
        hellos("[hello]", 1, "challenge"),
        hellos("[hello, hello]", 2, "challenge, then close 4002"),
        own_lease(),
    )


async def work_never_given(c: Campaign, t: Tally, rnd: int) -> None:
    holder = await ready_peer(c, t, 2)
    holder.heartbeat()
    claimer = await ready_peer(c, t, 1)
    claimer.heartbeat()
    signer = claimer.signer
    rng = random.Random(f"{c.args.seed}-never-{rnd}")
    made_up = [f"{rng.getrandbits(96):024x}", "5f0c3a9e1b2d4c6e8a7f9b10"]
    for aid in made_up:
        got = await claimer.result(aid, result_frame(signer, aid, f"{NO_TASK}:0", b'"positive"'))
        t.expect(
            "made-up assignment id", "§7 unknown_assignment", got, "refused unknown_assignment"
        )
    # Another miner's live leases, claimed with our own valid signature.
    held = await holder.take(2, timeout=8, strict=True)
    for assign in held:
        text = result_frame(
            signer, assign.assignment_id, assign.microtask_id, honest_output(assign)
        )
        live = time.time() < assign.deadline_ms / 1000 - 0.3
        got = await claimer.result(assign.assignment_id, text)
        if live:
            t.expect(
                "another miner's live assignment",
                "§7 not_your_assignment",
                got,
                "refused not_your_assignment",
            )
    # ... and once they are over (expired), nothing is said about them.
    if held:
        await holder.wait(lambda: all(a.assignment_id in holder.cancels for a in held), LEASE + 3)
        for assign in held:
            text = result_frame(
                signer, assign.assignment_id, assign.microtask_id, honest_output(assign)
            )
            got = await claimer.result(assign.assignment_id, text, index=1)
            t.expect(
                "another miner's finished assignment",
                "§7 unknown_assignment",
                got,
                "refused unknown_assignment",
            )
    else:
        t.notes["no work received"] += 1
    # Over HTTP: the same refusals, plus the HTTP-only answers.
    aid = f"{rng.getrandbits(96):024x}"
    body = json.loads(result_frame(signer, aid, f"{NO_TASK}:0", b'"positive"'))
    del body["type"]
    path = f"/internal/miner/{signer.miner_id}/result"
    response = await c.request(t, "POST", path, json=body)
    reason = (response.json().get("detail") or {}).get("reason")
    claimer.identity.http_unattributed += response.status_code == 409
    t.expect(
        "made-up assignment over HTTP",
        "§13.1 409 unknown_assignment",
        f"HTTP {response.status_code} {reason}",
        "HTTP 409 unknown_assignment",
    )
    response = await c.request(t, "POST", f"/internal/miner/{'0' * 32}/result", json=body)
    t.expect(
        "result for a miner id that never connected",
        "§13.1",
        f"HTTP {response.status_code}",
        "HTTP 404",
    )
    response = await c.request(t, "POST", path, json={**body, "type": "result"})
    t.expect(
        "HTTP body with an unknown field",
        "§13 (unknown fields rejected)",
        f"HTTP {response.status_code}",
        "HTTP 400",
    )
    response = await c.request(
        t, "POST", path, content=b"{not json", headers={"content-type": "application/json"}
    )
    t.expect("HTTP body not JSON", "§13.1", f"HTTP {response.status_code}", "HTTP 400")
    response = await c.request(t, "POST", path, json={**body, "output": 5})
    t.expect("HTTP body with a wrong type", "§13.1", f"HTTP {response.status_code}", "HTTP 400")
    await asyncio.gather(holder.close(), claimer.close())


async def own_lease_refusals(c: Campaign, t: Tally, peer: Peer, assign: m.Assign) -> None:
    """On a live lease of our own: every refusal leaves it open, the corrected result counts."""
    signer, aid, mid = peer.signer, assign.assignment_id, assign.microtask_id
    output = honest_output(assign)
    other = Signer()
    sent = 0
    attempts: list[tuple[str, str, str, tuple[str, ...]]] = [
        (
            "result signed with another key",
            "§6.2, §7 bad_signature",
            result_frame(other, aid, mid, output),
            ("refused bad_signature",),
        ),
        (
            "signature of the hello domain",
            "§6, §7 bad_signature",
            result_frame(signer, aid, mid, output, signature=signer.sign(hello_message(aid))),
            ("refused bad_signature",),
        ),
        (
            "signature over the output with a trailing newline",
            "§6.2, §7 bad_signature",
            result_frame(
                signer,
                aid,
                mid,
                output,
                signature=signed(signer, aid, mid, output + b"\n"),
            ),
            ("refused bad_signature",),
        ),
        (
            "signature truncated to 127 hex characters",
            "§7 bad_signature",
            result_frame(
                signer,
                aid,
                mid,
                output,
                signature=signed(signer, aid, mid, output)[:127],
            ),
            ("refused bad_signature",),
        ),
        (
            "signature not hex",
            "§7 bad_signature",
            result_frame(signer, aid, mid, output, signature="zz" * 64),
            ("refused bad_signature",),
        ),
        (
            "right signature, microtaskId of another microtask",
            "§7 wrong_microtask",
            result_frame(signer, aid, _next_microtask(mid), output),
            ("refused wrong_microtask",),
        ),
        (
            "output that is not JSON",
            "§5.6, §7 bad_output",
            result_frame(signer, aid, mid, b"positive"),
            ("refused bad_output",),
        ),
        (
            "output of an unterminated JSON text",
            "§5.6, §7 bad_output",
            result_frame(signer, aid, mid, b'"positive'),
            ("refused bad_output",),
        ),
    ]
    for check, doc, text, ok in attempts:
        if time.time() > assign.deadline_ms / 1000 - 0.5:
            t.notes["lease too close to its deadline for more attempts"] += 1
            return
        got = await peer.result(aid, text, index=sent)
        sent += 1
        t.expect(check, doc, got, *ok)
    # A signature that is not 128 hex characters: the same 64 bytes with whitespace in it.
    signature = signed(signer, aid, mid, output)
    spaced = " ".join(signature[i : i + 32] for i in range(0, 128, 32))
    got = await peer.result(aid, result_frame(signer, aid, mid, output, signature=spaced), sent)
    sent += 1
    t.expect(
        "signature with whitespace (131 characters)",
        "§5.6, §7 bad_signature",
        got,
        "refused bad_signature",
    )
    if got == "ack":
        c.signature_checks.append((t, aid, spaced))
        final = "refused duplicate"
    else:
        final = "ack"
    if time.time() > assign.deadline_ms / 1000 - 0.3:
        t.notes["lease too close to its deadline for the corrected result"] += 1
        return
    text = result_frame(signer, aid, mid, output)
    got = await peer.result(aid, text, sent)
    t.expect(
        "corrected result after refusals, before the deadline",
        "§7 (a refused result leaves the lease open)",
        got,
        final,
    )
    if got == "ack":
        c.signature_checks.append((t, aid, ""))
    got = await peer.result(aid, text, sent + 1)
    t.expect("the same result again", "§7 duplicate", got, "refused duplicate")


async def wrong_key(c: Campaign, t: Tally, rnd: int) -> None:
    async def bad_answer(check: str, make: Callable[[Peer], str]) -> None:
        peer = await Peer(c, t).open()
        await peer.send(peer.session.hello_frame().decode())
        await peer.wait(lambda: peer.nonce, 5)
        await peer.send(json.dumps({"type": "answer", "signature": make(peer)}))
        t.expect(check, "§4, §11 4001", await peer.closing(4), "close 4001")

    other = Signer()
    await asyncio.gather(
        bad_answer("answer signed with another key", lambda p: p.sign_nonce(other)),
        bad_answer("answer signing another nonce", lambda p: p.signer.sign(hello_message("0"))),
        bad_answer(
            "answer signing the bare nonce", lambda p: p.signer.sign((p.nonce or "").encode())
        ),
        bad_answer("answer not hex", lambda p: "not a signature"),
        bad_answer("answer empty", lambda p: ""),
        bad_answer("answer of 64 zero bytes", lambda p: "00" * 64),
    )
    peer = await ready_peer(c, t, 1)
    peer.heartbeat()
    held = await peer.take(1, timeout=8, strict=True)
    if not held:
        t.notes["no work received"] += 1
    else:
        # Over HTTP a wrong signature on a live lease is answered 401 and not counted
        # against the miner; the lease stays open for what follows.
        assign = held[0]
        body = json.loads(
            result_frame(other, assign.assignment_id, assign.microtask_id, honest_output(assign))
        )
        del body["type"]
        response = await c.request(
            t, "POST", f"/internal/miner/{peer.signer.miner_id}/result", json=body
        )
        reason = (response.json().get("detail") or {}).get("reason")
        peer.identity.http_unattributed += response.status_code == 401
        t.expect(
            "result signed with another key, over HTTP",
            "§13.1 401 bad_signature",
            f"HTTP {response.status_code} {reason}",
            "HTTP 401 bad_signature",
        )
        await own_lease_refusals(c, t, peer, assign)
    await peer.close()


async def replayed_result(c: Campaign, t: Tally, rnd: int) -> None:
    owner = await ready_peer(c, t, 2)
    owner.heartbeat()
    thief = await ready_peer(c, t, 1)
    thief.heartbeat()
    held = await owner.take(1, timeout=8, strict=True)
    if held:
        held = await owner.take(2, timeout=1.5, strict=True)
    if not held:
        t.notes["no work received"] += 1
        await asyncio.gather(owner.close(), thief.close())
        return
    first = held[0]
    aid, mid, output = first.assignment_id, first.microtask_id, honest_output(first)
    captured = result_frame(owner.signer, aid, mid, output)  # the owner's signed result
    body = json.loads(captured)
    del body["type"]
    got = await thief.result(aid, captured)
    t.expect(
        "another identity's signed result, replayed verbatim (lease live)",
        "§7 not_your_assignment (the assignment is checked before the signature)",
        got,
        "refused not_your_assignment",
        # On a busy machine the copy may be over (decided or expired) by the time it arrives.
        *(["refused unknown_assignment"] if await over_unless(got, owner, first) else []),
    )
    response = await c.request(
        t, "POST", f"/internal/miner/{thief.signer.miner_id}/result", json=body
    )
    reason = (response.json().get("detail") or {}).get("reason")
    thief.identity.http_unattributed += response.status_code in (401, 409)  # neither is counted
    answer = f"HTTP {response.status_code} {reason}"
    t.expect(
        "the same replay over HTTP in the thief's name",
        "§7, §13.1 409 not_your_assignment (the assignment before the signature, uncounted)",
        answer,
        "HTTP 409 not_your_assignment",
        # A copy that is over by then is unknown to anyone but its miner.
        *(
            [answer]
            if answer == "HTTP 409 unknown_assignment" and await lease_over(owner, first)
            else []
        ),
    )
    text = result_frame(thief.signer, aid, mid, output)
    was_live = live(first)
    got = await thief.result(aid, text, index=1)
    if was_live:
        t.expect(
            "another identity's live assignment, re-signed with the thief's key",
            "§7 not_your_assignment",
            got,
            "refused not_your_assignment",
            *(["refused unknown_assignment"] if await over_unless(got, owner, first) else []),
        )
    if len(held) > 1 and live(held[1]):
        second = held[1]
        spliced = json.loads(captured)
        spliced.update(assignmentId=second.assignment_id, microtaskId=second.microtask_id)
        got = await owner.result(second.assignment_id, json.dumps(spliced))
        t.expect(
            "own signature moved onto another assignment",
            "§6.2, §7 bad_signature",
            got,
            "refused bad_signature",
        )
    other_label = b'"negative"' if output != b'"negative"' else b'"positive"'
    swapped = json.loads(captured)
    swapped["output"] = other_label.decode()
    got = await owner.result(aid, json.dumps(swapped))
    # Late is checked before the signature (§7): once the lease has run out, "late" is right.
    over = time.time() >= first.deadline_ms / 1000
    t.expect(
        "own signature with another output",
        "§6.2, §7 bad_signature",
        got,
        "refused bad_signature",
        *(["refused late"] if over else []),
    )
    counted = False
    if live(first):
        # Anyone may deliver the owner's signed result in the owner's name (§13.1).
        response = await c.request(
            t, "POST", f"/internal/miner/{owner.signer.miner_id}/result", json=body
        )
        if response.status_code == 200:
            owner.identity.http_accepted += 1
            counted = True
        elif response.status_code == 409:  # the lease ended meanwhile: not counted
            owner.identity.http_unattributed += 1
        ended = response.status_code == 409 and await lease_over(owner, first)
        t.expect(
            "the owner's signed result relayed over HTTP in its name",
            "§13.1 (the signature is the authentication)",
            f"HTTP {response.status_code}",
            "HTTP 200",
            *(["HTTP 409"] if ended else []),  # on a busy machine the copy may be over by then
        )
        if counted:
            got = await owner.result(aid, captured, index=1)
            t.expect(
                "the owner replays its own accepted result",
                "§7 duplicate",
                got,
                "refused duplicate",
            )
    got = await thief.result(aid, captured, index=2)
    t.expect(
        "another identity's result replayed after it counted"
        if counted
        else "another identity's result replayed (its lease ran out before it was relayed)",
        "§7 unknown_assignment (an assignment that is over is told only to its miner)",
        got,
        "refused unknown_assignment",
        # Not relayed in time: the copy may still be leased to the owner, or over.
        *([] if counted else ["refused not_your_assignment"]),
    )
    got = await thief.result(aid, text, index=3)
    t.expect(
        "another identity's finished assignment, re-signed",
        "§7 unknown_assignment",
        got,
        "refused unknown_assignment",
        "refused not_your_assignment",
    )
    await asyncio.gather(owner.close(), thief.close())


async def late_results(c: Campaign, t: Tally, rnd: int) -> None:
    peer = await ready_peer(c, t, 2)
    peer.heartbeat()
    held = await peer.take(1, timeout=8, strict=True)
    if not held:
        t.notes["no work received"] += 1
        await peer.close()
        return
    held = await peer.take(2, timeout=0.5, strict=True)
    for i, assign in enumerate(held):
        deadline = assign.deadline_ms / 1000
        if i == 0:  # just past the deadline, maybe before the coordinator's sweep
            await asyncio.sleep(max(0.0, deadline + 0.05 - time.time()))
            check = "result just after the deadline"
        else:  # after the cancel
            await peer.wait(
                lambda a=assign: a.assignment_id in peer.cancels, deadline - time.time() + 3
            )
            check = "result after the expired cancel"
        text = result_frame(
            peer.signer, assign.assignment_id, assign.microtask_id, honest_output(assign)
        )
        got = await peer.result(assign.assignment_id, text)
        t.expect(check, "§5.5, §7 late", got, "refused late")
        c.expect_closed_as(
            t, "late lease closed as expired", assign.assignment_id, "closed expired"
        )
    await peer.wait(lambda: all(a.assignment_id in peer.cancels for a in held), 3)
    for assign in held:
        cancel = peer.cancels.get(assign.assignment_id)
        t.expect(
            "a cancel accompanies the late refusal",
            "§7 late, §8",
            f"cancel {cancel[0]}" if cancel else "no cancel",
            "cancel expired",
        )
    assign = held[0]
    body = json.loads(
        result_frame(peer.signer, assign.assignment_id, assign.microtask_id, honest_output(assign))
    )
    del body["type"]
    response = await c.request(
        t, "POST", f"/internal/miner/{peer.signer.miner_id}/result", json=body
    )
    reason = (response.json().get("detail") or {}).get("reason")
    peer.identity.http_unattributed += response.status_code == 409
    t.expect(
        "late result over HTTP",
        "§13.1 409 late",
        f"HTTP {response.status_code} {reason}",
        "HTTP 409 late",
    )
    await peer.close()


FAULTS: list[tuple[str, str, Callable[[Campaign, Tally, int], Any]]] = [
    ("disconnect", "disconnect mid-lease", disconnect_mid_lease),
    ("stall", "stall past deadline", stall_past_deadline),
    ("silent", "silent (timeouts)", silent),
    ("same_key", "same key, two sockets", same_key_two_sockets),
    ("malformed", "malformed frames", malformed_frames),
    ("batched", "batched frames", batched_frames),
    ("huge", "huge frames", huge_frames),
    ("flood", "message flood", message_flood),
    ("never_given", "work never given", work_never_given),
    ("replay", "replayed result", replayed_result),
    ("wrong_key", "wrong key", wrong_key),
    ("late", "late results", late_results),
]


FLOODS = {"flood"}


async def run_round(c: Campaign, rnd: int) -> None:
    """Every fault class at once, then the floods on their own.

    A flood keeps the coordinator's single event loop busy for seconds, which
    would push the 2 s leases of the other classes past their deadlines and
    blur what they check; the honest stream keeps going through both phases.
    """

    async def guarded(key: str, title: str, fn: Callable[[Campaign, Tally, int], Any]) -> None:
        tally = c.new_tally(key, title)
        try:
            await asyncio.wait_for(fn(c, tally, rnd), 120 * SCALE)
        except Exception as exc:  # a crashed attacker is a finding, not a crash of the run
            tally.expect(
                "attacker ran to the end", "-", f"{type(exc).__name__}: {exc}"[:120], "completed"
            )

    await asyncio.gather(*(guarded(*fault) for fault in FAULTS if fault[0] not in FLOODS))
    for fault in FAULTS:
        if fault[0] in FLOODS:
            await guarded(*fault)


async def campaign(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    c = Campaign(args, tmp)
    started = time.monotonic()
    try:
        await c.start()
        await c.honest_miners_connected()
        stream = asyncio.create_task(c.stream())
        for rnd in range(args.rounds):
            await run_round(c, rnd)
            if not args.json:
                print(
                    f"round {rnd + 1}/{args.rounds} done after {time.monotonic() - started:.0f} s",
                    file=sys.stderr,
                )
        c.stop_stream.set()
        await stream
        await c.wait_for_honest_tasks(90 + 2 * args.rounds)  # a cap: it returns when all are done
        await c.check_miner_counts()
        health = await c.request(None, "GET", "/health")
        c.server_side["health"] = health.json().get("status")
    finally:
        await c.shutdown()
    c.check_database()
    c.check_server_log()
    return report(c, time.monotonic() - started)


def report(c: Campaign, seconds: float) -> dict[str, Any]:
    classes = [c.tally[key].as_json() for key, _, _ in FAULTS if key in c.tally]
    mismatches = sum(cls["unexpected"] for cls in classes)
    http_5xx = c.stream_5xx + sum(cls["http5xx"] for cls in classes)
    honest = c.honest
    problems = []
    if mismatches:
        problems.append(f"{mismatches} answer(s) differ from docs/protocol.md")
    if http_5xx:
        problems.append(f"{http_5xx} HTTP 5xx answer(s)")
    if honest.get("completed") != honest.get("submitted") or not honest.get("submitted"):
        problems.append(
            f"honest tasks completed {honest.get('completed')}/{honest.get('submitted')}"
        )
    if honest.get("wrongLabels"):
        problems.append(f"{honest['wrongLabels']} task(s) with wrong labels")
    if c.server_side.get("logErrors"):
        problems.append(f"{c.server_side['logErrors']} error line(s) in the server log")
    if c.server_side.get("health") != "ok":
        problems.append(f"health {c.server_side.get('health')}")
    return {
        "ok": not problems,
        "problems": problems,
        "rounds": c.args.rounds,
        "seconds": round(seconds, 1),
        "mismatches": mismatches,
        "tried": sum(cls["tried"] for cls in classes),
        "http5xx": http_5xx,
        "honest": honest,
        "classes": classes,
        "server": c.server_side,
        "settings": {
            "replicas": REPLICAS,
            "leaseSeconds": LEASE,
            "heartbeatSeconds": HEARTBEAT,
            "handshakeSeconds": HANDSHAKE,
            "maxMessageBytes": MAX_MESSAGE,
        },
        "tmp": str(c.tmp) if c.args.keep else None,
    }


def print_table(result: dict[str, Any]) -> None:
    honest = result["honest"]
    rows = [("fault class", "tried", "as documented", "unexpected", "5xx", "honest tasks")]
    for cls in result["classes"]:
        rows.append(
            (
                cls["title"],
                str(cls["tried"]),
                str(cls["documented"]),
                str(cls["unexpected"]),
                str(cls["http5xx"]),
                "",
            )
        )
    rows.append(
        (
            "total",
            str(result["tried"]),
            str(result["tried"] - result["mismatches"]),
            str(result["mismatches"]),
            str(result["http5xx"]),
            f"{honest.get('completed')}/{honest.get('submitted')}",
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)
        ]
        print("  ".join(cells))
        if n == 0 or n == len(rows) - 2:
            print("  ".join("-" * w for w in widths))
    for cls in result["classes"]:
        for line in cls["unexpectedDetails"]:
            print(f"UNEXPECTED [{cls['title']}] {line}")
        for note, value in cls["notes"].items():
            print(f"note [{cls['title']}] {note}: {value}")
    server = result["server"]
    print(
        f"server: refused events {server.get('refusedEvents')}, "
        f"reassigned {server.get('reassignedEvents')}, log errors {server.get('logErrors')}"
    )
    print(f"honest miners: {server.get('honestMiners')}")
    print(
        f"{result['rounds']} round(s) in {result['seconds']} s: "
        + ("OK" if result["ok"] else "FAILED: " + "; ".join(result["problems"]))
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="Rounds of every fault class.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    parser.add_argument("--seed", type=int, default=1, help="Seed for generated inputs.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory.")
    parser.add_argument("--flood-heartbeats", type=int, default=3000)
    parser.add_argument("--flood-results", type=int, default=1000)
    parser.add_argument("--flood-unread", type=int, default=16000)
    parser.add_argument("--paced-seconds", type=int, default=4)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="qortex-faults-"))
    try:
        result = asyncio.run(campaign(args, tmp))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print_table(result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
