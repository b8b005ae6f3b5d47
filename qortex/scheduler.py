"""The one timer for scheduled tasks: start each at its ``notBefore``, never before.

A scheduled task is durable from its 201 on but stays out of the dispatch
table, so no miner can be offered its microtasks early; this timer calls the
coordinator's ``start`` for it when its time comes. The timer is memory only:
on every start the coordinator fills it again from the ``schedules`` table,
and a task whose time passed while the coordinator was down starts at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("qortex.scheduler")


class Scheduler:
    def __init__(self, start: Callable[[str], Awaitable[None]], clock: Callable[[], float]):
        self._start = start
        self._clock = clock
        self._heap: list[tuple[float, str]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, task_id: str, not_before: float) -> None:
        heapq.heappush(self._heap, (not_before, task_id))
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="qortex-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = self._clock()
            while self._heap and self._heap[0][0] <= now:
                _, task_id = heapq.heappop(self._heap)
                try:
                    await self._start(task_id)
                except Exception:  # a task that cannot start must not stop the others
                    log.exception(
                        "scheduled task %s could not start", task_id, extra={"task_id": task_id}
                    )
            wait = None if not self._heap else min(60.0, self._heap[0][0] - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
