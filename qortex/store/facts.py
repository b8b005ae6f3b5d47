"""Every write Qortex makes, as (statement, parameters) facts.

The writer commits facts in batches and, inside a batch, runs each statement
once with ``executemany`` over all its rows. It orders a batch by the position
of the statement in :data:`STATEMENTS` (stably, so rows of one statement keep
their order), which is why inserts come before the updates that touch the
same rows, and the event log comes last.
"""

from __future__ import annotations

from typing import Any

Fact = tuple[str, tuple[Any, ...]]

INSERT_META = (
    "INSERT INTO meta (key, value) VALUES (?, ?)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
INSERT_TASK = (
    "INSERT INTO tasks (id, kind, status, input, replicas, quorum, max_replicas, lease_seconds,"
    " microtasks, created_at) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_MICROTASK = (
    "INSERT INTO microtasks (id, task_id, idx, input, status) VALUES (?, ?, ?, ?, 'pending')"
)
UPSERT_MINER = (
    "INSERT INTO miners (id, public_key, name, software, kinds, first_seen, last_seen)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
    " software = excluded.software, kinds = excluded.kinds, last_seen = excluded.last_seen"
)
INSERT_MINER = (
    "INSERT INTO miners (id, public_key, name, software, kinds, first_seen, last_seen)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)
INSERT_ASSIGNMENT = (
    "INSERT INTO assignments (id, microtask_id, miner_id, status, issued_at, deadline)"
    " VALUES (?, ?, ?, 'leased', ?, ?)"
)
INSERT_RESULT = (
    "INSERT INTO results (assignment_id, microtask_id, miner_id, output, signature, received_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
CLOSE_ASSIGNMENT = (
    "UPDATE assignments SET status = ?, closed_at = ? WHERE id = ? AND status = 'leased'"
)
SETTLE_MICROTASK = (
    "UPDATE microtasks SET status = ?, decision = ?, decided_at = ? WHERE id = ?"
    " AND status = 'pending'"
)
FINISH_TASK = (
    "UPDATE tasks SET status = ?, output = ?, finished_at = ? WHERE id = ? AND status = 'running'"
)
COUNT_ACCEPTED = "UPDATE miners SET accepted = accepted + ?, last_seen = ? WHERE id = ?"
COUNT_REFUSED = "UPDATE miners SET refused = refused + ?, last_seen = ? WHERE id = ?"
SEEN_MINER = "UPDATE miners SET last_seen = ? WHERE id = ?"
INSERT_EVENT = (
    "INSERT INTO events (id, type, task_id, miner_id, data, at) VALUES (?, ?, ?, ?, ?, ?)"
)

STATEMENTS: list[str] = [
    INSERT_META,
    INSERT_TASK,
    INSERT_MICROTASK,
    UPSERT_MINER,
    INSERT_MINER,
    INSERT_ASSIGNMENT,
    INSERT_RESULT,
    CLOSE_ASSIGNMENT,
    SETTLE_MICROTASK,
    FINISH_TASK,
    COUNT_ACCEPTED,
    COUNT_REFUSED,
    SEEN_MINER,
    INSERT_EVENT,
]
ORDER: dict[str, int] = {sql: i for i, sql in enumerate(STATEMENTS)}


def _sum_per_miner(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """(count, time, miner) rows folded into one row per miner: one UPDATE, not one per result."""
    totals: dict[str, list[Any]] = {}
    for count, at, miner in rows:
        total = totals.setdefault(miner, [0, at])
        total[0] += count
        total[1] = max(total[1], at)
    return [(count, at, miner) for miner, (count, at) in totals.items()]


#: Statements whose rows within one batch can be folded together before they run.
MERGE = {COUNT_ACCEPTED: _sum_per_miner, COUNT_REFUSED: _sum_per_miner}
