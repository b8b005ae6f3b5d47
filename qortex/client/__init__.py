"""A Python client for Qortex's HTTP API: ``Client`` (blocking) and ``AsyncClient`` (asyncio).

Both speak to one coordinator with one API key, over httpx::

    from qortex.client import Client

    with Client("http://127.0.0.1:8000", api_key="qx_...") as qx:
        created = qx.submit("sentiment", {"tweets": ["I love this"]})
        task = qx.wait(created.task_id)          # follows the task's SSE stream
        print(task.status, task.output)

Submits carry an ``Idempotency-Key`` (made per call unless given), so the
client's own retries, after a timeout or a 5xx, never make a second task.
``wait`` resumes its stream from the last event id after a dropped
connection. See docs/client.md.
"""

from qortex.client.async_client import AsyncClient
from qortex.client.sync_client import Client
from qortex.client.types import (
    ApiError,
    ApiKeyCreated,
    Event,
    EventPage,
    MicrotaskDetail,
    Task,
    TaskCreated,
    Vote,
)

__all__ = [
    "ApiError",
    "ApiKeyCreated",
    "AsyncClient",
    "Client",
    "Event",
    "EventPage",
    "MicrotaskDetail",
    "Task",
    "TaskCreated",
    "Vote",
]
