"""A miner's standing: the trust fields every miner view shows, and how its reputation moved."""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from qortex.errors import InvalidInput, NotFound
from qortex.shapes import ReputationHistory, ReputationStep
from qortex.web.auth import require_scope
from qortex.web.http import JSON, query_int


def standing(coord: Any, row: dict[str, Any]) -> tuple[str, int, float | None, int, int, int]:
    """The trust fields of one miner, from its row and the coordinator's ledger: status,
    reputation, credibility, checks passed and failed, earned slots (``Miner``'s last six
    fields, in its order)."""
    miner_id = row["id"]
    error = coord.ledger.error(miner_id) if row["status"] == "active" else None
    return (
        row["status"],
        coord.ledger.reputation(miner_id),
        None if error is None else 1.0 - error,
        row["passes"],
        row["failures"],
        row["allowance"],
    )


async def reputation_history(request: Request) -> JSON:
    """Newest first, paged by time: ``?limit=`` and ``?before=`` a previous page's ``next``."""
    require_scope(request, "read")
    coord = request.app.state.coordinator
    miner_id = request.path_params["miner_id"]
    if await coord.store.reader.miner(miner_id) is None:
        raise NotFound(f"no miner {miner_id!r}", minerId=miner_id)
    limit = query_int(request, "limit", 100, 1, 1000)
    raw = request.query_params.get("before")
    try:
        before = float(raw) if raw is not None else None
        if before is not None and not math.isfinite(before):
            raise ValueError
    except ValueError:
        raise InvalidInput("before must be a timestamp from a previous page's 'next'") from None
    rows = await coord.store.reader.reputation_history(miner_id, limit, before)
    history = [ReputationStep(r["at"], r["reputation"], r["passes"], r["reason"]) for r in rows]
    following = history[-1].at if len(history) == limit else None
    return JSON(ReputationHistory(miner_id, coord.ledger.reputation(miner_id), history, following))


routes = [
    Route("/api/v1/miners/{miner_id}/reputation-history", reputation_history, methods=["GET"]),
]
