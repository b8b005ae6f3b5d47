"""Opening the SQLite file: migrate, then one writer connection and one reader connection."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from qortex.store.reader import Reader
from qortex.store.schema import configure, migrate
from qortex.store.writer import Writer


@dataclass(frozen=True, slots=True)
class OpenWork:
    """What rebuilding the dispatch table needs: tasks, their microtasks, counted results."""

    # id, kind, replicas, quorum, max_replicas, lease_seconds, target_error
    tasks: list[tuple[Any, ...]]
    # id, task_id, idx, input, status, decision, gold, error, reason
    microtasks: list[tuple[Any, ...]]
    # microtask_id, miner_id, output, network, error (results of banned miners left out)
    results: list[tuple[Any, ...]]


_TASK_COLUMNS = (
    "t.id, t.kind, t.replicas, t.quorum, t.max_replicas, t.lease_seconds, t.target_error"
)
_MICROTASK_COLUMNS = (
    "m.id, m.task_id, m.idx, m.input, m.status, m.decision, m.gold, m.error, m.reason"
)
_RESULT_COLUMNS = "r.microtask_id, r.miner_id, r.output, r.network, r.error"


class StoreUnwritable(RuntimeError):
    """The file cannot be opened for writing at all: refused at start, with the reason."""


def prepare(path: str, sync: str) -> None:
    """Create or migrate the file and prove it can be written, or raise :class:`StoreUnwritable`.

    ``BEGIN IMMEDIATE`` takes the write lock without writing a page, so a full
    disk still starts (and refuses writes until space returns) while a
    read-only file or folder is refused here, before anything listens.
    """
    try:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        raw = sqlite3.connect(path, isolation_level=None)
        try:
            configure(raw, sync)
            migrate(raw)
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("ROLLBACK")
        finally:
            raw.close()
    except (sqlite3.Error, OSError) as exc:
        raise StoreUnwritable(
            f"cannot write the database {path}: {exc}. Qortex needs a file it can write in a"
            " folder it can write (check the permissions, and whether the disk is mounted"
            " read-only)"
        ) from None


class Store:
    def __init__(self, path: str, writer: Writer, reader: Reader) -> None:
        self.path = path
        self.writer = writer
        self.reader = reader

    @classmethod
    async def open(cls, path: str, sync: str = "full", batch: int = 4096) -> Store:
        prepare(path, sync)
        reader_conn = await aiosqlite.connect(path, isolation_level=None)
        await reader_conn.execute_fetchall("PRAGMA busy_timeout = 5000")
        store = cls(path, Writer(path, sync, batch), Reader(reader_conn))
        store.writer.start()
        return store

    async def close(self) -> None:
        await self.writer.stop()
        await self.reader.close()

    async def open_leases(self) -> list[tuple[str, str, str]]:
        """(assignment, microtask, miner) of every lease still out in the file."""
        return await self.writer.run(
            lambda conn: conn.execute(
                "SELECT id, microtask_id, miner_id FROM assignments WHERE status = 'leased'"
            ).fetchall()
        )

    async def waiting_schedules(self) -> list[tuple[str, float]]:
        """(task, notBefore) of every scheduled task not yet started."""
        return await self.writer.run(
            lambda conn: conn.execute(
                "SELECT task_id, not_before FROM schedules WHERE started_at IS NULL"
            ).fetchall()
        )

    async def load_open_work(self) -> OpenWork:
        """Every running task, for recovery, with every counted result."""

        def load(conn: sqlite3.Connection) -> OpenWork:
            tasks = conn.execute(
                f"SELECT {_TASK_COLUMNS} FROM tasks t WHERE t.status = 'running'"
                " ORDER BY t.created_at"
            ).fetchall()
            microtasks = conn.execute(
                f"SELECT {_MICROTASK_COLUMNS} FROM microtasks m"
                " JOIN tasks t ON t.id = m.task_id WHERE t.status = 'running'"
                " ORDER BY t.created_at, m.idx"
            ).fetchall()
            results = conn.execute(
                f"SELECT {_RESULT_COLUMNS} FROM results r"
                " JOIN microtasks m ON m.id = r.microtask_id JOIN tasks t ON t.id = m.task_id"
                " WHERE t.status = 'running' AND r.revoked = 0 ORDER BY r.received_at"
            ).fetchall()
            return OpenWork(tasks, microtasks, results)

        return await self.writer.run(load)

    async def load_tasks(self, task_ids: list[str]) -> OpenWork:
        """Some tasks whole, settled microtasks and all, to re-examine their decisions."""

        def load(conn: sqlite3.Connection) -> OpenWork:
            marks = ",".join("?" * len(task_ids))
            tasks = conn.execute(
                f"SELECT {_TASK_COLUMNS} FROM tasks t WHERE t.id IN ({marks})"
                " ORDER BY t.created_at",
                task_ids,
            ).fetchall()
            microtasks = conn.execute(
                f"SELECT {_MICROTASK_COLUMNS} FROM microtasks m WHERE m.task_id IN ({marks})"
                " ORDER BY m.task_id, m.idx",
                task_ids,
            ).fetchall()
            results = conn.execute(
                f"SELECT {_RESULT_COLUMNS} FROM results r JOIN microtasks m"
                f" ON m.id = r.microtask_id WHERE m.task_id IN ({marks}) AND r.revoked = 0"
                " ORDER BY r.received_at",
                task_ids,
            ).fetchall()
            return OpenWork(tasks, microtasks, results)

        return await self.writer.run(load)

    async def voted(self, miner_id: str) -> list[tuple[str, str]]:
        """(microtask, task) of every result a miner returned, revoked or not, but not
        in tasks withdrawn (cancelled, or past their deadline): those stay as they ended."""
        return await self.writer.run(
            lambda conn: conn.execute(
                "SELECT r.microtask_id, m.task_id FROM results r"
                " JOIN microtasks m ON m.id = r.microtask_id JOIN tasks t ON t.id = m.task_id"
                " WHERE r.miner_id = ? AND t.reason IS NULL",
                (miner_id,),
            ).fetchall()
        )

    async def standings(self) -> list[tuple[str, int, str, int]]:
        """(miner, passes, status, allowance) of every miner with a record worth keeping."""
        return await self.writer.run(
            lambda conn: conn.execute(
                "SELECT id, passes, status, allowance FROM miners"
                " WHERE passes > 0 OR status != 'active'"
            ).fetchall()
        )
