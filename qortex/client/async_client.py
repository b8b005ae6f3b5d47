"""``AsyncClient``: the asyncio client, the same calls as ``Client`` to ``await``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from qortex.client import calls
from qortex.client.types import (
    FINISHED,
    ApiKeyCreated,
    Event,
    EventPage,
    EventReader,
    Reconnects,
    Retries,
    Task,
    TaskCreated,
    check,
    task_body,
    verify_proof,
)


class AsyncClient:
    def __init__(self, url: str, api_key: str, *, timeout: float = 30.0, retries: int = 3) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
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
        pacing = Retries(self.retries if retry else 0)
        while True:
            try:
                response: httpx.Response | None = await self._http.request(method, path, **kwargs)
                error: httpx.TransportError | None = None
            except httpx.TransportError as exc:
                response, error = None, exc
            delay = pacing.after(response)
            if delay is None:
                if response is None:
                    assert error is not None
                    raise error
                return response
            await asyncio.sleep(delay)

    async def _call(self, call: calls.Call) -> Any:
        response = await self._request(call.method, call.path, call.retry, **call.request())
        return call.read(response)

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
        return await self._call(calls.submit(body, idempotency_key))

    async def status(self, task_id: str, outputs: bool = False) -> Task:
        """A task, typed; ``outputs`` adds every vote's output."""
        return await self._call(calls.status(task_id, outputs))

    async def task(self, task_id: str, outputs: bool = False) -> dict[str, Any]:
        """A task as the API answers it (JSON), for showing or storing as it is."""
        return await self._call(calls.task(task_id, outputs))

    async def tasks(
        self, limit: int = 50, *, status: str | None = None, prefix: str | None = None
    ) -> dict[str, Any]:
        """A page of tasks, newest first: ``tasks`` and the ``next`` cursor."""
        return await self._call(calls.tasks(limit, status=status, prefix=prefix))

    async def proof(self, task_id: str) -> dict[str, Any]:
        return await self._call(calls.proof(task_id))

    async def cancel(self, task_id: str) -> dict[str, Any]:
        """Cancel a running task: its copies are withdrawn from the miners (admin scope)."""
        return await self._call(calls.cancel(task_id))

    async def kinds(self) -> list[dict[str, Any]]:
        """The task kinds this coordinator runs, with their limits."""
        return await self._call(calls.kinds())

    async def health(self) -> dict[str, Any]:
        return await self._call(calls.health())

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
        reconnects = Reconnects()
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
                        reconnects.heard()
                        if on_event is not None:
                            on_event(event)
                        if event.type in FINISHED:
                            return await self.status(task_id)
            except httpx.TransportError:
                delay = reconnects.dropped()
                if delay is None:
                    raise
                await asyncio.sleep(delay)

    # -- the event log ----------------------------------------------------

    async def events(self, after: int = 0, limit: int = 100, **filters: str) -> EventPage:
        """One page of the durable event log; filters ``type``, ``taskId``, ``minerId``."""
        return await self._call(calls.events(after, limit, filters))

    async def event_stats(self) -> dict[str, Any]:
        return await self._call(calls.event_stats())

    # -- keys and webhooks (admin) ----------------------------------------

    async def create_key(self, name: str, scopes: list[str]) -> ApiKeyCreated:
        return await self._call(calls.create_key(name, scopes))

    async def keys(self) -> list[dict[str, Any]]:
        return await self._call(calls.keys())

    async def revoke_key(self, name: str) -> dict[str, Any]:
        return await self._call(calls.revoke_key(name))

    async def create_webhook(self, url: str, events: list[str]) -> dict[str, Any]:
        return await self._call(calls.create_webhook(url, events))

    async def webhooks(self) -> list[dict[str, Any]]:
        return await self._call(calls.webhooks())

    async def delete_webhook(self, webhook_id: str) -> dict[str, Any]:
        return await self._call(calls.delete_webhook(webhook_id))

    async def deliveries(self, webhook_id: str, limit: int = 100) -> list[dict[str, Any]]:
        return await self._call(calls.deliveries(webhook_id, limit))

    # -- offline ----------------------------------------------------------

    verify = staticmethod(verify_proof)
