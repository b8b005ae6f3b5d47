"""The shapes of Qortex's JSON answers, as JSON Schema, for the OpenAPI document.

Request bodies are not here: they come from the msgspec structs that validate
them. These describe what the routes send back, so that a client generator or
a fuzzer can check every answer.
"""

from __future__ import annotations

from typing import Any

from qortex.control import MINER_STATUSES
from qortex.core import lifecycle

REF = "#/components/schemas/{name}"
JSON_TYPE = "application/json"

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": REF.format(name=name)}


def obj(required: list[str] | None = None, **properties: Schema) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    schema["required"] = list(properties) if required is None else required
    return schema


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
ANY: Schema = {}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


TASK_STATUS: Schema = {"type": "string", "enum": list(lifecycle.TASK_STATES)}
MINER_STATUS: Schema = {"type": "string", "enum": list(MINER_STATUSES)}

# What the routes answer; written by hand, checked against real answers by the fuzz tests.
RESPONSE_SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "description": "Every 4xx and 5xx answer: a stable error name and a human message.",
        "properties": {"error": STRING, "message": STRING, "detail": {"type": "object"}},
        "required": ["error", "message"],
    },
    "TaskCreated": obj(
        ["taskId", "status", "kind", "microtasks"],
        taskId=STRING,
        status=TASK_STATUS,
        kind=STRING,
        microtasks=nullable(INTEGER),
        notBefore={**NUMBER, "description": "a scheduled task's start, in seconds since 1970"},
        callbackSecret={**STRING, "description": "signs the callbackUrl's deliveries"},
    ),
    "TaskSummary": obj(
        taskId=STRING,
        kind=STRING,
        status=TASK_STATUS,
        microtasks=INTEGER,
        createdAt=NUMBER,
        finishedAt=nullable(NUMBER),
    ),
    "TaskPage": obj(
        tasks={
            "type": "array",
            "items": {"allOf": [ref("TaskSummary"), obj(decided=INTEGER)]},
        },
        next={**nullable(NUMBER), "description": "pass as `before` for the next page"},
    ),
    "Vote": obj(
        ["minerId", "agrees", "credibility", "checked", "revoked"],
        minerId=STRING,
        agrees=nullable(BOOLEAN),
        credibility={**nullable(NUMBER), "description": "1 - the error rate it was counted at"},
        checked={**nullable(BOOLEAN), "description": "passed or failed a check; null: unchecked"},
        revoked={**BOOLEAN, "description": "its miner was banned: the vote no longer counts"},
        output=ANY,
    ),
    "Decision": obj(
        ["microtaskId", "index", "status", "decision", "error", "votes"],
        microtaskId=STRING,
        index=INTEGER,
        status={"type": "string", "enum": list(lifecycle.MICROTASK_STATES)},
        decision=ANY,
        error={**nullable(NUMBER), "description": "estimated probability the decision is wrong"},
        reason=STRING,
        votes={"type": "array", "items": ref("Vote")},
        expected=ANY,
        passed=nullable(BOOLEAN),
    ),
    "Task": {
        "allOf": [
            ref("TaskSummary"),
            obj(
                replicas=INTEGER,
                quorum=INTEGER,
                maxReplicas=INTEGER,
                leaseSeconds=NUMBER,
                targetError=NUMBER,
                revision=INTEGER,
                deadline=nullable(NUMBER),
                reason=nullable(STRING),
                decided=INTEGER,
                output=ANY,
                microtaskDetails={"type": "array", "items": ref("Decision")},
                gold=obj(
                    items=INTEGER,
                    passed=INTEGER,
                    failed=INTEGER,
                    details={"type": "array", "items": ref("Decision")},
                ),
            ),
        ]
    },
    "Proof": obj(
        format={"const": "qortex-proof-v2"},
        task={"type": "object"},
        rule={"type": "object"},
        microtasks={
            "type": "array",
            "items": obj(
                microtaskId=STRING,
                index=INTEGER,
                input={**STRING, "description": "the exact JSON text miners were sent"},
                status=STRING,
                decision=nullable(STRING),
                error=nullable(NUMBER),
                reason=nullable(STRING),
                gold=nullable(STRING),
                votes={
                    "type": "array",
                    "items": obj(
                        assignmentId=STRING,
                        minerId=STRING,
                        publicKey=STRING,
                        output=STRING,
                        signature=STRING,
                        version=INTEGER,
                        network=STRING,
                        error=nullable(NUMBER),
                        checked=nullable(BOOLEAN),
                        revoked=BOOLEAN,
                    ),
                },
            ),
        },
    ),
    "Standing": obj(
        status={"type": "string", "enum": ["active", "banned", "verified"]},
        reputation={"type": "integer", "minimum": 0, "maximum": 1000},
        credibility=nullable(NUMBER),
        checksPassed=INTEGER,
        checksFailed=INTEGER,
        earnedSlots=INTEGER,
    ),
    "Miner": {
        "allOf": [
            ref("Standing"),
            obj(
                minerId=STRING,
                publicKey=STRING,
                name=STRING,
                software=STRING,
                kinds={"type": "array", "items": STRING},
                connected=BOOLEAN,
                address=STRING,
                slots=nullable(INTEGER),
                busy=INTEGER,
                accepted=INTEGER,
                refused=INTEGER,
                credit=NUMBER,
                firstSeen=NUMBER,
                lastSeen=NUMBER,
            ),
        ]
    },
    "ReputationHistory": obj(
        minerId=STRING,
        reputation=INTEGER,
        history={
            "type": "array",
            "items": obj(at=NUMBER, reputation=INTEGER, checksPassed=INTEGER, reason=STRING),
        },
        next={**nullable(NUMBER), "description": "pass as `before` for the next page"},
    ),
    "MinerPage": obj(
        miners={"type": "array", "items": ref("Miner")},
        total={**INTEGER, "description": "miners matching the filters, on every page"},
        connected=INTEGER,
    ),
    "MinerDetail": {
        "allOf": [
            ref("Miner"),
            obj(
                note=STRING,
                connectedSince=nullable(NUMBER),
                working={
                    "type": "array",
                    "items": obj(
                        assignmentId=STRING, microtaskId=STRING, taskId=STRING, kind=STRING
                    ),
                },
                recentResults={
                    "type": "array",
                    "items": obj(assignmentId=STRING, microtaskId=STRING, receivedAt=NUMBER),
                },
            ),
        ]
    },
    "MinerStatus": obj(minerId=STRING, status=MINER_STATUS, note=STRING),
    "TaskCancelled": obj(taskId=STRING, status={"const": lifecycle.CANCELLED}),
    "Stats": obj(
        tasks=obj(**{status: INTEGER for status in lifecycle.TASK_STATES}),
        minersConnected=INTEGER,
        minersByKind={"type": "object", "additionalProperties": INTEGER},
        resultsPerSecond=obj(minute=NUMBER, hour=NUMBER),
        decisionsPerSecond=obj(minute=NUMBER, hour=NUMBER),
        series={
            "type": "array",
            "description": "the last minute, one entry per second",
            "items": obj(at=NUMBER, results=NUMBER, decisions=NUMBER),
        },
        refusals={"type": "object", "additionalProperties": INTEGER},
        accepted=INTEGER,
        decided=INTEGER,
        inconclusive=INTEGER,
        leasesOut=INTEGER,
        microtasksOpen=INTEGER,
        lastEventId={**INTEGER, "description": "the event log's newest id"},
        uptimeSeconds=NUMBER,
    ),
    "Leaderboard": obj(
        leaders={
            "type": "array",
            "items": obj(rank=INTEGER, name=STRING, credit=NUMBER, accepted=INTEGER),
        },
        you=nullable(obj(rank=INTEGER, credit=NUMBER)),
    ),
    "Registered": obj(minerId=STRING, publicKey=STRING),
    "ResultAccepted": obj(status={"const": "accepted"}, assignmentId=STRING),
    "Health": obj(
        status={"type": "string", "enum": ["ok", "degraded", "failing"]},
        version=STRING,
        baseUrl=STRING,
        database=STRING,
        writes={**STRING, "description": "`ok`, or why writes are refused for now"},
        uptimeSeconds=NUMBER,
        minersConnected=INTEGER,
        tasksRunning=INTEGER,
        leasesOut=INTEGER,
        kinds={"type": "array", "items": STRING},
    ),
    "Event": obj(
        ["id", "event", "data"],
        id={"type": "string", "pattern": "^[0-9]+$"},
        event=STRING,
        data={"type": "string", "contentMediaType": JSON_TYPE},
        retry={"type": "string", "pattern": "^[0-9]+$"},
    ),
    "Kinds": obj(
        kinds={
            "type": "array",
            "items": obj(
                name=STRING,
                browser=BOOLEAN,
                limits={"type": "object", "additionalProperties": INTEGER},
            ),
        },
    ),
}
