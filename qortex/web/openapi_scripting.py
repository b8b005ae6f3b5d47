"""The OpenAPI paths and answers of the routes for programs: keys, webhooks, the event log.

Kept beside ``openapi.py`` (which merges them into the one document) so that
each module stays one screenful of routes.
"""

from __future__ import annotations

from qortex.events import EVENT_TYPES
from qortex.keys import SCOPES
from qortex.web.keys import KeyRequest
from qortex.web.openapi_parts import (
    json,
    operation,
    path,
    query,
    responses,
    scoped,
)
from qortex.web.schemas import BOOLEAN, INTEGER, NUMBER, STRING, Schema, nullable, obj, ref
from qortex.web.webhooks import WebhookRequest

EVENT_TYPE: Schema = {"type": "string", "enum": list(EVENT_TYPES)}
LIMIT = {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}

SCHEMAS: dict[str, Schema] = {
    "ApiKey": obj(
        name=STRING,
        scopes={"type": "array", "items": {"type": "string", "enum": list(SCOPES)}},
        createdAt=NUMBER,
        revokedAt=nullable(NUMBER),
        configured=BOOLEAN,
    ),
    "ApiKeyCreated": {
        "allOf": [ref("ApiKey"), obj(key={**STRING, "description": "the secret, shown once"})]
    },
    "ApiKeys": obj(keys={"type": "array", "items": ref("ApiKey")}),
    "Webhook": obj(
        webhookId=STRING,
        url=STRING,
        events={"type": "array", "items": EVENT_TYPE},
        secret={**STRING, "description": "Standard Webhooks signing secret (whsec_...)"},
        createdAt=NUMBER,
    ),
    "Webhooks": obj(webhooks={"type": "array", "items": ref("Webhook")}),
    "WebhookDeleted": obj(webhookId=STRING, deleted={"const": True}),
    "Deliveries": obj(
        deliveries={
            "type": "array",
            "items": obj(
                deliveryId=STRING,
                eventId=INTEGER,
                type=EVENT_TYPE,
                status={"type": "string", "enum": ["pending", "delivered", "failed", "cancelled"]},
                attempts=INTEGER,
                lastStatus=nullable(INTEGER),
                lastError=nullable(STRING),
                nextAt=nullable(NUMBER),
                createdAt=NUMBER,
                deliveredAt=nullable(NUMBER),
            ),
        }
    ),
    "EventPage": obj(
        events={
            "type": "array",
            "items": obj(
                id=INTEGER,
                type=EVENT_TYPE,
                taskId=nullable(STRING),
                minerId=nullable(STRING),
                at=NUMBER,
                data={"type": "object"},
            ),
        },
        next={**INTEGER, "description": "pass as `after` for the next page or the next poll"},
        more=BOOLEAN,
    ),
    "EventStats": obj(
        total=INTEGER,
        lastEventId=INTEGER,
        byType={"type": "object", "additionalProperties": INTEGER},
    ),
}

WEBHOOK_ID = path("webhookId", "the id returned by POST /api/v1/webhooks")


def paths() -> Schema:
    return {
        "/api/v1/keys": {
            "get": operation(
                "API keys: names, scopes, dates (never the secrets)",
                "keys",
                responses({200: json("The keys", ref("ApiKeys"))}, (401,)),
                scoped("admin"),
            ),
            "post": operation(
                "Make a key; its secret is in this answer only",
                "keys",
                responses(
                    {201: json("The key and its secret", ref("ApiKeyCreated"))},
                    (400, 401, 409, 413),
                ),
                scoped("admin"),
                body=KeyRequest,
            ),
        },
        "/api/v1/keys/{name}": {
            "delete": operation(
                "Revoke a key: refused from now on, its open streams end",
                "keys",
                responses({200: json("The revoked key", ref("ApiKey"))}, (401, 404, 409)),
                scoped("admin"),
                [path("name", "the key's name")],
            ),
        },
        "/api/v1/webhooks": {
            "get": operation(
                "Webhook subscriptions",
                "webhooks",
                responses({200: json("The subscriptions", ref("Webhooks"))}, (401,)),
                scoped("admin"),
            ),
            "post": operation(
                "Subscribe a URL to event types",
                "webhooks",
                responses(
                    {201: json("The subscription and its secret", ref("Webhook"))},
                    (400, 401, 409, 413),
                ),
                scoped("admin"),
                body=WebhookRequest,
            ),
        },
        "/api/v1/webhooks/{webhookId}": {
            "delete": operation(
                "Delete a subscription; its pending deliveries are cancelled",
                "webhooks",
                responses({200: json("Deleted", ref("WebhookDeleted"))}, (401, 404)),
                scoped("admin"),
                [WEBHOOK_ID],
            ),
        },
        "/api/v1/webhooks/{webhookId}/deliveries": {
            "get": operation(
                "The subscription's delivery log, newest first",
                "webhooks",
                responses({200: json("Deliveries", ref("Deliveries"))}, (400, 401, 404)),
                scoped("admin"),
                [WEBHOOK_ID, query("limit", LIMIT, "most deliveries")],
            ),
        },
        "/api/v1/events/log": {
            "get": operation(
                "The event log as JSON pages, oldest first",
                "events",
                responses({200: json("One page", ref("EventPage"))}, (400, 401)),
                scoped("read"),
                [
                    query("after", {"type": "integer", "minimum": 0}, "events after this id"),
                    query("type", EVENT_TYPE, "only this event type"),
                    query("taskId", STRING, "only this task's events"),
                    query("minerId", STRING, "only this miner's events"),
                    query("limit", LIMIT, "most events on the page"),
                ],
            ),
        },
        "/api/v1/events/stats": {
            "get": operation(
                "Events in the log, counted by type",
                "events",
                responses({200: json("Counts", ref("EventStats"))}, (401,)),
                scoped("read"),
            ),
        },
    }
