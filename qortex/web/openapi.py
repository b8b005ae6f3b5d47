"""``GET /openapi.json``: the HTTP API as an OpenAPI 3.1 document.

Request bodies are the JSON Schemas msgspec derives from the very Structs that
decode and validate them (``TaskRequest``, ``Registration``, ``SignedResult``),
so the document cannot drift from what the routes accept; query parameters and
responses are written out here beside them, and each body has examples a
client (or a fuzzer's first requests) can send as they are. The document is
built once per app and served as pre-encoded bytes.

The browser routes (``/``, ``/mine``, ``/kinds/{name}.js``,
``/kinds/{name}/{file}``) and ``/metrics`` are in it as non-JSON GETs: their
path parameters reach lookups by name, which is worth fuzzing. Left out:
``/ws/miner`` (a WebSocket, which OpenAPI cannot describe; see
docs/protocol.md) and the ``/static`` mount (fixed files served by Starlette's
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
from qortex.web.miners import Registration, SignedResult
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

REQUEST_BODIES = (TaskRequest, Registration, SignedResult)

ERRORS = {
    400: "Invalid input: the body, a parameter or the task does not validate",
    401: "Missing or wrong API key (or, for a result, a signature that does not verify)",
    404: "No such task, miner, kind or file",
    409: "The result is refused; `detail.reason` says why",
    413: "The body is larger than `max_request_bytes`",
    429: "Over the key's request rate (`api_rate`), or, for a submit, over `max_pending`",
}
RETRY_AFTER = {"retry-after": {"description": "seconds to wait", "schema": {"type": "integer"}}}


def _json(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {JSON_TYPE: {"schema": schema}}}


def _responses(ok: dict[int, Schema], errors: tuple[int, ...]) -> Schema:
    answers: Schema = {str(status): response for status, response in ok.items()}
    for status in errors:
        answers[str(status)] = _json(ERRORS[status], ref("Error"))
    return answers


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _path(name: str, description: str) -> Schema:
    schema = {"type": "string", "minLength": 1}
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


RFC8032_KEY = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
EXAMPLES: dict[str, dict[str, Any]] = {
    "TaskRequest": {
        "sentiment": {"value": {"tweets": ["I love this", "This is awful"]}},
        "matmul": {
            "value": {
                "kind": "matmul",
                "input": {"a": [[1, 2], [3, 4]], "b": [[5, 6], [7, 8]]},
                "replicas": 3,
            }
        },
    },
    "Registration": {
        "miner": {"value": {"publicKey": RFC8032_KEY, "name": "laptop", "kinds": ["sentiment"]}}
    },
    "SignedResult": {
        "result": {
            "value": {
                "assignmentId": "3f0c0d4e-0000-4000-8000-000000000000:0:1",
                "microtaskId": "3f0c0d4e-0000-4000-8000-000000000000:0",
                "output": '"positive"',
                "signature": "00" * 64,
            }
        }
    },
}


def _body(struct: type) -> Schema:
    name = struct.__name__
    content = {JSON_TYPE: {"schema": ref(name), "examples": EXAMPLES[name]}}
    return {"required": True, "content": content}


KEY = [{"apiKey": []}]
PUBLIC: list[Schema] = []
TASK_ID = _path("taskId", "the id returned by POST /api/v1/tasks")
TEXT: Schema = {"type": "string"}


def _operation(
    summary: str,
    tag: str,
    responses: Schema,
    security: list[Schema],
    parameters: list[Schema] | None = None,
    body: type | None = None,
) -> Schema:
    operation: Schema = {"summary": summary, "tags": [tag], "security": security}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = _body(body)
    if security:  # every route that checks the key also limits its rate
        responses["429"] = {**_json(ERRORS[429], ref("Error")), "headers": RETRY_AFTER}
    operation["responses"] = responses
    return operation


def _paths() -> Schema:
    return {
        "/api/v1/tasks": {
            "post": _operation(
                "Submit a task; 201 once it is durable",
                "tasks",
                _responses(
                    {
                        201: {
                            **_json("The task is recorded", ref("TaskCreated")),
                            "headers": {"location": {"schema": STRING}},
                        }
                    },
                    (400, 401, 413),
                ),
                KEY,
                body=TaskRequest,
            ),
            "get": _operation(
                "List tasks, newest first",
                "tasks",
                _responses({200: _json("One page of tasks", ref("TaskPage"))}, (400, 401)),
                KEY,
                [
                    _query("status", TASK_STATUS, "only tasks in this state"),
                    _query("kind", STRING, "only tasks of this kind"),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                        "most tasks on the page",
                    ),
                    _query("before", NUMBER, "the previous page's `next`"),
                ],
            ),
        },
        "/api/v1/tasks/{taskId}": {
            "get": _operation(
                "A task, its output, and each microtask's status, decision and votes",
                "tasks",
                _responses({200: _json("The task", ref("Task"))}, (401, 404)),
                KEY,
                [
                    TASK_ID,
                    _query("outputs", BOOLEAN, "include each vote's output (`true`, `1`, `yes`)"),
                ],
            ),
        },
        "/api/v1/tasks/{taskId}/proof": {
            "get": _operation(
                "The proof bundle, for `qortex verify`",
                "tasks",
                _responses(
                    {200: _json("Inputs, signed results, decisions", ref("Proof"))}, (401, 404)
                ),
                KEY,
                [TASK_ID],
            ),
        },
        "/api/v1/events": {
            "get": _operation(
                "Server-Sent Events, resumable with Last-Event-ID",
                "events",
                _responses(
                    {
                        200: {
                            "description": "An endless event stream; the schema is one event",
                            "content": {"text/event-stream": {"schema": ref("Event")}},
                        }
                    },
                    (400, 401),
                ),
                [{"apiKey": []}, {"apiKeyQuery": []}],
                [
                    _query("taskId", STRING, "only this task's events"),
                    _query("minerId", STRING, "only this miner's events"),
                    _query(
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
        "/api/v1/miners": {
            "get": _operation(
                "Miners seen, connected or not",
                "miners",
                _responses({200: _json("One page of miners", ref("MinerPage"))}, (400, 401)),
                KEY,
                [
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                        "most miners on the page",
                    ),
                    _query(
                        "offset",
                        {"type": "integer", "minimum": 0, "maximum": 10**9, "default": 0},
                        "miners to skip",
                    ),
                ],
            ),
        },
        "/api/v1/miners/{minerId}": {
            "get": _operation(
                "One miner: connection, standing (reputation 0-1000, credibility), counts",
                "miners",
                _responses({200: _json("The miner", ref("Miner"))}, (401, 404)),
                KEY,
                [_path("minerId", "32 hex digits")],
            ),
        },
        "/api/v1/miners/{minerId}/reputation-history": {
            "get": _operation(
                "How a miner's reputation moved, newest first",
                "miners",
                _responses(
                    {200: _json("One page of history", ref("ReputationHistory"))}, (400, 401, 404)
                ),
                KEY,
                [
                    _path("minerId", "32 hex digits"),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                        "most entries on the page",
                    ),
                    _query("before", NUMBER, "the previous page's `next`"),
                ],
            ),
        },
        "/api/v1/miners/register": {
            "post": _operation(
                "Register a miner's public key",
                "miners",
                _responses(
                    {
                        200: _json("Already registered; nothing changed", ref("Registered")),
                        201: _json("Registered", ref("Registered")),
                    },
                    (400, 413),
                ),
                PUBLIC,
                body=Registration,
            ),
        },
        "/internal/miner/{minerId}/result": {
            "post": _operation(
                "A signed result over HTTP, as on the socket",
                "miners",
                _responses(
                    {200: _json("Accepted and durable", ref("ResultAccepted"))},
                    (400, 401, 404, 409, 413),
                ),
                PUBLIC,
                [_path("minerId", "the id returned by registration")],
                body=SignedResult,
            ),
        },
        "/health": {
            "get": _operation(
                "Database reachable, uptime, miners connected",
                "service",
                {
                    "200": _json("Healthy", ref("Health")),
                    "503": _json("The database cannot be read or written", ref("Health")),
                },
                PUBLIC,
            ),
        },
        "/metrics": {
            "get": _operation(
                "Prometheus counters",
                "service",
                _responses(
                    {
                        200: {
                            "description": "Prometheus' text exposition format",
                            "content": {"text/plain": {"schema": TEXT}},
                        }
                    },
                    (401,),
                ),
                KEY,
            ),
        },
        "/api/v1/kinds": {
            "get": _operation(
                "The task kinds this coordinator runs",
                "service",
                {"200": _json("The kinds", ref("Kinds"))},
                PUBLIC,
            ),
        },
        "/openapi.json": {
            "get": _operation(
                "This document",
                "service",
                {"200": _json("OpenAPI 3.1", {"type": "object"})},
                PUBLIC,
            ),
        },
        "/": {"get": _page("The browser miner page")},
        "/mine": {"get": _page("The browser miner page")},
        "/kinds/{name}.js": {
            "get": _operation(
                "A kind's browser implementation (an ES module)",
                "browser",
                _responses(
                    {
                        200: {
                            "description": "The module",
                            "content": {"text/javascript": {"schema": TEXT}},
                        }
                    },
                    (404,),
                ),
                PUBLIC,
                [_path("name", "a kind name")],
            ),
        },
        "/kinds/{name}/{file}": {
            "get": _operation(
                "A data file beside a kind's browser module",
                "browser",
                _responses(
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
                [_path("name", "a kind name"), _path("file", "`*.js`, `*.txt` or `*.json`")],
            ),
        },
    }


def _page(summary: str) -> Schema:
    content = {"text/html": {"schema": TEXT}}
    return _operation(
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
        "paths": _paths(),
        "components": {
            "schemas": {**bodies, **RESPONSE_SCHEMAS},
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
