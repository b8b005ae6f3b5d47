"""The answers of the service routes: errors, health, numbers, kinds, and the routes for
programs (API keys, webhooks, the event log as JSON)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from qortex.core import lifecycle
from qortex.events import EVENT_TYPES

#: What a key may do; ``admin`` holds every scope.
SCOPES = ("read", "submit", "admin")

EventType = Annotated[str, Meta(extra_json_schema={"enum": list(EVENT_TYPES)})]
Scope = Annotated[str, Meta(extra_json_schema={"enum": list(SCOPES)})]


class Error(msgspec.Struct, omit_defaults=True):
    """Every 4xx and 5xx answer: a stable error name and a human message."""

    error: str
    message: str
    detail: dict[str, Any] | None = None


class Health(msgspec.Struct, rename="camel"):
    """Whether the database answers and takes writes, and what is connected."""

    status: Annotated[str, Meta(extra_json_schema={"enum": ["ok", "degraded", "failing"]})]
    version: str
    base_url: str
    database: str
    writes: Annotated[str, Meta(description="`ok`, or why writes are refused for now")]
    uptime_seconds: float
    miners_connected: int
    tasks_running: int
    leases_out: int
    kinds: list[str]


class Rates(msgspec.Struct):
    """Per second, averaged over the last minute and the last hour."""

    minute: float
    hour: float


class Second(msgspec.Struct):
    """Results accepted and microtasks decided in one second."""

    at: float
    results: float
    decisions: float


TaskCounts = Annotated[
    dict[str, int],
    Meta(
        extra_json_schema={
            "properties": {state: {"type": "integer"} for state in lifecycle.TASK_STATES},
            "required": list(lifecycle.TASK_STATES),
        }
    ),
]


class Stats(msgspec.Struct, rename="camel", kw_only=True):
    """Tasks by status, miners, throughput, refusals and uptime."""

    miners_connected: int
    miners_by_kind: dict[str, int]
    results_per_second: Rates
    decisions_per_second: Rates
    series: Annotated[list[Second], Meta(description="the last minute, one entry per second")]
    refusals: dict[str, int]
    accepted: int
    decided: int
    inconclusive: int
    leases_out: int
    last_event_id: Annotated[int, Meta(description="the event log's newest id")]
    microtasks_open: int
    tasks: TaskCounts
    uptime_seconds: float


class KindInfo(msgspec.Struct):
    """A task kind: whether a browser can compute it, and its input limits."""

    name: str
    browser: bool
    limits: dict[str, int]


class Kinds(msgspec.Struct):
    """The task kinds this coordinator runs."""

    kinds: list[KindInfo]


class ApiKey(msgspec.Struct, rename="camel"):
    """An API key's name, scopes and dates; never its secret."""

    name: str
    scopes: list[Scope]
    created_at: float
    revoked_at: float | None
    configured: bool


class ApiKeyCreated(ApiKey, kw_only=True):
    """A new key, with its secret: shown in this answer only."""

    key: Annotated[str, Meta(description="the secret, shown once")]


class ApiKeys(msgspec.Struct):
    """Every API key."""

    keys: list[ApiKey]


class Webhook(msgspec.Struct, rename="camel"):
    """A webhook subscription."""

    webhook_id: str
    url: str
    events: list[EventType]
    secret: Annotated[str, Meta(description="Standard Webhooks signing secret (whsec_...)")]
    created_at: float


class Webhooks(msgspec.Struct):
    """Every webhook subscription, oldest first."""

    webhooks: list[Webhook]


class WebhookDeleted(msgspec.Struct, rename="camel"):
    """A deleted subscription."""

    webhook_id: str
    deleted: Annotated[bool, Meta(extra_json_schema={"const": True})]


DeliveryStatus = Annotated[
    str, Meta(extra_json_schema={"enum": ["pending", "delivered", "failed", "cancelled"]})
]


class Delivery(msgspec.Struct, rename="camel"):
    """One event's delivery to a subscription: its attempts and outcome."""

    delivery_id: str
    event_id: int
    type: EventType
    status: DeliveryStatus
    attempts: int
    last_status: int | None
    last_error: str | None
    next_at: float | None
    created_at: float
    delivered_at: float | None


class Deliveries(msgspec.Struct):
    """A subscription's deliveries, newest first."""

    deliveries: list[Delivery]


class Event(msgspec.Struct, rename="camel"):
    """An event from the log (``at``: when it happened; null for one read off the stream,
    which does not say)."""

    id: int
    type: EventType
    task_id: str | None
    miner_id: str | None
    at: float | None
    data: dict[str, Any]


class EventPage(msgspec.Struct):
    """One page of the event log, oldest first."""

    events: list[Event]
    next: Annotated[int, Meta(description="pass as `after` for the next page or the next poll")]
    more: bool


class EventStats(msgspec.Struct, rename="camel"):
    """Events in the log, counted by type."""

    total: int
    last_event_id: int
    by_type: dict[str, int]
