"""What credibility changes: checks passed are recorded, liars are banned, and
every decision a liar's votes helped make is examined again (Sarmenta's
blacklisting and backtracking).

A ban is durable before anything follows from it. Then the banned miner's
results are struck from every microtask they were counted in, running tasks
and finished ones alike: an undecided microtask simply loses the votes; a
decided one whose answer no longer meets its target without them is reopened
(``microtask.reopened``) and its task, even a completed one, runs again
(``task.revised``), so its output and proof change once it is decided anew.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from qortex.core import lifecycle
from qortex.core.credibility import SUSPECT_SECONDS, network_of
from qortex.core.ledger import Report
from qortex.core.work import Outcome
from qortex.events import BusEvent
from qortex.protocol import messages as m
from qortex.recovery import rebuild
from qortex.store import facts as f

if TYPE_CHECKING:
    from qortex.coordinator import Coordinator

log = logging.getLogger("qortex.trust")


class Trust:
    def __init__(self, coord: Coordinator) -> None:
        self._coord = coord
        # One re-examination at a time: two that both load a finished task
        # would each put a copy of it in the table, and decide an orphan.
        self._examining = asyncio.Lock()

    def passed(self, miner_id: str, now: float, unit: list[f.Fact], events: list[BusEvent]) -> None:
        """A miner's result passed a check: more credibility, one more slot."""
        coord = self._coord
        conn = coord.connections.get(miner_id)
        report = coord.ledger.passed(miner_id, conn.info.slots if conn else 1)
        self._standing(miner_id, unit)
        if report is not None:
            self._report(report, now, unit, events)

    def let_go(self, miner_ids: list[str], unit: list[f.Fact]) -> None:
        """Miners let copies expire or dropped them: their earned slots halve."""
        for miner_id in dict.fromkeys(miner_ids):
            self._coord.ledger.let_go(miner_id)
            self._standing(miner_id, unit)

    def _standing(self, miner_id: str, unit: list[f.Fact]) -> None:
        coord = self._coord
        standing = coord.ledger.get(miner_id)
        unit.append(f.standing(miner_id, standing.passes, standing.allowance))
        self.rate(miner_id)

    def rate(self, miner_id: str) -> None:
        """Tell placement what a connected miner's next result will count as."""
        coord = self._coord
        conn = coord.connections.get(miner_id)
        if conn is not None:
            error = coord.ledger.vote_error(miner_id, conn.network, coord.clock())
            coord.table.rate(miner_id, error, coord.ledger.get(miner_id).allowance)

    def _suspect(self, network: str, until: float) -> None:
        """A liar was banned on ``network``: its other identities are worth nothing for a while."""
        self._coord.ledger.suspect(network, until)
        for other in list(self._coord.connections.values()):
            if other.network == network:
                self.rate(other.info.miner_id)

    def _report(
        self, report: Report, now: float, unit: list[f.Fact], events: list[BusEvent]
    ) -> None:
        unit.append(
            f.reputation(report.miner_id, now, report.reputation, report.passes, report.reason)
        )
        events.append(
            self._coord.events.new(
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
        coord = self._coord
        now = coord.clock()
        report = coord.ledger.ban(miner_id, reason)
        unit += f.banned(miner_id)
        events = [coord.events.new("miner.banned", now, miner_id=miner_id, reason=reason)]
        self._report(report, now, unit, events)
        committed = coord.write(unit, events)
        conn = coord.connections.get(miner_id)
        if conn is not None:
            self._suspect(conn.network, now + SUSPECT_SECONDS)
            link = conn.link
            coord.stats.closed[m.BANNED] += 1
            coord.disconnect(miner_id, link, "banned")

            def tell(_: asyncio.Future[None]) -> None:
                if farewell:
                    link.send(farewell)
                link.close(m.BANNED, f"banned: {reason}")

            committed.add_done_callback(tell)
        coord.spawn(self._backtrack(miner_id, committed, conn is None))
        log.warning("miner %s banned: %s", miner_id, reason)
        return committed

    async def _backtrack(self, miner_id: str, after: asyncio.Future[None], away: bool) -> None:
        await after
        if away:  # banned while not connected: its network is the one it was last seen on
            row = await self._coord.store.reader.miner(miner_id)
            if row and row["address"]:
                network = network_of(row["address"], miner_id)
                self._suspect(network, row["last_seen"] + SUSPECT_SECONDS)
        async with self._examining:
            await self._reexamine(miner_id)

    async def _reexamine(self, miner_id: str) -> None:
        coord = self._coord
        await coord.control.revoke_credit(miner_id)  # its results are revoked, so is their credit
        voted = await coord.store.voted(miner_id)
        task_ids = list(dict.fromkeys(task_id for _, task_id in voted))
        borrowed: set[str] = set()
        # Finished tasks are loaded whole; the banned miner's results are
        # revoked in the store, so they come back without its votes. A task
        # may finish (and leave the table) while another loads: ask again
        # until none is missing, so what follows sees every one of them.
        while missing := [t for t in task_ids if t not in coord.table.tasks]:
            loaded = rebuild(coord.table, coord.kinds, await coord.store.load_tasks(missing))
            borrowed |= {task.id for task in loaded}
            gone = set(missing) - borrowed  # no longer in the file either: nothing to examine
            task_ids = [t for t in task_ids if t not in gone]
        now = coord.clock()
        unit: list[f.Fact] = []
        events: list[BusEvent] = []
        outcomes: list[Outcome] = []
        revised: set[str] = set()
        for microtask_id, task_id in dict.fromkeys(voted):
            task = coord.table.tasks.get(task_id)
            if task is None:
                continue
            mt = task.microtasks[int(microtask_id.rsplit(":", 1)[1])]
            was = task.state
            reopened, outcome = coord.table.strike(mt, miner_id)
            if reopened:
                unit.append(f.reopened(mt.id, mt.error))
                events.append(
                    coord.events.new(
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
                    coord.events.new(
                        "task.revised",
                        now,
                        task_id,
                        miner_id,
                        status=lifecycle.RUNNING,
                        reason=f"miner {miner_id} was banned; its votes no longer count",
                    )
                )
            if outcome is not None:
                coord.settle(outcome, now, unit, events)
                outcomes.append(outcome)
        for task_id in borrowed - revised:
            coord.table.drop_task(task_id)
        committed = coord.write(unit, events)
        for outcome in outcomes:
            if outcome.task is not None:
                coord.book.finish_later(outcome.task, committed)
        coord.schedule_fill()
        await committed
        log.info(
            "backtracked miner %s: %d results, %d tasks revised", miner_id, len(voted), len(revised)
        )
