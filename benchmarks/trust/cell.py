"""One cell of the simulation: a fresh coordinator, a swarm, a workload, a verdict.

A cell is (kind, mode, config, strategy). Its life:

1. ``qortex serve`` starts on a fresh database with the config's settings;
2. honest operators start, one process each (``trust/honest.py``), and the
   adversarial operators connect from the harness (``trust/adversary.py``);
3. the workload is submitted: ``paced``, one task every ``interval`` seconds,
   a rate the honest miners alone keep up with; ``backlog``, all at once;
4. the harness waits until no task is running and no decision has been
   reopened, revised or followed by a ban for ``quiet`` seconds;
5. every task is read back and every decision judged against the truth.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processes import Server, end, spawn

from qortex.signing import Signer
from trust.adversary import BANNED, Swarm
from trust.judge import Tally, catch_times, figures, judge_task, microtasks_of
from trust.service import Api, Events, api_of, coordinator, follow
from trust.strategies import Shared
from trust.workload import Task, Workload

HONEST = Path(__file__).resolve().parent / "honest.py"


@dataclass(frozen=True)
class Plan:
    name: str
    operators: int  # honest and adversarial together
    identities: int  # per operator (Sybil operators have more)
    honest_slots: int
    honest_processes: int
    tasks: int  # per cell with adversaries
    honest_tasks: int  # per honest-only cell: enough to measure past the warm-up
    interval: float  # seconds between paced tasks
    deadline: float  # seconds after the last submission before a cell is judged as it stands
    stall: float  # seconds without a single event after which waiting longer is pointless
    quiet: float
    rejoins: int  # fresh identities an adversarial operator opens after bans


@dataclass(frozen=True)
class Cell:
    kind: str
    mode: str  # paced | backlog
    config: str  # default | gold | sybil | honest
    strategy: str  # a name from trust.strategies, or "none"

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.mode}/{self.config}/{self.strategy}"

    @property
    def settings(self) -> dict[str, str]:
        return {"checker": "false"} if self.config == "gold" else {}

    @property
    def gold(self) -> float:
        return 0.05 if self.config == "gold" else 0.0


Addresses = list[list[str]]  # per operator, the forwarded address of each of its identities


def population(cell: Cell, plan: Plan, adversarial: float) -> tuple[Addresses, Addresses]:
    """Addresses of each honest and each adversarial operator's identities.

    Operator ``n`` owns ``198.18.<n>.0/24``; ``sybil-spread`` identities each
    get a /24 of their own in ``198.19.0.0/16``. Sybil operators together hold
    as many identities as all honest operators (rounded down): up to half of
    all identities.
    """
    bad = 0 if cell.config == "honest" else max(1, round(plan.operators * adversarial))
    good = plan.operators - bad
    honest = [[f"198.18.{n + 1}.{k + 1}" for k in range(plan.identities)] for n in range(good)]
    per = plan.identities
    if cell.strategy.startswith("sybil"):
        per = max(plan.identities, good * plan.identities // bad)
    adversaries = []
    for n in range(bad):
        if cell.strategy == "sybil-spread":
            adversaries.append([f"198.19.{n * per + k}.{n + 1}" for k in range(per)])
        else:
            adversaries.append([f"198.18.{100 + n}.{k + 1}" for k in range(per)])
    return honest, adversaries


class CellRun:
    def __init__(self, cell: Cell, plan: Plan, folder: Path, seed: int, adversarial: float) -> None:
        self.cell, self.plan, self.folder = cell, plan, folder
        self.rng = random.Random(f"{seed}/{cell.name}")
        self.adversarial = adversarial
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.events = Events()
        self.tasks: list[Task] = []
        self.details: list[tuple[Task, dict[str, Any]]] = []
        self.phases: dict[str, float] = {}
        self._mark = time.monotonic()

    def _phase(self, name: str) -> None:
        now = time.monotonic()
        self.phases[name] = round(now - self._mark, 2)
        self._mark = now

    async def run(self) -> dict[str, Any]:
        began = time.monotonic()
        server = coordinator(self.folder, self.cell.settings)
        honest_procs: list[asyncio.subprocess.Process] = []
        swarm: Swarm | None = None
        follower: asyncio.Task[None] | None = None
        api: Api | None = None
        reports: list[dict[str, Any]] = []
        honest, adversaries = population(self.cell, self.plan, self.adversarial)
        workload = Workload(self.cell.kind, self.rng)
        try:
            # Honest processes load while the coordinator starts; they retry until it listens.
            honest_procs = await self._start_honest(server, honest)
            await server.start(30.0)
            self._phase("start")
            api = api_of(server)
            follower = asyncio.create_task(follow(api, self.events))
            swarm = Swarm(
                server.url,
                workload.kind,
                self.cell.strategy,
                Shared(random.Random(self.rng.random())),
                self.plan.rejoins,
            )
            for n, addresses in enumerate(adversaries):
                swarm.add_operator(n, addresses)
            await self._connected(api, sum(map(len, honest + adversaries)))
            self._phase("connect")
            count = self.plan.honest_tasks if self.cell.config == "honest" else self.plan.tasks
            self.tasks = [workload.task(self.cell.gold) for _ in range(count)]
            await self._submit(api)
            self._phase("submit")
            await self._settle(api)
            self._phase("settle")
            await self._fetch(api)
        except Exception as exc:  # a broken cell is reported, never the end of the run
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if swarm is not None:
                await swarm.stop()
            reports = await self._stop_honest(honest_procs)
            if follower is not None:
                follower.cancel()
            if api is not None:
                await api.close()
            await server.stop()
        seconds = time.monotonic() - began
        if self.events.errors:
            self.notes.append(f"the event stream dropped {self.events.errors} time(s)")
        return self._report(workload.kind, swarm, reports, honest, adversaries, seconds)

    async def _start_honest(
        self, server: Server, operators: Addresses
    ) -> list[asyncio.subprocess.Process]:
        """Honest operators, spread over ``plan.honest_processes`` processes of their own.

        What sets operators apart for the coordinator is their network, not
        their process; a few processes keep the machine's cores for the run.
        """
        groups: list[list[str]] = [
            [] for _ in range(min(len(operators), self.plan.honest_processes))
        ]
        for n, addresses in enumerate(operators):
            groups[n % len(groups)].extend(addresses)
        procs = []
        for n, addresses in enumerate(groups):
            keys = [{"seed": Signer().seed.hex(), "address": a} for a in addresses]
            path = self.folder / f"honest-{n}.json"
            path.write_text(json.dumps(keys))
            path.chmod(0o600)
            argv = [sys.executable, str(HONEST), "--url", server.url, "--kind"]
            argv += [self.cell.kind, "--keys", str(path), "--slots", str(self.plan.honest_slots)]
            log = self.folder / f"honest-{n}.log"
            procs.append(await spawn(argv, server.env, self.folder, log, pipe=True))
        return procs

    async def _stop_honest(self, procs: list[asyncio.subprocess.Process]) -> list[dict[str, Any]]:
        reports = []
        for proc in procs:
            await end(proc)
            assert proc.stdout is not None
            out = (await proc.stdout.read()).decode(errors="replace").strip()
            try:
                reports.extend(json.loads(out.splitlines()[-1])["miners"])
            except (IndexError, ValueError, KeyError):
                self.errors.append(f"an honest process (pid {proc.pid}) left no report")
        return reports

    async def _connected(self, api: Api, total: int) -> None:
        """Wait until every identity is connected, or report how many were let in."""
        deadline = time.monotonic() + 20
        seen = 0
        while time.monotonic() < deadline:
            seen = (await api.json("/health")).get("minersConnected", 0)
            if seen >= total:
                return
            await asyncio.sleep(0.1)
        self.notes.append(f"{seen} of {total} miners connected before work began")

    async def _post(self, api: Api, task: Task) -> None:
        response = await api.call("POST", "/api/v1/tasks", json=task.body)
        if response.status_code == 400 and "gold" in task.body:
            note = f"gold refused, tasks sent without it: {response.text[:160]}"
            if note not in self.notes:
                self.notes.append(note)
            task.body.pop("gold")
            task.gold = 0
            response = await api.call("POST", "/api/v1/tasks", json=task.body)
        if response.status_code != 201:
            task.refused = f"{response.status_code} {response.text[:200]}"
            self.errors.append(f"task refused: {task.refused}")
            return
        task.task_id = response.json()["taskId"]
        task.submitted_at = time.monotonic()

    async def _submit(self, api: Api) -> None:
        if self.cell.mode == "backlog":
            for task in self.tasks:
                await self._post(api, task)
            return
        began = time.monotonic()
        for n, task in enumerate(self.tasks):
            await asyncio.sleep(max(0.0, began + n * self.plan.interval - time.monotonic()))
            await self._post(api, task)

    def _running(self) -> int:
        return sum(t.task_id != "" and t.task_id not in self.events.finished for t in self.tasks)

    async def _settle(self, api: Api) -> None:
        """Wait until everything is decided and stays so, or nothing moves any more.

        A coordinator that sends no event at all for ``plan.stall`` seconds
        (longer than a lease, so expiring copies of hoarders still count as
        movement) has stalled; what is pending then is judged as it stands.
        """
        deadline = time.monotonic() + self.plan.deadline
        while time.monotonic() < deadline:
            now = time.monotonic()
            if now - self.events.last_event >= self.plan.stall:
                self.notes.append(f"stalled: no event for {self.plan.stall:.0f}s")
                return
            if now - self.events.last_change >= self.plan.quiet and self._running() == 0:
                running = await api.json("/api/v1/tasks?status=running&limit=500")
                # A reopened microtask may be pending inside a task that stays completed.
                if not running.get("tasks") and not await self._pending(api):
                    return
            await asyncio.sleep(0.2)
        self.notes.append(f"not settled within {self.plan.deadline:.0f}s")

    async def _pending(self, api: Api) -> int:
        count = 0
        for task in self.tasks:
            if task.task_id:
                real, gold = microtasks_of(await api.json(f"/api/v1/tasks/{task.task_id}"))
                count += sum(r.get("status") == "pending" for r in real + gold)
        return count

    async def _fetch(self, api: Api) -> None:
        for task in self.tasks:
            if task.task_id:
                self.details.append((task, await api.json(f"/api/v1/tasks/{task.task_id}")))

    def _latency(self) -> dict[str, float | None]:
        """Seconds from each task's submission to its first completion (or failure)."""
        ended = self.events.finished
        spans = sorted(ended[t.task_id] - t.submitted_at for t in self.tasks if t.task_id in ended)
        if not spans:
            return {"taskP50S": None, "taskMaxS": None}
        return {"taskP50S": round(spans[len(spans) // 2], 2), "taskMaxS": round(spans[-1], 2)}

    def _report(
        self,
        kind: Any,
        swarm: Swarm | None,
        reports: list[dict[str, Any]],
        honest: list[list[str]],
        adversaries: list[list[str]],
        seconds: float,
    ) -> dict[str, Any]:
        identities = swarm.identities if swarm else []
        adversary_ids = {i.miner_id for i in identities}
        warmup = {r["minerId"]: set(r["first"]) for r in reports}
        tally = Tally()
        for task, detail in self.details:
            judge_task(tally, task, detail, kind, adversary_ids, warmup)
        honest_ids = {r["minerId"] for r in reports}
        if self.events.banned:
            banned_honest = honest_ids & set(self.events.banned)
        else:
            banned_honest = {r["minerId"] for r in reports if BANNED in r["closes"]}
        return {
            "cell": self.cell.name,
            "kind": self.cell.kind,
            "mode": self.cell.mode,
            "config": self.cell.config,
            "strategy": self.cell.strategy,
            "settings": self.cell.settings,
            "honestOperators": len(honest),
            "adversarialOperators": len(adversaries),
            "honestIdentities": sum(map(len, honest)),
            "adversarialIdentities": sum(map(len, adversaries)),
            "freshIdentities": len(identities) - sum(map(len, adversaries)),
            "tasks": sum(t.task_id != "" for t in self.tasks),
            **figures(tally),
            **catch_times(identities, self.events.banned),
            "honestBanned": len(banned_honest),
            "held": sum(i.held for i in identities),
            "events": {
                k: self.events.counts.get(k, 0)
                for k in ("miner.banned", "microtask.reopened", "task.revised")
            },
            **self._latency(),
            "seconds": round(seconds, 1),
            "phases": self.phases,
            "notes": tally.notes + self.notes,
            "errors": self.errors,
        }
