"""What the OpenAPI document is built from: a route as data, and how one becomes an operation.

An :class:`Endpoint` says everything the document tells about one method on
one path: its summary, the scope its key needs, its parameters, the struct
its body decodes into and the structs its answers encode. ``openapi_routes``
lists them all in one table; :func:`operation` turns one into the document's
operation. So an answer's schema is never written by hand: it is a
``qortex.shapes`` struct, named here and derived by msgspec in ``openapi``.

Each route that needs a key states its scope three ways from ``scope``: the
security requirement (``apiKey: [scope]``, as OpenAPI 3.1 allows for role
names), an ``x-scope`` extension a client generator can read, and a sentence
in the description. Such routes also answer 401, 403 and 429.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qortex.web.examples import EXAMPLES

REF = "#/components/schemas/{name}"
JSON_TYPE = "application/json"

Schema = dict[str, Any]

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
TEXT: Schema = {"type": "string"}


def ref(name: str) -> Schema:
    return {"$ref": REF.format(name=name)}


@dataclass(frozen=True, slots=True)
class StatusAnswer:
    """One status's answer: a ``qortex.shapes`` struct as JSON, or other content."""

    description: str
    shape: type | None = None
    content: Schema | None = None  # media type -> {"schema": ...}, when not a struct
    headers: Schema | None = None

    def document(self) -> Schema:
        answer: Schema = {"description": self.description}
        if self.shape is not None:
            answer["content"] = {JSON_TYPE: {"schema": ref(self.shape.__name__)}}
        elif self.content is not None:
            answer["content"] = self.content
        if self.headers:
            answer["headers"] = self.headers
        return answer


def text(description: str, *media: str) -> StatusAnswer:
    """An answer that is not JSON: a page, a script, a text format."""
    return StatusAnswer(description, content={m: {"schema": TEXT} for m in media})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One method on one path, as the document describes it."""

    method: str
    path: str
    summary: str
    tag: str
    answers: dict[int, StatusAnswer]
    errors: tuple[int, ...] = ()
    scope: str | None = None  # None: public
    params: tuple[Schema, ...] = ()
    body: type | None = None  # the request struct
    limited: bool = False  # a public route with quotas per address: it answers 429 too
    query_key: bool = False  # ``apiKey=`` in the query works too (EventSource)


def _parameter(where: str, name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": description,
    }


def query(name: str, schema: Schema, description: str) -> Schema:
    return _parameter("query", name, schema, description)


def header(name: str, schema: Schema, description: str) -> Schema:
    return _parameter("header", name, schema, description)


def path(name: str, description: str, pattern: str | None = None) -> Schema:
    schema: Schema = {"type": "string", "minLength": 1}
    if pattern is not None:
        schema["pattern"] = pattern
    return _parameter("path", name, schema, description)


def _error(status: int) -> Schema:
    answer: Schema = {
        "description": ERRORS[status],
        "content": {JSON_TYPE: {"schema": ref("Error")}},
    }
    if status in (429, 503):
        answer["headers"] = RETRY_AFTER
    return answer


def operation(endpoint: Endpoint) -> Schema:
    """The document's operation for one endpoint."""
    answers = {str(status): answer.document() for status, answer in endpoint.answers.items()}
    errors = set(endpoint.errors)
    security: list[Schema] = []
    if endpoint.scope is not None:
        schemes = ["apiKey", "apiKeyQuery"] if endpoint.query_key else ["apiKey"]
        security = [{name: [endpoint.scope]} for name in schemes]
        errors.add(403)
    if endpoint.scope is not None or endpoint.limited:  # a key's rate, or a quota per address
        errors.add(429)
    for status in sorted(errors):
        answers[str(status)] = _error(status)
    if "503" in answers and "headers" not in answers["503"]:
        answers["503"] = {**answers["503"], "headers": RETRY_AFTER}
    result: Schema = {"summary": endpoint.summary, "tags": [endpoint.tag], "security": security}
    if endpoint.params:
        result["parameters"] = list(endpoint.params)
    if endpoint.body is not None:
        name = endpoint.body.__name__
        content = {JSON_TYPE: {"schema": ref(name), "examples": EXAMPLES[name]}}
        result["requestBody"] = {"required": True, "content": content}
    if endpoint.scope is not None:
        result["x-scope"] = endpoint.scope
        result["description"] = (
            f"Needs a key with the `{endpoint.scope}` scope (`admin` holds every scope)."
        )
    result["responses"] = answers
    return result
