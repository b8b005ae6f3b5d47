"""Reading bodies and writing answers the same way on every route.

Bodies are read against the size limit before they are parsed, so an
oversized body costs at most the limit in memory; JSON is decoded and typed in
one step by msgspec, whose messages name the offending field.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from qortex.errors import InvalidInput, PayloadTooLarge, ServiceUnavailable

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encoder.encode(content)


#: What a refused write asks the client to wait, in seconds.
RETRY_WRITES_SECONDS = 5


def require_writable(request: Request) -> None:
    """Refuse a write (503, ``Retry-After``) before it changes anything, while the store cannot."""
    reason = request.app.state.store.writer.unavailable
    if reason is not None:
        raise ServiceUnavailable(
            f"writes are refused for now: {reason}; reads still work", RETRY_WRITES_SECONDS
        )


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes", limit=limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"request body is larger than {limit} bytes", limit=limit)
    return bytes(body)


async def read_json(request: Request, schema: type[T]) -> T:
    return decode_json(
        await read_body(request, request.app.state.settings.max_request_bytes), schema
    )


def decode_json(body: bytes, schema: type[T]) -> T:
    if not body.strip():
        raise InvalidInput("request body is empty; send a JSON object")
    try:
        return msgspec.json.decode(body, type=schema)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"invalid request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from None
    except UnicodeDecodeError:  # msgspec's own error for bad UTF-8 inside a string
        raise InvalidInput("request body is not valid JSON: a string is not UTF-8") from None
    except RecursionError:
        raise InvalidInput("request body is not valid JSON: nested too deeply") from None


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer", field=name) from None
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}", field=name)
    return value


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def query_bool(request: Request, name: str) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return False
    value = _BOOLEANS.get(raw.lower())
    if value is None:
        raise InvalidInput(f"{name} must be true or false", field=name)
    return value
