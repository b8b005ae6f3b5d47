"""The SQL of every write Qortex makes; callers build facts with :mod:`qortex.store.facts`.

The writer commits facts in batches and, inside a batch, runs each statement
once with ``executemany`` over all its rows. It orders a batch by the position
of the statement in :data:`STATEMENTS` (stably, so rows of one statement keep
their order), which is why inserts come before the updates that touch the
same rows, and the event log comes last.
"""

from __future__ import annotations

from typing import Any

INSERT_META = (
    "INSERT INTO meta (key, value) VALUES (?, ?)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
INSERT_TASK = (
    "INSERT INTO tasks (id, kind, status, input, replicas, quorum, max_replicas, lease_seconds,"
    " microtasks, created_at, target_error) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)"
)
SET_TASK_DEADLINE = "UPDATE tasks SET deadline = ? WHERE id = ?"
INSERT_SCHEDULED_TASK = INSERT_TASK.replace("'running'", "'scheduled'")
INSERT_SCHEDULE = "INSERT INTO schedules (task_id, not_before) VALUES (?, ?)"
START_TASK = "UPDATE tasks SET status = 'running' WHERE id = ? AND status = 'scheduled'"
STARTED_SCHEDULE = "UPDATE schedules SET started_at = ? WHERE task_id = ?"
INSERT_IDEMPOTENCY = (
    "INSERT INTO idempotency (key_name, idem_key, body_sha256, task_id, created_at)"
    " VALUES (?, ?, ?, ?, ?)"
)
FORGET_IDEMPOTENCY = "DELETE FROM idempotency WHERE created_at < ?"
INSERT_CALLBACK = "INSERT INTO callbacks (task_id, url, secret) VALUES (?, ?, ?)"
INSERT_API_KEY = "INSERT INTO api_keys (name, hash, scopes, created_at) VALUES (?, ?, ?, ?)"
REVOKE_API_KEY = "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL"
INSERT_WEBHOOK = (
    "INSERT INTO webhooks (id, url, events, secret, after_event, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
DELETE_WEBHOOK = "UPDATE webhooks SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL"
INSERT_DELIVERY = (
    "INSERT INTO deliveries (webhook_id, task_id, url, secret, event_id, type, payload,"
    " next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
DELIVERY_DONE = (
    "UPDATE deliveries SET status = ?, attempts = attempts + 1, last_status = ?,"
    " last_error = ?, delivered_at = ? WHERE id = ?"
)
DELIVERY_RETRY = (
    "UPDATE deliveries SET attempts = attempts + 1, last_status = ?, last_error = ?,"
    " next_at = ? WHERE id = ?"
)
CANCEL_DELIVERIES = (
    "UPDATE deliveries SET status = 'cancelled' WHERE webhook_id = ? AND status = 'pending'"
)
FORGET_DELIVERIES = "DELETE FROM deliveries WHERE status != 'pending' AND created_at < ?"
INSERT_MICROTASK = (
    "INSERT INTO microtasks (id, task_id, idx, input, status, gold)"
    " VALUES (?, ?, ?, ?, 'pending', ?)"
)
UPSERT_MINER = (
    "INSERT INTO miners (id, public_key, name, software, kinds, first_seen, last_seen, address)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
    " software = excluded.software, kinds = excluded.kinds, last_seen = excluded.last_seen,"
    " address = excluded.address"
)
INSERT_MINER = (
    "INSERT INTO miners (id, public_key, name, software, kinds, first_seen, last_seen)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)
INSERT_RESULT = (
    "INSERT INTO results (assignment_id, microtask_id, miner_id, output, signature, received_at,"
    " network, error, checked, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 2)"
)
REOPEN_MICROTASK = (
    "UPDATE microtasks SET status = 'pending', decision = NULL, decided_at = NULL, error = ?"
    " WHERE id = ?"
)
SETTLE_MICROTASK = (
    "UPDATE microtasks SET status = ?, decision = ?, decided_at = ?, error = ?, reason = ?"
    " WHERE id = ? AND status = 'pending'"
)
REVISE_TASK = (
    "UPDATE tasks SET status = 'running', output = NULL, finished_at = NULL,"
    " revision = revision + 1 WHERE id = ?"
)
FINISH_TASK = (
    "UPDATE tasks SET status = ?, output = ?, finished_at = ? WHERE id = ? AND status = 'running'"
)
CLOSE_MICROTASKS = (
    "UPDATE microtasks SET status = 'cancelled', decided_at = ? WHERE task_id = ?"
    " AND status = 'pending'"
)
WITHDRAW_TASK = (
    "UPDATE tasks SET status = ?, reason = ?, finished_at = ? WHERE id = ? AND status = 'running'"
)
# One row per miner per batch however many results it returned: the count and the credit.
COUNT_ACCEPTED = (
    "UPDATE miners SET accepted = accepted + ?, credit = credit + ?, last_seen = ? WHERE id = ?"
)
STANDING = "UPDATE miners SET passes = ?, allowance = ? WHERE id = ?"
BAN_MINER = "UPDATE miners SET status = 'banned', failures = failures + 1 WHERE id = ?"
# A result that passed a check was proven right: it keeps counting after a ban.
REVOKE_RESULTS = (
    "UPDATE results SET revoked = 1 WHERE miner_id = ? AND (checked IS NULL OR checked = 0)"
)
INSERT_REPUTATION = (
    "INSERT INTO reputation (miner_id, at, reputation, passes, reason) VALUES (?, ?, ?, ?, ?)"
)
COUNT_REFUSED = "UPDATE miners SET refused = refused + ?, last_seen = ? WHERE id = ?"
SEEN_MINER = "UPDATE miners SET last_seen = ? WHERE id = ?"
SET_MINER_STATUS = "UPDATE miners SET status = ?, note = ? WHERE id = ?"
REVOKE_CREDIT = (
    "INSERT INTO revoked_credit (assignment_id, miner_id, credit, at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (assignment_id) DO NOTHING"
)
# Recomputed from the revocations rather than subtracted, so revoking twice changes nothing.
TOTAL_REVOKED = (
    "UPDATE miners SET credit_revoked ="
    " (SELECT COALESCE(SUM(credit), 0) FROM revoked_credit WHERE miner_id = ?1) WHERE id = ?1"
)
INSERT_EVENT = (
    "INSERT INTO events (id, type, task_id, miner_id, data, at) VALUES (?, ?, ?, ?, ?, ?)"
)

STATEMENTS: list[str] = [
    INSERT_META,
    INSERT_API_KEY,
    REVOKE_API_KEY,
    INSERT_TASK,
    SET_TASK_DEADLINE,
    INSERT_SCHEDULED_TASK,
    INSERT_SCHEDULE,
    INSERT_IDEMPOTENCY,
    FORGET_IDEMPOTENCY,
    INSERT_CALLBACK,
    START_TASK,
    STARTED_SCHEDULE,
    INSERT_MICROTASK,
    UPSERT_MINER,
    INSERT_MINER,
    INSERT_RESULT,
    REOPEN_MICROTASK,
    SETTLE_MICROTASK,
    REVISE_TASK,
    FINISH_TASK,
    CLOSE_MICROTASKS,
    WITHDRAW_TASK,
    COUNT_ACCEPTED,
    COUNT_REFUSED,
    STANDING,
    BAN_MINER,
    REVOKE_RESULTS,
    INSERT_REPUTATION,
    SEEN_MINER,
    SET_MINER_STATUS,
    REVOKE_CREDIT,
    TOTAL_REVOKED,
    INSERT_EVENT,
    INSERT_WEBHOOK,
    DELETE_WEBHOOK,
    CANCEL_DELIVERIES,
    INSERT_DELIVERY,
    DELIVERY_DONE,
    DELIVERY_RETRY,
    FORGET_DELIVERIES,
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


def _accepted_per_miner(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """(count, credit, time, miner) rows folded into one row per miner."""
    totals: dict[str, list[Any]] = {}
    for count, credit, at, miner in rows:
        total = totals.setdefault(miner, [0, 0.0, at])
        total[0] += count
        total[1] += credit
        total[2] = max(total[2], at)
    return [(count, credit, at, miner) for miner, (count, credit, at) in totals.items()]


def _latest_per_miner(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """(..., miner) rows of absolute values: only each miner's last row matters."""
    return list({row[-1]: row for row in rows}.values())


#: Statements whose rows within one batch can be folded together before they run.
MERGE = {
    COUNT_ACCEPTED: _accepted_per_miner,
    COUNT_REFUSED: _sum_per_miner,
    STANDING: _latest_per_miner,
}
