"""What a submit may carry besides the task: an Idempotency-Key, a start time, a callback.

An ``Idempotency-Key`` is remembered per API key, with a hash of the body, in
the same transaction as the task it created, so a retry after a lost answer,
even across a restart, gets the original task back (200 instead of 201) and
the same key with another body is refused (422). Keys are kept at least
:data:`REMEMBER_SECONDS`; concurrent retries of one key wait for the first.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from qortex.errors import InvalidInput, Unprocessable
from qortex.shapes import TaskCreated
from qortex.store.reader import Reader

MAX_IDEMPOTENCY_KEY = 255
REMEMBER_SECONDS = 24 * 3600.0


def idempotency_key(raw: str | None) -> str | None:
    """The header's value if it is 1-255 printable ASCII characters."""
    if raw is None:
        return None
    if not 1 <= len(raw) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters, got {len(raw)}",
            field="Idempotency-Key",
        )
    if not all(32 < ord(ch) < 127 for ch in raw):
        raise InvalidInput(
            "Idempotency-Key must be printable ASCII without spaces", field="Idempotency-Key"
        )
    return raw


def start_time(
    not_before: str | None, delay_seconds: float | None, now: float, max_days: float
) -> float | None:
    """When a task may start, from ``notBefore`` (RFC 3339) or ``delaySeconds``; None: now."""
    if not_before is not None and delay_seconds is not None:
        raise InvalidInput("send notBefore or delaySeconds, not both", field="notBefore")
    if delay_seconds is not None:
        if not math.isfinite(delay_seconds) or delay_seconds <= 0:
            raise InvalidInput("delaySeconds must be a positive number", field="delaySeconds")
        when = now + delay_seconds
        name = "delaySeconds"
    elif not_before is not None:
        try:
            parsed = datetime.fromisoformat(not_before)
        except ValueError:
            raise InvalidInput(
                f"notBefore must be an RFC 3339 time such as 2030-01-01T12:00:00Z, got"
                f" {not_before[:64]!r}",
                field="notBefore",
            ) from None
        if parsed.tzinfo is None:
            raise InvalidInput("notBefore needs a time zone (Z or +hh:mm)", field="notBefore")
        when = parsed.timestamp()
        if when <= now:
            raise InvalidInput(
                f"notBefore {not_before} is in the past; leave it out to start now",
                field="notBefore",
            )
        name = "notBefore"
    else:
        return None
    if when - now > max_days * 86400:
        raise InvalidInput(
            f"{name} is more than {max_days:g} days ahead (max_schedule_days)", field=name
        )
    return when


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Idempotency:
    """The keys being submitted right now, so that a concurrent retry waits for the first."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader
        self._busy: dict[tuple[str, str], asyncio.Event] = {}

    async def recall(self, owner: str, key: str, body: bytes) -> str | None:
        """The task id this key made for this body before; 422 if it was another body."""
        while (owner, key) in self._busy:
            await self._busy[owner, key].wait()
        row = await self._reader.one(
            "SELECT body_sha256, task_id FROM idempotency WHERE key_name = ? AND idem_key = ?",
            (owner, key),
        )
        if row is None:
            return None
        if row["body_sha256"] != hashlib.sha256(body).hexdigest():
            raise Unprocessable(
                "this Idempotency-Key was used with another body; use a new key for a new task",
                taskId=row["task_id"],
            )
        return str(row["task_id"])

    def hold(self, owner: str, key: str) -> Callable[[], None]:
        """Mark a key as being submitted; call the result when the submit is over."""
        done = self._busy[owner, key] = asyncio.Event()

        def release() -> None:
            del self._busy[owner, key]
            done.set()

        return release


def created(row: dict[str, Any]) -> TaskCreated:
    """The answer to a submit, first time or replayed, from ``Reader.submitted``."""
    return TaskCreated(
        task_id=row["id"],
        status=row["status"],
        kind=row["kind"],
        microtasks=row["microtasks"],
        not_before=row.get("not_before"),
        callback_secret=row.get("callback_secret"),
    )
