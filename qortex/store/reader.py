"""Reads, on their own connection, so queries never wait behind the writer.

Rows come back as plain dicts (or tuples for bulk recovery loads); JSON
columns stay text and are decoded by the caller that needs them.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import aiosqlite


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {col[0]: value for col, value in zip(cursor.description, row, strict=True)}


def _filters(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """A WHERE clause from the conditions whose value is given (not None or empty)."""
    given = [(sql, value) for sql, value in conditions if value is not None and value != ""]
    return " AND ".join(["1 = 1", *(sql for sql, _ in given)]), [v for _, v in given]


#: How ``GET /api/v1/miners?sort=`` orders, newest or largest first.
MINER_ORDERS = {
    "lastSeen": "last_seen DESC",
    "firstSeen": "first_seen DESC",
    "credit": "earned DESC, last_seen DESC",
    # The ledger's reputation: verified miners 1000, banned 0, the rest rising with
    # checks passed.
    "reputation": "CASE status WHEN 'verified' THEN 2 WHEN 'banned' THEN 0 ELSE 1 END DESC,"
    " passes DESC, last_seen DESC",
}
# Who is on the leaderboard: miners that earned something and are not banned.
_RANKED = "status != 'banned' AND credit - credit_revoked > 0"


def _miner_filters(
    kind: str | None = None,
    status: str | None = None,
    among: list[str] | None = None,
    outside: list[str] | None = None,
) -> tuple[str, list[Any]]:
    """Miners of a kind, in a status, among some ids (the connected) or outside them."""
    return _filters(
        ("EXISTS (SELECT 1 FROM json_each(kinds) WHERE value = ?)", kind),
        ("status = ?", status),
        ("id IN (SELECT value FROM json_each(?))", _json_list(among)),
        ("id NOT IN (SELECT value FROM json_each(?))", _json_list(outside)),
    )


def _json_list(ids: list[str] | None) -> str | None:
    return None if ids is None else json.dumps(ids)


class Reader:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._conn.row_factory = _dict_row

    # Each query runs to its end in one call on the connection's thread. A cursor
    # kept across awaits leaves its statement open when the awaiting request is
    # cancelled (a client that hangs up), and an open statement pins the reader to
    # an old snapshot of the file: later reads missed tasks committed after it.

    async def one(self, sql: str, params: tuple[Any, ...] = ()) -> dict[str, Any] | None:
        """The first row of a keyed or aggregate query (every row is read; keep them few)."""
        rows = await self._conn.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return list(await self._conn.execute_fetchall(sql, params))

    async def ping(self) -> bool:
        return await self.one("SELECT 1 AS ok") is not None

    async def meta(self, key: str) -> str | None:
        row = await self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return row["value"] if row else None

    async def task(self, task_id: str) -> dict[str, Any] | None:
        return await self.one("SELECT * FROM tasks WHERE id = ?", (task_id,))

    async def tasks(
        self,
        status: str | None,
        kind: str | None,
        limit: int,
        before: float | None,
        prefix: str | None = None,
    ) -> list[dict[str, Any]]:
        # An id prefix as a range of the primary key, so it is a seek, not a scan.
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else None
        where, params = _filters(
            ("status = ?", status),
            ("kind = ?", kind),
            ("created_at < ?", before),
            ("id >= ?", prefix),
            ("id < ?", upper),
        )
        sql = (
            "SELECT id, kind, status, microtasks, created_at, finished_at,"
            " (SELECT COUNT(*) FROM microtasks m WHERE m.task_id = tasks.id"
            " AND m.status = 'decided') AS decided"
            f" FROM tasks WHERE {where} ORDER BY created_at DESC LIMIT ?"
        )
        return await self.all(sql, (*params, limit))

    async def submitted(self, task_id: str) -> dict[str, Any] | None:
        """A task as its submit answers it: with its start time and callback secret, if any."""
        return await self.one(
            "SELECT t.id, t.status, t.kind, t.microtasks, s.not_before,"
            " c.secret AS callback_secret FROM tasks t"
            " LEFT JOIN schedules s ON s.task_id = t.id LEFT JOIN callbacks c ON c.task_id = t.id"
            " WHERE t.id = ?",
            (task_id,),
        )

    async def scheduled(self, task_id: str) -> dict[str, Any] | None:
        """A scheduled task's row with its ``not_before`` (None if it was never scheduled)."""
        return await self.one(
            "SELECT t.*, s.not_before FROM tasks t JOIN schedules s ON s.task_id = t.id"
            " WHERE t.id = ?",
            (task_id,),
        )

    async def inputs(self, task_id: str) -> list[dict[str, Any]]:
        """A task's microtasks, in order: ``idx``, ``input`` and ``gold`` (JSON texts)."""
        return await self.all(
            "SELECT idx, input, gold FROM microtasks WHERE task_id = ? ORDER BY idx", (task_id,)
        )

    async def microtasks(self, task_id: str) -> list[dict[str, Any]]:
        return await self.all(
            "SELECT id, idx, input, status, decision, decided_at, gold, error, reason"
            " FROM microtasks WHERE task_id = ? ORDER BY idx",
            (task_id,),
        )

    async def results_of_task(self, task_id: str) -> list[dict[str, Any]]:
        return await self.all(
            "SELECT r.assignment_id, r.microtask_id, r.miner_id, CAST(r.output AS TEXT) AS output,"
            " r.signature,"
            " r.received_at, r.network, r.error, r.checked, r.revoked, r.version, m.public_key"
            " FROM results r JOIN miners m ON m.id = r.miner_id"
            " WHERE r.microtask_id IN (SELECT id FROM microtasks WHERE task_id = ?)"
            " ORDER BY r.received_at",
            (task_id,),
        )

    async def miner(self, miner_id: str) -> dict[str, Any] | None:
        return await self.one("SELECT * FROM miners WHERE id = ?", (miner_id,))

    async def miners(
        self, limit: int, offset: int, order: str = "lastSeen", **filters: Any
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of miners and how many match in all; filters as in :func:`_miner_filters`."""
        where, params = _miner_filters(**filters)
        total = await self.one(f"SELECT COUNT(*) AS n FROM miners WHERE {where}", tuple(params))
        rows = await self.all(
            f"SELECT *, credit - credit_revoked AS earned FROM miners WHERE {where}"
            f" ORDER BY {MINER_ORDERS[order]} LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return rows, total["n"] if total else 0

    async def leaderboard(self, limit: int, offset: int) -> list[dict[str, Any]]:
        return await self.all(
            "SELECT name, credit - credit_revoked AS earned, accepted FROM miners"
            f" WHERE {_RANKED} ORDER BY earned DESC, first_seen LIMIT ? OFFSET ?",
            (limit, offset),
        )

    async def rank(self, miner_id: str) -> tuple[int, float] | None:
        """A miner's place on the leaderboard (1 = most credit) and its credit."""
        row = await self.one(
            f"SELECT credit - credit_revoked AS earned, first_seen FROM miners"
            f" WHERE id = ? AND {_RANKED}",
            (miner_id,),
        )
        if row is None:
            return None
        ahead = await self.one(
            "SELECT COUNT(*) AS n FROM miners WHERE"
            f" {_RANKED} AND (credit - credit_revoked > ?1"
            " OR (credit - credit_revoked = ?1 AND first_seen < ?2))",
            (row["earned"], row["first_seen"]),
        )
        return (ahead["n"] if ahead else 0) + 1, row["earned"]

    async def miner_results(self, miner_id: str, limit: int) -> list[dict[str, Any]]:
        return await self.all(
            "SELECT assignment_id, microtask_id, received_at FROM results WHERE miner_id = ?"
            " ORDER BY received_at DESC LIMIT ?",
            (miner_id, limit),
        )

    async def miner_statuses(self) -> dict[str, str]:
        rows = await self.all("SELECT id, status FROM miners WHERE status != 'active'")
        return {row["id"]: row["status"] for row in rows}

    async def task_deadlines(self) -> list[tuple[str, float]]:
        rows = await self.all(
            "SELECT id, deadline FROM tasks WHERE deadline IS NOT NULL AND status = 'running'"
        )
        return [(row["id"], row["deadline"]) for row in rows]

    async def task_counts(self) -> dict[str, int]:
        rows = await self.all("SELECT status, COUNT(*) AS n FROM tasks GROUP BY status")
        return {row["status"]: row["n"] for row in rows}

    async def result_kinds(
        self, miner_id: str, assignment_ids: list[str] | None
    ) -> list[tuple[str, str]]:
        """(assignment, kind) of ``miner_id``'s results among ``assignment_ids`` (all of
        them if ``None``) whose credit is not revoked yet."""
        base = (
            "SELECT r.assignment_id, t.kind FROM results r"
            " JOIN microtasks m ON m.id = r.microtask_id JOIN tasks t ON t.id = m.task_id"
            " WHERE r.miner_id = ?"
            " AND r.assignment_id NOT IN (SELECT assignment_id FROM revoked_credit)"
        )
        if assignment_ids is None:
            rows = await self.all(base, (miner_id,))
            return [(row["assignment_id"], row["kind"]) for row in rows]
        found: list[tuple[str, str]] = []
        for start in range(0, len(assignment_ids), 500):
            chunk = assignment_ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = await self.all(f"{base} AND r.assignment_id IN ({marks})", (miner_id, *chunk))
            found += [(row["assignment_id"], row["kind"]) for row in rows]
        return found

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

    async def events_page(
        self,
        after: int,
        type_: str | None,
        task_id: str | None,
        miner_id: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        where, params = _filters(
            ("id > ?", after),
            ("type = ?", type_),
            ("task_id = ?", task_id),
            ("miner_id = ?", miner_id),
        )
        sql = f"SELECT * FROM events WHERE {where} ORDER BY id LIMIT ?"
        return await self.all(sql, (*params, limit))

    async def event_counts(self) -> dict[str, int]:
        rows = await self.all("SELECT type, COUNT(*) AS n FROM events GROUP BY type ORDER BY type")
        return {row["type"]: row["n"] for row in rows}

    async def last_event_id(self) -> int:
        row = await self.one("SELECT COALESCE(MAX(id), 0) AS id FROM events")
        return row["id"] if row else 0

    async def close(self) -> None:
        await self._conn.close()
