"""Events: the append-only log's rows, and the live fan-out to SSE subscribers.

An event gets its id when the fact that records it is queued, and is published
only after that fact has committed, so a subscriber never sees an event that a
crash could take back. A subscriber that falls more than its byte budget behind
is dropped rather than allowed to grow memory; it resumes from the log with
``Last-Event-ID``.

Two events are live only (:data:`LIVE_ONLY`): ``microtask.assigned`` and
``microtask.result`` come once or more per result, and what they say is
recorded elsewhere (a lease is void after a restart anyway; an accepted result
is its row in ``results``). Logging them would cost two of every result's
rows, so they have no id, are not in the log, and are streamed, after the
commit that makes them true, only to streams open at the time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import msgspec

from qortex.store import facts

EVENT_TYPES = (
    "task.created",
    "task.scheduled",
    "task.started",
    "task.completed",
    "task.failed",
    "task.revised",
    "task.cancelled",
    "microtask.assigned",
    "microtask.result",
    "microtask.quorum",
    "microtask.reassigned",
    "microtask.reopened",
    "result.refused",
    "miner.connected",
    "miner.disconnected",
    "miner.reputation",
    "miner.banned",
    "miner.verified",
    "miner.reinstated",
)
#: Streamed to open streams but not logged: no id, no replay, no webhook.
LIVE_ONLY = frozenset({"microtask.assigned", "microtask.result"})

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class BusEvent:
    """One thing that happened, as the bus publishes it and the log keeps it (if not live only)."""

    id: int  # 0 for a live-only event: it is not in the log
    type: str
    task_id: str | None
    miner_id: str | None
    data: bytes  # JSON object
    at: float

    def fact(self) -> facts.Fact:
        data = self.data.decode()  # text, so SQLite's JSON functions read it
        return facts.event(self.id, self.type, self.task_id, self.miner_id, data, self.at)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> BusEvent:
        return cls(
            row["id"], row["type"], row["task_id"], row["miner_id"], row["data"].encode(), row["at"]
        )

    def matches(self, task_id: str | None, miner_id: str | None) -> bool:
        return (task_id is None or self.task_id == task_id) and (
            miner_id is None or self.miner_id == miner_id
        )


class EventLog:
    """Hands out event ids in commit order (none to live-only events)."""

    def __init__(self, last_id: int) -> None:
        self.last_id = last_id

    def new(
        self,
        type_: str,
        at: float,
        task_id: str | None = None,
        miner_id: str | None = None,
        **data: Any,
    ) -> BusEvent:
        if task_id is not None:
            data.setdefault("taskId", task_id)
        if miner_id is not None:
            data.setdefault("minerId", miner_id)
        if type_ in LIVE_ONLY:
            return BusEvent(0, type_, task_id, miner_id, _encode(data), at)
        self.last_id += 1
        return BusEvent(self.last_id, type_, task_id, miner_id, _encode(data), at)


#: What one queued event is counted as beyond its data: the object and its framing.
EVENT_OVERHEAD = 200


class BusSubscription:
    """One stream's queue of events not yet sent, bounded in bytes, not in count."""

    def __init__(self, bus: EventBus, max_bytes: int) -> None:
        self.queue: asyncio.Queue[BusEvent] = asyncio.Queue()
        self._bus = bus
        self._max_bytes = max_bytes
        self.held = 0  # bytes of the events in the queue
        self.dropped = False

    def offer(self, event: BusEvent) -> None:
        if self.dropped:
            return
        size = len(event.data) + EVENT_OVERHEAD
        if self.held + size > self._max_bytes:
            self.dropped = True
            self._bus.unsubscribe(self)
            self.queue = asyncio.Queue()  # let go of what it held; it resumes from the log
            self.held = 0
            return
        self.held += size
        self.queue.put_nowait(event)

    async def get(self) -> BusEvent:
        event = await self.queue.get()
        self.held -= len(event.data) + EVENT_OVERHEAD
        return event

    def close(self) -> None:
        self._bus.unsubscribe(self)


class EventBus:
    """Publishes committed events to every open stream; a stream that falls more than
    ``subscriber_bytes`` behind is dropped (it resumes from the log)."""

    def __init__(self, subscriber_bytes: int = 1024 * 1024) -> None:
        self._subs: set[BusSubscription] = set()
        self._internal: set[BusSubscription] = set()  # the coordinator's own (webhook outbox)
        self._bytes = subscriber_bytes

    def subscribe(self, internal: bool = False) -> BusSubscription:
        """A new stream; ``internal`` ones are the coordinator's and not counted as clients'."""
        sub = BusSubscription(self, self._bytes)
        self._subs.add(sub)
        if internal:
            self._internal.add(sub)
        return sub

    def unsubscribe(self, sub: BusSubscription) -> None:
        self._subs.discard(sub)
        self._internal.discard(sub)

    def publish(self, events: list[BusEvent]) -> None:
        for sub in list(self._subs):
            for event in events:
                sub.offer(event)

    @property
    def subscribers(self) -> int:
        """Clients' streams (what ``max_subscribers`` bounds)."""
        return len(self._subs) - len(self._internal)
