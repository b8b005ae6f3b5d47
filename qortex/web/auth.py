"""Which key is calling, and whether it may: ``require_scope(request, "submit")``.

Every route that needs a key calls :func:`require_scope` first with the scope
it states in the OpenAPI document. The key comes in the ``x-api-key`` header,
or as ``apiKey`` in the query for ``EventSource``, which cannot send headers.
A key's own rate limit is charged here, so every authenticated route is
limited per key.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from qortex.errors import Forbidden, TooManyRequests, Unauthorized
from qortex.keys import ApiKey


def require_scope(conn: HTTPConnection, scope: str) -> ApiKey:
    """The calling key if it holds ``scope``: 401 without a valid key, 403 without the scope.

    Failed checks are counted per address; an address over its quota of them
    gets 429 without its key even being looked at, so keys cannot be guessed
    faster than ``auth_failure_rate`` allows.
    """
    state = conn.app.state
    limits = state.address_limits
    wait = limits.waiting("auth_failure", conn)
    if wait:
        raise TooManyRequests(limits.message("auth_failure"), wait)
    given = conn.headers.get("x-api-key") or conn.query_params.get("apiKey")
    if not given:
        limits.take("auth_failure", conn)
        raise Unauthorized("missing API key: send it in the x-api-key header")
    key = state.keys.find(given)
    if key is None:
        limits.take("auth_failure", conn)
        raise Unauthorized("wrong API key")
    if key.revoked_at is not None:
        limits.take("auth_failure", conn)
        raise Unauthorized(f"the API key {key.name!r} was revoked")
    if not key.allows(scope):
        raise Forbidden(
            f"the API key {key.name!r} has scopes {', '.join(key.scopes)}; this needs {scope!r}",
            scope=scope,
        )
    wait = state.api_limiter.take(key.name, state.coordinator.clock())
    if wait:
        raise TooManyRequests(f"more than {state.settings.api_rate:g} requests per second", wait)
    return key
