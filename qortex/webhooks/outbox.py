"""The webhook outbox: events become deliveries in SQLite, and deliveries are retried until done.

Two loops, both restartable from the file alone:

* **enqueue** follows the durable event log from a cursor kept in ``meta``.
  For each event a subscription wants (and each ``task.completed`` or
  ``task.failed`` of a task with a ``callbackUrl``) it inserts a delivery, and
  moves the cursor in the same transaction. An event committed just before a
  ``kill -9`` is therefore picked up after the restart: at least once.
* **deliver** posts due deliveries, signed as Standard Webhooks says
  (``webhook-id`` is stable across retries, ``webhook-timestamp`` and
  ``webhook-signature`` are made per attempt), and records each attempt: a
  2xx ends it, anything else retries after ``webhook_retry_seconds`` doubling
  up to an hour, until ``webhook_max_attempts``.

Memory holds the active subscriptions (a cache of the ``webhooks`` table) and
the deliveries in flight; nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from qortex.events import EventBus
from qortex.settings import Settings
from qortex.store import facts as f
from qortex.store.database import Store
from qortex.webhooks.sender import Attempt, Sender

log = logging.getLogger("qortex.webhooks")

CURSOR = "webhook_cursor"
FINISHED = ("task.completed", "task.failed")
PAGE = 500
CONCURRENCY = 8
KEEP_SECONDS = 7 * 86400.0
IDEMPOTENCY_SECONDS = 24 * 3600.0
POLL_SECONDS = 5.0


class Subscription(msgspec.Struct):
    id: str
    url: str
    events: list[str]
    secret: str
    after_event: int
    created_at: float


class Outbox:
    def __init__(
        self, store: Store, bus: EventBus, settings: Settings, clock: Callable[[], float]
    ) -> None:
        self.store = store
        self.bus = bus
        self.settings = settings
        self.clock = clock
        self.sender = Sender(settings)
        self.subscriptions: dict[str, Subscription] = {}
        self.callbacks = False  # whether any task ever asked for a callback
        self.wanted: frozenset[str] = frozenset()
        self._cursor = 0
        self._wake_enqueue = asyncio.Event()
        self._wake_deliver = asyncio.Event()
        self._inflight: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._rng = random.Random()
        #: Attempts since start by outcome (delivered, retried, failed), for /metrics.
        self.outcomes: Counter[str] = Counter()
        self._lock = asyncio.Lock()

    # -- life -------------------------------------------------------------

    async def start(self) -> None:
        reader = self.store.reader
        for row in await reader.all(
            "SELECT id, url, events, secret, after_event, created_at FROM webhooks"
            " WHERE deleted_at IS NULL"
        ):
            row["events"] = msgspec.json.decode(row["events"])
            self.subscriptions[row["id"]] = msgspec.convert(row, Subscription)
        self.callbacks = await reader.one("SELECT 1 AS x FROM callbacks LIMIT 1") is not None
        self._rewant()
        cursor = await reader.meta(CURSOR)
        self._cursor = int(cursor) if cursor is not None else 0
        self._tasks = [
            asyncio.create_task(self._follow_bus(), name="qortex-webhook-bus"),
            asyncio.create_task(self._enqueue_loop(), name="qortex-webhook-enqueue"),
            asyncio.create_task(self._deliver_loop(), name="qortex-webhook-deliver"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.sender.close()

    # -- subscriptions ----------------------------------------------------

    async def subscribe(
        self, sub_id: str, url: str, events: list[str], secret: str
    ) -> Subscription:
        """Record a subscription; it gets every wanted event committed after this call.

        The lock keeps the enqueue loop from scanning with the old set of wanted
        types while the subscription's starting point is taken.
        """
        async with self._lock:
            after = await self.store.reader.last_event_id()
            sub = Subscription(sub_id, url, events, secret, after, self.clock())
            self.subscriptions[sub.id] = sub
            self._rewant()
        events = msgspec.json.encode(sub.events).decode()
        unit = [f.webhook(sub.id, sub.url, events, sub.secret, sub.after_event, sub.created_at)]
        await self.store.writer.write(unit)
        return sub

    async def unsubscribe(self, webhook_id: str) -> None:
        now = self.clock()
        unit = f.webhook_deleted(webhook_id, now)
        await self.store.writer.write(unit)
        self.subscriptions.pop(webhook_id, None)
        self._rewant()

    async def callback_added(self) -> None:
        """Call before submitting a task with a callback, so its end is not skipped."""
        if not self.callbacks:
            async with self._lock:
                self.callbacks = True
                self._rewant()

    def _rewant(self) -> None:
        """The event types somebody wants, kept as one set: the bus follower checks every event."""
        types = {t for sub in self.subscriptions.values() for t in sub.events}
        self.wanted = frozenset(types | set(FINISHED) if self.callbacks else types)

    # -- enqueue ----------------------------------------------------------

    async def _follow_bus(self) -> None:
        """Wake the enqueue loop when a committed event is one somebody wants."""
        sub = self.bus.subscribe(internal=True)
        try:
            while True:
                if sub.dropped:
                    sub = self.bus.subscribe(internal=True)
                    self._wake_enqueue.set()
                event = await sub.queue.get()
                if event.type in self.wanted:
                    self._wake_enqueue.set()
        finally:
            sub.close()

    async def _enqueue_loop(self) -> None:
        while True:
            try:
                more = await self._enqueue_page()
            except Exception:
                log.exception("webhook enqueue failed; retrying")
                more = False
            if more:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_enqueue.wait(), POLL_SECONDS)
            self._wake_enqueue.clear()

    async def _enqueue_page(self) -> bool:
        """Turn one page of wanted events into deliveries; True if there may be more."""
        async with self._lock:
            return await self._enqueue_locked()

    async def _enqueue_locked(self) -> bool:
        wanted = sorted(self.wanted)
        if not wanted:
            return False
        marks = ", ".join("?" * len(wanted))
        rows = await self.store.reader.all(
            f"SELECT * FROM events WHERE id > ? AND type IN ({marks}) ORDER BY id LIMIT ?",
            (self._cursor, *wanted, PAGE),
        )
        if not rows:
            return False
        finished = [r["task_id"] for r in rows if r["type"] in FINISHED and r["task_id"]]
        callbacks = await self._callbacks(finished) if self.callbacks else {}
        now = self.clock()
        unit: list[f.Fact] = []
        for row in rows:
            payload = _payload(row)
            for sub in self.subscriptions.values():
                if row["type"] in sub.events and row["id"] > sub.after_event:
                    unit.append(_delivery(sub.id, row, sub.url, sub.secret, payload, now))
            callback = callbacks.get(row["task_id"]) if row["type"] in FINISHED else None
            if callback is not None:
                unit.append(_delivery(None, row, callback[0], callback[1], payload, now))
        cursor = rows[-1]["id"]
        unit.append(f.meta(CURSOR, str(cursor)))
        await self.store.writer.write(unit)
        self._cursor = cursor
        if len(unit) > 1:
            self._wake_deliver.set()
        return len(rows) == PAGE

    async def _callbacks(self, task_ids: list[str]) -> dict[str, tuple[str, str]]:
        if not task_ids:
            return {}
        marks = ", ".join("?" * len(task_ids))
        rows = await self.store.reader.all(
            f"SELECT task_id, url, secret FROM callbacks WHERE task_id IN ({marks})",
            tuple(task_ids),
        )
        return {row["task_id"]: (row["url"], row["secret"]) for row in rows}

    # -- deliver ----------------------------------------------------------

    async def _deliver_loop(self) -> None:
        gate = asyncio.Semaphore(CONCURRENCY)
        running: set[asyncio.Task[None]] = set()
        swept = 0.0
        while True:
            now = self.clock()
            if now - swept > 600:
                swept = now
                await self._forget_old(now)
            exclude = tuple(self._inflight) or (-1,)
            due = await self.store.reader.all(
                "SELECT id, url, secret, payload, attempts FROM deliveries"
                f" WHERE status = 'pending' AND next_at <= ?"
                f" AND id NOT IN ({', '.join('?' * len(exclude))}) ORDER BY next_at LIMIT ?",
                (now, *exclude, 4 * CONCURRENCY),
            )
            for row in due:
                self._inflight.add(row["id"])
                await gate.acquire()
                task = asyncio.create_task(self._attempt(row, gate))
                running.add(task)
                task.add_done_callback(running.discard)
            if len(due) == 4 * CONCURRENCY:
                continue
            following = await self.store.reader.one(
                "SELECT MIN(next_at) AS at FROM deliveries WHERE status = 'pending'"
            )
            at = following["at"] if following else None
            wait = POLL_SECONDS if at is None else min(POLL_SECONDS, max(0.01, at - now))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_deliver.wait(), wait)
            self._wake_deliver.clear()

    async def _attempt(self, row: dict[str, Any], gate: asyncio.Semaphore) -> None:
        try:
            attempt = await self.sender.send(
                f"msg_{row['id']}", row["url"], row["secret"], row["payload"]
            )
            await self.store.writer.write([self._record(row, attempt)])
        except Exception:
            log.exception("webhook delivery %s could not be recorded", row["id"])
        finally:
            self._inflight.discard(row["id"])
            gate.release()

    def _record(self, row: dict[str, Any], attempt: Attempt) -> f.Fact:
        now = self.clock()
        tries = row["attempts"] + 1
        if attempt.ok:
            self.outcomes["delivered"] += 1
            return f.delivery_done(row["id"], "delivered", attempt.status, None, now)
        if tries >= self.settings.webhook_max_attempts:
            log.warning("webhook delivery %s failed for good: %s", row["id"], attempt.error)
            self.outcomes["failed"] += 1
            return f.delivery_done(row["id"], "failed", attempt.status, attempt.error, now)
        self.outcomes["retried"] += 1
        delay = min(3600.0, self.settings.webhook_retry_seconds * 2 ** (tries - 1))
        delay *= self._rng.uniform(0.9, 1.1)  # receivers coming back are not hit all at once
        return f.delivery_retry(row["id"], attempt.status, attempt.error, now + delay)

    async def _forget_old(self, now: float) -> None:
        """The one periodic clean-up: finished deliveries and idempotency keys past their time."""
        await self.store.writer.write(
            [
                f.forget_deliveries(now - KEEP_SECONDS),
                f.forget_idempotency(now - IDEMPOTENCY_SECONDS),
            ]
        )


def _payload(row: dict[str, Any]) -> str:
    """The body Standard Webhooks describes: ``type``, ``timestamp`` and ``data``."""
    data = msgspec.json.decode(row["data"])
    data["eventId"] = row["id"]
    at = datetime.fromtimestamp(row["at"], UTC).isoformat().replace("+00:00", "Z")
    return msgspec.json.encode({"type": row["type"], "timestamp": at, "data": data}).decode()


def _delivery(
    webhook_id: str | None,
    row: dict[str, Any],
    url: str,
    secret: str,
    payload: str,
    now: float,
) -> f.Fact:
    return f.delivery(webhook_id, row["task_id"], url, secret, row["id"], row["type"], payload, now)
