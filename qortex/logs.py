"""Log lines: plain text for a person at a terminal, one JSON object per line for machines.

``log_format = "json"`` (or ``"auto"`` when standard error is not a terminal)
writes each record as ``{"time", "level", "logger", "message", ...}`` with
``requestId``, ``taskId`` and ``minerId`` where they are known, so a log
pipeline can follow one request or one task. Every line, in either format,
passes through :func:`redact` first: API keys (``qx_...``), webhook secrets
(``whsec_...``) and ``apiKey=`` query values never reach a log.

Access lines come from :class:`AccessLog`, an ASGI middleware that gives each
request an id (the client's ``x-request-id`` if it is a plain token, else a
new one), returns it as ``x-request-id``, and logs one ``qortex.access`` line
when the response is done.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

SECRETS = re.compile(r"(qx_|whsec_)[A-Za-z0-9_\-+/=]{6,}|(?<=apiKey=)[^&\s\"']+")
SAFE_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
access = logging.getLogger("qortex.access")


def redact(text: str) -> str:
    return SECRETS.sub(lambda m: f"{m.group(1) or ''}[redacted]", text)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id.get()
        if rid:
            line["requestId"] = rid
        for attr, key in (("task_id", "taskId"), ("miner_id", "minerId")):
            value = getattr(record, attr, None)
            if value:
                line[key] = value
        for key in ("method", "path", "status", "durationMs", "client"):
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(line, ensure_ascii=False, default=str))


def configure(level: str, fmt: str) -> None:
    """Send every logger (uvicorn's too) to standard error in the chosen format."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class AccessLog:
    """One ``qortex.access`` line per HTTP request, with the request's id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if SAFE_ID.match(given) else uuid.uuid4().hex[:16]
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            path = scope["path"]
            query = scope.get("query_string", b"").decode("latin-1")
            params = scope.get("path_params", {})
            client = scope.get("client")
            access.info(
                "%s %s %d",
                scope["method"],
                f"{path}?{query}" if query else path,
                status,
                extra={
                    "method": scope["method"],
                    "path": redact(f"{path}?{query}" if query else path),
                    "status": status,
                    "durationMs": round((time.perf_counter() - started) * 1000, 2),
                    "client": client[0] if client else None,
                    "task_id": params.get("task_id"),
                    "miner_id": params.get("miner_id"),
                },
            )
            request_id.reset(token)
