"""``GET /api/v1/events``: the event log as Server-Sent Events, resumable without loss.

A stream subscribes to live events first and only then reads the log after
the client's ``Last-Event-ID``, dropping live events it has already sent, so
nothing falls in the gap between the two. Without an id the stream starts
with what happens next; ``lastEventId=0`` replays the whole log.

Live-only events (:data:`qortex.events.LIVE_ONLY`) go out without an ``id:``
line, so a client's ``Last-Event-ID`` stays that of the last logged event, and
they are never replayed.

A stream belongs to the key that opened it: when that key is revoked the
stream sends one ``error`` frame saying so and ends, and the reconnect that
follows is refused with 401.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from qortex.errors import InvalidInput, TooManyRequests
from qortex.events import BusEvent, BusSubscription
from qortex.web.auth import require_scope

PAGE = 1000
#: Most bytes of event data read from the log at once for one stream's replay.
PAGE_BYTES = 256 * 1024
REVOKED = (
    b'event: error\ndata: {"error": "Unauthorized", "message": "the API key %s was revoked"}\n\n'
)
MAX_EVENT_ID = 2**63 - 1


def frame(event: BusEvent) -> bytes:
    if not event.id:  # live only: not in the log, so nothing to resume from
        return b"event: %s\ndata: %s\n\n" % (event.type.encode(), event.data)
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.id, event.type.encode(), event.data)


def _is_event_id(raw: str) -> bool:
    """ASCII digits only (``"²".isdigit()`` is true too), and small enough for SQLite."""
    return raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) <= MAX_EVENT_ID


async def _next(sub: BusSubscription, revoked: asyncio.Future[Any], wait: float) -> BusEvent | None:
    """The next live event, or None after ``wait`` seconds or once the key is revoked."""
    if revoked.done():
        return None
    getter = asyncio.ensure_future(sub.get())
    done, _ = await asyncio.wait({getter, revoked}, timeout=wait, return_when="FIRST_COMPLETED")
    if getter in done:
        return getter.result()
    getter.cancel()
    return None


async def stream(request: Request) -> StreamingResponse:
    key = require_scope(request, "read")
    raw = request.headers.get("last-event-id")
    if raw is None:
        raw = request.query_params.get("lastEventId")
    if raw is not None and not _is_event_id(raw):
        raise InvalidInput("Last-Event-ID must be a non-negative integer")
    task_id = request.query_params.get("taskId")
    miner_id = request.query_params.get("minerId")
    state = request.app.state
    if state.bus.subscribers >= state.settings.max_subscribers:
        raise TooManyRequests(
            f"{state.settings.max_subscribers} event streams are open already;"
            " close one or try again later",
            retry_after=5,
        )
    sub = state.bus.subscribe()
    after = int(raw) if raw is not None else None
    heartbeat = state.settings.sse_heartbeat_seconds

    revoked = asyncio.ensure_future(key.revoked.wait())

    async def events() -> AsyncIterator[bytes]:
        last = after
        try:
            yield b"retry: 2000\n\n"
            while last is not None:
                rows = await state.store.reader.events_after(
                    last, task_id, miner_id, PAGE, PAGE_BYTES
                )
                for row in rows:
                    event = BusEvent.from_row(row)
                    last = event.id
                    yield frame(event)
                if not rows:
                    break
            while not sub.dropped:
                event = await _next(sub, revoked, heartbeat)
                if revoked.done():
                    yield REVOKED % key.name.encode()
                    return
                if event is None:
                    yield b": keepalive\n\n"
                    continue
                if not event.matches(task_id, miner_id):
                    continue
                if not event.id:
                    yield frame(event)
                elif last is None or event.id > last:
                    last = event.id
                    yield frame(event)
        finally:
            revoked.cancel()
            sub.close()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


routes = [Route("/api/v1/events", stream, methods=["GET"])]
