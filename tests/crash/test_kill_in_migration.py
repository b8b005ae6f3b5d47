"""Crash class: ``kill -9`` during the migration of a fresh database, many times over.

The coordinator is started on a fresh file and killed within milliseconds of
the file appearing; each time the file must be at ``PRAGMA user_version`` 0
(no table) or at a migration's number with exactly the schema of the
migrations up to it (each migration commits on its own), and pass
``integrity_check``. The last file must still start and end up at the
latest version.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.processes import reap, signal_group
from qortex.store.schema import LATEST, MIGRATIONS, migrate
from tests.crash.clients import coordinator
from tests.crash.run import LONG, QUICK, Run
from tests.helpers import timeout

pytestmark = pytest.mark.e2e


def schema_of(conn: sqlite3.Connection) -> set[tuple[str, str]]:
    rows = conn.execute(
        "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
    ).fetchall()
    return {(t, n) for t, n in rows}


def reference_schemas(tmp: Path) -> dict[int, set[tuple[str, str]]]:
    """The schema a file has at each version, from migrating a file of our own step by step."""
    schemas: dict[int, set[tuple[str, str]]] = {}
    for version in range(1, LATEST + 1):
        conn = sqlite3.connect(tmp / f"reference-{version}.db", isolation_level=None)
        try:
            migrate(conn, MIGRATIONS[:version])
            schemas[version] = schema_of(conn)
        finally:
            conn.close()
    return schemas


def inspect_file(
    path: Path, references: dict[int, set[tuple[str, str]]]
) -> tuple[int | None, str | None]:
    """(user_version, problem) of a file a migration may have been killed in."""
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        return None, f"does not open: {exc}"
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        schema = schema_of(conn)
    except sqlite3.Error as exc:
        return None, f"cannot be read: {exc}"
    finally:
        conn.close()
    if integrity != "ok":
        return version, f"integrity_check: {integrity}"
    if version == 0 and schema:
        return version, f"user_version 0 but {len(schema)} schema objects"
    if version != 0 and version not in references:
        return version, f"user_version {version} is not a migration of this Qortex"
    if version and schema != references[version]:
        diff = sorted(schema ^ references[version])
        return version, f"user_version {version} but schema differs: {diff}"
    return version, None


async def migration_kills(run: Run, attempts: int) -> None:
    """Start on a fresh file and SIGKILL within milliseconds of it appearing, again and again."""
    base = run.tmp / "migration"
    base.mkdir()
    references = reference_schemas(base)
    versions: Counter[int] = Counter()
    problems: list[str] = []
    fresh = 0
    appear: list[float] = []  # seconds from spawn to the file appearing
    last_version: int | None = None
    db = base / "fresh-0.db"
    server = coordinator(base, "migration-0", db)
    for attempt in range(attempts):
        if attempt == 0 or last_version == LATEST:  # migrated: the next kill gets a fresh copy
            fresh += 1
            db = base / f"fresh-{fresh}.db"
            server = coordinator(base, f"migration-{fresh}", db, server.port)
        existed = db.exists()
        await server.spawn()
        began = time.monotonic()
        if existed:  # the file is there already: aim at the moment it was opened last time
            opened = sum(appear) / len(appear) if appear else 0.8
            await asyncio.sleep(max(0.0, opened + run.rng.uniform(-0.03, 0.03)))
        else:  # kill within milliseconds of the file appearing: the migration takes a few
            # milliseconds, so this spins (blocking the loop is fine: nothing else runs yet).
            while not db.exists() and time.monotonic() - began < 30:
                if server.proc.returncode is not None:
                    break
                time.sleep(0.0001)
            appear.append(time.monotonic() - began)
            time.sleep(run.rng.uniform(0, 0.006))
        signal_group(server.proc, signal.SIGKILL)
        await reap(server.proc, 10)
        if not db.exists():
            versions[-1] += 1  # killed before the file existed
            last_version = None
            continue
        version, problem = inspect_file(db, references)
        last_version = version
        versions[version if version is not None else -2] += 1
        if problem:
            problems.append(f"attempt {attempt} ({db.name}): {problem}")
    # The last file must still start, and end up at the latest version.
    elapsed = await server.start(60.0)
    await server.stop()
    version, problem = inspect_file(db, references)
    if problem or version != LATEST:
        problems.append(f"after a full start: user_version {version}, {problem}")
    run.migration = {
        "kills": attempts,
        "freshFiles": fresh,
        "outcomes": {
            "noFile" if v == -1 else "unreadable" if v == -2 else f"userVersion{v}": n
            for v, n in sorted(versions.items())
        },
        "finalStartSeconds": round(elapsed, 3),
        "fileAppearsSeconds": round(sum(appear) / len(appear), 3) if appear else None,
        "problems": problems,
    }
    run.check(
        "migration",
        not problems,
        f"{attempts} kills on {fresh} fresh files, outcomes {run.migration['outcomes']}"
        + (f"; {problems[:3]}" if problems else "; every file opens, schema as migrated"),
    )


@pytest.mark.timeout(timeout(600))
async def test_every_kill_in_a_migration_leaves_a_sound_file(tmp_path: Path, long: bool) -> None:
    plan = LONG if long else QUICK
    seed = random.SystemRandom().randrange(1 << 32)
    run = Run(plan, seed, tmp_path, random.Random(seed))
    budget = timeout(60 + 5 * plan.migration_kills)
    await asyncio.wait_for(migration_kills(run, plan.migration_kills), budget)
    if long:
        print(json.dumps(run.migration, indent=2))
    check = run.checks["migration"]
    assert check.ok, (seed, check.detail)
    assert run.migration["kills"] == plan.migration_kills
    assert run.migration["freshFiles"] >= 1
