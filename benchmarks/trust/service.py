"""The coordinator under test: a real ``qortex serve``, its REST API and its event stream.

Processes are started and stopped by ``benchmarks/processes.py``'s supervision (own
process group, killed with the harness). The API client waits out 429s as
their ``Retry-After`` asks, so the default rate limits stay in force. The
event follower reads ``GET /api/v1/events`` from the start and resumes after
the last id it saw if the stream drops.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from processes import Server

#: Sentiment tasks may hold more tweets than the default 5, so a cell needs fewer requests.
MAX_TWEETS = 50


def coordinator(folder: Path, settings: dict[str, str]) -> Server:
    """``qortex serve`` on a free loopback port with a fresh database in ``folder``."""
    return Server(
        folder.parent,
        folder.name,
        secrets.token_hex(16),  # 32 characters
        {
            "QORTEX_MAX_TWEETS_PER_TASK": str(MAX_TWEETS),
            **{f"QORTEX_{k.upper()}": v for k, v in settings.items()},
        },
    )


def api_of(server: Server) -> Api:
    """The REST API of ``server``, waiting out rate limits."""
    return Api(server.url, server.api_key)


class Api:
    """The REST API, waiting out rate limits instead of failing on them."""

    def __init__(self, url: str, api_key: str) -> None:
        self.http = httpx.AsyncClient(
            base_url=url, headers={"x-api-key": api_key}, timeout=30.0, trust_env=False
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for _ in range(100):
            response = await self.http.request(method, path, **kwargs)
            if response.status_code != 429:
                return response
            await asyncio.sleep(float(response.headers.get("retry-after", "0.5") or 0.5))
        return response

    async def json(self, path: str) -> Any:
        response = await self.call("GET", path)
        response.raise_for_status()
        return response.json()


@dataclass
class Events:
    """What the event stream said, stamped with the harness's ``time.monotonic()``."""

    counts: Counter[str] = field(default_factory=Counter)
    finished: dict[str, float] = field(default_factory=dict)  # task id -> when it first ended
    banned: dict[str, tuple[float, str]] = field(default_factory=dict)  # miner -> (when, why)
    last_change: float = field(default_factory=time.monotonic)
    last_event: float = field(default_factory=time.monotonic)
    last_id: int = 0
    errors: int = 0

    #: Events after which decisions may still change.
    CHANGES = frozenset({"microtask.reopened", "task.revised", "miner.banned", "task.created"})

    def take(self, kind: str, data: str) -> None:
        self.counts[kind] += 1
        now = self.last_event = time.monotonic()
        if kind in self.CHANGES:
            self.last_change = now
        if kind in ("task.completed", "task.failed", "miner.banned"):
            body = json.loads(data)
            if kind == "miner.banned":
                miner = str(body.get("minerId", ""))
                self.banned.setdefault(miner, (now, str(body.get("reason", ""))))
            else:
                self.finished.setdefault(str(body.get("taskId", "")), now)


async def follow(api: Api, events: Events) -> None:
    """Read the whole event log and every new event until cancelled."""
    while True:
        try:
            params = {"lastEventId": str(events.last_id)}
            async with api.http.stream("GET", "/api/v1/events", params=params, timeout=None) as s:
                kind = ""
                async for line in s.aiter_lines():
                    if line.startswith("id: "):
                        events.last_id = int(line[4:])
                    elif line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        events.take(kind, line[6:])
        except (httpx.HTTPError, ValueError):
            events.errors += 1
        await asyncio.sleep(0.2)
