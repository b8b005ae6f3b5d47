"""The client's pure parts: submit bodies, retry delays, and reading an SSE stream."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from qortex.client.types import (
    RECONNECT_SECONDS,
    ApiError,
    EventReader,
    Reconnects,
    Retries,
    retry_delay,
    should_retry,
    task_body,
)


def test_task_body_names_fields_as_the_api_does() -> None:
    when = datetime(2030, 1, 1, 9, tzinfo=UTC)
    body = task_body(
        "matmul", {"a": 1}, not_before=when, callback_url="https://x.org/h", max_replicas=5
    )
    assert body == {
        "kind": "matmul",
        "input": {"a": 1},
        "notBefore": "2030-01-01T09:00:00+00:00",
        "callbackUrl": "https://x.org/h",
        "maxReplicas": 5,
    }
    with pytest.raises(ValueError, match="time zone"):
        task_body("sentiment", {}, not_before=datetime(2030, 1, 1))


def test_retries_follow_retry_after_or_double() -> None:
    busy = httpx.Response(429, headers={"retry-after": "3"})
    assert retry_delay(1, busy) == 3
    assert [retry_delay(n, None) for n in (1, 2, 3)] == [0.25, 0.5, 1.0]
    assert should_retry(None) and should_retry(busy) and should_retry(httpx.Response(500))
    assert not should_retry(httpx.Response(400)) and not should_retry(httpx.Response(422))


def test_the_event_reader_splits_events_and_remembers_the_last_id() -> None:
    reader = EventReader()
    lines = [
        "retry: 2000",
        "",
        ": keepalive",
        "",
        "id: 7",
        "event: task.created",
        'data: {"taskId": "t"}',
        "",
        "id: 9",
        "event: task.completed",
        'data: {"taskId": "t", "status": "completed"}',
        "",
    ]
    events = [e for e in map(reader.feed, lines) if e is not None]
    assert [(e.id, e.type, e.task_id) for e in events] == [
        (7, "task.created", "t"),
        (9, "task.completed", "t"),
    ]
    assert reader.last_id == 9


def test_a_revoked_stream_raises() -> None:
    reader = EventReader()
    reader.feed("event: error")
    reader.feed('data: {"error": "Unauthorized", "message": "the API key x was revoked"}')
    with pytest.raises(ApiError) as raised:
        reader.feed("")
    assert raised.value.status == 401 and "revoked" in raised.value.message


def test_retries_wait_on_busy_or_failing_answers_then_give_the_last_one() -> None:
    pacing = Retries(2)
    busy = httpx.Response(503, headers={"retry-after": "3"})
    assert pacing.after(busy) == 3
    assert pacing.after(None) == 0.5  # a transport error: doubling
    assert pacing.after(busy) is None  # two retries were all
    assert Retries(3).after(httpx.Response(422)) is None  # a refusal is final at once
    assert Retries(0).after(None) is None  # a call that must not be repeated


def test_reconnects_grow_and_give_up_only_after_a_long_silence() -> None:
    now = [0.0]
    pacing = Reconnects(clock=lambda: now[0])
    assert [pacing.dropped() for _ in range(3)] == [0.25, 0.5, 1.0]
    now[0] = RECONNECT_SECONDS
    assert pacing.dropped() is not None
    pacing.heard()  # an event: the count and the silence start again
    assert pacing.dropped() == 0.25
    now[0] = 2 * RECONNECT_SECONDS + 1
    assert pacing.dropped() is None
