"""The client API key: stored only as a hash, compared in constant time.

Keys are long random tokens, so one round of SHA-256 is the right hash (a slow
password hash protects guessable secrets, which these are not).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import HTTPConnection

from qortex.errors import TooManyRequests, Unauthorized

META_KEY = "api_key_sha256"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "qx_" + secrets.token_urlsafe(24)


def require_key(conn: HTTPConnection) -> None:
    """Accept the ``x-api-key`` header, or ``apiKey`` in the query for EventSource."""
    given = conn.headers.get("x-api-key") or conn.query_params.get("apiKey")
    if not given:
        raise Unauthorized("missing API key: send it in the x-api-key header")
    expected: str = conn.app.state.api_key_hash
    digest = hash_key(given)
    if not hmac.compare_digest(digest, expected):
        raise Unauthorized("wrong API key")
    state = conn.app.state
    wait = state.api_limiter.take(digest, state.coordinator.clock())
    if wait:
        raise TooManyRequests(f"more than {state.settings.api_rate:g} requests per second", wait)
