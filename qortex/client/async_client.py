"""``AsyncClient``: the asyncio client, the same calls as ``Client`` to ``await``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import msgspec

from qortex.client.types import (
    FINISHED,
    ApiKeyCreated,
    Event,
    EventPage,
    EventReader,
    Task,
    TaskCreated,
    check,
    created,
    new_idempotency_key,
    retry_delay,
    should_retry,
    task_body,
    verify_proof,
)


class AsyncClient:
    def __init__(self, url: str, api_key: str, *, timeout: float = 30.0, retries: int = 3) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self._http = httpx.AsyncClient(
            base_url=self.url, headers={"x-api-key": api_key}, timeout=timeout
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _request(
        self, method: str, path: str, retry: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """One call; with ``retry``, repeated after transport errors, 429 and 5xx."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response: httpx.Response | None = await self._http.request(method, path, **kwargs)
                error: httpx.TransportError | None = None
            except httpx.TransportError as exc:
                response, error = None, exc
            if not retry or attempt > self.retries or not should_retry(response):
                if response is None:
                    assert error is not None
                    raise error
                return response
            await asyncio.sleep(retry_delay(attempt, response))

    # -- tasks ------------------------------------------------------------

    async def submit(
        self, kind: str, task_input: Any, *, idempotency_key: str | None = None, **options: Any
    ) -> TaskCreated:
        """Submit a task; retried safely under one Idempotency-Key (a 200 replay counts as done).

        ``options``: ``not_before`` (an aware datetime), ``delay_seconds``,
        ``callback_url``, ``replicas``, ``quorum``, ``max_replicas``, ``lease_seconds``.
        """
        body = task_body(kind, task_input, **options)
        return await self.submit_body(body, idempotency_key)

    async def submit_body(
        self, body: dict[str, Any], idempotency_key: str | None = None
    ) -> TaskCreated:
        """Submit a task body as the API takes it (camelCase fields), retried like ``submit``."""
        headers = {"idempotency-key": idempotency_key or new_idempotency_key()}
        response = await self._request("POST", "/api/v1/tasks", True, json=body, headers=headers)
        return created(response)

    async def status(self, task_id: str, outputs: bool = False) -> Task:
        params = {"outputs": "true"} if outputs else {}
        response = await self._request("GET", f"/api/v1/tasks/{task_id}", True, params=params)
        return msgspec.convert(check(response), Task)

    async def proof(self, task_id: str) -> dict[str, Any]:
        return check(await self._request("GET", f"/api/v1/tasks/{task_id}/proof", True))

    async def wait(
        self,
        task_id: str,
        timeout: float | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> Task:
        """Follow the task's events until it completes or fails; returns the finished task.

        A dropped stream is resumed from the last event seen, so ``on_event``
        sees each of the task's events once. ``timeout`` raises TimeoutError.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        reader = EventReader()
        attempt = 0
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"task {task_id} did not finish within {timeout} s")
            params = {"taskId": task_id, "lastEventId": str(reader.last_id)}
            try:
                async with self._http.stream(
                    "GET", "/api/v1/events", params=params, timeout=httpx.Timeout(left or 60.0)
                ) as stream:
                    if not stream.is_success:
                        await stream.aread()
                        check(stream)
                    async for line in stream.aiter_lines():
                        event = reader.feed(line)
                        if event is None:
                            continue
                        attempt = 0
                        if on_event is not None:
                            on_event(event)
                        if event.type in FINISHED:
                            return await self.status(task_id)
            except httpx.TransportError:
                attempt += 1
                if attempt > self.retries + 3:
                    raise
                await asyncio.sleep(retry_delay(attempt, None))

    # -- the event log ----------------------------------------------------

    async def events(self, after: int = 0, limit: int = 100, **filters: str) -> EventPage:
        """One page of the durable event log; filters ``type``, ``taskId``, ``minerId``."""
        params = {"after": after, "limit": limit, **filters}
        return msgspec.convert(
            check(await self._request("GET", "/api/v1/events/log", True, params=params)), EventPage
        )

    async def event_stats(self) -> dict[str, Any]:
        return check(await self._request("GET", "/api/v1/events/stats", True))

    # -- keys and webhooks (admin) ----------------------------------------

    async def create_key(self, name: str, scopes: list[str]) -> ApiKeyCreated:
        body = {"name": name, "scopes": scopes}
        return msgspec.convert(
            check(await self._request("POST", "/api/v1/keys", json=body)), ApiKeyCreated
        )

    async def keys(self) -> list[dict[str, Any]]:
        return check(await self._request("GET", "/api/v1/keys", True))["keys"]

    async def revoke_key(self, name: str) -> dict[str, Any]:
        return check(await self._request("DELETE", f"/api/v1/keys/{name}", True))

    async def create_webhook(self, url: str, events: list[str]) -> dict[str, Any]:
        return check(
            await self._request("POST", "/api/v1/webhooks", json={"url": url, "events": events})
        )

    async def webhooks(self) -> list[dict[str, Any]]:
        return check(await self._request("GET", "/api/v1/webhooks", True))["webhooks"]

    async def delete_webhook(self, webhook_id: str) -> dict[str, Any]:
        return check(await self._request("DELETE", f"/api/v1/webhooks/{webhook_id}", True))

    async def deliveries(self, webhook_id: str, limit: int = 100) -> list[dict[str, Any]]:
        path = f"/api/v1/webhooks/{webhook_id}/deliveries"
        return check(await self._request("GET", path, True, params={"limit": limit}))["deliveries"]

    # -- offline ----------------------------------------------------------

    verify = staticmethod(verify_proof)
