"""The operator's routes in the OpenAPI document: miners, cancel, stats, leaderboard, pages."""

from __future__ import annotations

from qortex.control import MINER_STATUSES
from qortex.store.reader import MINER_ORDERS
from qortex.web.control import MinerStatusChange
from qortex.web.openapi_parts import (
    PUBLIC,
    TEXT,
    json,
    operation,
    path,
    query,
    responses,
    scoped,
)
from qortex.web.schemas import BOOLEAN, STRING, Schema, ref

MINER_ID = path("minerId", "a miner's id (from registration, events or the miner list)")


def _page_params(limit: int, most: int, offset_max: int) -> list[Schema]:
    return [
        query(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": most, "default": limit},
            "most entries on the page",
        ),
        query(
            "offset",
            {"type": "integer", "minimum": 0, "maximum": offset_max, "default": 0},
            "entries to skip",
        ),
    ]


def _page(summary: str) -> Schema:
    content = {"text/html": {"schema": TEXT}}
    return operation(
        summary, "browser", {"200": {"description": "HTML", "content": content}}, PUBLIC
    )


def control_paths() -> Schema:
    return {
        "/api/v1/miners": {
            "get": operation(
                "Miners seen, filtered and sorted",
                "miners",
                responses({200: json("One page of miners", ref("MinerPage"))}, (400, 401)),
                scoped("read"),
                [
                    *_page_params(100, 1000, 10**9),
                    query("connected", BOOLEAN, "only connected (`true`) or offline (`false`)"),
                    query("kind", STRING, "only miners that run this kind"),
                    query(
                        "status",
                        {"type": "string", "enum": list(MINER_STATUSES)},
                        "only miners in this status",
                    ),
                    query(
                        "sort",
                        {"type": "string", "enum": list(MINER_ORDERS), "default": "lastSeen"},
                        "largest or latest first",
                    ),
                ],
            ),
        },
        "/api/v1/miners/{minerId}": {
            "get": operation(
                "One miner: connection, address, slots, work, credit, recent results",
                "miners",
                responses({200: json("The miner", ref("MinerDetail"))}, (401, 404)),
                scoped("read"),
                [MINER_ID],
            ),
            "patch": operation(
                "Ban, verify or reinstate a miner",
                "miners",
                responses(
                    {200: json("The new status", ref("MinerStatus"))},
                    (400, 401, 404, 413),
                ),
                scoped("admin"),
                [MINER_ID],
                MinerStatusChange,
            ),
        },
        "/api/v1/tasks/{taskId}/cancel": {
            "post": operation(
                "Cancel a running task; its copies are withdrawn from miners at once",
                "tasks",
                responses({200: json("Cancelled", ref("TaskCancelled"))}, (401, 404, 409)),
                scoped("admin"),
                [path("taskId", "the id returned by POST /api/v1/tasks")],
            ),
        },
        "/api/v1/stats": {
            "get": operation(
                "Tasks by status, miners, throughput, refusals, uptime",
                "service",
                responses({200: json("The numbers", ref("Stats"))}, (401,)),
                scoped("read"),
            ),
        },
        "/api/v1/leaderboard": {
            "get": operation(
                "Volunteers by credit, under the names they chose",
                "miners",
                responses(
                    {200: json("One page of the leaderboard", ref("Leaderboard"))},
                    (400,),
                ),
                PUBLIC,
                [
                    *_page_params(20, 100, 10**6),
                    query("minerId", STRING, "also answer this miner's own rank and credit"),
                ],
            ),
        },
        "/dashboard": {"get": _page("The operator's console")},
        "/docs": {"get": _page("This document, to read and try in a browser")},
        "/docs/openapi.json": {
            "get": operation(
                "This document in OpenAPI 3.0 form, for the bundled Swagger UI",
                "service",
                {"200": json("OpenAPI 3.0", {"type": "object"})},
                PUBLIC,
            ),
        },
    }
