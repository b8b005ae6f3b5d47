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
    return f.miner_seen(miner_id, "00" * 32, "", "", "[]", 1.0, "127.0.0.1")


async def test_units_queued_together_commit_together(tmp_path: Path) -> None:
    store = await Store.open(str(tmp_path / "q.db"))
    try:
        await store.writer.write([_miner("a"), _miner("b")])
        commits = store.writer.commits
        rows = store.writer.rows
        units = [store.writer.write([f.accepted("a", 0.5, float(i))]) for i in range(50)]
        units.append(store.writer.write([f.accepted("b", 2.0, 7.0)]))
        await asyncio.gather(*units)
        assert store.writer.commits - commits <= 2  # group commit: far fewer commits than units
        assert store.writer.rows - rows <= 4  # one row per miner per commit, not one per result
        row = await store.reader.miner("a")
        assert row is not None and row["accepted"] == 50 and row["last_seen"] == 49.0
        assert row["credit"] == 25.0
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
                f.event(1, "x", None, None, "{}", 1.0),
                f.event(1, "x", None, None, "{}", 1.0),
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


async def test_a_unit_with_no_facts_waits_for_those_before_it_and_commits_nothing(
    tmp_path: Path,
) -> None:
    store = await Store.open(str(tmp_path / "q.db"))
    try:
        first = store.writer.write([_miner("a")])
        empty = store.writer.write([])
        await empty
        assert first.done()  # resolved no earlier than what was queued before it
        commits = store.writer.commits
        await store.writer.write([])
        assert store.writer.commits == commits  # no transaction for nothing
    finally:
        await store.close()


async def test_recovery_reads_typed_rows_with_json_as_stored(tmp_path: Path) -> None:
    store = await Store.open(str(tmp_path / "q.db"))
    try:
        await store.writer.write(
            [
                f.task("t", "sentiment", "[]", 3, 2, 5, 60.0, 2, 1.0, 0.001),
                f.microtask("t", 0, '"a b"', None),
                f.microtask("t", 1, '"c"', '"positive"'),
                _miner("m"),
                f.result("x1", "t:0", "m", b'"negative"', "s" * 128, 2.0, "n", 0.5, None),
                f.settled("t:1", "decided", '"positive"', 3.0, 0.01, ""),
            ]
        )
        work = await store.load_open_work()
        (task,) = work.tasks
        assert (task.id, task.kind, task.replicas, task.quorum, task.max_replicas) == (
            "t",
            "sentiment",
            3,
            2,
            5,
        )
        assert task.microtasks == 2 and work.inputs is None  # inputs come later, per task
        assert await store.read_inputs(["t"]) == [[b'"a b"', b'"c"']]  # in index order, as bytes
        (special,) = work.special  # only the microtask that is more than its input
        assert (special.id, special.input, special.status, special.decision) == (
            "t:1",
            b'"c"',
            "decided",
            b'"positive"',
        )
        assert (special.gold, special.error) == (b'"positive"', 0.01)
        (result,) = work.results  # with its microtask's input: that one is built at once
        assert (result.microtask_id, result.input, result.miner_id, result.output) == (
            "t:0",
            b'"a b"',
            "m",
            b'"negative"',
        )
        # The output went in as the miner's bytes and still reads back as text where shown.
        (shown,) = await store.reader.results_of_task("t")
        assert shown["output"] == '"negative"'
    finally:
        await store.close()


async def test_miners_connected_at_the_stop_are_those_not_logged_as_gone(tmp_path: Path) -> None:
    store = await Store.open(str(tmp_path / "q.db"))
    try:
        log = [
            (1, "miner.connected", "a"),
            (2, "miner.connected", "b"),
            (3, "miner.disconnected", "a"),
            (4, "miner.connected", "c"),
            (5, "miner.disconnected", "c"),
            (6, "miner.connected", "c"),
            (7, "task.created", None),
        ]
        await store.writer.write([f.event(i, t, None, m, "{}", 1.0) for i, t, m in log])
        assert await store.connected_at_stop() == ["b", "c"]
    finally:
        await store.close()
