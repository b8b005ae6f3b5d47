"""The one writer: a task that drains a queue of fact units and commits them in batches.

Group commit is what makes "durable before acknowledged" cheap: every caller
waits for the commit of the batch its unit landed in, and one fsync serves
them all. A unit (the facts of one task submission, one result, ...) is never
split across transactions. A failed commit is fatal: memory would no longer be
a cache of the file, so the writer stops and every waiter sees the error.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from itertools import groupby

import aiosqlite

from qortex.store.facts import MERGE, ORDER, Fact

log = logging.getLogger("qortex.store")


class StoreFailed(RuntimeError):
    """The writer could not commit; the process must restart from the file."""


class Writer:
    def __init__(self, conn: aiosqlite.Connection, batch: int) -> None:
        self._conn = conn
        self._batch = batch
        self._units: deque[tuple[list[Fact], asyncio.Future[None]]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None
        #: Called once if a commit fails; ``qortex serve`` stops the process there.
        self.on_failure: Callable[[BaseException], None] | None = None
        self.commits = 0
        self.facts = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="qortex-writer")

    def write(self, facts: list[Fact]) -> asyncio.Future[None]:
        """Queue a unit of facts; the future resolves once they are committed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.failure is not None:
            future.set_exception(StoreFailed(str(self.failure)))
            return future
        self._units.append((facts, future))
        self._wake.set()
        return future

    async def drain(self) -> None:
        """Wait until everything queued so far is committed."""
        if self._units:
            await self.write([])

    async def stop(self) -> None:
        await self.drain()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._units:
                await self._commit_batch()

    async def _commit_batch(self) -> None:
        units: list[tuple[list[Fact], asyncio.Future[None]]] = []
        count = 0
        while self._units and (count < self._batch or not units):
            unit = self._units.popleft()
            units.append(unit)
            count += len(unit[0])
        facts = sorted((f for unit, _ in units for f in unit), key=lambda f: ORDER[f[0]])
        try:
            await self._conn.execute("BEGIN IMMEDIATE")
            for sql, rows in groupby(facts, key=lambda f: f[0]):
                params = [p for _, p in rows]
                merge = MERGE.get(sql)
                await self._conn.executemany(sql, merge(params) if merge else params)
            await self._conn.execute("COMMIT")
        except Exception as exc:
            log.critical("commit failed, no further writes: %s", exc)
            if self._conn.in_transaction:
                await self._conn.execute("ROLLBACK")
            self.failure = exc
            error = StoreFailed(str(exc))
            for _, future in units + list(self._units):
                if not future.done():
                    future.set_exception(error)
            self._units.clear()
            if self.on_failure is not None:
                self.on_failure(exc)
            raise
        self.commits += 1
        self.facts += count
        for _, future in units:
            if not future.done():
                future.set_result(None)
