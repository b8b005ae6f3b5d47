"""``/docs``: the API to read and try in a browser, with nothing fetched from elsewhere.

Swagger UI's files come from the ``swagger-ui-bundle`` package, installed with
Qortex, and are served from ``/docs/static``; so the page works offline and
behind a tunnel. The bundled Swagger UI (4.x) reads OpenAPI 3.0, so it is given
``/docs/openapi.json``: the same document with the few 3.1 spellings it does
not know rewritten (``anyOf`` with ``null`` as ``nullable``, ``const`` as a
one-value ``enum``, numeric exclusive bounds as boolean ones, no empty
``required``). ``/openapi.json`` stays the 3.1 original.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from qortex.web import openapi
from qortex.web.openapi_parts import JSON_TYPE

_NULL = {"type": "null"}


def as_openapi_30(node: Any) -> Any:
    """A copy of an OpenAPI 3.1 document (or part of one) in OpenAPI 3.0 spelling."""
    if isinstance(node, list):
        return [as_openapi_30(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "openapi":
            out[key] = "3.0.3"
        elif key == "const":
            out["enum"] = [value]
        elif key == "examples" and isinstance(value, list):  # a schema's, not a media type's
            if value:
                out["example"] = value[0]
        elif key == "contentMediaType" or (key == "required" and value == []):
            continue
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key in ("anyOf", "oneOf") and isinstance(value, list) and _NULL in value:
            rest = [as_openapi_30(v) for v in value if v != _NULL]
            out["nullable"] = True
            if len(rest) == 1 and "$ref" not in rest[0]:
                out.update(rest[0])
            else:
                out[key] = rest
        elif key == "type" and isinstance(value, list):
            kinds = [v for v in value if v != "null"]
            out["type"] = kinds[0] if len(kinds) == 1 else kinds
            if "null" in value:
                out["nullable"] = True
        else:
            out[key] = as_openapi_30(value)
    return out


async def docs_page(request: Request) -> Response:
    html = files("qortex.web").joinpath("static", "docs.html").read_bytes()
    return Response(html, media_type="text/html", headers={"cache-control": "no-cache"})


async def docs_document(request: Request) -> Response:
    state = request.app.state
    encoded: bytes | None = getattr(state, "openapi_30_document", None)
    if encoded is None:
        encoded = state.openapi_30_document = msgspec.json.encode(as_openapi_30(openapi.build()))
    return Response(encoded, media_type=JSON_TYPE)


routes = [
    Route("/docs", docs_page, methods=["GET"]),
    Route("/docs/openapi.json", docs_document, methods=["GET"]),
    Mount("/docs/static", app=StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui"),
]
