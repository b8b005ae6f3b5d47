"""``GET /openapi.json``: the HTTP API as an OpenAPI 3.1 document.

Request bodies are the JSON Schemas msgspec derives from the very Structs that
decode and validate them (``TaskRequest``, ``Registration``, ``SignedResult``),
so the document cannot drift from what the routes accept; query parameters and
responses are written out here beside them, and each body has examples a
client (or a fuzzer's first requests) can send as they are. The document is
built once per app and served as pre-encoded bytes.

The operator's routes are described in ``openapi_control``. The browser
routes (``/``, ``/mine``, ``/kinds/{name}.js``, ``/kinds/{name}/{file}``,
``/dashboard``, ``/docs``) and ``/metrics`` are in it as non-JSON GETs: their
path parameters reach lookups by name, which is worth fuzzing. Left out:
``/ws/miner`` (a WebSocket, which OpenAPI cannot describe; see
docs/protocol.md) and the ``/static`` and ``/docs/static`` mounts (fixed files served by Starlette's
``StaticFiles``, whose multi-segment paths an OpenAPI path template cannot
express).
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qortex import __version__
from qortex.protocol.formats import MINER_ID
from qortex.web import openapi_scripting
from qortex.web.control import MinerStatusChange
from qortex.web.keys import KeyRequest
from qortex.web.miners import Registration, SignedResult
from qortex.web.openapi_control import control_paths
from qortex.web.openapi_parts import (
    IDEMPOTENCY_KEY,
    PUBLIC,
    TASK_ID,
    TEXT,
    json,
    operation,
    path,
    query,
    responses,
    scoped,
)
from qortex.web.schemas import (
    BOOLEAN,
    JSON_TYPE,
    NUMBER,
    REF,
    RESPONSE_SCHEMAS,
    STRING,
    TASK_STATUS,
    Schema,
    ref,
)
from qortex.web.tasks import TaskRequest
from qortex.web.webhooks import WebhookRequest

REQUEST_BODIES = (
    TaskRequest,
    Registration,
    SignedResult,
    MinerStatusChange,
    KeyRequest,
    WebhookRequest,
)


def _paths() -> Schema:
    return {
        "/api/v1/tasks": {
            "post": operation(
                "Submit a task; 201 once it is durable",
                "tasks",
                responses(
                    {
                        200: {
                            **json("A retry: the task this key made", ref("TaskCreated")),
                            "headers": {"idempotent-replayed": {"schema": STRING}},
                        },
                        201: {
                            **json("The task is recorded", ref("TaskCreated")),
                            "headers": {"location": {"schema": STRING}},
                        },
                    },
                    (400, 401, 413, 422, 503),
                ),
                scoped("submit"),
                [IDEMPOTENCY_KEY],
                body=TaskRequest,
            ),
            "get": operation(
                "List tasks, newest first",
                "tasks",
                responses({200: json("One page of tasks", ref("TaskPage"))}, (400, 401)),
                scoped("read"),
                [
                    query("status", TASK_STATUS, "only tasks in this state"),
                    query("kind", STRING, "only tasks of this kind"),
                    query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                        "most tasks on the page",
                    ),
                    query("before", NUMBER, "the previous page's `next`"),
                    query("prefix", STRING, "only tasks whose id starts with this"),
                ],
            ),
        },
        "/api/v1/tasks/{taskId}": {
            "get": operation(
                "A task, its output, and each microtask's status, decision and votes",
                "tasks",
                responses({200: json("The task", ref("Task"))}, (400, 401, 404)),
                scoped("read"),
                [
                    TASK_ID,
                    query(
                        "outputs",
                        BOOLEAN,
                        "include each vote's output (`true`, `1`, `yes`; `false`, `0`, `no`)",
                    ),
                ],
            ),
        },
        "/api/v1/tasks/{taskId}/proof": {
            "get": operation(
                "The proof bundle, for `qortex verify`",
                "tasks",
                responses(
                    {200: json("Inputs, signed results, decisions", ref("Proof"))}, (401, 404)
                ),
                scoped("read"),
                [TASK_ID],
            ),
        },
        "/api/v1/events": {
            "get": operation(
                "Server-Sent Events, resumable with Last-Event-ID",
                "events",
                responses(
                    {
                        200: {
                            "description": "An endless event stream; the schema is one event",
                            "content": {"text/event-stream": {"schema": ref("Event")}},
                        }
                    },
                    (400, 401),
                ),
                scoped("read", query=True),
                [
                    query("taskId", STRING, "only this task's events"),
                    query("minerId", STRING, "only this miner's events"),
                    query(
                        "lastEventId",
                        {"type": "string", "pattern": "^[0-9]{1,18}$"},
                        "resume after this event id; `0` replays the whole log",
                    ),
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                        "description": "what EventSource sends on reconnect (wins over the query)",
                    },
                ],
            ),
        },
        "/api/v1/miners/{minerId}/reputation-history": {
            "get": operation(
                "How a miner's reputation moved, newest first",
                "miners",
                responses(
                    {200: json("One page of history", ref("ReputationHistory"))}, (400, 401, 404)
                ),
                scoped("read"),
                [
                    path("minerId", "32 hex digits"),
                    query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                        "most entries on the page",
                    ),
                    query("before", NUMBER, "the previous page's `next`"),
                ],
            ),
        },
        "/api/v1/miners/register": {
            "post": operation(
                "Register a miner's public key",
                "miners",
                responses(
                    {
                        200: json("Already registered; nothing changed", ref("Registered")),
                        201: json("Registered", ref("Registered")),
                    },
                    (400, 413, 503),
                ),
                PUBLIC,
                body=Registration,
                limited=True,
            ),
        },
        "/internal/miner/{minerId}/result": {
            "post": operation(
                "A signed result over HTTP, as on the socket",
                "miners",
                responses(
                    {200: json("Accepted and durable", ref("ResultAccepted"))},
                    (400, 401, 403, 404, 409, 413, 503),
                ),
                PUBLIC,
                [path("minerId", "the id returned by registration", MINER_ID)],
                body=SignedResult,
                limited=True,
            ),
        },
        "/health": {
            "get": operation(
                "Database reachable, uptime, miners connected",
                "service",
                {
                    "200": json("Healthy", ref("Health")),
                    "503": json(
                        "The database cannot be read, or writes are refused for now",
                        ref("Health"),
                    ),
                },
                PUBLIC,
            ),
        },
        "/metrics": {
            "get": operation(
                "Prometheus counters",
                "service",
                responses(
                    {
                        200: {
                            "description": "Prometheus' text exposition format",
                            "content": {"text/plain": {"schema": TEXT}},
                        }
                    },
                    (401,),
                ),
                scoped("read"),
            ),
        },
        "/api/v1/kinds": {
            "get": operation(
                "The task kinds this coordinator runs",
                "service",
                {"200": json("The kinds", ref("Kinds"))},
                PUBLIC,
            ),
        },
        "/openapi.json": {
            "get": operation(
                "This document",
                "service",
                {"200": json("OpenAPI 3.1", {"type": "object"})},
                PUBLIC,
            ),
        },
        "/": {"get": _page("The browser miner page")},
        "/mine": {"get": _page("The browser miner page")},
        "/kinds/{name}.js": {
            "get": operation(
                "A kind's browser implementation (an ES module)",
                "browser",
                responses(
                    {
                        200: {
                            "description": "The module",
                            "content": {"text/javascript": {"schema": TEXT}},
                        }
                    },
                    (404,),
                ),
                PUBLIC,
                [path("name", "a kind name")],
            ),
        },
        "/kinds/{name}/{file}": {
            "get": operation(
                "A data file beside a kind's browser module",
                "browser",
                responses(
                    {
                        200: {
                            "description": "The file",
                            "content": {
                                media: {"schema": TEXT}
                                for media in ("text/javascript", "text/plain", JSON_TYPE)
                            },
                        }
                    },
                    (404,),
                ),
                PUBLIC,
                [path("name", "a kind name"), path("file", "`*.js`, `*.txt` or `*.json`")],
            ),
        },
    }


def _page(summary: str) -> Schema:
    content = {"text/html": {"schema": TEXT}}
    return operation(
        summary, "browser", {"200": {"description": "HTML", "content": content}}, PUBLIC
    )


def build() -> dict[str, Any]:
    """The whole document, as a plain dict."""
    _, bodies = msgspec.json.schema_components(REQUEST_BODIES, ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Qortex",
            "version": __version__,
            "description": "Trusted results from untrusted volunteer computers.",
        },
        "paths": {**_paths(), **control_paths(), **openapi_scripting.paths()},
        "components": {
            "schemas": {**bodies, **RESPONSE_SCHEMAS, **openapi_scripting.SCHEMAS},
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "apiKeyQuery": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "apiKey",
                    "description": "for EventSource, which cannot send headers",
                },
            },
        },
    }


async def openapi_json(request: Request) -> Response:
    state = request.app.state
    encoded: bytes | None = getattr(state, "openapi_document", None)
    if encoded is None:
        encoded = state.openapi_document = msgspec.json.encode(build())
    return Response(encoded, media_type=JSON_TYPE)


routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
