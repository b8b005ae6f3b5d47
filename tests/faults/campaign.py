"""One fault class's run against the shared coordinator, and what it must leave behind.

A run starts a stream of honest sentiment tasks (every other one asking for a
quorum of 3 of its 3 replicas, so a copy an attacker holds stays live until
its deadline), runs the class's attackers for the rounds asked, then waits for
every honest task and checks the server's own records: each attacker
identity's ``refused`` and ``accepted`` counts in ``GET /api/v1/miners``, its
``result.refused`` events, how the assignments it dropped, stalled or let
expire were closed, and the lines the server logged meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from qortex.signing import Signer
from tests.faults.frames import KIND, REPLICAS, SCALE, tweets
from tests.faults.peer import Peer
from tests.faults.records import check_database, check_miner_counts, check_server_log
from tests.faults.tally import Identity, Tally
from tests.helpers import API_KEY, Server


@dataclass(frozen=True)
class FaultRun:
    """The coordinator every fault class attacks (with six honest CLI miners), and the sizes."""

    server: Server
    long: bool


class Campaign:
    """Attackers, honest tasks and findings of one fault class."""

    def __init__(self, run: FaultRun, seed: int = 1) -> None:
        server = run.server
        self.seed = seed
        self.port = server.port
        self.url = server.url
        self.ws_url = server.url.replace("http", "ws", 1) + "/ws/miner"
        self.db = Path(server.db)
        self.log = server.log
        # The floods' sizes: the long mode's, or smaller ones that still pass the burst.
        self.flood_heartbeats = 3000
        self.flood_results = 1000
        self.flood_unread = 16000 if run.long else 6000
        self.paced_seconds = 4 if run.long else 1
        self.http = httpx.AsyncClient(base_url=self.url, headers={"x-api-key": API_KEY}, timeout=20)
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
        self.server_pid = server.proc.pid if server.proc is not None else 0

    def server_rss(self) -> int:
        """The server's resident memory in bytes (Linux), 0 if unknown."""
        for line in Path(f"/proc/{self.server_pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    async def close(self) -> None:
        for peer in self.peers:
            if not peer.closed.is_set():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(peer.close(), 4)
        await self.http.aclose()

    # -- http

    async def request(self, tally: Tally | None, method: str, path: str, **kw: Any) -> Any:
        """One HTTP request (a 429 is waited out and retried a few times); 5xx are counted."""
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

    async def post_result(self, tally: Tally, miner_id: str, frame: str) -> tuple[Any, str]:
        """A result frame's body sent over HTTP in ``miner_id``'s name: the response, and
        ``HTTP <status> <refusal reason>`` as the expectations write it."""
        body = json.loads(frame)
        del body["type"]
        path = f"/internal/miner/{miner_id}/result"
        response = await self.request(tally, "POST", path, json=body)
        reason = (response.json().get("detail") or {}).get("reason")
        return response, f"HTTP {response.status_code} {reason}"

    async def closes(self, code: int) -> int:
        """How many miner sockets the coordinator has closed with ``code`` (``/metrics``)."""
        return await self._metric(f'qortex_miner_closes_total{{code="{code}"}} ')

    async def refused(self, reason: str) -> int:
        """How many results the coordinator has refused for ``reason`` (``/metrics``)."""
        return await self._metric(f'qortex_results_refused_total{{reason="{reason}"}} ')

    async def _metric(self, prefix: str) -> int:
        text = (await self.request(None, "GET", "/metrics")).text
        for line in text.splitlines():
            if line.startswith(prefix):
                return int(float(line.split()[-1]))
        return 0

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
        """Submit a task every 0.25 s until told to stop; the first few at once, so that
        a class shorter than they would be still runs beside honest work."""
        rng = random.Random(self.seed + 1)
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
            if submitted >= 4:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_stream.wait(), 0.25)

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

    # -- the verdict

    def problems(self) -> dict[str, Any]:
        """Everything that differs from the document or from a sound server; empty if none."""
        found: dict[str, Any] = {}
        for tally in self.tally.values():
            if tally.tried == 0:
                found[f"{tally.key}: nothing tried"] = dict(tally.notes)
            if tally.unexpected:
                found[f"{tally.key}: answers that differ from docs/protocol.md"] = tally.unexpected
            if tally.http_5xx:
                found[f"{tally.key}: HTTP 5xx"] = tally.http_5xx
        honest = self.honest
        if (
            honest.get("submitted", 0) < 4
            or honest.get("completed") != honest.get("submitted")
            or honest.get("wrongLabels")
            or honest.get("submitErrors")
            or honest.get("http5xx")
        ):
            found["honest tasks"] = honest
        side = self.server_side
        if side.get("logErrors") or side.get("handlerCrashes"):
            found["server log"] = {
                "errors": side.get("logErrorSample"),
                "crashCauses": side.get("crashCauses"),
            }
        if side.get("health") != "ok":
            found["health"] = side.get("health")
        if found:  # what the attackers measured along the way, to read a failure by
            found["notes"] = {t.key: dict(t.notes) for t in self.tally.values()}
        return found

    def summary(self) -> str:
        """One line per class: what the long mode prints, and docs/reliability.md records."""
        honest = f"honest tasks {self.honest.get('completed')}/{self.honest.get('submitted')}"
        return "\n".join(
            f"{t.title}: tried {t.tried}, as documented {t.documented}, unexpected"
            f" {t.tried - t.documented}, 5xx {t.http_5xx}; {honest}; notes {dict(t.notes)}"
            for t in self.tally.values()
        )

    def assert_clean(self) -> None:
        problems = self.problems()
        assert not problems, json.dumps(problems, indent=1, ensure_ascii=False)


Attack = Callable[[Campaign, Tally, int], Awaitable[None]]


async def run_fault(run: FaultRun, key: str, title: str, attack: Attack, rounds: int) -> Campaign:
    """``attack`` for ``rounds`` rounds while honest tasks flow, then every check."""
    c = Campaign(run)
    log_from = c.log.stat().st_size
    tally = c.new_tally(key, title)
    try:
        stream = asyncio.create_task(c.stream())
        for rnd in range(rounds):
            await asyncio.wait_for(attack(c, tally, rnd), 120 * SCALE)
        c.stop_stream.set()
        await stream
        await c.wait_for_honest_tasks(60 + 2 * rounds)  # a cap: it returns when all are done
        await check_miner_counts(c)
        health = await c.request(None, "GET", "/health")
        c.server_side["health"] = health.json().get("status")
        await check_database(c)
    finally:
        c.stop_stream.set()
        await c.close()
    check_server_log(c, log_from)
    if run.long:
        print(c.summary())
    return c
