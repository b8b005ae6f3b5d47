"""No secret reaches a log line.

The API key may travel in the query (``?apiKey=``, for EventSource), and the
access log prints every request line whole; ``install`` makes every log record
created in the process carry ``[redacted]`` in place of such a value, in its
message and in its arguments (uvicorn's access formatter reads the request
line from the arguments).
"""

from __future__ import annotations

import logging
import re
from typing import Any

#: ``apiKey=…`` and ``api_key=…`` in a query string, and an ``x-api-key`` header value.
SECRET = re.compile(r"(?i)((?:api_?key|x-api-key)[=:]\s*)[^&\s\"',;]+")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    return SECRET.sub(lambda match: match[1] + REDACTED, text)


def _clean(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


def install() -> None:
    """Redact every log record from now on, whichever logger or handler it goes to."""
    make = logging.getLogRecordFactory()
    if getattr(make, "redacts", False):
        return

    def record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        rec = make(*args, **kwargs)
        rec.msg = _clean(rec.msg)
        if isinstance(rec.args, tuple):
            rec.args = tuple(_clean(arg) for arg in rec.args)
        elif isinstance(rec.args, dict):
            rec.args = {key: _clean(arg) for key, arg in rec.args.items()}
        return rec

    record.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(record)
