"""The one place where state changes.

The coordinator owns the dispatch table and turns each thing that happens (a
task submitted, a miner connected, a result in, a deadline passed) into three
consequences, always in this order: the in-memory decision, the facts queued
for the writer, and the messages that go out. Acknowledgements and events are
sent only once their facts have committed; assignments go out at once, since a
crash before their commit only voids them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from qortex.connections import Connection, MinerLink, Stats
from qortex.core import lifecycle
from qortex.core.credibility import network_of
from qortex.core.dispatch import DispatchTable
from qortex.core.kinds import KindRegistry
from qortex.core.ledger import Ledger
from qortex.core.quorum import Policy
from qortex.core.work import NO_GOLD, Lease, Outcome, Task
from qortex.errors import InvalidInput, ProtocolViolation, TooManyRequests
from qortex.events import Event, EventBus, EventLog
from qortex.gcpause import collector_paused
from qortex.intake import Intake
from qortex.protocol import messages as m
from qortex.protocol.server import Authenticated
from qortex.recovery import recover
from qortex.settings import Settings
from qortex.store import facts as f
from qortex.store.database import Store
from qortex.trust import Trust

log = logging.getLogger("qortex.coordinator")

_json = msgspec.json.Encoder()
_decode = msgspec.json.decode

MAX_REPLICAS_LIMIT = 64


class Coordinator:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        kinds: KindRegistry,
        bus: EventBus,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.kinds = kinds
        self.bus = bus
        self.clock = clock
        self.rng = rng or random.Random()
        self.ledger = Ledger(settings.fault_fraction)
        self.verifier: Any = None  # set by the web layer: checks signatures on threads
        self.intake = Intake(self)
        self.trust = Trust(self)
        self.table = DispatchTable(self.rng, checkable=self.intake.checkable)
        self.connections: dict[str, Connection] = {}
        self.stats = Stats()
        self.events = EventLog(0)
        self.started_at = clock()
        self._fill_pending = False
        self._ticker: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # -- life -------------------------------------------------------------

    async def start(self) -> None:
        for miner_id, passes, status, allowance in await self.store.standings():
            self.ledger.load(miner_id, passes, status, allowance)
        for task in await recover(self):
            self.finish_later(task, self.store.writer.write([]))
        self._ticker = asyncio.create_task(self._expire_loop(), name="qortex-leases")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        for conn in list(self.connections.values()):
            conn.link.close(1001, "server shutting down")
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.store.writer.drain()

    # -- tasks ------------------------------------------------------------

    def policy(self, **given: Any) -> Policy:
        """A task's rule: the settings, with the client's floors and target where it gave them."""
        s = self.settings
        replicas = given.get("replicas")
        if replicas is None:
            quorum, max_replicas = s.quorum, s.max_replicas
            replicas = s.replicas
        else:
            quorum = replicas // 2 + 1
            max_replicas = max(s.max_replicas, 2 * replicas - 1)
        quorum = given.get("quorum") or quorum
        max_replicas = given.get("max_replicas") or max_replicas
        if max_replicas > MAX_REPLICAS_LIMIT:
            raise InvalidInput(f"at most {MAX_REPLICAS_LIMIT} replicas", field="max_replicas")
        lease = min(given.get("lease_seconds") or s.lease_seconds, s.lease_limit_seconds)
        target = given.get("target_error") or s.target_error
        return Policy(replicas, quorum, max(max_replicas, replicas), lease, target)

    async def submit(
        self, kind_name: str, task_input: Any, gold: list[Any] | None = None, **params: Any
    ) -> str:
        """Validate, split and record a task; returns its id once it is durable.

        Known-answer items (``gold``: expected outputs for inputs the client
        chose) are shuffled among the real microtasks, so nothing tells them
        apart, and left out of the task's output.
        """
        kind = self.kinds.get(kind_name)
        normalised = kind.validate(task_input)
        policy = self.policy(**params)
        parts = [msgspec.Raw(_json.encode(part)) for part in kind.split(normalised)]
        if not parts:
            raise InvalidInput("the task splits into no microtasks: nothing to do", field="input")
        known = [(msgspec.Raw(_json.encode(g.input)), g.output) for g in gold or []]
        total = len(parts) + len(known)
        if self.table.open + total > self.settings.max_pending:
            raise TooManyRequests(
                f"{self.table.open} microtasks are waiting already (limit"
                f" {self.settings.max_pending}); try again when miners have caught up",
                retry_after=5,
            )
        gold_at = dict(zip(sorted(self.rng.sample(range(total), len(known))), known, strict=True))
        real = iter(parts)
        inputs = [gold_at[i][0] if i in gold_at else next(real) for i in range(total)]
        task_id = str(uuid.uuid4())
        now = self.clock()
        unit: list[f.Fact] = [
            (
                f.INSERT_TASK,
                (
                    task_id,
                    kind.name,
                    _json.encode(normalised).decode(),
                    policy.replicas,
                    policy.quorum,
                    policy.max_replicas,
                    policy.lease_seconds,
                    total,
                    now,
                    policy.target_error,
                ),
            )
        ]
        unit += [
            (
                f.INSERT_MICROTASK,
                (
                    f"{task_id}:{i}",
                    task_id,
                    i,
                    bytes(raw).decode(),
                    _json.encode(gold_at[i][1]).decode() if i in gold_at else None,
                ),
            )
            for i, raw in enumerate(inputs)
        ]
        event = self.events.new(
            "task.created",
            now,
            task_id,
            kind=kind.name,
            microtasks=total,
            replicas=policy.replicas,
            quorum=policy.quorum,
            targetError=policy.target_error,
        )
        committed = self.write(unit, [event])
        with collector_paused():
            expected = {i: g[1] for i, g in gold_at.items()}
            self.table.add_task(task_id, kind.name, policy, inputs, expected)
        self.schedule_fill()
        await committed
        return task_id

    def finish_later(self, task: Task, after: asyncio.Future[None]) -> None:
        """Record a task's end once its last decision is durable."""
        self.spawn(self._finish(task, after))

    async def _finish(self, task: Task, after: asyncio.Future[None]) -> None:
        """Assemble and record a task's output once its last decision is durable."""
        await after
        if task.state == lifecycle.RUNNING or self.table.tasks.get(task.id) is not task:
            return  # reopened meanwhile: it finishes again later
        kind = self.kinds.get(task.kind)
        now = self.clock()
        state, output_text, reason = task.state, None, ""
        if state == lifecycle.COMPLETED:
            row = await self.store.reader.task(task.id)
            assert row is not None
            decisions = [mt.decision for mt in task.microtasks if mt.gold is NO_GOLD]
            try:
                output = kind.assemble(_decode(row["input"]), decisions)
                output_text = _json.encode(output).decode()
            except Exception as exc:  # a plugin's bug fails the task, with the reason
                state, reason = lifecycle.FAILED, f"assembling the output failed: {exc!r}"[:300]
        else:
            failed = sum(mt.state == lifecycle.INCONCLUSIVE for mt in task.microtasks)
            reason = f"{failed} microtask(s) inconclusive"
        if state == lifecycle.COMPLETED:
            event = self.events.new(
                "task.completed",
                now,
                task.id,
                kind=task.kind,
                status=state,
                microtasks=len(task.microtasks),
            )
        else:
            event = self.events.new(
                "task.failed",
                now,
                task.id,
                kind=task.kind,
                status=state,
                inconclusive=sum(mt.state == lifecycle.INCONCLUSIVE for mt in task.microtasks),
                reason=reason,
            )
        await self.write([(f.FINISH_TASK, (state, output_text, now, task.id))], [event])
        if task.state != lifecycle.RUNNING:
            self.table.drop_task(task.id)

    # -- miners -----------------------------------------------------------

    def admit(self, miner_id: str) -> None:
        """Turn a banned key away before it is welcomed."""
        if self.ledger.banned(miner_id):
            self.stats.closed[m.BANNED] += 1
            raise ProtocolViolation(m.BANNED, "this miner is banned: it failed a check")

    def connect(self, info: Authenticated, link: MinerLink, address: str = "") -> None:
        """A miner finished its handshake and was admitted: it may be given work now."""
        old = self.connections.get(info.miner_id)
        if old is not None:
            self.stats.closed[m.REPLACED] += 1
            old.link.close(m.REPLACED, "the same key connected from another socket")
            self.disconnect(info.miner_id, old.link, "replaced")
        now = self.clock()
        network = network_of(address, info.miner_id)
        self.connections[info.miner_id] = Connection(info, link, now, address, network)
        standing = self.ledger.get(info.miner_id)
        self.table.connect(
            info.miner_id,
            info.slots,
            info.kinds,
            network,
            self.ledger.error(info.miner_id),
            standing.allowance,
        )
        kinds = list(info.kinds)
        unit = [
            (
                f.UPSERT_MINER,
                (
                    info.miner_id,
                    info.public_key,
                    info.name,
                    info.software,
                    _json.encode(kinds).decode(),
                    now,
                    now,
                    address,
                ),
            )
        ]
        event = self.events.new(
            "miner.connected",
            now,
            miner_id=info.miner_id,
            name=info.name,
            slots=info.slots,
            kinds=kinds,
            software=info.software,
            reputation=self.ledger.reputation(info.miner_id),
        )
        self.write(unit, [event])
        self.schedule_fill()

    def disconnect(self, miner_id: str, link: MinerLink, reason: str) -> None:
        conn = self.connections.get(miner_id)
        if conn is None or conn.link is not link:
            return
        del self.connections[miner_id]
        now = self.clock()
        released = self.table.disconnect(miner_id)
        unit, events = self._reassigned(released, lifecycle.RELEASED, now)
        if released:
            self.trust.let_go([miner_id], unit)
        events.append(
            self.events.new(
                "miner.disconnected", now, miner_id=miner_id, reason=reason, released=len(released)
            )
        )
        self.write([*unit, (f.SEEN_MINER, (now, miner_id))], events)
        self.ledger.forget(miner_id)
        self.schedule_fill()

    def public_key(self, miner_id: str) -> str | None:
        conn = self.connections.get(miner_id)
        return conn.info.public_key if conn else None

    # -- decisions --------------------------------------------------------

    def settle(self, outcome: Outcome, now: float, unit: list[f.Fact], events: list[Event]) -> None:
        """The facts, cancels and event of a microtask decided or given up."""
        mt = outcome.microtask
        decision = _json.encode(mt.decision).decode() if outcome.decided else None
        unit.append(
            (f.SETTLE_MICROTASK, (mt.state, decision, now, mt.error, mt.reason or None, mt.id))
        )
        for lease in outcome.cancelled:
            unit.append((f.CLOSE_ASSIGNMENT, (lifecycle.CANCELLED, now, lease.id)))
            self._send(lease.miner_id, m.Cancel(lease.id, mt.state))
        best, _ = mt.tally.best()
        detail: dict[str, Any] = {"reason": mt.reason} if mt.reason else {}
        events.append(
            self.events.new(
                "microtask.quorum",
                now,
                mt.task_id,
                microtaskId=mt.id,
                status=mt.state,
                decision=mt.decision,
                votes=len({v.miner_id for v in best.votes}) if best and outcome.decided else 0,
                results=mt.tally.returned,
                cancelled=len(outcome.cancelled),
                error=mt.error,
                **detail,
            )
        )
        if outcome.decided:
            self.stats.decided += 1
        else:
            self.stats.inconclusive += 1

    # -- deadlines --------------------------------------------------------

    async def _expire_loop(self) -> None:
        silence = 3 * self.settings.heartbeat_seconds
        swept = self.clock()
        while True:
            now = self.clock()
            if now - swept >= 1.0:
                swept = now
                self._close_silent(now, silence)
            expired = self.table.expire(now)
            if expired:
                for lease in expired:
                    self._send(lease.miner_id, m.Cancel(lease.id, "expired"))
                unit, events = self._reassigned(expired, lifecycle.EXPIRED, now)
                self.trust.let_go([lease.miner_id for lease in expired], unit)
                self.write(unit, events)
                self.schedule_fill()
            deadline = self.table.next_deadline()
            wait = 1.0 if deadline is None else min(1.0, max(0.01, deadline - now))
            await asyncio.sleep(wait)

    def _close_silent(self, now: float, silence: float) -> None:
        """Close miners that sent nothing, not even a heartbeat, for ``silence`` seconds."""
        for conn in list(self.connections.values()):
            if now - max(conn.link.last_seen, conn.since) > silence:
                self.stats.closed[m.TIMEOUT] += 1
                conn.link.close(m.TIMEOUT, f"nothing received for {silence:g} s")

    def _reassigned(
        self, leases: list[Lease], state: str, now: float
    ) -> tuple[list[f.Fact], list[Event]]:
        self.stats.reassigned += len(leases)
        unit: list[f.Fact] = [(f.CLOSE_ASSIGNMENT, (state, now, lease.id)) for lease in leases]
        events = [
            self.events.new(
                "microtask.reassigned",
                now,
                lease.microtask.task_id,
                lease.miner_id,
                microtaskId=lease.microtask.id,
                assignmentId=lease.id,
                reason=state,
            )
            for lease in leases
        ]
        return unit, events

    # -- placement --------------------------------------------------------

    def schedule_fill(self) -> None:
        """Coalesce every change of this loop iteration into one placement pass."""
        if not self._fill_pending:
            self._fill_pending = True
            asyncio.get_running_loop().call_soon(self._fill)

    def _fill(self) -> None:
        self._fill_pending = False
        now = self.clock()
        leases = self.table.fill(now)
        if self.table.backlogged:
            asyncio.get_running_loop().call_later(0.005, self.schedule_fill)
        if not leases:
            return
        unit: list[f.Fact] = []
        events: list[Event] = []
        for lease in leases:
            mt = lease.microtask
            unit.append(
                (
                    f.INSERT_ASSIGNMENT,
                    (lease.id, mt.id, lease.miner_id, lease.issued_at, lease.deadline),
                )
            )
            events.append(
                self.events.new(
                    "microtask.assigned",
                    now,
                    mt.task_id,
                    lease.miner_id,
                    microtaskId=mt.id,
                    assignmentId=lease.id,
                    deadlineMs=int(lease.deadline * 1000),
                )
            )
            self._send(
                lease.miner_id,
                m.Assign(
                    lease.id,
                    mt.id,
                    mt.task_id,
                    mt.kind,
                    mt.input,
                    int(lease.deadline * 1000),
                    input_sha256=mt.input_digest(),
                ),
            )
        self.write(unit, events)

    # -- plumbing ---------------------------------------------------------

    def _send(self, miner_id: str, frame: m.Frame) -> None:
        conn = self.connections.get(miner_id)
        if conn is not None:
            conn.link.send(m.encoder.encode(frame))

    def write(self, unit: list[f.Fact], events: list[Event]) -> asyncio.Future[None]:
        """Queue facts and events for one commit; subscribers hear of the events after it."""
        future = self.store.writer.write(unit + [e.fact() for e in events])
        if events:
            future.add_done_callback(
                lambda fut: None if fut.cancelled() or fut.exception() else self.bus.publish(events)
            )
        return future

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
