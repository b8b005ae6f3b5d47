"""What the client returns (typed structs from the API's JSON), and what both clients share.

The request side is pure: :func:`task_body` builds a submit's JSON, :func:`retry_delay`
says how long to wait before a retry, and :class:`EventReader` turns the
lines of a Server-Sent Events stream into :class:`Event` values. The two
clients only add the I/O.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import httpx
import msgspec

from qortex import shapes
from qortex.errors import QortexError

T = TypeVar("T")

FINISHED = ("task.completed", "task.failed")
RETRY_STATUSES = (429, 502, 503, 504)
#: How long ``wait`` keeps trying to reach a coordinator it lost (one restarting, say).
RECONNECT_SECONDS = 120.0


class ApiError(QortexError):
    """An answer other than 2xx: ``status``, the API's ``error`` name and ``message``."""

    def __init__(self, status: int, error: str, message: str, detail: Any = None) -> None:
        super().__init__(f"HTTP {status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message
        self.detail = detail or {}


class TaskCreated(shapes.TaskCreated):
    """The submit's answer, and whether it was a retry's (a 200 for a known Idempotency-Key)."""

    replayed: bool = False


# The answers' shapes are the API's own (``qortex.shapes``), under the client's names.
Vote = shapes.Vote
MicrotaskDetail = shapes.Decision
Task = shapes.Task
Event = shapes.Event
EventPage = shapes.EventPage
ApiKeyCreated = shapes.ApiKeyCreated


def task_body(
    kind: str,
    task_input: Any,
    *,
    not_before: datetime | None = None,
    delay_seconds: float | None = None,
    callback_url: str | None = None,
    **policy: Any,
) -> dict[str, Any]:
    """The JSON of a submit; ``policy``: replicas, quorum, max_replicas, lease_seconds."""
    body: dict[str, Any] = {"kind": kind, "input": task_input}
    if not_before is not None:
        if not_before.tzinfo is None:
            raise ValueError("not_before needs a time zone, e.g. datetime.now(UTC)")
        body["notBefore"] = not_before.isoformat()
    if delay_seconds is not None:
        body["delaySeconds"] = delay_seconds
    if callback_url is not None:
        body["callbackUrl"] = callback_url
    for name, value in policy.items():
        if value is not None:
            head, *rest = name.split("_")
            body[head + "".join(part.title() for part in rest)] = value
    return body


def new_idempotency_key() -> str:
    return f"qx-{uuid.uuid4()}"


def retry_delay(attempt: int, response: httpx.Response | None) -> float:
    """Seconds before retry number ``attempt`` (1, 2, ...): Retry-After if sent, else doubling."""
    if response is not None:
        after = response.headers.get("retry-after", "")
        if after.isdigit():
            return min(float(after), 60.0)
    return min(0.25 * 2 ** (attempt - 1), 8.0)


def should_retry(response: httpx.Response | None) -> bool:
    """Retry after a transport error (no response) or a busy or failing coordinator."""
    return response is None or response.status_code in RETRY_STATUSES or response.status_code >= 500


class Retries:
    """One request's pacing: after a transport error, a 429 or a 5xx, wait and send it
    again, at most ``retries`` times; both clients ask :meth:`after` and only sleep."""

    def __init__(self, retries: int) -> None:
        self.retries = retries
        self.attempt = 0

    def after(self, response: httpx.Response | None) -> float | None:
        """Seconds to wait before sending again, or ``None``: this answer is final."""
        self.attempt += 1
        if self.attempt > self.retries or not should_retry(response):
            return None
        return retry_delay(self.attempt, response)


class Reconnects:
    """A followed event stream's pacing: each drop waits longer, and after
    :data:`RECONNECT_SECONDS` without an event in between, ``wait`` gives up."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.attempt = 0
        self.lost: float | None = None

    def heard(self) -> None:
        """An event arrived: the stream is up."""
        self.attempt, self.lost = 0, None

    def dropped(self) -> float | None:
        """Seconds to wait before reconnecting, or ``None``: lost for too long."""
        self.attempt += 1
        now = self._clock()
        self.lost = self.lost if self.lost is not None else now
        if now - self.lost > RECONNECT_SECONDS:
            return None
        return retry_delay(self.attempt, None)


def check(response: httpx.Response) -> Any:
    """The JSON of a 2xx answer; an :class:`ApiError` for anything else."""
    if response.is_success:
        return response.json()
    raise _error(response)


def decoded(response: httpx.Response, shape: type[T]) -> T:
    """A 2xx answer decoded straight into its struct; an :class:`ApiError` for anything else."""
    if response.is_success:
        return msgspec.json.decode(response.content, type=shape)
    raise _error(response)


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
        error, message, detail = body["error"], body["message"], body.get("detail")
    except (ValueError, KeyError, TypeError):
        error, message, detail = "HTTPError", response.text[:500], None
    return ApiError(response.status_code, error, message, detail)


def created(response: httpx.Response) -> TaskCreated:
    answer = decoded(response, TaskCreated)
    answer.replayed = response.status_code == 200
    return answer


class EventReader:
    """Server-Sent Events lines in, events out; remembers the last id for resuming."""

    def __init__(self, last_id: int = 0) -> None:
        self.last_id = last_id
        self._id: int | None = None
        self._type = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> Event | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id" and value.isdigit():
            self._id = int(value)
        elif name == "event":
            self._type = value
        elif name == "data":
            self._data.append(value)
        return None

    def _dispatch(self) -> Event | None:
        event = None
        if self._data:
            data = msgspec.json.decode("\n".join(self._data))
            if self._type == "error":  # the stream's key was revoked
                raise ApiError(401, data.get("error", "Unauthorized"), data.get("message", ""))
            if self._id is not None:
                self.last_id = self._id
            # An event without an id is live only (not in the log): id 0, and no resume point.
            event_id = self._id or 0
            event = Event(
                event_id, self._type, data.get("taskId"), data.get("minerId"), at=None, data=data
            )
        self._id, self._type, self._data = None, "message", []
        return event


def verify_proof(proof: dict[str, Any]) -> list[str]:
    """Re-check a proof bundle offline with the installed kinds; empty: it holds up."""
    from qortex.plugins import load_kinds  # the kinds, only when a proof is checked
    from qortex.proof import check_proof
    from qortex.settings import Settings

    return check_proof(proof, load_kinds(Settings()))
