"""The event bus holds a bounded number of bytes per stream; replays are paged by bytes."""

from __future__ import annotations

from pathlib import Path

from qortex.events import EVENT_OVERHEAD, BusEvent, EventBus
from qortex.store.database import Store


def _event(n: int, size: int) -> BusEvent:
    return BusEvent(n, "task.created", "t", None, b"x" * size, 0.0)


async def test_a_stream_that_falls_its_bytes_behind_is_dropped_and_lets_go() -> None:
    bus = EventBus(subscriber_bytes=10 * (1000 + EVENT_OVERHEAD))
    slow, quick = bus.subscribe(), bus.subscribe()
    for n in range(10):
        bus.publish([_event(n, 1000)])
        await quick.get()
    assert not slow.dropped and slow.held == 10 * (1000 + EVENT_OVERHEAD)
    assert quick.held == 0
    bus.publish([_event(10, 1)])  # one more, however small, is over the budget
    assert slow.dropped and slow.held == 0 and slow.queue.empty()
    assert not quick.dropped
    assert bus.subscribers == 1


async def test_many_small_events_are_fine_where_one_huge_one_is_not() -> None:
    bus = EventBus(subscriber_bytes=100_000)
    sub = bus.subscribe()
    bus.publish([_event(n, 10) for n in range(400)])
    assert not sub.dropped
    other = bus.subscribe()
    bus.publish([_event(401, 200_000)])
    assert other.dropped


async def test_a_replay_page_is_cut_by_bytes_but_never_empty(tmp_path: Path) -> None:
    store = await Store.open(str(tmp_path / "q.db"))
    try:
        sizes = [10, 10, 500, 10, 5000, 10]
        await store.writer.write([_event(n + 1, size).fact() for n, size in enumerate(sizes)])
        reader = store.reader
        page = await reader.events_after(0, None, None, 100, max_bytes=600)
        assert [row["id"] for row in page] == [1, 2, 3, 4]
        page = await reader.events_after(4, None, None, 100, max_bytes=600)
        assert [row["id"] for row in page] == [5]  # alone over the budget: still one event
        page = await reader.events_after(5, None, None, 100, max_bytes=600)
        assert [row["id"] for row in page] == [6]
        assert await reader.events_after(6, None, None, 100, max_bytes=600) == []
    finally:
        await store.close()
