"""The one writer: a task that drains a queue of fact units and commits them in batches.

Group commit is what makes "durable before acknowledged" cheap: every caller
waits for the commit of the batch its unit landed in, and one fsync serves
them all. A unit (the facts of one task submission, one result, ...) is never
split across transactions.

A commit that fails because the disk is full or the file became read-only is
a state, not the end: the batch stays at the head of the queue (memory already
holds its facts, so they must reach the file, in order), ``unavailable`` says
why, and the commit is tried again every ``RETRY_SECONDS`` until it succeeds.
Callers refuse new writes at the edge meanwhile. Any other failed commit is
fatal: memory would no longer be a cache of the file, so the writer stops and
every waiter sees the error.

The writer owns its connection on a thread of its own, and a whole batch
(``BEGIN IMMEDIATE``, every statement, ``COMMIT``) runs there in one call: one
hand-over between the event loop and the thread per batch, not one per
statement. Readers keep their own connection.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from typing import TypeVar

from qortex.store.facts import Fact
from qortex.store.schema import configure
from qortex.store.statements import MERGE, ORDER

log = logging.getLogger("qortex.store")

T = TypeVar("T")


#: How often a commit refused for lack of space or a read-only file is tried again.
RETRY_SECONDS = 0.5


class StoreFailed(RuntimeError):
    """The writer could not commit; the process must restart from the file."""


def unavailable_reason(exc: BaseException) -> str | None:
    """Why SQLite cannot write for now (full disk, read-only file), or ``None`` if fatal."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return None
    primary = code & 0xFF
    if primary == sqlite3.SQLITE_FULL:
        return "the disk is full"
    if primary in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
        return "the database file cannot be written"
    return None


def _commit(conn: sqlite3.Connection, facts: list[Fact]) -> int:
    """Commit a batch in one transaction; returns how many rows it asked SQLite to write."""
    facts.sort(key=lambda f: ORDER[f[0]])  # stable: rows of a statement keep their order
    written = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, rows in groupby(facts, key=lambda f: f[0]):
            params = [p for _, p in rows]
            merge = MERGE.get(sql)
            if merge:
                params = merge(params)
            conn.executemany(sql, params)
            written += len(params)
        conn.execute("COMMIT")
        return written
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class Writer:
    def __init__(self, path: str, sync: str, batch: int) -> None:
        self._path = path
        self._sync = sync
        self._batch = batch
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="qortex-writer")
        self._conn: sqlite3.Connection | None = None
        self._units: deque[tuple[list[Fact], asyncio.Future[None]]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Kept: on Python 3.11 each get_running_loop() is a getpid system call.
        self._loop = asyncio.get_running_loop()
        self.failure: BaseException | None = None
        #: Why commits are refused for now (disk full, read-only file), or ``None``.
        self.unavailable: str | None = None
        #: Called once if a commit fails; ``qortex serve`` stops the process there.
        self.on_failure: Callable[[BaseException], None] | None = None
        #: Called with the reason when commits start being refused, ``None`` when they resume.
        self.on_unavailable: Callable[[str | None], None] | None = None
        self.commits = 0
        self.facts = 0
        #: Rows written (statements run, after folding): what ``benchmarks/`` count per result.
        self.rows = 0

    def _connection(self) -> sqlite3.Connection:
        """The writer's connection, opened on (and only ever used from) its thread."""
        if self._conn is None:
            self._conn = sqlite3.connect(self._path, isolation_level=None)
            configure(self._conn, self._sync)
        return self._conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with the writer's connection on the writer's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: fn(self._connection()))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="qortex-writer")

    def write(self, facts: list[Fact]) -> asyncio.Future[None]:
        """Queue a unit of facts; the future resolves once they are committed."""
        future: asyncio.Future[None] = self._loop.create_future()
        if self.failure is not None:
            future.set_exception(StoreFailed(str(self.failure)))
            return future
        self._units.append((facts, future))
        self._wake.set()
        return future

    async def drain(self) -> None:
        """Wait until everything queued so far is committed (at once while writes are refused:
        nothing queued was acknowledged, and the file is what a restart recovers from)."""
        if self._units and self.unavailable is None:
            await self.write([])

    async def stop(self) -> None:
        await self.drain()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.run(lambda conn: conn.close())
        self._thread.shutdown(wait=True)

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
        facts = [fact for unit, _ in units for fact in unit]
        try:
            if not facts:  # units with nothing to write only wait for those before them
                for _, future in units:
                    if not future.done():
                        future.set_result(None)
                return
            written = await self.run(lambda conn: _commit(conn, facts))
        except Exception as exc:
            reason = unavailable_reason(exc)
            if reason is not None:
                self._units.extendleft(reversed(units))  # first in line when it works again
                self._set_unavailable(reason, exc)
                await asyncio.sleep(RETRY_SECONDS)
                return
            log.critical("commit failed, no further writes: %s", exc)
            self.failure = exc
            error = StoreFailed(str(exc))
            for _, future in units + list(self._units):
                if not future.done():
                    future.set_exception(error)
            self._units.clear()
            if self.on_failure is not None:
                self.on_failure(exc)
            raise
        if self.unavailable is not None:
            self._set_unavailable(None, None)
        self.commits += 1
        self.facts += count
        self.rows += written
        for _, future in units:
            if not future.done():
                future.set_result(None)

    def _set_unavailable(self, reason: str | None, exc: BaseException | None) -> None:
        if reason == self.unavailable:
            return
        if reason is None:
            log.warning("writes resumed: the database accepts commits again")
        else:
            log.error("writes refused until this changes: %s (%s)", reason, exc)
        self.unavailable = reason
        if self.on_unavailable is not None:
            self.on_unavailable(reason)
