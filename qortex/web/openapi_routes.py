"""Every HTTP route in the OpenAPI document, as one table.

One :class:`~qortex.web.openapi_parts.Endpoint` a method and path: what it
does, the scope it needs, its parameters, its request struct and the
``qortex.shapes`` struct each answer encodes. ``openapi.build`` turns the
table into paths and derives every schema it names.

Left out: ``/ws/miner`` (a WebSocket, which OpenAPI cannot describe; see
docs/protocol.md) and the ``/static`` and ``/docs/static`` mounts (fixed files
served by Starlette's ``StaticFiles``, whose multi-segment paths an OpenAPI
path template cannot express). The pages and ``/metrics`` are in it as
non-JSON GETs: their path parameters reach lookups by name, which is worth
fuzzing.
"""

from __future__ import annotations

from collections.abc import Iterable

from qortex import shapes as s
from qortex.core.ledger import STATUSES
from qortex.core.lifecycle import TASK_STATES
from qortex.events import EVENT_TYPES
from qortex.protocol.formats import MINER_ID
from qortex.store.reader import MINER_ORDERS
from qortex.web.control import MinerStatusChange
from qortex.web.keys import KeyRequest
from qortex.web.miners import Registration, SignedResult
from qortex.web.openapi_parts import (
    JSON_TYPE,
    Endpoint,
    Schema,
    StatusAnswer,
    header,
    path,
    query,
    text,
)
from qortex.web.tasks import TaskRequest
from qortex.web.webhooks import WebhookRequest

STRING: Schema = {"type": "string"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
EVENT_ID: Schema = {"type": "string", "pattern": "^[0-9]{1,18}$"}
LIMIT_1000: Schema = {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}

TASK_ID = path("taskId", "the id returned by POST /api/v1/tasks")
MINER = path("minerId", "a miner's id (from registration, events or the miner list)")
WEBHOOK_ID = path("webhookId", "the id returned by POST /api/v1/webhooks")
BEFORE = query("before", NUMBER, "the previous page's `next`")
IDEMPOTENCY_KEY = header(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    "a retry with the same key and body returns the original task (200)",
)

#: One Server-Sent Event, as the stream's schema: written out, as no struct encodes it.
STREAM_EVENT: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "event": STRING,
        "data": {"type": "string", "contentMediaType": JSON_TYPE},
        "retry": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "required": ["id", "event", "data"],
}


def enum(values: Iterable[str]) -> Schema:
    return {"type": "string", "enum": list(values)}


def ok(description: str, shape: type, status: int = 200) -> dict[int, StatusAnswer]:
    """The one answer of a route that has one: ``shape`` as JSON."""
    return {status: StatusAnswer(description, shape)}


def limit(default: int, most: int, what: str = "entries") -> Schema:
    schema = {"type": "integer", "minimum": 1, "maximum": most, "default": default}
    return query("limit", schema, f"most {what} on the page")


def offset(most: int) -> Schema:
    schema = {"type": "integer", "minimum": 0, "maximum": most, "default": 0}
    return query("offset", schema, "entries to skip")


def page(route: str, summary: str) -> Endpoint:
    return Endpoint("GET", route, summary, "browser", {200: text("HTML", "text/html")})


def document(route: str, summary: str, version: str) -> Endpoint:
    content = {JSON_TYPE: {"schema": {"type": "object"}}}
    return Endpoint("GET", route, summary, "service", {200: StatusAnswer(version, content=content)})


# A table, one endpoint a few lines, grouped by tag: kept compact by hand.
# fmt: off
ENDPOINTS: tuple[Endpoint, ...] = (
    # -- tasks -----------------------------------------------------------------
    Endpoint(
        "POST", "/api/v1/tasks", "Submit a task; 201 once it is durable", "tasks",
        {
            200: StatusAnswer("A retry: the task this key made", s.TaskCreated,
                        headers={"idempotent-replayed": {"schema": STRING}}),
            201: StatusAnswer("The task is recorded", s.TaskCreated,
                        headers={"location": {"schema": STRING}}),
        },
        (400, 401, 413, 422, 503), "submit", (IDEMPOTENCY_KEY,), TaskRequest,
    ),
    Endpoint(
        "GET", "/api/v1/tasks", "List tasks, newest first", "tasks",
        ok("One page of tasks", s.TaskPage), (400, 401), "read",
        (
            query("status", enum(TASK_STATES), "only tasks in this state"),
            query("kind", STRING, "only tasks of this kind"),
            limit(50, 500, "tasks"),
            BEFORE,
            query("prefix", STRING, "only tasks whose id starts with this"),
        ),
    ),
    Endpoint(
        "GET", "/api/v1/tasks/{taskId}",
        "A task, its output, and each microtask's status, decision and votes", "tasks",
        ok("The task", s.Task), (400, 401, 404), "read",
        (TASK_ID, query("outputs", BOOLEAN, "include each vote's output"
                        " (`true`, `1`, `yes`; `false`, `0`, `no`)")),
    ),
    Endpoint(
        "GET", "/api/v1/tasks/{taskId}/proof", "The proof bundle, for `qortex verify`", "tasks",
        ok("Inputs, signed results, decisions", s.Proof), (401, 404), "read", (TASK_ID,),
    ),
    Endpoint(
        "POST", "/api/v1/tasks/{taskId}/cancel",
        "Cancel a running task; its copies are withdrawn from miners at once", "tasks",
        ok("Cancelled", s.TaskCancelled), (401, 404, 409), "admin", (TASK_ID,),
    ),
    # -- events ----------------------------------------------------------------
    Endpoint(
        "GET", "/api/v1/events", "Server-Sent Events, resumable with Last-Event-ID", "events",
        {200: StatusAnswer("An endless event stream; the schema is one event",
                     content={"text/event-stream": {"schema": STREAM_EVENT}})},
        (400, 401), "read",
        (
            query("taskId", STRING, "only this task's events"),
            query("minerId", STRING, "only this miner's events"),
            query("lastEventId", EVENT_ID, "resume after this event id; `0` replays the whole log"),
            header("Last-Event-ID", EVENT_ID,
                   "what EventSource sends on reconnect (wins over the query)"),
        ),
        query_key=True,
    ),
    Endpoint(
        "GET", "/api/v1/events/log", "The event log as JSON pages, oldest first", "events",
        ok("One page", s.EventPage), (400, 401), "read",
        (
            query("after", {"type": "integer", "minimum": 0}, "events after this id"),
            query("type", enum(EVENT_TYPES), "only this event type"),
            query("taskId", STRING, "only this task's events"),
            query("minerId", STRING, "only this miner's events"),
            limit(100, 1000, "events"),
        ),
    ),
    Endpoint(
        "GET", "/api/v1/events/stats", "Events in the log, counted by type", "events",
        ok("Counts", s.EventStats), (401,), "read",
    ),
    # -- miners ----------------------------------------------------------------
    Endpoint(
        "POST", "/api/v1/miners/register", "Register a miner's public key", "miners",
        {200: StatusAnswer("Already registered; nothing changed", s.Registered),
         201: StatusAnswer("Registered", s.Registered)},
        (400, 413, 503), body=Registration, limited=True,
    ),
    Endpoint(
        "POST", "/internal/miner/{minerId}/result", "A signed result over HTTP, as on the socket",
        "miners", ok("Accepted and durable", s.ResultAccepted),
        (400, 401, 403, 404, 409, 413, 503),
        params=(path("minerId", "the id returned by registration", MINER_ID),),
        body=SignedResult, limited=True,
    ),
    Endpoint(
        "GET", "/api/v1/miners", "Miners seen, filtered and sorted", "miners",
        ok("One page of miners", s.MinerPage), (400, 401), "read",
        (
            limit(100, 1000),
            offset(10**9),
            query("connected", BOOLEAN, "only connected (`true`) or offline (`false`)"),
            query("kind", STRING, "only miners that run this kind"),
            query("status", enum(STATUSES), "only miners in this status"),
            query("sort", {**enum(MINER_ORDERS), "default": "lastSeen"}, "largest or latest first"),
        ),
    ),
    Endpoint(
        "GET", "/api/v1/miners/{minerId}",
        "One miner: connection, address, slots, work, credit, recent results", "miners",
        ok("The miner", s.MinerDetail), (401, 404), "read", (MINER,),
    ),
    Endpoint(
        "PATCH", "/api/v1/miners/{minerId}", "Ban, verify or reinstate a miner", "miners",
        ok("The new status", s.MinerStatus), (400, 401, 404, 413), "admin",
        (MINER,), MinerStatusChange,
    ),
    Endpoint(
        "GET", "/api/v1/miners/{minerId}/reputation-history",
        "How a miner's reputation moved, newest first", "miners",
        ok("One page of history", s.ReputationHistory), (400, 401, 404), "read",
        (path("minerId", "32 hex digits"), limit(100, 1000), BEFORE),
    ),
    Endpoint(
        "GET", "/api/v1/leaderboard", "Volunteers by credit, under the names they chose", "miners",
        ok("One page of the leaderboard", s.Leaderboard), (400,),
        params=(limit(20, 100), offset(10**6),
                query("minerId", STRING, "also answer this miner's own rank and credit")),
    ),
    # -- keys and webhooks -----------------------------------------------------
    Endpoint(
        "GET", "/api/v1/keys", "API keys: names, scopes, dates (never the secrets)", "keys",
        ok("The keys", s.ApiKeys), (401,), "admin",
    ),
    Endpoint(
        "POST", "/api/v1/keys", "Make a key; its secret is in this answer only", "keys",
        ok("The key and its secret", s.ApiKeyCreated, 201), (400, 401, 409, 413), "admin",
        body=KeyRequest,
    ),
    Endpoint(
        "DELETE", "/api/v1/keys/{name}", "Revoke a key: refused from now on, its open streams end",
        "keys", ok("The revoked key", s.ApiKey), (401, 404, 409), "admin",
        (path("name", "the key's name"),),
    ),
    Endpoint(
        "GET", "/api/v1/webhooks", "Webhook subscriptions", "webhooks",
        ok("The subscriptions", s.Webhooks), (401,), "admin",
    ),
    Endpoint(
        "POST", "/api/v1/webhooks", "Subscribe a URL to event types", "webhooks",
        ok("The subscription and its secret", s.Webhook, 201), (400, 401, 409, 413), "admin",
        body=WebhookRequest,
    ),
    Endpoint(
        "DELETE", "/api/v1/webhooks/{webhookId}",
        "Delete a subscription; its pending deliveries are cancelled", "webhooks",
        ok("Deleted", s.WebhookDeleted), (401, 404), "admin", (WEBHOOK_ID,),
    ),
    Endpoint(
        "GET", "/api/v1/webhooks/{webhookId}/deliveries",
        "The subscription's delivery log, newest first", "webhooks",
        ok("Deliveries", s.Deliveries), (400, 401, 404), "admin",
        (WEBHOOK_ID, query("limit", LIMIT_1000, "most deliveries")),
    ),
    # -- the service -----------------------------------------------------------
    Endpoint(
        "GET", "/health", "Database reachable, uptime, miners connected", "service",
        {200: StatusAnswer("Healthy", s.Health),
         503: StatusAnswer("The database cannot be read, or writes are refused for now", s.Health)},
    ),
    Endpoint(
        "GET", "/api/v1/stats", "Tasks by status, miners, throughput, refusals, uptime", "service",
        ok("The numbers", s.Stats), (401,), "read",
    ),
    Endpoint(
        "GET", "/metrics", "Prometheus counters", "service",
        {200: text("Prometheus' text exposition format", "text/plain")}, (401,), "read",
    ),
    Endpoint(
        "GET", "/api/v1/kinds", "The task kinds this coordinator runs", "service",
        ok("The kinds", s.Kinds),
    ),
    document("/openapi.json", "This document", "OpenAPI 3.1"),
    document("/docs/openapi.json",
             "This document in OpenAPI 3.0 form, for the bundled Swagger UI", "OpenAPI 3.0"),
    # -- pages -----------------------------------------------------------------
    page("/", "The browser miner page"),
    page("/mine", "The browser miner page"),
    page("/dashboard", "The operator's console"),
    page("/docs", "This document, to read and try in a browser"),
    Endpoint(
        "GET", "/kinds/{name}.js", "A kind's browser implementation (an ES module)", "browser",
        {200: text("The module", "text/javascript")}, (404,),
        params=(path("name", "a kind name"),),
    ),
    Endpoint(
        "GET", "/kinds/{name}/{file}", "A data file beside a kind's browser module", "browser",
        {200: text("The file", "text/javascript", "text/plain", JSON_TYPE)}, (404,),
        params=(path("name", "a kind name"), path("file", "`*.js`, `*.txt` or `*.json`")),
    ),
)
# fmt: on
