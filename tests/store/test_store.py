"""The store on real SQLite files: migrations, group commit, merged counters, fatal failures."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

import pytest

from qortex.store import facts as f
from qortex.store.database import Store
from qortex.store.schema import LATEST, MIGRATIONS, migrate
from qortex.store.writer import StoreFailed


async def test_a_new_file_is_migrated_once(tmp_path: Path) -> None:
    db = str(tmp_path / "q.db")
    store = await Store.open(db)
    await store.close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert migrate(conn) == LATEST  # nothing left to do


def test_an_interrupted_migration_leaves_the_previous_version(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "q.db", isolation_level=None)
    broken = [*MIGRATIONS, "CREATE TABLE extra (x INTEGER); INSERT INTO nowhere VALUES (1);"]
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, broken)
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "extra" not in tables and "tasks" in tables


def test_a_newer_file_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "q.db")
    conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    with pytest.raises(RuntimeError, match="newer than this Qortex"):
        migrate(conn)


def _miner(miner_id: str) -> f.Fact:
    return (f.UPSERT_MINER, (miner_id, "00" * 32, "", "", "[]", 1.0, 1.0, "127.0.0.1"))


async def test_units_queued_together_commit_together(tmp_path: Path) -> None:
    store = await Store.open(str(tmp_path / "q.db"))
    try:
        await store.writer.write([_miner("a"), _miner("b")])
        commits = store.writer.commits
        units = [store.writer.write([(f.COUNT_ACCEPTED, (1, float(i), "a"))]) for i in range(50)]
        units.append(store.writer.write([(f.COUNT_ACCEPTED, (1, 7.0, "b"))]))
        await asyncio.gather(*units)
        assert store.writer.commits - commits <= 2  # group commit: far fewer commits than units
        row = await store.reader.miner("a")
        assert row is not None and row["accepted"] == 50 and row["last_seen"] == 49.0
        row = await store.reader.miner("b")
        assert row is not None and row["accepted"] == 1
    finally:
        await store.close()


async def test_a_failed_commit_is_fatal_and_commits_nothing(tmp_path: Path) -> None:
    store = await Store.open(str(tmp_path / "q.db"))
    failures: list[BaseException] = []
    store.writer.on_failure = failures.append
    try:
        good = store.writer.write([_miner("a")])
        await good
        bad = store.writer.write(
            [
                _miner("b"),
                (f.INSERT_EVENT, (1, "x", None, None, "{}", 1.0)),
                (f.INSERT_EVENT, (1, "x", None, None, "{}", 1.0)),
            ]
        )
        with pytest.raises(StoreFailed):
            await bad
        assert len(failures) == 1
        later = store.writer.write([_miner("c")])
        with pytest.raises(StoreFailed):
            await later
        assert await store.reader.miner("b") is None  # the failed unit left no trace
        assert await store.reader.miner("a") is not None
    finally:
        await store.close()


async def test_reads_cancelled_midway_never_pin_the_reader_to_an_old_snapshot(
    tmp_path: Path,
) -> None:
    """A request that hangs up while its read runs must not hide later commits from others."""
    store = await Store.open(str(tmp_path / "q.db"), sync="normal")  # no fsync: many commits
    try:
        await store.writer.write([_miner(f"{i:032x}") for i in range(50)])
        rng = random.Random(7)
        for n in range(200):
            reads = [
                asyncio.create_task(store.reader.all("SELECT * FROM miners ORDER BY id"))
                for _ in range(4)
            ]
            await asyncio.sleep(0)
            for read in reads:
                if rng.random() < 0.5:
                    read.cancel()
            await asyncio.gather(*reads, return_exceptions=True)
            miner_id = f"{1000 + n:032x}"
            await store.writer.write([_miner(miner_id)])
            assert await store.reader.miner(miner_id) is not None, f"commit {n} unseen"
    finally:
        await store.close()
