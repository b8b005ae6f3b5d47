"""The durable event log as JSON pages and counts, for clients that poll instead of stream.

``GET /api/v1/events/log`` pages forward through the log by id: pass the
page's ``next`` as ``after`` (also when polling: ``more`` is false once the
page ends at the log's end); ``GET /api/v1/events/stats`` counts events by
type. Both read the same table the SSE stream replays from.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.routing import Route

from qortex.errors import InvalidInput
from qortex.events import EVENT_TYPES, LIVE_ONLY
from qortex.shapes import Event, EventPage, EventStats
from qortex.web.auth import require_scope
from qortex.web.http import JSON, query_int

MAX_EVENT_ID = 2**63 - 1


def _event(row: dict[str, Any]) -> Event:
    data = msgspec.json.decode(row["data"])
    return Event(row["id"], row["type"], row["task_id"], row["miner_id"], row["at"], data)


async def log_page(request: Request) -> JSON:
    require_scope(request, "read")
    query = request.query_params
    after = query_int(request, "after", 0, 0, MAX_EVENT_ID)
    limit = query_int(request, "limit", 100, 1, 1000)
    type_ = query.get("type") or None
    if type_ is not None and type_ not in EVENT_TYPES:
        raise InvalidInput(f"unknown event type {type_[:64]!r}", field="type")
    if type_ in LIVE_ONLY:
        raise InvalidInput(
            f"{type_} is live only: it is not in the log; follow GET /api/v1/events for it",
            field="type",
        )
    rows = await request.app.state.store.reader.events_page(
        after, type_, query.get("taskId") or None, query.get("minerId") or None, limit
    )
    events = [_event(row) for row in rows]
    following = events[-1].id if events else after
    return JSON(EventPage(events, following, len(events) == limit))


async def stats(request: Request) -> JSON:
    require_scope(request, "read")
    reader = request.app.state.store.reader
    counts = await reader.event_counts()
    by_type = {n: counts.get(n, 0) for n in EVENT_TYPES if n not in LIVE_ONLY}
    return JSON(EventStats(sum(counts.values()), await reader.last_event_id(), by_type))


routes = [
    Route("/api/v1/events/log", log_page, methods=["GET"]),
    Route("/api/v1/events/stats", stats, methods=["GET"]),
]
