"""``/api/v1/webhooks``: subscriptions to events, and each one's delivery log.

A subscription names a URL and the event types it wants; its signing secret
(Standard Webhooks, ``whsec_...``) is in the 201 answer and in the list, which
only admin keys can read. Events after the subscription was made are delivered;
deleting it cancels the deliveries still pending.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from msgspec import Meta
from starlette.requests import Request
from starlette.routing import Route

from qortex.errors import Conflict, InvalidInput, NotFound
from qortex.events import EVENT_TYPES, LIVE_ONLY
from qortex.shapes import Deliveries, Delivery, Webhook, WebhookDeleted, Webhooks
from qortex.web.auth import require_scope
from qortex.web.http import JSON, query_int, read_json
from qortex.web.submit import new_secret
from qortex.webhooks.destinations import MAX_URL, check_url
from qortex.webhooks.outbox import Subscription

MAX_SUBSCRIPTIONS = 100


class WebhookRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A subscription: where to POST, and which event types."""

    url: Annotated[str, Meta(max_length=MAX_URL)]
    events: Annotated[list[str], Meta(min_length=1, max_length=len(EVENT_TYPES))]


def _public(sub: Subscription) -> Webhook:
    return Webhook(sub.id, sub.url, sub.events, sub.secret, sub.created_at)


async def create_webhook(request: Request) -> JSON:
    require_scope(request, "admin")
    body = await read_json(request, WebhookRequest)
    state = request.app.state
    check_url(body.url, state.webhook_networks)
    unknown = sorted(set(body.events) - set(EVENT_TYPES))
    if unknown:
        raise InvalidInput(
            f"unknown event {', '.join(repr(e[:64]) for e in unknown)}; events are"
            f" {', '.join(EVENT_TYPES)}",
            field="events",
        )
    live = sorted(set(body.events) & LIVE_ONLY)
    if live:
        raise InvalidInput(
            f"{', '.join(live)} {'is' if len(live) == 1 else 'are'} live only: not in the event"
            " log, so never delivered by webhook; follow GET /api/v1/events for them",
            field="events",
        )
    outbox = state.outbox
    if len(outbox.subscriptions) >= MAX_SUBSCRIPTIONS:
        raise Conflict(f"at most {MAX_SUBSCRIPTIONS} webhooks; delete one first")
    events = sorted(set(body.events), key=EVENT_TYPES.index)
    sub = await outbox.subscribe(str(uuid.uuid4()), body.url, events, new_secret())
    return JSON(_public(sub), status_code=201, headers={"location": f"/api/v1/webhooks/{sub.id}"})


async def list_webhooks(request: Request) -> JSON:
    require_scope(request, "admin")
    subs = sorted(request.app.state.outbox.subscriptions.values(), key=lambda s: s.created_at)
    return JSON(Webhooks([_public(sub) for sub in subs]))


def _subscription(request: Request) -> Subscription:
    webhook_id = request.path_params["webhook_id"]
    sub = request.app.state.outbox.subscriptions.get(webhook_id)
    if sub is None:
        raise NotFound(f"no webhook {webhook_id[:64]!r}", webhookId=webhook_id[:64])
    return sub


async def delete_webhook(request: Request) -> JSON:
    require_scope(request, "admin")
    sub = _subscription(request)
    await request.app.state.outbox.unsubscribe(sub.id)
    return JSON(WebhookDeleted(sub.id, deleted=True))


async def deliveries(request: Request) -> JSON:
    """The subscription's delivery log, newest first: every attempt's outcome."""
    require_scope(request, "admin")
    sub = _subscription(request)
    limit = query_int(request, "limit", 100, 1, 1000)
    rows = await request.app.state.store.reader.all(
        "SELECT id, event_id, type, status, attempts, last_status, last_error, next_at,"
        " created_at, delivered_at FROM deliveries WHERE webhook_id = ? ORDER BY id DESC LIMIT ?",
        (sub.id, limit),
    )
    return JSON(
        Deliveries(
            [
                Delivery(
                    delivery_id=f"msg_{row['id']}",
                    event_id=row["event_id"],
                    type=row["type"],
                    status=row["status"],
                    attempts=row["attempts"],
                    last_status=row["last_status"],
                    last_error=row["last_error"],
                    next_at=row["next_at"] if row["status"] == "pending" else None,
                    created_at=row["created_at"],
                    delivered_at=row["delivered_at"],
                )
                for row in rows
            ]
        )
    )


routes = [
    Route("/api/v1/webhooks", list_webhooks, methods=["GET"]),
    Route("/api/v1/webhooks", create_webhook, methods=["POST"]),
    Route("/api/v1/webhooks/{webhook_id}", delete_webhook, methods=["DELETE"]),
    Route("/api/v1/webhooks/{webhook_id}/deliveries", deliveries, methods=["GET"]),
]
