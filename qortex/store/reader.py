"""Reads, on their own connection, so queries never wait behind the writer.

Rows come back as plain dicts (or tuples for bulk recovery loads); JSON
columns stay text and are decoded by the caller that needs them.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import aiosqlite


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {col[0]: value for col, value in zip(cursor.description, row, strict=True)}


def _filters(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """A WHERE clause from the conditions whose value is given (not None or empty)."""
    given = [(sql, value) for sql, value in conditions if value is not None and value != ""]
    return " AND ".join(["1 = 1", *(sql for sql, _ in given)]), [v for _, v in given]


class Reader:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._conn.row_factory = _dict_row

    async def one(self, sql: str, params: tuple[Any, ...] = ()) -> dict[str, Any] | None:
        async with self._conn.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        async with self._conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def ping(self) -> bool:
        return await self.one("SELECT 1 AS ok") is not None

    async def meta(self, key: str) -> str | None:
        row = await self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return row["value"] if row else None

    async def task(self, task_id: str) -> dict[str, Any] | None:
        return await self.one("SELECT * FROM tasks WHERE id = ?", (task_id,))

    async def tasks(
        self, status: str | None, kind: str | None, limit: int, before: float | None
    ) -> list[dict[str, Any]]:
        where, params = _filters(
            ("status = ?", status), ("kind = ?", kind), ("created_at < ?", before)
        )
        sql = (
            "SELECT id, kind, status, microtasks, created_at, finished_at FROM tasks"
            f" WHERE {where} ORDER BY created_at DESC LIMIT ?"
        )
        return await self.all(sql, (*params, limit))

    async def microtasks(self, task_id: str) -> list[dict[str, Any]]:
        return await self.all(
            "SELECT id, idx, input, status, decision, decided_at, gold, error, reason"
            " FROM microtasks WHERE task_id = ? ORDER BY idx",
            (task_id,),
        )

    async def results_of_task(self, task_id: str) -> list[dict[str, Any]]:
        return await self.all(
            "SELECT r.assignment_id, r.microtask_id, r.miner_id, r.output, r.signature,"
            " r.received_at, r.network, r.error, r.checked, r.revoked, r.version, m.public_key"
            " FROM results r JOIN miners m ON m.id = r.miner_id"
            " WHERE r.microtask_id IN (SELECT id FROM microtasks WHERE task_id = ?)"
            " ORDER BY r.received_at",
            (task_id,),
        )

    async def miner(self, miner_id: str) -> dict[str, Any] | None:
        return await self.one("SELECT * FROM miners WHERE id = ?", (miner_id,))

    async def miners(self, limit: int, offset: int) -> list[dict[str, Any]]:
        return await self.all(
            "SELECT * FROM miners ORDER BY last_seen DESC LIMIT ? OFFSET ?", (limit, offset)
        )

    async def reputation_history(
        self, miner_id: str, limit: int, before: float | None
    ) -> list[dict[str, Any]]:
        where, params = _filters(("miner_id = ?", miner_id), ("at < ?", before))
        return await self.all(
            "SELECT at, reputation, passes, reason FROM reputation"
            f" WHERE {where} ORDER BY at DESC LIMIT ?",
            (*params, limit),
        )

    async def events_after(
        self,
        after: int,
        task_id: str | None,
        miner_id: str | None,
        limit: int,
        max_bytes: int | None = None,
    ) -> list[dict[str, Any]]:
        """Events after ``after``, at most ``limit`` of them and (past the first) ``max_bytes``.

        The sizes are read first, so a page of large events is cut before it is loaded.
        """
        where, params = _filters(
            ("id > ?", after), ("task_id = ?", task_id), ("miner_id = ?", miner_id)
        )
        if max_bytes is not None:
            sizes = await self.all(
                f"SELECT id, length(data) AS size FROM events WHERE {where} ORDER BY id LIMIT ?",
                (*params, limit),
            )
            total, last = 0, None
            for row in sizes:
                event_id, size = row["id"], row["size"]
                total += size
                if total > max_bytes and last is not None:
                    break
                last = event_id
            if last is None:
                return []
            where, params = f"{where} AND id <= ?", [*params, last]
        sql = f"SELECT * FROM events WHERE {where} ORDER BY id LIMIT ?"
        return await self.all(sql, (*params, limit))

    async def last_event_id(self) -> int:
        row = await self.one("SELECT COALESCE(MAX(id), 0) AS id FROM events")
        return row["id"] if row else 0

    async def close(self) -> None:
        await self._conn.close()
