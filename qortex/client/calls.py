"""Every API call the clients make, as data: method, path, body, and how to read the answer.

Both clients turn a :class:`Call` into a request and hand the response to its
``read``; only the waiting differs (blocking or awaited). So a route's path,
its parameters, whether a retry is safe, and the struct its answer becomes
are written once, here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from qortex.client.types import (
    ApiKeyCreated,
    EventPage,
    Task,
    check,
    created,
    decoded,
    new_idempotency_key,
)


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    read: Callable[[httpx.Response], Any] = check
    retry: bool = True  # safe to send again: a read, an idempotent change, a keyed submit
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def request(self) -> dict[str, Any]:
        """The keyword arguments of ``httpx.Client.request`` beside method and path."""
        kwargs: dict[str, Any] = {"params": self.params, "headers": self.headers}
        if self.json is not None:
            kwargs["json"] = self.json
        return kwargs


def _as(struct: type) -> Callable[[httpx.Response], Any]:
    return lambda response: decoded(response, struct)


def _item(name: str) -> Callable[[httpx.Response], Any]:
    return lambda response: check(response)[name]


def _task_path(task_id: str, tail: str = "") -> str:
    return f"/api/v1/tasks/{quote(task_id, safe='')}{tail}"


def submit(body: dict[str, Any], idempotency_key: str | None) -> Call:
    headers = {"idempotency-key": idempotency_key or new_idempotency_key()}
    return Call("POST", "/api/v1/tasks", created, json=body, headers=headers)


def _outputs(outputs: bool) -> dict[str, Any]:
    return {"outputs": "true"} if outputs else {}


def status(task_id: str, outputs: bool) -> Call:
    return Call("GET", _task_path(task_id), _as(Task), params=_outputs(outputs))


def task(task_id: str, outputs: bool) -> Call:
    return Call("GET", _task_path(task_id), params=_outputs(outputs))


def tasks(limit: int, **filters: str | None) -> Call:
    params = {"limit": limit, **{k: v for k, v in filters.items() if v is not None}}
    return Call("GET", "/api/v1/tasks", params=params)


def proof(task_id: str) -> Call:
    return Call("GET", _task_path(task_id, "/proof"))


def cancel(task_id: str) -> Call:
    # Not retried: had a lost answer's cancel gone through, the retry would be a 409.
    return Call("POST", _task_path(task_id, "/cancel"), retry=False)


def kinds() -> Call:
    return Call("GET", "/api/v1/kinds", _item("kinds"))


def health() -> Call:
    return Call("GET", "/health")


def events(after: int, limit: int, filters: dict[str, str]) -> Call:
    params = {"after": after, "limit": limit, **filters}
    return Call("GET", "/api/v1/events/log", _as(EventPage), params=params)


def event_stats() -> Call:
    return Call("GET", "/api/v1/events/stats")


def create_key(name: str, scopes: list[str]) -> Call:
    body = {"name": name, "scopes": scopes}
    return Call("POST", "/api/v1/keys", _as(ApiKeyCreated), retry=False, json=body)


def keys() -> Call:
    return Call("GET", "/api/v1/keys", _item("keys"))


def revoke_key(name: str) -> Call:
    return Call("DELETE", f"/api/v1/keys/{quote(name, safe='')}")


def create_webhook(url: str, events: list[str]) -> Call:
    return Call("POST", "/api/v1/webhooks", retry=False, json={"url": url, "events": events})


def webhooks() -> Call:
    return Call("GET", "/api/v1/webhooks", _item("webhooks"))


def delete_webhook(webhook_id: str) -> Call:
    return Call("DELETE", f"/api/v1/webhooks/{quote(webhook_id, safe='')}")


def deliveries(webhook_id: str, limit: int) -> Call:
    path = f"/api/v1/webhooks/{quote(webhook_id, safe='')}/deliveries"
    return Call("GET", path, _item("deliveries"), params={"limit": limit})
