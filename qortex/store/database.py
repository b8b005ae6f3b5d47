"""Opening the SQLite file: migrate, then one writer connection and one reader connection."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

import aiosqlite

from qortex.store.reader import Reader
from qortex.store.schema import configure, migrate
from qortex.store.writer import Writer


class TaskRow(NamedTuple):
    """A task's rule, as recovery reads it back."""

    id: str
    kind: str
    replicas: int
    quorum: int
    max_replicas: int
    lease_seconds: float
    target_error: float
    microtasks: int  # how many


class MicrotaskRow(NamedTuple):
    """A microtask that is more than its input: settled, or a known-answer item.

    JSON columns come as their bytes.
    """

    id: str
    input: bytes
    status: str
    decision: bytes | None
    gold: bytes | None
    error: float | None
    reason: str | None


class ResultRow(NamedTuple):
    """A counted result (banned miners' revoked ones are left out)."""

    microtask_id: str
    input: bytes  # its microtask's
    miner_id: str
    output: bytes
    network: str
    error: float | None


@dataclass(frozen=True, slots=True)
class OpenWork:
    """What rebuilding the dispatch table needs.

    Most microtasks are nothing but their input, so inputs come alone, one
    list per task in index order (a million pending microtasks are read as a
    million byte strings, not a million rows of seven columns), or later (see
    :meth:`Store.read_inputs`); the few that are settled or known-answer items,
    and those with results, come as rows of their own with their input.
    """

    tasks: list[TaskRow]
    # Per task, in the order of ``tasks``: the exact JSON miners get; None: read later.
    inputs: list[list[bytes]] | None
    special: list[MicrotaskRow]
    results: list[ResultRow]


_TASK_COLUMNS = (
    "t.id, t.kind, t.replicas, t.quorum, t.max_replicas, t.lease_seconds, t.target_error,"
    " t.microtasks"
)
# Bytes straight from SQLite: recovery hands inputs to miners as they are, never re-encoded.
_INPUTS = "SELECT CAST(input AS BLOB) FROM microtasks WHERE task_id = ? ORDER BY idx"
_MICROTASK_COLUMNS = (
    "m.id, CAST(m.input AS BLOB), m.status, CAST(m.decision AS BLOB), CAST(m.gold AS BLOB),"
    " m.error, m.reason"
)
_SPECIAL = "(m.status != 'pending' OR m.gold IS NOT NULL)"
_RESULT_COLUMNS = (
    "r.microtask_id, CAST(m.input AS BLOB), r.miner_id, CAST(r.output AS BLOB), r.network, r.error"
)
# How many inputs one read of :meth:`Store.read_inputs` hands over at most, past its first task.
INPUTS_PER_READ = 8192


def _inputs(conn: sqlite3.Connection, task_ids: Sequence[str]) -> list[list[bytes]]:
    """Each task's inputs in index order, one indexed query per task."""
    first = itemgetter(0)  # taken from each row in C, not by a Python call per row
    return [list(map(first, conn.execute(_INPUTS, (task_id,)).fetchall())) for task_id in task_ids]


def _rows(
    conn: sqlite3.Connection, row: type[NamedTuple], sql: str, params: Sequence[object] = ()
) -> list:  # type: ignore[type-arg]
    """A query's rows as ``row`` tuples, built by SQLite's cursor as it reads them."""
    cursor = conn.cursor()
    make = row._make  # type: ignore[attr-defined]
    cursor.row_factory = lambda _, values: make(values)
    return cursor.execute(sql, params).fetchall()


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

    async def connected_at_stop(self) -> list[str]:
        """Miners whose last ``miner.connected`` in the log has no ``miner.disconnected``
        after it: they were connected when the last run ended."""
        return await self.writer.run(
            lambda conn: [
                row[0]
                for row in conn.execute(
                    "SELECT miner_id FROM events"
                    " WHERE type IN ('miner.connected', 'miner.disconnected')"
                    " AND miner_id IS NOT NULL GROUP BY miner_id"
                    " HAVING MAX(CASE WHEN type = 'miner.connected' THEN id ELSE 0 END)"
                    " > MAX(CASE WHEN type = 'miner.disconnected' THEN id ELSE 0 END)"
                    " ORDER BY miner_id"
                )
            ]
        )

    async def waiting_schedules(self) -> list[tuple[str, float]]:
        """(task, notBefore) of every scheduled task not yet started."""
        return await self.writer.run(
            lambda conn: conn.execute(
                "SELECT task_id, not_before FROM schedules WHERE started_at IS NULL"
            ).fetchall()
        )

    async def load_open_work(self) -> OpenWork:
        """Every running task, for recovery, with every counted result; the inputs of
        microtasks never begun are left for :meth:`read_inputs`."""

        def load(conn: sqlite3.Connection) -> OpenWork:
            tasks = _rows(
                conn,
                TaskRow,
                f"SELECT {_TASK_COLUMNS} FROM tasks t WHERE t.status = 'running'"
                " ORDER BY t.created_at",
            )
            # Both are seeks per running task: settled and known-answer microtasks
            # through their own index, results by the range of their microtask ids
            # (``task:index``), so neither reads the pending or the finished.
            special = _rows(
                conn,
                MicrotaskRow,
                f"SELECT {_MICROTASK_COLUMNS} FROM tasks t JOIN microtasks m ON m.task_id = t.id"
                f" WHERE t.status = 'running' AND {_SPECIAL}",
            )
            results = _rows(
                conn,
                ResultRow,
                f"SELECT {_RESULT_COLUMNS} FROM tasks t JOIN results r"
                " ON r.microtask_id >= t.id || ':' AND r.microtask_id < t.id || ';'"
                " JOIN microtasks m ON m.id = r.microtask_id"
                " WHERE t.status = 'running' AND r.revoked = 0"
                " ORDER BY t.created_at, r.received_at",
            )
            return OpenWork(tasks, None, special, results)

        return await self.writer.run(load)

    async def read_inputs(self, task_ids: list[str]) -> list[list[bytes]]:
        """The inputs of the first of ``task_ids``, and of the next ones while they add up
        to at most :data:`INPUTS_PER_READ`: one read on the writer's thread, short
        enough not to hold commits back."""

        def load(conn: sqlite3.Connection) -> list[list[bytes]]:
            found: list[list[bytes]] = []
            total = 0
            for task_id in task_ids:
                (inputs,) = _inputs(conn, [task_id])
                found.append(inputs)
                total += len(inputs)
                if total >= INPUTS_PER_READ:
                    break
            return found

        return await self.writer.run(load)

    async def load_tasks(self, task_ids: list[str]) -> OpenWork:
        """Some tasks whole, settled microtasks and all, to re-examine their decisions."""

        def load(conn: sqlite3.Connection) -> OpenWork:
            marks = ",".join("?" * len(task_ids))
            tasks = _rows(
                conn,
                TaskRow,
                f"SELECT {_TASK_COLUMNS} FROM tasks t WHERE t.id IN ({marks})"
                " ORDER BY t.created_at",
                task_ids,
            )
            special = _rows(
                conn,
                MicrotaskRow,
                f"SELECT {_MICROTASK_COLUMNS} FROM microtasks m"
                f" WHERE m.task_id IN ({marks}) AND {_SPECIAL}",
                task_ids,
            )
            results = _rows(
                conn,
                ResultRow,
                f"SELECT {_RESULT_COLUMNS} FROM results r JOIN microtasks m"
                f" ON m.id = r.microtask_id WHERE m.task_id IN ({marks}) AND r.revoked = 0"
                " ORDER BY r.received_at",
                task_ids,
            )
            return OpenWork(tasks, _inputs(conn, [task.id for task in tasks]), special, results)

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

    async def standings(self) -> list[tuple[str, int, str, int, str, float]]:
        """(miner, passes, status, allowance, address, last seen) of every miner with a
        record worth keeping."""
        return await self.writer.run(
            lambda conn: conn.execute(
                "SELECT id, passes, status, allowance, address, last_seen FROM miners"
                " WHERE passes > 0 OR status != 'active'"
            ).fetchall()
        )
