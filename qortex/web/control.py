"""The operator's routes: cancel a task, look at and ban or verify a miner, the
numbers of the whole coordinator, and the volunteers' public leaderboard.

They parse and check, then ask the coordinator (:mod:`qortex.control`); the
miner views are built here from a stored row and what the coordinator says
about the miner's live connection.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta
from starlette.requests import Request
from starlette.routing import Route

from qortex.control import MINER_STATUSES
from qortex.core import lifecycle
from qortex.errors import InvalidInput, NotFound
from qortex.shapes import (
    Leader,
    Leaderboard,
    Miner,
    MinerDetail,
    MinerPage,
    MinerStatus,
    Place,
    RecentResult,
    Stats,
    TaskCancelled,
    Work,
)
from qortex.store.reader import MINER_ORDERS
from qortex.web.auth import require_scope
from qortex.web.http import JSON, query_int, read_json
from qortex.web.reputation import standing

RECENT_RESULTS = 20


class MinerStatusChange(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """``PATCH /api/v1/miners/{minerId}``: ban, verify or reinstate a miner."""

    status: Literal["banned", "verified", "active"]
    note: Annotated[str, Meta(max_length=500)] = ""


def _miner(coord: Any, row: dict[str, Any], shape: type[Miner] = Miner, *more: Any) -> Miner:
    """A miner as the API shows it: the stored row, its connection if it has one, and its
    standing with the trust engine; ``shape`` and ``more`` make it a ``MinerDetail``.

    Its fields are passed by position, in ``Miner``'s order: a page holds up to 1000
    miners, and keywords cost twice as much.
    """
    live = coord.control.live(row["id"])
    return shape(
        row["id"],
        row["public_key"],
        row["name"],
        row["software"],
        msgspec.json.decode(row["kinds"]),
        live is not None,  # connected
        live["address"] if live else row["address"],
        live["slots"] if live else None,
        len(live["working"]) if live else 0,  # busy
        row["accepted"],
        row["refused"],
        row["credit"] - row["credit_revoked"],
        row["first_seen"],
        row["last_seen"],
        *standing(coord, row),
        *more,
    )


async def get_miner(request: Request) -> JSON:
    require_scope(request, "read")
    miner_id = request.path_params["miner_id"]
    coord = request.app.state.coordinator
    reader = coord.store.reader
    row = await reader.miner(miner_id)
    if row is None:
        raise NotFound(f"no miner {miner_id!r}", minerId=miner_id)
    live = coord.control.live(miner_id)
    recent = await reader.miner_results(miner_id, RECENT_RESULTS)
    return JSON(
        _miner(
            coord,
            row,
            MinerDetail,
            row["note"],
            live["since"] if live else None,  # connected since
            msgspec.convert(live["working"], list[Work]) if live else [],
            [RecentResult(r["assignment_id"], r["microtask_id"], r["received_at"]) for r in recent],
        )
    )


async def patch_miner(request: Request) -> JSON:
    require_scope(request, "admin")
    miner_id = request.path_params["miner_id"]
    change = await read_json(request, MinerStatusChange)
    coord = request.app.state.coordinator
    await coord.control.set_miner_status(miner_id, change.status, change.note)
    return JSON(MinerStatus(miner_id, change.status, change.note))


def _flag(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise InvalidInput(f"{name} must be true or false", field=name)


def _choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    raw = request.query_params.get(name)
    if raw is not None and raw not in allowed:
        raise InvalidInput(f"{name} must be one of {', '.join(allowed)}", field=name)
    return raw


async def list_miners(request: Request) -> JSON:
    """Miners seen, filtered by connection, kind and status, in the order asked for."""
    require_scope(request, "read")
    limit = query_int(request, "limit", 100, 1, 1000)
    offset = query_int(request, "offset", 0, 0, 10**9)
    connected = _flag(request, "connected")
    status = _choice(request, "status", MINER_STATUSES)
    order = _choice(request, "sort", tuple(MINER_ORDERS)) or "lastSeen"
    kind = request.query_params.get("kind") or None
    coord = request.app.state.coordinator
    online = coord.connected_miners() if connected is not None else None
    rows, total = await coord.store.reader.miners(
        limit,
        offset,
        order,
        kind=kind,
        status=status,
        among=online if connected else None,
        outside=online if connected is False else None,
    )
    miners = [_miner(coord, row) for row in rows]
    return JSON(MinerPage(miners, total, coord.snapshot().miners_connected))


async def cancel_task(request: Request) -> JSON:
    require_scope(request, "admin")
    task_id = request.path_params["task_id"]
    await request.app.state.coordinator.control.cancel(task_id)
    return JSON(TaskCancelled(task_id, lifecycle.CANCELLED))


async def stats(request: Request) -> JSON:
    """Counts from the file (tasks by status) and from memory (everything live)."""
    require_scope(request, "read")
    coord = request.app.state.coordinator
    counts = await coord.store.reader.task_counts()
    body = coord.control.overview()
    body["tasks"] = {status: counts.get(status, 0) for status in lifecycle.TASK_STATES}
    body["uptimeSeconds"] = round(coord.snapshot().uptime_seconds, 3)
    return JSON(msgspec.convert(body, Stats))


async def leaderboard(request: Request) -> JSON:
    """Volunteers by credit, under the names they chose; ``minerId`` adds that miner's place."""
    limit = query_int(request, "limit", 20, 1, 100)
    offset = query_int(request, "offset", 0, 0, 10**6)
    reader = request.app.state.store.reader
    rows = await reader.leaderboard(limit, offset)
    leaders = [
        Leader(offset + i + 1, row["name"] or "anonymous", row["earned"], row["accepted"])
        for i, row in enumerate(rows)
    ]
    you = None
    miner_id = request.query_params.get("minerId")
    if miner_id:
        place = await reader.rank(miner_id)
        if place is not None:
            you = Place(rank=place[0], credit=place[1])
    return JSON(Leaderboard(leaders, you))


routes = [
    Route("/api/v1/miners", list_miners, methods=["GET"]),
    Route("/api/v1/tasks/{task_id}/cancel", cancel_task, methods=["POST"]),
    Route("/api/v1/miners/{miner_id}", get_miner, methods=["GET"]),
    Route("/api/v1/miners/{miner_id}", patch_miner, methods=["PATCH"]),
    Route("/api/v1/stats", stats, methods=["GET"]),
    Route("/api/v1/leaderboard", leaderboard, methods=["GET"]),
]
