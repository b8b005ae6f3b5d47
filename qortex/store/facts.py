"""Every write Qortex makes, built by name: one constructor per kind of fact.

A fact is a (statement, parameters) pair the writer commits in a batch (see
:mod:`qortex.store.statements` for the SQL and the order a batch runs in).
Callers never spell parameters by position: each constructor takes what its
statement needs by name, so a column added or moved changes one function.
JSON columns take the encoded text or bytes as they already are; nothing here
decodes or re-encodes.
"""

from __future__ import annotations

from typing import Any

from qortex.store import statements as s

Fact = tuple[str, tuple[Any, ...]]
#: JSON as stored: text, or the exact bytes a miner sent.
Json = str | bytes


# -- tasks and microtasks -----------------------------------------------------


def task(
    task_id: str,
    kind: str,
    task_input: Json,
    replicas: int,
    quorum: int,
    max_replicas: int,
    lease_seconds: float,
    microtasks: int,
    created_at: float,
    target_error: float,
    scheduled: bool = False,
) -> Fact:
    """A submitted task, running at once or (``scheduled``) waiting for its start."""
    sql = s.INSERT_SCHEDULED_TASK if scheduled else s.INSERT_TASK
    return sql, (
        task_id,
        kind,
        task_input,
        replicas,
        quorum,
        max_replicas,
        lease_seconds,
        microtasks,
        created_at,
        target_error,
    )


def microtask(task_id: str, index: int, microtask_input: Json, gold: Json | None) -> Fact:
    return s.INSERT_MICROTASK, (f"{task_id}:{index}", task_id, index, microtask_input, gold)


def task_deadline(task_id: str, deadline: float) -> Fact:
    return s.SET_TASK_DEADLINE, (deadline, task_id)


def schedule(task_id: str, not_before: float) -> Fact:
    return s.INSERT_SCHEDULE, (task_id, not_before)


def task_started(task_id: str) -> Fact:
    return s.START_TASK, (task_id,)


def schedule_started(task_id: str, at: float) -> Fact:
    return s.STARTED_SCHEDULE, (at, task_id)


def idempotency(key_name: str, idem_key: str, body_sha256: str, task_id: str, at: float) -> Fact:
    return s.INSERT_IDEMPOTENCY, (key_name, idem_key, body_sha256, task_id, at)


def forget_idempotency(before: float) -> Fact:
    return s.FORGET_IDEMPOTENCY, (before,)


def callback(task_id: str, url: str, secret: str) -> Fact:
    return s.INSERT_CALLBACK, (task_id, url, secret)


def settled(
    microtask_id: str, state: str, decision: Json | None, at: float, error: float, reason: str
) -> Fact:
    """A microtask decided or given up (a no-op if it was settled already)."""
    return s.SETTLE_MICROTASK, (state, decision, at, error, reason or None, microtask_id)


def reopened(microtask_id: str, error: float) -> Fact:
    return s.REOPEN_MICROTASK, (error, microtask_id)


def revised(task_id: str) -> Fact:
    return s.REVISE_TASK, (task_id,)


def finished(task_id: str, state: str, output: Json | None, at: float) -> Fact:
    return s.FINISH_TASK, (state, output, at, task_id)


def microtasks_closed(task_id: str, at: float) -> Fact:
    """Every pending microtask of a withdrawn task, cancelled."""
    return s.CLOSE_MICROTASKS, (at, task_id)


def withdrawn(task_id: str, state: str, reason: str, at: float) -> Fact:
    return s.WITHDRAW_TASK, (state, reason, at, task_id)


# -- results --------------------------------------------------------------------


def result(
    assignment_id: str,
    microtask_id: str,
    miner_id: str,
    output: Json,
    signature: str,
    received_at: float,
    network: str,
    error: float,
    checked: bool | None,
) -> Fact:
    """An accepted result: also the only record that its assignment was returned."""
    return s.INSERT_RESULT, (
        assignment_id,
        microtask_id,
        miner_id,
        output,
        signature,
        received_at,
        network,
        error,
        None if checked is None else int(checked),
    )


# -- miners ---------------------------------------------------------------------


def miner_seen(
    miner_id: str,
    public_key: str,
    name: str,
    software: str,
    kinds: Json,
    at: float,
    address: str,
) -> Fact:
    """A miner connected: its row is made, or its name, software and address updated."""
    return s.UPSERT_MINER, (miner_id, public_key, name, software, kinds, at, at, address)


def miner_registered(
    miner_id: str, public_key: str, name: str, software: str, kinds: Json, at: float
) -> Fact:
    """A miner registered over HTTP (nothing changes if it is known already)."""
    return s.INSERT_MINER, (miner_id, public_key, name, software, kinds, at, at)


def miner_left(miner_id: str, at: float) -> Fact:
    return s.SEEN_MINER, (at, miner_id)


def accepted(miner_id: str, credit: float, at: float) -> Fact:
    """One accepted result and the credit it earned (folded per miner within a batch)."""
    return s.COUNT_ACCEPTED, (1, credit, at, miner_id)


def refused(miner_id: str, at: float) -> Fact:
    return s.COUNT_REFUSED, (1, at, miner_id)


def standing(miner_id: str, passes: int, allowance: int) -> Fact:
    return s.STANDING, (passes, allowance, miner_id)


def banned(miner_id: str) -> list[Fact]:
    """The ban, and every result of the miner not proven right by a check revoked."""
    return [(s.BAN_MINER, (miner_id,)), (s.REVOKE_RESULTS, (miner_id,))]


def reputation(miner_id: str, at: float, value: int, passes: int, reason: str) -> Fact:
    return s.INSERT_REPUTATION, (miner_id, at, value, passes, reason)


def miner_status(miner_id: str, status: str, note: str) -> Fact:
    return s.SET_MINER_STATUS, (status, note, miner_id)


def credit_revoked(assignment_id: str, miner_id: str, credit: float, at: float) -> Fact:
    return s.REVOKE_CREDIT, (assignment_id, miner_id, credit, at)


def revoked_total(miner_id: str) -> Fact:
    return s.TOTAL_REVOKED, (miner_id,)


# -- events, keys, settings, webhooks -------------------------------------------


def event(
    event_id: int, type_: str, task_id: str | None, miner_id: str | None, data: Json, at: float
) -> Fact:
    return s.INSERT_EVENT, (event_id, type_, task_id, miner_id, data, at)


def meta(key: str, value: str) -> Fact:
    return s.INSERT_META, (key, value)


def api_key(name: str, digest: str, scopes: str, at: float) -> Fact:
    return s.INSERT_API_KEY, (name, digest, scopes, at)


def api_key_revoked(name: str, at: float) -> Fact:
    return s.REVOKE_API_KEY, (at, name)


def webhook(
    webhook_id: str, url: str, events: Json, secret: str, after_event: int, at: float
) -> Fact:
    return s.INSERT_WEBHOOK, (webhook_id, url, events, secret, after_event, at)


def webhook_deleted(webhook_id: str, at: float) -> list[Fact]:
    """The subscription ended, and its pending deliveries with it."""
    return [(s.DELETE_WEBHOOK, (at, webhook_id)), (s.CANCEL_DELIVERIES, (webhook_id,))]


def delivery(
    webhook_id: str | None,
    task_id: str | None,
    url: str,
    secret: str,
    event_id: int,
    type_: str,
    payload: Json,
    at: float,
) -> Fact:
    return s.INSERT_DELIVERY, (webhook_id, task_id, url, secret, event_id, type_, payload, at, at)


def delivery_done(
    delivery_id: int, status: str, http_status: int | None, error: str | None, at: float
) -> Fact:
    return s.DELIVERY_DONE, (status, http_status, error, at, delivery_id)


def delivery_retry(
    delivery_id: int, http_status: int | None, error: str | None, next_at: float
) -> Fact:
    return s.DELIVERY_RETRY, (http_status, error, next_at, delivery_id)


def forget_deliveries(before: float) -> Fact:
    return s.FORGET_DELIVERIES, (before,)
