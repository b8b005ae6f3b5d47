"""``/api/v1/keys``: an admin makes, lists and revokes the keys others use.

A new key's secret is in the 201 answer and nowhere else; listing shows names,
scopes and dates only. A revoked key is refused from the next request on, and
streams opened with it end at once.
"""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.routing import Route

from qortex.keys import parse_scopes
from qortex.shapes import ApiKeyCreated, ApiKeys
from qortex.web.auth import require_scope
from qortex.web.http import JSON, read_json


class KeyRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A key to make: its name and its scopes (``read``, ``submit``, ``admin``)."""

    name: str
    scopes: list[str]


async def list_keys(request: Request) -> JSON:
    require_scope(request, "admin")
    return JSON(ApiKeys([key.public() for key in request.app.state.keys.list()]))


async def create_key(request: Request) -> JSON:
    require_scope(request, "admin")
    body = await read_json(request, KeyRequest)
    scopes = parse_scopes(body.scopes)
    state = request.app.state
    secret, key = await state.keys.create(body.name, scopes, state.coordinator.clock())
    public = key.public()
    return JSON(ApiKeyCreated(**msgspec.structs.asdict(public), key=secret), status_code=201)


async def revoke_key(request: Request) -> JSON:
    require_scope(request, "admin")
    state = request.app.state
    key = await state.keys.revoke(request.path_params["name"], state.coordinator.clock())
    return JSON(key.public())


routes = [
    Route("/api/v1/keys", list_keys, methods=["GET"]),
    Route("/api/v1/keys", create_key, methods=["POST"]),
    Route("/api/v1/keys/{name}", revoke_key, methods=["DELETE"]),
]
