"""Events: the append-only log's rows, and the live fan-out to SSE subscribers.

An event gets its id when the fact that records it is queued, and is published
only after that fact has committed, so a subscriber never sees an event that a
crash could take back. A subscriber that falls too far behind is dropped rather
than allowed to grow memory; it resumes from the log with ``Last-Event-ID``.
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

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    type: str
    task_id: str | None
    miner_id: str | None
    data: bytes  # JSON object
    at: float

    def fact(self) -> facts.Fact:
        return (
            facts.INSERT_EVENT,
            (self.id, self.type, self.task_id, self.miner_id, self.data.decode(), self.at),
        )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Event:
        return cls(
            row["id"], row["type"], row["task_id"], row["miner_id"], row["data"].encode(), row["at"]
        )

    def matches(self, task_id: str | None, miner_id: str | None) -> bool:
        return (task_id is None or self.task_id == task_id) and (
            miner_id is None or self.miner_id == miner_id
        )


class EventLog:
    """Hands out event ids in commit order."""

    def __init__(self, last_id: int) -> None:
        self.last_id = last_id

    def new(
        self,
        type_: str,
        at: float,
        task_id: str | None = None,
        miner_id: str | None = None,
        **data: Any,
    ) -> Event:
        self.last_id += 1
        if task_id is not None:
            data.setdefault("taskId", task_id)
        if miner_id is not None:
            data.setdefault("minerId", miner_id)
        return Event(self.last_id, type_, task_id, miner_id, _encode(data), at)


class Subscription:
    def __init__(self, bus: EventBus, limit: int) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(limit)
        self._bus = bus
        self.dropped = False

    def offer(self, event: Event) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped = True
            self._bus.unsubscribe(self)

    def close(self) -> None:
        self._bus.unsubscribe(self)


class EventBus:
    def __init__(self, subscriber_limit: int = 10_000) -> None:
        self._subs: set[Subscription] = set()
        self._limit = subscriber_limit

    def subscribe(self) -> Subscription:
        sub = Subscription(self, self._limit)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def publish(self, events: list[Event]) -> None:
        for sub in list(self._subs):
            for event in events:
                sub.offer(event)

    @property
    def subscribers(self) -> int:
        return len(self._subs)
