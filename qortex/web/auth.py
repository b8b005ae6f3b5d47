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
    """Accept the ``x-api-key`` header, or ``apiKey`` in the query for EventSource.

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
    expected: str = state.api_key_hash
    digest = hash_key(given)
    if not hmac.compare_digest(digest, expected):
        limits.take("auth_failure", conn)
        raise Unauthorized("wrong API key")
    wait = state.api_limiter.take(digest, state.coordinator.clock())
    if wait:
        raise TooManyRequests(f"more than {state.settings.api_rate:g} requests per second", wait)
