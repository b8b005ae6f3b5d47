"""The one place where state changes.

The coordinator owns the dispatch table and turns each thing that happens (a
task submitted, a miner connected, a result in, a deadline passed) into three
consequences, always in this order: the in-memory decision, the facts queued
for the writer, and the messages that go out. Acknowledgements and events are
sent only once their facts have committed; assignments go out at once and are
never written (a crash voids them, and their copies are issued again).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec

from qortex.connections import Connection, MinerLink
from qortex.control import Control
from qortex.coordinator_state import SignatureChecker, empty_state
from qortex.core import lifecycle
from qortex.core.credibility import SUSPECT_SECONDS, network_of
from qortex.core.kinds import KindRegistry
from qortex.core.ledger import BANNED
from qortex.core.work import Lease, Outcome
from qortex.errors import ProtocolViolation
from qortex.events import BusEvent, EventBus
from qortex.intake import Intake
from qortex.protocol import messages as m
from qortex.protocol.server import Authenticated
from qortex.recovery import read_inputs, recover
from qortex.settings import Settings
from qortex.snapshot import CoordinatorSnapshot, frozen_counts
from qortex.store import facts as f
from qortex.store.database import Store
from qortex.taskbook import TaskBook
from qortex.trust import Trust

log = logging.getLogger("qortex.coordinator")

_json = msgspec.json.Encoder()


class Coordinator:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        kinds: KindRegistry,
        bus: EventBus,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        verifier: SignatureChecker | None = None,
    ) -> None:
        """``verifier`` checks signatures on threads (the web layer's); without it, inline."""
        state = empty_state(settings, store, kinds, clock, rng or random.Random(), verifier)
        self.settings = settings
        self.store = store
        self.kinds = kinds
        self.bus = bus
        self.clock = clock
        self.rng = state.rng
        self.ledger = state.ledger
        self.loop = state.loop  # kept: see web/wire.py
        self.table = state.table
        self.connections = state.connections
        self.stats = state.stats
        self.events = state.events
        self.book = TaskBook(state, self)
        self.trust = Trust(state, self, self.book)
        self.control = Control(state, self, self.trust)
        self.intake = Intake(state, self, self.trust, self.book)
        self.started_at = clock()
        self._fill_pending = False
        self._ticker: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # -- life -------------------------------------------------------------

    async def start(self) -> None:
        """Take over what the file holds (see :mod:`qortex.recovery`), then start the timers."""
        for miner_id, passes, status, allowance, address, seen in await self.store.standings():
            self.ledger.load(miner_id, passes, status, allowance)
            if status == BANNED and address:  # its network stays suspect a while after it
                self.ledger.suspect(network_of(address, miner_id), seen + SUSPECT_SECONDS)
        recovered = await recover(self.store, self.kinds, self.table, self.clock())
        self.events.last_id = recovered.events.last_id  # ids go on after the file's last
        if recovered.notices:
            self.write([], recovered.notices)
        for task in recovered.unfinished:
            self.book.finish_later(task, self.store.writer.write([]))
        self.spawn(read_inputs(self.store, recovered.unread, self.schedule_fill))
        await self.control.load()
        for task_id, not_before in await self.store.waiting_schedules():
            self.book.scheduler.add(task_id, not_before)
        self._ticker = asyncio.create_task(self._expire_loop(), name="qortex-leases")
        self.book.scheduler.start()

    async def stop(self) -> None:
        await self.book.scheduler.stop()
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        for conn in list(self.connections.values()):
            conn.link.close(1001, "server shutting down")
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.store.writer.drain()

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
            self.ledger.vote_error(info.miner_id, network, now),
            standing.allowance,
        )
        kinds = list(info.kinds)
        unit = [
            f.miner_seen(
                info.miner_id,
                info.public_key,
                info.name,
                info.software,
                _json.encode(kinds).decode(),
                now,
                address,
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
        unit: list[f.Fact] = []
        events = self._reassigned(released, lifecycle.RELEASED, now)
        if released:
            self.trust.let_go([miner_id], unit)
        events.append(
            self.events.new(
                "miner.disconnected", now, miner_id=miner_id, reason=reason, released=len(released)
            )
        )
        self.write([*unit, f.miner_left(miner_id, now)], events)
        self.ledger.forget(miner_id)
        self.schedule_fill()

    def public_key(self, miner_id: str) -> str | None:
        conn = self.connections.get(miner_id)
        return conn.info.public_key if conn else None

    def connected_miners(self) -> list[str]:
        """The ids of the miners connected now."""
        return list(self.connections)

    async def register(
        self, miner_id: str, public_key: str, name: str, software: str, kinds: list[str]
    ) -> None:
        """Record a miner that registered over HTTP; it gets work once it connects.

        Registration proves nothing about who sends it, so a miner already on
        file is left as it is. Kinds this coordinator does not run are left out.
        """
        now = self.clock()
        known = _json.encode([kind for kind in dict.fromkeys(kinds) if kind in self.kinds])
        fact = f.miner_registered(miner_id, public_key, name, software, known.decode(), now)
        await self.store.writer.write([fact])

    def count_close(self, code: int) -> None:
        """The web layer closed a miner's socket with ``code`` (counted for /metrics)."""
        self.stats.closed[code] += 1

    def count_throttled(self) -> None:
        """A request was answered 429 (counted for /metrics)."""
        self.stats.throttled += 1

    def snapshot(self) -> CoordinatorSnapshot:
        """What health checks, metrics and pages show, copied so that it cannot change."""
        s = self.stats
        return CoordinatorSnapshot(
            uptime_seconds=self.clock() - self.started_at,
            kinds=tuple(self.kinds),
            miners_connected=len(self.connections),
            tasks_running=len(self.table.tasks),
            tasks_scheduled=len(self.book.scheduler),
            leases_out=len(self.table.leases),
            microtasks_open=self.table.open,
            event_subscribers=self.bus.subscribers,
            commits=self.store.writer.commits,
            results_accepted=s.accepted,
            results_refused=frozen_counts(s.refused),
            miner_closes=frozen_counts(s.closed),
            microtasks_decided=s.decided,
            microtasks_inconclusive=s.inconclusive,
            copies_reassigned=s.reassigned,
            throttled=s.throttled,
        )

    # -- decisions --------------------------------------------------------

    def settle(
        self, outcome: Outcome, now: float, unit: list[f.Fact], events: list[BusEvent]
    ) -> None:
        """The facts, cancels and event of a microtask decided or given up."""
        mt = outcome.microtask
        decision = _json.encode(mt.decision).decode() if outcome.decided else None
        unit.append(f.settled(mt.id, mt.state, decision, now, mt.error, mt.reason))
        for lease in outcome.cancelled:
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
        # Silent miners are looked for 3 times a heartbeat: each look reads every connection.
        every = self.settings.heartbeat_seconds / 3
        sampled = swept = self.clock()
        while True:
            now = self.clock()
            if now - sampled >= 1.0:
                sampled = now
                self.control.sample(now)
            if now - swept >= every:
                swept = now
                self._close_silent(now, silence)
            self.control.expire_tasks(now)
            expired = self.table.expire(now)
            if expired:
                for lease in expired:
                    self._send(lease.miner_id, m.Cancel(lease.id, "expired"))
                unit: list[f.Fact] = []
                events = self._reassigned(expired, lifecycle.EXPIRED, now)
                self.trust.let_go([lease.miner_id for lease in expired], unit)
                self.write(unit, events)
                self.schedule_fill()
            if self.table.nudge(now):
                self.schedule_fill()  # companions for copies held too long
            deadlines = [
                self.table.next_deadline(),
                self.table.stragglers.next(self.table.leases),
                self.control.next_deadline(),
            ]
            deadline = min((d for d in deadlines if d is not None), default=None)
            wait = 1.0 if deadline is None else min(1.0, max(0.01, deadline - now))
            await asyncio.sleep(wait)

    def _close_silent(self, now: float, silence: float) -> None:
        """Close miners that sent nothing, not even a heartbeat, for ``silence`` seconds."""
        for conn in list(self.connections.values()):
            if now - max(conn.link.last_seen, conn.since) > silence:
                self.stats.closed[m.TIMEOUT] += 1
                conn.link.close(m.TIMEOUT, f"nothing received for {silence:g} s")

    def _reassigned(self, leases: list[Lease], state: str, now: float) -> list[BusEvent]:
        """The notices of copies taken back; a lease has no row, so its event is its record."""
        self.stats.reassigned += len(leases)
        return [
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

    # -- placement --------------------------------------------------------

    def schedule_fill(self) -> None:
        """Coalesce every change of this loop iteration into one placement pass."""
        if not self._fill_pending:
            self._fill_pending = True
            self.loop.call_soon(self._fill)

    def _fill(self) -> None:
        self._fill_pending = False
        now = self.clock()
        leases = self.table.fill(now)
        if self.table.backlogged:
            self.loop.call_later(0.005, self.schedule_fill)
        if not leases:
            return
        events: list[BusEvent] = []
        for lease in leases:
            mt = lease.microtask
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
        self.write([], events)  # live only: streamed after what is queued before them

    # -- plumbing ---------------------------------------------------------

    def _send(self, miner_id: str, frame: m.Frame) -> None:
        conn = self.connections.get(miner_id)
        if conn is not None:
            conn.link.send(m.encoder.encode(frame))

    def write(self, unit: list[f.Fact], events: list[BusEvent]) -> asyncio.Future[None]:
        """Queue facts and events for one commit; subscribers hear of the events after it.

        Live-only events add no fact, but wait their turn all the same, so a
        stream never sees them before an event queued earlier.
        """
        future = self.store.writer.write(unit + [e.fact() for e in events if e.id])
        if events:
            future.add_done_callback(
                lambda fut: None if fut.cancelled() or fut.exception() else self.bus.publish(events)
            )
        return future

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
