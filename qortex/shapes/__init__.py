"""The JSON the HTTP API answers with, as typed structs: written once, used three ways.

The web handlers build these and encode them (``msgspec.json.encode``); the
OpenAPI document's response schemas are derived from them
(``qortex.web.openapi``); and the Python client (``qortex.client``) decodes
answers into them. So a field added to a handler's answer is added here, and
the document and the client follow. Field names are snake_case in Python and
camelCase on the wire. Structs do not forbid unknown fields, so a client keeps
reading answers from a newer coordinator; statuses are documented with the
values they take today but decoded as any string, for the same reason.

This package imports only the pure core and the event names, so the client
can use it without the server's modules.
"""

from qortex.shapes.miners import (
    Leader,
    Leaderboard,
    Miner,
    MinerDetail,
    MinerPage,
    MinerStatus,
    Place,
    RecentResult,
    Registered,
    ReputationHistory,
    ReputationStep,
    ResultAccepted,
    Work,
)
from qortex.shapes.service import (
    SCOPES,
    ApiKey,
    ApiKeyCreated,
    ApiKeys,
    Deliveries,
    Delivery,
    Error,
    Event,
    EventPage,
    EventStats,
    Health,
    KindInfo,
    Kinds,
    Rates,
    Second,
    Stats,
    Webhook,
    WebhookDeleted,
    Webhooks,
)
from qortex.shapes.tasks import (
    Decision,
    GoldDecision,
    GoldReport,
    Proof,
    ProvenMicrotask,
    SignedVote,
    Task,
    TaskCancelled,
    TaskCreated,
    TaskListed,
    TaskPage,
    TaskSummary,
    Vote,
)

__all__ = [
    "SCOPES",
    "ApiKey",
    "ApiKeyCreated",
    "ApiKeys",
    "Decision",
    "Deliveries",
    "Delivery",
    "Error",
    "Event",
    "EventPage",
    "EventStats",
    "GoldDecision",
    "GoldReport",
    "Health",
    "KindInfo",
    "Kinds",
    "Leader",
    "Leaderboard",
    "Miner",
    "MinerDetail",
    "MinerPage",
    "MinerStatus",
    "Place",
    "Proof",
    "ProvenMicrotask",
    "Rates",
    "RecentResult",
    "Registered",
    "ReputationHistory",
    "ReputationStep",
    "ResultAccepted",
    "Second",
    "SignedVote",
    "Stats",
    "Task",
    "TaskCancelled",
    "TaskCreated",
    "TaskListed",
    "TaskPage",
    "TaskSummary",
    "Vote",
    "Webhook",
    "WebhookDeleted",
    "Webhooks",
    "Work",
]
