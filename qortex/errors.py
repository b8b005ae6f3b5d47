"""The few exceptions Qortex raises on purpose.

    QortexError
    ├── InvalidInput        a request or task body is wrong        (HTTP 400 / 422)
    ├── NotFound            no such task, miner or assignment       (HTTP 404)
    ├── Unauthorized        missing, wrong or revoked API key      (HTTP 401)
    ├── Forbidden           known, not allowed: no scope, banned   (HTTP 403)
    ├── Conflict            clashes with the state: a finished task, a taken name (HTTP 409)
    ├── Unprocessable       an Idempotency-Key reused for another body (HTTP 422)
    ├── PayloadTooLarge     body over the configured limit         (HTTP 413)
    ├── TooManyRequests     a rate or backlog limit was hit        (HTTP 429, Retry-After)
    ├── ServiceUnavailable  the store cannot write for now         (HTTP 503, Retry-After)
    ├── ResultRefused       a miner's result is not accepted        (ack with reason)
    ├── ProtocolViolation   a miner broke the WebSocket protocol    (close code 4000-4999)
    ├── IllegalTransition   a lifecycle move the table forbids      (a bug, never user input)
    └── ConfigError         a setting cannot be parsed or is out of range

Web adapters turn ``status`` into the HTTP status and ``close_code`` into the
WebSocket close code, so no handler needs its own error mapping.
"""

from __future__ import annotations

import math


class QortexError(Exception):
    status: int = 500

    def __init__(self, message: str, **detail: object) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidInput(QortexError):
    status = 400


class NotFound(QortexError):
    status = 404


class Unauthorized(QortexError):
    status = 401


class Forbidden(QortexError):
    status = 403


class Conflict(QortexError):
    """The request is well formed but clashes with the state (a finished task, a taken name)."""

    status = 409


class Unprocessable(QortexError):
    status = 422


class PayloadTooLarge(QortexError):
    status = 413


class TooManyRequests(QortexError):
    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(message, retryAfter=self.retry_after)


class ServiceUnavailable(QortexError):
    """Writes are refused for now (a full disk, a read-only file); reads still work."""

    status = 503

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(message, retryAfter=self.retry_after)


class ResultRefused(QortexError):
    """A result that changes nothing; ``reason`` is a stable machine-readable word."""

    status = 409

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason=reason)
        self.reason = reason


class ProtocolViolation(QortexError):
    """Ends a miner connection with ``close_code`` (4000-4999) and the message as reason."""

    status = 400

    def __init__(self, close_code: int, message: str) -> None:
        super().__init__(message, close_code=close_code)
        self.close_code = close_code


class IllegalTransition(QortexError):
    pass


class ConfigError(QortexError):
    pass
