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
    """What recovery needs to rebuild the dispatch table: running tasks and their parts."""

    tasks: list[tuple[Any, ...]]  # id, kind, replicas, quorum, max_replicas, lease_seconds
    microtasks: list[tuple[Any, ...]]  # id, task_id, idx, input, status, decision
    results: list[tuple[Any, ...]]  # microtask_id, miner_id, output


class Store:
    def __init__(self, path: str, writer: Writer, reader: Reader) -> None:
        self.path = path
        self.writer = writer
        self.reader = reader

    @classmethod
    async def open(cls, path: str, sync: str = "full", batch: int = 4096) -> Store:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        raw = sqlite3.connect(path, isolation_level=None)
        try:
            configure(raw, sync)
            migrate(raw)
        finally:
            raw.close()
        reader_conn = await aiosqlite.connect(path, isolation_level=None)
        await reader_conn.execute("PRAGMA busy_timeout = 5000")
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

    async def load_open_work(self) -> OpenWork:
        def load(conn: sqlite3.Connection) -> OpenWork:
            tasks = conn.execute(
                "SELECT id, kind, replicas, quorum, max_replicas, lease_seconds FROM tasks"
                " WHERE status = 'running' ORDER BY created_at"
            ).fetchall()
            microtasks = conn.execute(
                "SELECT m.id, m.task_id, m.idx, m.input, m.status, m.decision FROM microtasks m"
                " JOIN tasks t ON t.id = m.task_id WHERE t.status = 'running'"
                " ORDER BY t.created_at, m.idx"
            ).fetchall()
            results = conn.execute(
                "SELECT r.microtask_id, r.miner_id, r.output FROM results r"
                " JOIN microtasks m ON m.id = r.microtask_id"
                " WHERE m.status = 'pending' ORDER BY r.received_at"
            ).fetchall()
            return OpenWork(tasks, microtasks, results)

        return await self.writer.run(load)
