"""Deadlines in time order (of leases, of tasks), with ids closed early left to drop out lazily."""

from __future__ import annotations

import heapq
from collections.abc import Container, Iterator


class Deadlines:
    """A heap of (deadline, id); an id closed early is skipped when it surfaces."""

    __slots__ = ("_heap",)

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []

    def __iter__(self) -> Iterator[tuple[float, str]]:
        return iter(self._heap)

    def add(self, at: float, key: str) -> None:
        heapq.heappush(self._heap, (at, key))

    def due(self, now: float) -> Iterator[str]:
        """The ids whose deadline is at or before ``now``, taken off the heap."""
        while self._heap and self._heap[0][0] <= now:
            yield heapq.heappop(self._heap)[1]

    def next(self, live: Container[str]) -> float | None:
        """The earliest deadline of an id still in ``live``."""
        while self._heap and self._heap[0][1] not in live:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None
