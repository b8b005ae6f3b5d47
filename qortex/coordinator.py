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
import hashlib
import logging
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from qortex.connections import Connection, MinerLink, Stats
from qortex.core import lifecycle
from qortex.core.dispatch import DispatchTable, Lease, Outcome, Task
from qortex.core.kinds import KindRegistry
from qortex.core.quorum import Policy
from qortex.errors import InvalidInput, ResultRefused, TooManyRequests
from qortex.events import Event, EventBus, EventLog
from qortex.gcpause import collector_paused
from qortex.protocol import messages as m
from qortex.protocol.server import Authenticated
from qortex.recovery import recover
from qortex.settings import Settings
from qortex.store import facts as f
from qortex.store.database import Store

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
        self.table = DispatchTable(rng or random.Random())
        self.connections: dict[str, Connection] = {}
        self.stats = Stats()
        self.events = EventLog(0)
        self.started_at = clock()
        self._fill_pending = False
        self._ticker: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # -- life -------------------------------------------------------------

    async def start(self) -> None:
        for task in await recover(self):
            self._spawn(self._finish(task, self.store.writer.write([])))
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
        s = self.settings
        replicas = given.get("replicas")
        if replicas is None:
            quorum, max_replicas = s.quorum, s.max_replicas
            replicas = s.replicas
        else:
            quorum, max_replicas = replicas // 2 + 1, max(replicas, 2 * replicas - 1)
        quorum = given.get("quorum") or quorum
        max_replicas = given.get("max_replicas") or max_replicas
        if max_replicas > MAX_REPLICAS_LIMIT:
            raise InvalidInput(f"at most {MAX_REPLICAS_LIMIT} replicas", field="max_replicas")
        lease = min(given.get("lease_seconds") or s.lease_seconds, s.lease_limit_seconds)
        return Policy(replicas, quorum, max(max_replicas, replicas), lease)

    async def submit(self, kind_name: str, task_input: Any, **params: Any) -> str:
        """Validate, split and record a task; returns its id once it is durable."""
        kind = self.kinds.get(kind_name)
        normalised = kind.validate(task_input)
        policy = self.policy(**params)
        inputs = [msgspec.Raw(_json.encode(part)) for part in kind.split(normalised)]
        if not inputs:
            raise InvalidInput("the task splits into no microtasks: nothing to do", field="input")
        if self.table.open + len(inputs) > self.settings.max_pending:
            raise TooManyRequests(
                f"{self.table.open} microtasks are waiting already (limit"
                f" {self.settings.max_pending}); try again when miners have caught up",
                retry_after=5,
            )
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
                    len(inputs),
                    now,
                ),
            )
        ]
        unit += [
            (f.INSERT_MICROTASK, (f"{task_id}:{i}", task_id, i, bytes(raw).decode()))
            for i, raw in enumerate(inputs)
        ]
        event = self.events.new(
            "task.created",
            now,
            task_id,
            kind=kind.name,
            microtasks=len(inputs),
            replicas=policy.replicas,
            quorum=policy.quorum,
        )
        committed = self._write(unit, [event])
        with collector_paused():
            self.table.add_task(task_id, kind.name, policy, inputs)
        self._schedule_fill()
        await committed
        return task_id

    async def _finish(self, task: Task, after: asyncio.Future[None]) -> None:
        """Assemble and record a task's output once its last decision is durable."""
        await after
        kind = self.kinds.get(task.kind)
        now = self.clock()
        if task.state == lifecycle.COMPLETED:
            row = await self.store.reader.task(task.id)
            assert row is not None
            output = kind.assemble(_decode(row["input"]), [mt.decision for mt in task.microtasks])
            output_text: str | None = _json.encode(output).decode()
            event = self.events.new(
                "task.completed",
                now,
                task.id,
                kind=task.kind,
                status=task.state,
                microtasks=len(task.microtasks),
            )
        else:
            output_text = None
            failed = sum(mt.state == lifecycle.INCONCLUSIVE for mt in task.microtasks)
            event = self.events.new(
                "task.failed",
                now,
                task.id,
                kind=task.kind,
                status=task.state,
                inconclusive=failed,
                reason=f"{failed} microtask(s) inconclusive",
            )
        await self._write([(f.FINISH_TASK, (task.state, output_text, now, task.id))], [event])
        self.table.drop_task(task.id)

    # -- miners -----------------------------------------------------------

    def connect(self, info: Authenticated, link: MinerLink) -> None:
        old = self.connections.get(info.miner_id)
        if old is not None:
            self.stats.closed[m.REPLACED] += 1
            old.link.close(m.REPLACED, "the same key connected from another socket")
            self.disconnect(info.miner_id, old.link, "replaced")
        now = self.clock()
        self.connections[info.miner_id] = Connection(info, link, now)
        self.table.connect(info.miner_id, info.slots, info.kinds)
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
        )
        self._write(unit, [event])
        self._schedule_fill()

    def disconnect(self, miner_id: str, link: MinerLink, reason: str) -> None:
        conn = self.connections.get(miner_id)
        if conn is None or conn.link is not link:
            return
        del self.connections[miner_id]
        now = self.clock()
        released = self.table.disconnect(miner_id)
        unit, events = self._reassigned(released, lifecycle.RELEASED, now)
        events.append(
            self.events.new(
                "miner.disconnected", now, miner_id=miner_id, reason=reason, released=len(released)
            )
        )
        self._write([*unit, (f.SEEN_MINER, (now, miner_id))], events)
        self._schedule_fill()

    def public_key(self, miner_id: str) -> str | None:
        conn = self.connections.get(miner_id)
        return conn.info.public_key if conn else None

    # -- results ----------------------------------------------------------

    def accept(
        self, miner_id: str, assignment_id: str, microtask_id: str, output: bytes, signature: str
    ) -> asyncio.Future[None]:
        """Count a result whose signature has been verified.

        Raises :class:`ResultRefused` (and changes nothing but the refusal
        count) if it may not count; otherwise returns a future that resolves
        once the result, and any decision it caused, is durable.
        """
        now = self.clock()
        try:
            lease = self.table.take(miner_id, assignment_id, microtask_id, now)
            try:
                value = _decode(output)
            except msgspec.DecodeError:
                raise ResultRefused("bad_output", "output is not a JSON text") from None
        except ResultRefused as refusal:
            self.refuse(miner_id, assignment_id, refusal)
            raise
        kind = self.kinds.get(lease.microtask.kind)
        outcome = self.table.record(lease, value, kind.agree)
        mt = lease.microtask
        unit: list[f.Fact] = [
            (f.INSERT_RESULT, (assignment_id, mt.id, miner_id, output.decode(), signature, now)),
            (f.CLOSE_ASSIGNMENT, (lifecycle.RETURNED, now, assignment_id)),
            (f.COUNT_ACCEPTED, (1, now, miner_id)),
        ]
        events = [
            self.events.new(
                "microtask.result",
                now,
                mt.task_id,
                miner_id,
                microtaskId=mt.id,
                assignmentId=assignment_id,
            )
        ]
        self.stats.accepted += 1
        conn = self.connections.get(miner_id)
        if conn is not None:
            conn.accepted += 1
        if outcome.decided or outcome.inconclusive:
            self._settle(outcome, now, unit, events)
        committed = self._write(unit, events)
        if outcome.task is not None:
            self._spawn(self._finish(outcome.task, committed))
        self._schedule_fill()
        return committed

    def precheck(
        self, miner_id: str, assignment_id: str, microtask_id: str
    ) -> ResultRefused | None:
        """Why a result would be refused before its signature is even checked, if it would.

        Signature checks are the dearest part of a result, and a result whose
        copy is already withdrawn, late or unknown changes nothing whoever
        signed it, so it is refused (and counted) without one.
        """
        try:
            self.table.take(miner_id, assignment_id, microtask_id, self.clock())
        except ResultRefused as refusal:
            self.refuse(miner_id, assignment_id, refusal)
            return refusal
        return None

    def refuse(
        self, miner_id: str, assignment_id: str, refusal: ResultRefused, attributable: bool = True
    ) -> None:
        """Count a refusal; charge it to the miner only if the miner really sent it.

        A result for a copy cancelled a moment earlier (``withdrawn``) is an
        honest race, and an unverified HTTP result could come from anyone, so
        neither is held against the miner it names.
        """
        self.stats.refused[refusal.reason] += 1
        if not attributable or refusal.reason == "withdrawn":
            return
        conn = self.connections.get(miner_id)
        if conn is not None:
            conn.refused += 1
        now = self.clock()
        event = self.events.new(
            "result.refused", now, None, miner_id, assignmentId=assignment_id, reason=refusal.reason
        )
        self._write([(f.COUNT_REFUSED, (1, now, miner_id))], [event])

    def _settle(
        self, outcome: Outcome, now: float, unit: list[f.Fact], events: list[Event]
    ) -> None:
        mt = outcome.lease.microtask
        decision = _json.encode(mt.decision).decode() if outcome.decided else None
        unit.append((f.SETTLE_MICROTASK, (mt.state, decision, now, mt.id)))
        for lease in outcome.cancelled:
            unit.append((f.CLOSE_ASSIGNMENT, (lifecycle.CANCELLED, now, lease.id)))
            self._send(lease.miner_id, m.Cancel(lease.id, mt.state))
        best = mt.tally.best
        events.append(
            self.events.new(
                "microtask.quorum",
                now,
                mt.task_id,
                microtaskId=mt.id,
                status=mt.state,
                decision=mt.decision,
                votes=len(best) if outcome.decided else 0,
                results=mt.tally.returned,
                cancelled=len(outcome.cancelled),
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
                self._write(unit, events)
                self._schedule_fill()
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

    def _schedule_fill(self) -> None:
        """Coalesce every change of this loop iteration into one placement pass."""
        if not self._fill_pending:
            self._fill_pending = True
            asyncio.get_running_loop().call_soon(self._fill)

    def _fill(self) -> None:
        self._fill_pending = False
        now = self.clock()
        leases = self.table.fill(now)
        if self.table.backlogged:
            asyncio.get_running_loop().call_later(0.005, self._schedule_fill)
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
                    input_sha256=hashlib.sha256(bytes(mt.input)).hexdigest(),
                ),
            )
        self._write(unit, events)

    # -- plumbing ---------------------------------------------------------

    def _send(self, miner_id: str, frame: m.Frame) -> None:
        conn = self.connections.get(miner_id)
        if conn is not None:
            conn.link.send(m.encoder.encode(frame))

    def _write(self, unit: list[f.Fact], events: list[Event]) -> asyncio.Future[None]:
        future = self.store.writer.write(unit + [e.fact() for e in events])
        if events:
            future.add_done_callback(
                lambda fut: None if fut.cancelled() or fut.exception() else self.bus.publish(events)
            )
        return future

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
