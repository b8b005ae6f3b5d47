"""What credibility changes: checks passed are recorded, liars are banned, and
every decision a liar's votes helped make is examined again (Sarmenta's
blacklisting and backtracking).

A ban is durable before anything follows from it. Then the banned miner's
results are struck from every microtask they were counted in, running tasks
and finished ones alike: an undecided microtask simply loses the votes; a
decided one whose answer no longer meets its target without them is reopened
(``microtask.reopened``) and its task, even a completed one, runs again
(``task.revised``), so its output and proof change once it is decided anew.
The credit its results earned is taken back with them (:meth:`Trust.revoke_credit`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from qortex.coordinator_state import CoordinatorCalls, CoordinatorState
from qortex.core import lifecycle
from qortex.core.credibility import SUSPECT_SECONDS, network_of
from qortex.core.kinds import cost_of
from qortex.core.ledger import ReputationChange
from qortex.core.work import Outcome
from qortex.events import BusEvent
from qortex.protocol import messages as m
from qortex.recovery import rebuild
from qortex.store import facts as f
from qortex.taskbook import TaskBook

log = logging.getLogger("qortex.trust")


class Trust:
    def __init__(self, state: CoordinatorState, calls: CoordinatorCalls, book: TaskBook) -> None:
        self._state = state
        self._calls = calls
        self._book = book
        # One re-examination at a time: two that both load a finished task
        # would each put a copy of it in the table, and decide an orphan.
        self._examining = asyncio.Lock()

    def passed(self, miner_id: str, now: float, unit: list[f.Fact], events: list[BusEvent]) -> None:
        """A miner's result passed a check: more credibility, one more slot."""
        state = self._state
        conn = state.connections.get(miner_id)
        report = state.ledger.passed(miner_id, conn.info.slots if conn else 1)
        self._standing(miner_id, unit)
        if report is not None:
            self._report(report, now, unit, events)

    def let_go(self, miner_ids: list[str], unit: list[f.Fact]) -> None:
        """Miners let copies expire or dropped them: their earned slots halve."""
        for miner_id in dict.fromkeys(miner_ids):
            self._state.ledger.let_go(miner_id)
            self._standing(miner_id, unit)

    def _standing(self, miner_id: str, unit: list[f.Fact]) -> None:
        state = self._state
        standing = state.ledger.get(miner_id)
        unit.append(f.standing(miner_id, standing.passes, standing.allowance))
        self.rate(miner_id)

    def rate(self, miner_id: str) -> None:
        """Tell placement what a connected miner's next result will count as."""
        state = self._state
        conn = state.connections.get(miner_id)
        if conn is not None:
            error = state.ledger.vote_error(miner_id, conn.network, state.clock())
            state.table.rate(miner_id, error, state.ledger.get(miner_id).allowance)

    def _suspect(self, network: str, until: float) -> None:
        """A liar was banned on ``network``: its other identities are worth nothing for a while."""
        self._state.ledger.suspect(network, until)
        for other in list(self._state.connections.values()):
            if other.network == network:
                self.rate(other.info.miner_id)

    def _report(
        self, report: ReputationChange, now: float, unit: list[f.Fact], events: list[BusEvent]
    ) -> None:
        unit.append(
            f.reputation(report.miner_id, now, report.reputation, report.passes, report.reason)
        )
        events.append(
            self._state.events.new(
                "miner.reputation",
                now,
                miner_id=report.miner_id,
                reputation=report.reputation,
                passes=report.passes,
                reason=report.reason,
            )
        )

    def ban(
        self, miner_id: str, reason: str, unit: list[f.Fact], farewell: bytes = b""
    ) -> asyncio.Future[None]:
        """Ban a miner caught lying; its decisions are re-examined once the ban is durable.

        It gets no more work at once; once the ban is durable its socket is
        sent ``farewell`` (the refusal of the result that gave it away) and
        closed with 4011.
        """
        state = self._state
        now = state.clock()
        report = state.ledger.ban(miner_id, reason)
        unit += f.banned(miner_id)
        events = [state.events.new("miner.banned", now, miner_id=miner_id, reason=reason)]
        self._report(report, now, unit, events)
        committed = self._calls.write(unit, events)
        conn = state.connections.get(miner_id)
        if conn is not None:
            self._suspect(conn.network, now + SUSPECT_SECONDS)
            link = conn.link
            state.stats.closed[m.BANNED] += 1
            self._calls.disconnect(miner_id, link, "banned")

            def tell(_: asyncio.Future[None]) -> None:
                if farewell:
                    link.send(farewell)
                link.close(m.BANNED, f"banned: {reason}")

            committed.add_done_callback(tell)
        self._calls.spawn(self._backtrack(miner_id, committed, conn is None))
        log.warning("miner %s banned: %s", miner_id, reason)
        return committed

    async def _backtrack(self, miner_id: str, after: asyncio.Future[None], away: bool) -> None:
        await after
        if away:  # banned while not connected: its network is the one it was last seen on
            row = await self._state.store.reader.miner(miner_id)
            if row and row["address"]:
                network = network_of(row["address"], miner_id)
                self._suspect(network, row["last_seen"] + SUSPECT_SECONDS)
        async with self._examining:
            await self._reexamine(miner_id)

    async def revoke_credit(self, miner_id: str, results: Iterable[str] | None = None) -> float:
        """Take back the credit ``miner_id`` earned for ``results`` (assignment ids; all
        of its results if ``None``, as when it is banned).

        Revoking a result twice, or one that is not this miner's, changes
        nothing. Returns the credit taken back by this call.
        """
        state = self._state
        wanted = None if results is None else list(results)
        rows = await state.store.reader.result_kinds(miner_id, wanted)
        if not rows:
            return 0.0
        now = state.clock()
        unit: list[f.Fact] = []
        total = 0.0
        for assignment_id, kind_name in rows:
            credit = cost_of(state.kinds.get(kind_name)) if kind_name in state.kinds else 0.0
            total += credit
            unit.append(f.credit_revoked(assignment_id, miner_id, credit, now))
        unit.append(f.revoked_total(miner_id))
        await self._calls.write(unit, [])
        return total

    async def _reexamine(self, miner_id: str) -> None:
        state = self._state
        await self.revoke_credit(miner_id)  # its results are revoked, so is their credit
        voted = await state.store.voted(miner_id)
        task_ids = list(dict.fromkeys(task_id for _, task_id in voted))
        borrowed: set[str] = set()
        # Finished tasks are loaded whole; the banned miner's results are
        # revoked in the store, so they come back without its votes. A task
        # may finish (and leave the table) while another loads: ask again
        # until none is missing, so what follows sees every one of them.
        while missing := [t for t in task_ids if t not in state.table.tasks]:
            loaded = rebuild(state.table, state.kinds, await state.store.load_tasks(missing))
            borrowed |= {task.id for task in loaded}
            gone = set(missing) - borrowed  # no longer in the file either: nothing to examine
            task_ids = [t for t in task_ids if t not in gone]
        now = state.clock()
        unit: list[f.Fact] = []
        events: list[BusEvent] = []
        outcomes: list[Outcome] = []
        revised: set[str] = set()
        for microtask_id, task_id in dict.fromkeys(voted):
            task = state.table.tasks.get(task_id)
            if task is None:
                continue
            mt = task.built_at(int(microtask_id.rsplit(":", 1)[1]))
            if mt is None:  # never built since the start: it holds no votes
                continue
            was = task.state
            reopened, outcome = state.table.strike(mt, miner_id)
            if reopened:
                unit.append(f.reopened(mt.id, mt.error))
                events.append(
                    state.events.new(
                        "microtask.reopened",
                        now,
                        task_id,
                        miner_id,
                        microtaskId=mt.id,
                        reason="a voter was banned",
                    )
                )
            if reopened and was != lifecycle.RUNNING and task_id not in revised:
                revised.add(task_id)
                unit.append(f.revised(task_id))
                events.append(
                    state.events.new(
                        "task.revised",
                        now,
                        task_id,
                        miner_id,
                        status=lifecycle.RUNNING,
                        reason=f"miner {miner_id} was banned; its votes no longer count",
                    )
                )
            if outcome is not None:
                self._calls.settle(outcome, now, unit, events)
                outcomes.append(outcome)
        for task_id in borrowed - revised:
            state.table.drop_task(task_id)
        committed = self._calls.write(unit, events)
        for outcome in outcomes:
            if outcome.task is not None:
                self._book.finish_later(outcome.task, committed)
        self._calls.schedule_fill()
        await committed
        log.info(
            "backtracked miner %s: %d results, %d tasks revised", miner_id, len(voted), len(revised)
        )
