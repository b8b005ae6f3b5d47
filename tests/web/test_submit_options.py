"""Idempotency-Key, notBefore/delaySeconds and callbackUrl on a submit, in-process.

Each bad value is refused with a 4xx naming the problem, and changes nothing
stored. Restarts and real miners are in tests/e2e/test_scripting.py.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from qortex.settings import Settings
from tests.helpers import snapshot


def test_a_retry_with_the_same_key_and_body_returns_the_original_task(
    client: TestClient, settings: Settings
) -> None:
    headers = {"idempotency-key": "order-17"}
    first = client.post("/api/v1/tasks", json={"tweets": ["a", "b"]}, headers=headers)
    assert first.status_code == 201
    before = snapshot(settings.db)
    again = client.post("/api/v1/tasks", json={"tweets": ["a", "b"]}, headers=headers)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert snapshot(settings.db) == before  # no second task, no second event

    other = client.post("/api/v1/tasks", json={"tweets": ["c"]}, headers=headers)
    assert other.status_code == 422
    assert other.json()["detail"]["taskId"] == first.json()["taskId"]
    assert snapshot(settings.db) == before


def test_idempotency_keys_belong_to_the_api_key_that_sent_them(client: TestClient) -> None:
    other = client.post("/api/v1/keys", json={"name": "other", "scopes": ["submit"]}).json()["key"]
    body = {"tweets": ["a"]}
    mine = client.post("/api/v1/tasks", json=body, headers={"idempotency-key": "k1"})
    theirs = client.post(
        "/api/v1/tasks", json=body, headers={"idempotency-key": "k1", "x-api-key": other}
    )
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["taskId"] != theirs.json()["taskId"]


def test_without_a_key_every_submit_is_a_new_task(client: TestClient) -> None:
    ids = {client.post("/api/v1/tasks", json={"tweets": ["a"]}).json()["taskId"] for _ in range(2)}
    assert len(ids) == 2


def test_a_scheduled_task_is_recorded_at_once_and_stays_out_of_dispatch(
    client: TestClient, settings: Settings
) -> None:
    response = client.post("/api/v1/tasks", json={"tweets": ["a"], "delaySeconds": 3600})
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "scheduled"
    assert body["notBefore"] == pytest.approx(time.time() + 3600, abs=60)
    task = client.get(f"/api/v1/tasks/{body['taskId']}").json()
    assert task["status"] == "scheduled"
    assert client.get("/health").json()["tasksRunning"] == 0
    page = client.get("/api/v1/events/log", params={"taskId": body["taskId"]}).json()
    assert [e["type"] for e in page["events"]] == ["task.created", "task.scheduled"]
    listed = client.get("/api/v1/tasks", params={"status": "scheduled"}).json()["tasks"]
    assert [t["taskId"] for t in listed] == [body["taskId"]]


@pytest.mark.parametrize("delay", [None, 3600])
def test_the_first_answer_is_what_the_file_holds(client: TestClient, delay: int | None) -> None:
    """The 201 is built from what the submit recorded; a replay reads the task back: the same."""
    body: dict[str, object] = {
        "tweets": ["a", "b"],
        "gold": [{"input": "I hate this", "output": "negative"}],
        "callbackUrl": "https://hooks.example.invalid/done",
    }
    if delay is not None:
        body["delaySeconds"] = delay
    headers = {"idempotency-key": f"same-{delay}"}
    first = client.post("/api/v1/tasks", json=body, headers=headers)
    assert first.status_code == 201
    assert first.json()["microtasks"] == 3  # two tweets and the known answer
    again = client.post("/api/v1/tasks", json=body, headers=headers)
    assert again.status_code == 200
    assert again.json() == first.json()


def test_a_callback_url_gets_its_own_secret(client: TestClient) -> None:
    body = {"tweets": ["a"], "callbackUrl": "https://hooks.example.invalid/done"}
    response = client.post("/api/v1/tasks", json=body, headers={"idempotency-key": "cb"})
    assert response.status_code == 201
    secret = response.json()["callbackSecret"]
    assert secret.startswith("whsec_")
    again = client.post("/api/v1/tasks", json=body, headers={"idempotency-key": "cb"})
    assert again.json()["callbackSecret"] == secret


def _iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


BAD: list[tuple[str, dict[str, Any], dict[str, str], int, str]] = [
    ("key too long", {"tweets": ["a"]}, {"idempotency-key": "k" * 256}, 400, "1 to 255"),
    ("key with a space", {"tweets": ["a"]}, {"idempotency-key": "a b"}, 400, "printable"),
    ("empty key", {"tweets": ["a"]}, {"idempotency-key": ""}, 400, "1 to 255"),
    ("past", {"tweets": ["a"], "notBefore": _iso(-timedelta(hours=1))}, {}, 400, "in the past"),
    ("years ahead", {"tweets": ["a"], "notBefore": _iso(timedelta(days=800))}, {}, 400, "30 days"),
    ("no zone", {"tweets": ["a"], "notBefore": "2099-01-01T10:00:00"}, {}, 400, "time zone"),
    ("not a time", {"tweets": ["a"], "notBefore": "tomorrow"}, {}, 400, "RFC 3339"),
    ("negative delay", {"tweets": ["a"], "delaySeconds": -5}, {}, 400, "positive"),
    ("delay too long", {"tweets": ["a"], "delaySeconds": 10**9}, {}, 400, "30 days"),
    (
        "both",
        {"tweets": ["a"], "delaySeconds": 5, "notBefore": _iso(timedelta(hours=1))},
        {},
        400,
        "not both",
    ),
    ("callback ftp", {"tweets": ["a"], "callbackUrl": "ftp://x.org/a"}, {}, 400, "http"),
    ("callback no host", {"tweets": ["a"], "callbackUrl": "http:///a"}, {}, 400, "host"),
    (
        "callback loopback",
        {"tweets": ["a"], "callbackUrl": "http://127.0.0.1/"},
        {},
        400,
        "private",
    ),
    (
        "callback localhost",
        {"tweets": ["a"], "callbackUrl": "http://localhost:8/"},
        {},
        400,
        "private",
    ),
    (
        "callback metadata",
        {"tweets": ["a"], "callbackUrl": "http://169.254.169.254/"},
        {},
        400,
        "private",
    ),
    ("callback LAN v6", {"tweets": ["a"], "callbackUrl": "http://[fd00::1]/"}, {}, 400, "private"),
    (
        "callback mapped",
        {"tweets": ["a"], "callbackUrl": "http://[::ffff:10.0.0.1]/"},
        {},
        400,
        "private",
    ),
    (
        "callback userinfo",
        {"tweets": ["a"], "callbackUrl": "https://u:p@x.org/"},
        {},
        400,
        "password",
    ),
    ("callback bad port", {"tweets": ["a"], "callbackUrl": "https://x.org:99999/"}, {}, 400, "URL"),
]


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "message"), BAD, ids=[b[0] for b in BAD]
)
def test_bad_submit_options_change_nothing(
    client: TestClient,
    settings: Settings,
    case: str,
    body: dict[str, Any],
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    before = snapshot(settings.db)
    response = client.post("/api/v1/tasks", json=body, headers=headers)
    assert response.status_code == status, response.text
    assert message in response.json()["message"]
    assert snapshot(settings.db) == before


WEBHOOKS_BAD: list[tuple[str, Any, str]] = [
    ("malformed url", {"url": "not a url", "events": ["task.completed"]}, "http"),
    ("javascript url", {"url": "javascript:alert(1)", "events": ["task.completed"]}, "http"),
    ("private url", {"url": "http://192.168.1.10/hook", "events": ["task.completed"]}, "private"),
    (
        "unknown event",
        {"url": "https://x.org/h", "events": ["task.completed", "task.exploded"]},
        "unknown event 'task.exploded'",
    ),
    (
        "live-only event",
        {"url": "https://x.org/h", "events": ["task.completed", "microtask.result"]},
        "microtask.result is live only",
    ),
    ("no events", {"url": "https://x.org/h", "events": []}, "events"),
    ("events not a list", {"url": "https://x.org/h", "events": "task.completed"}, "events"),
    ("url too long", {"url": "https://x.org/" + "a" * 3000, "events": ["task.completed"]}, "url"),
]


@pytest.mark.parametrize(
    ("case", "body", "message"), WEBHOOKS_BAD, ids=[b[0] for b in WEBHOOKS_BAD]
)
def test_bad_webhooks_change_nothing(
    client: TestClient, settings: Settings, case: str, body: Any, message: str
) -> None:
    before = snapshot(settings.db)
    response = client.post("/api/v1/webhooks", json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]
    assert snapshot(settings.db) == before
    assert client.get("/api/v1/webhooks").json() == {"webhooks": []}


def test_webhooks_are_listed_deleted_and_logged(client: TestClient) -> None:
    made = client.post(
        "/api/v1/webhooks",
        json={
            "url": "https://hooks.example.invalid/a",
            "events": ["task.failed", "task.completed"],
        },
    )
    assert made.status_code == 201
    hook = made.json()
    assert hook["events"] == ["task.completed", "task.failed"]  # in the log's own order
    assert hook["secret"].startswith("whsec_")
    assert client.get("/api/v1/webhooks").json()["webhooks"] == [hook]
    assert client.get(f"/api/v1/webhooks/{hook['webhookId']}/deliveries").json() == {
        "deliveries": []
    }
    assert client.delete(f"/api/v1/webhooks/{hook['webhookId']}").status_code == 200
    assert client.get("/api/v1/webhooks").json() == {"webhooks": []}
    assert client.delete(f"/api/v1/webhooks/{hook['webhookId']}").status_code == 404


def test_the_event_log_pages_and_counts(client: TestClient) -> None:
    ids = [client.post("/api/v1/tasks", json={"tweets": ["a"]}).json()["taskId"] for _ in range(3)]
    first = client.get("/api/v1/events/log", params={"limit": 2}).json()
    assert [e["taskId"] for e in first["events"]] == ids[:2] and first["more"] is True
    rest = client.get("/api/v1/events/log", params={"after": first["next"]}).json()
    assert [e["taskId"] for e in rest["events"]] == ids[2:] and rest["more"] is False
    assert rest["events"][0]["data"]["microtasks"] == 1
    empty = client.get("/api/v1/events/log", params={"after": rest["next"]}).json()
    assert empty == {"events": [], "next": rest["next"], "more": False}
    typed = client.get(
        "/api/v1/events/log", params={"type": "task.created", "taskId": ids[1]}
    ).json()
    assert [e["taskId"] for e in typed["events"]] == [ids[1]]
    stats = client.get("/api/v1/events/stats").json()
    assert stats["byType"]["task.created"] == 3 and stats["total"] == 3
    assert stats["lastEventId"] == rest["next"]
    assert "microtask.result" not in stats["byType"]  # live only: never counted in the log
    for params in ({"type": "task.nope"}, {"after": "-1"}, {"limit": "0"}, {"after": "x"}):
        response = client.get("/api/v1/events/log", params=params)
        assert response.status_code == 400 and response.json()["message"]
    live = client.get("/api/v1/events/log", params={"type": "microtask.assigned"})
    assert live.status_code == 400 and "live only" in live.json()["message"]
