"""``GET /openapi.json``: the HTTP API as an OpenAPI 3.1 document, derived from the code.

Paths come from one table (``openapi_routes.ENDPOINTS``). Every schema in the
document is the JSON Schema msgspec derives from a struct: request bodies from
the structs that decode and validate them (``TaskRequest``, ``Registration``,
...), answers from the ``qortex.shapes`` structs the handlers encode. So the
document cannot drift from what the routes accept or send back. The document
is built once per app and served as pre-encoded bytes.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qortex import __version__
from qortex.shapes import Error
from qortex.web.openapi_parts import JSON_TYPE, REF, Schema, operation
from qortex.web.openapi_routes import ENDPOINTS


def _structs() -> list[type]:
    """Every struct the table names, request bodies first, each once."""
    found: dict[type, None] = {}
    for endpoint in ENDPOINTS:
        if endpoint.body is not None:
            found[endpoint.body] = None
    for endpoint in ENDPOINTS:
        for answer in endpoint.answers.values():
            if answer.shape is not None:
                found[answer.shape] = None
    found[Error] = None
    return list(found)


def paths() -> Schema:
    """The ``paths`` object: one path item per path, one operation per method."""
    items: Schema = {}
    for endpoint in ENDPOINTS:
        items.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation(endpoint)
    return items


def build() -> dict[str, Any]:
    """The whole document, as a plain dict."""
    _, schemas = msgspec.json.schema_components(_structs(), ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Qortex",
            "version": __version__,
            "description": "Trusted results from untrusted volunteer computers.",
        },
        "paths": paths(),
        "components": {
            "schemas": schemas,
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
