"""The pieces the OpenAPI document is built from: errors, parameters, examples, operations.

Each route that needs a key states its scope three ways from one argument,
``scoped(scope)``: the security requirement (``apiKey: [scope]``, as OpenAPI
3.1 allows for role names), an ``x-scope`` extension a client generator can
read, and a sentence in the description. Such routes also answer 401, 403 and
429.
"""

from __future__ import annotations

from typing import Any

from qortex.web.schemas import JSON_TYPE, Schema, ref

ERRORS = {
    400: "Invalid input: the body, a parameter or the task does not validate",
    401: "Missing, wrong or revoked API key (or, for a result, a signature that does not verify)",
    403: "The API key lacks the route's scope, or the miner is banned",
    404: "No such task, miner, kind, key, webhook or file",
    409: "The result is refused, the task is already finished, or the name is taken",
    413: "The body is larger than `max_request_bytes`",
    422: "The Idempotency-Key was used before with another body",
    429: "Over the key's request rate (`api_rate`), an address's quota (docs/security.md),"
    " or, for a submit, over `max_pending`",
    503: "Writes are refused for now (a full disk, a read-only file); reads still work",
}
RETRY_AFTER = {"retry-after": {"description": "seconds to wait", "schema": {"type": "integer"}}}


def json(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {JSON_TYPE: {"schema": schema}}}


def responses(ok: dict[int, Schema], errors: tuple[int, ...]) -> Schema:
    answers: Schema = {str(status): response for status, response in ok.items()}
    for status in errors:
        answers[str(status)] = json(ERRORS[status], ref("Error"))
    return answers


def query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def path(name: str, description: str, pattern: str | None = None) -> Schema:
    schema: Schema = {"type": "string", "minLength": 1}
    if pattern is not None:
        schema["pattern"] = pattern
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
        "checked": {
            "value": {
                "kind": "sentiment",
                "input": {"tweets": ["I love this"]},
                "targetError": 0.0001,
                "gold": [{"input": "I hate this", "output": "negative"}],
            }
        },
        "matmul": {
            "value": {
                "kind": "matmul",
                "input": {"a": [[1, 2], [3, 4]], "b": [[5, 6], [7, 8]]},
                "replicas": 3,
                "deadlineSeconds": 600,
            }
        },
        "scheduled": {"value": {"tweets": ["good morning"], "delaySeconds": 60}},
    },
    "KeyRequest": {"reader": {"value": {"name": "dashboard", "scopes": ["read"]}}},
    "WebhookRequest": {
        "completed": {
            "value": {"url": "https://hooks.example.invalid/qortex", "events": ["task.completed"]}
        }
    },
    "Registration": {
        "miner": {"value": {"publicKey": RFC8032_KEY, "name": "laptop", "kinds": ["sentiment"]}}
    },
    "MinerStatusChange": {
        "ban": {"value": {"status": "banned", "note": "returned wrong labels"}},
        "verify": {"value": {"status": "verified", "note": "my own desktop"}},
    },
    "SignedResult": {
        "result": {
            "value": {
                "assignmentId": "5f0c3a9e1b2d4c6e8a7f9b10",
                "microtaskId": "3f0c0d4e-0000-4000-8000-000000000000:0",
                "output": '"positive"',
                "signature": "00" * 64,
            }
        }
    },
}


def request_body(struct: type) -> Schema:
    name = struct.__name__
    content = {JSON_TYPE: {"schema": ref(name), "examples": EXAMPLES[name]}}
    return {"required": True, "content": content}


PUBLIC: list[Schema] = []
TASK_ID = path("taskId", "the id returned by POST /api/v1/tasks")
TEXT: Schema = {"type": "string"}
IDEMPOTENCY_KEY: Schema = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    "description": "a retry with the same key and body returns the original task (200)",
}


def scoped(scope: str, query: bool = False) -> list[Schema]:
    """Security for a route that needs a key with ``scope`` (``query``: ``apiKey=`` works too)."""
    schemes = ["apiKey", "apiKeyQuery"] if query else ["apiKey"]
    return [{name: [scope]} for name in schemes]


def operation(
    summary: str,
    tag: str,
    responses: Schema,
    security: list[Schema],
    parameters: list[Schema] | None = None,
    body: type | None = None,
    limited: bool = False,
) -> Schema:
    operation: Schema = {"summary": summary, "tags": [tag], "security": security}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = request_body(body)
    if security:
        scope = next(iter(security[0].values()))[0]
        operation["x-scope"] = scope
        operation["description"] = (
            f"Needs a key with the `{scope}` scope (`admin` holds every scope)."
        )
        responses["403"] = json(ERRORS[403], ref("Error"))
    if security or limited:  # a key's rate, or a quota per address
        responses["429"] = {**json(ERRORS[429], ref("Error")), "headers": RETRY_AFTER}
    if "503" in responses:
        responses["503"] = {**responses["503"], "headers": RETRY_AFTER}
    operation["responses"] = responses
    return operation
