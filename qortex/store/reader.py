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
        where, params = ["1 = 1"], []
        if status:
            where.append("status = ?")
            params.append(status)
        if kind:
            where.append("kind = ?")
            params.append(kind)
        if before is not None:
            where.append("created_at < ?")
            params.append(before)
        sql = (
            "SELECT id, kind, status, microtasks, created_at, finished_at FROM tasks"
            f" WHERE {' AND '.join(where)} ORDER BY created_at DESC LIMIT ?"
        )
        return await self.all(sql, (*params, limit))

    async def microtasks(self, task_id: str) -> list[dict[str, Any]]:
        return await self.all(
            "SELECT id, idx, status, decision, decided_at FROM microtasks"
            " WHERE task_id = ? ORDER BY idx",
            (task_id,),
        )

    async def results_of_task(self, task_id: str) -> list[dict[str, Any]]:
        return await self.all(
            "SELECT r.assignment_id, r.microtask_id, r.miner_id, r.output, r.signature,"
            " r.received_at, m.public_key FROM results r JOIN miners m ON m.id = r.miner_id"
            " WHERE r.microtask_id IN (SELECT id FROM microtasks WHERE task_id = ?)"
            " ORDER BY r.received_at",
            (task_id,),
        )

    async def assignment(self, assignment_id: str) -> dict[str, Any] | None:
        return await self.one("SELECT * FROM assignments WHERE id = ?", (assignment_id,))

    async def miner(self, miner_id: str) -> dict[str, Any] | None:
        return await self.one("SELECT * FROM miners WHERE id = ?", (miner_id,))

    async def miners(self, limit: int, offset: int) -> list[dict[str, Any]]:
        return await self.all(
            "SELECT * FROM miners ORDER BY last_seen DESC LIMIT ? OFFSET ?", (limit, offset)
        )

    async def events_after(
        self, after: int, task_id: str | None, miner_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        where, params = ["id > ?"], [after]
        if task_id:
            where.append("task_id = ?")
            params.append(task_id)
        if miner_id:
            where.append("miner_id = ?")
            params.append(miner_id)
        sql = f"SELECT * FROM events WHERE {' AND '.join(where)} ORDER BY id LIMIT ?"
        return await self.all(sql, (*params, limit))

    async def last_event_id(self) -> int:
        row = await self.one("SELECT COALESCE(MAX(id), 0) AS id FROM events")
        return row["id"] if row else 0

    async def close(self) -> None:
        await self._conn.close()
