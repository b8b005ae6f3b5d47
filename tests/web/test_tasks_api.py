"""The REST API in-process: submit, inspect, list, and every bad input refused without a trace."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from qortex.settings import Settings
from tests.helpers import API_KEY, TWEETS, snapshot


def test_seed_body_creates_a_durable_task(client: TestClient, settings: Settings) -> None:
    response = client.post("/api/v1/tasks", json={"tweets": TWEETS})
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "running" and body["kind"] == "sentiment"
    assert body["microtasks"] == len(TWEETS)
    assert response.headers["location"] == f"/api/v1/tasks/{body['taskId']}"
    # 201 means committed: the row is in the file right now.
    rows = snapshot(settings.db, ("tasks", "microtasks"))
    assert [r[0] for r in rows["tasks"]] == [body["taskId"]]
    assert len(rows["microtasks"]) == len(TWEETS)

    task = client.get(f"/api/v1/tasks/{body['taskId']}").json()
    assert task["status"] == "running"
    assert task["replicas"] == 3 and task["quorum"] == 2 and task["maxReplicas"] == 10
    assert task["targetError"] == 1e-3 and task["revision"] == 0
    assert [mt["status"] for mt in task["microtaskDetails"]] == ["pending"] * len(TWEETS)
    assert task["output"] is None


def test_generic_body_with_policy(client: TestClient) -> None:
    body = {
        "kind": "sentiment",
        "input": {"tweets": ["good"]},
        "replicas": 1,
        "leaseSeconds": 5,
        "targetError": 0.01,
    }
    created = client.post("/api/v1/tasks", json=body).json()
    task = client.get(f"/api/v1/tasks/{created['taskId']}").json()
    assert (task["replicas"], task["quorum"], task["maxReplicas"]) == (1, 1, 10)
    assert task["targetError"] == 0.01
    assert task["leaseSeconds"] == 5


def test_list_filters_and_pages(client: TestClient) -> None:
    ids = [client.post("/api/v1/tasks", json={"tweets": ["x"]}).json()["taskId"] for _ in range(5)]
    page = client.get("/api/v1/tasks", params={"limit": 2}).json()
    assert [t["taskId"] for t in page["tasks"]] == ids[::-1][:2]
    rest = client.get("/api/v1/tasks", params={"limit": 10, "before": page["next"]}).json()
    assert [t["taskId"] for t in rest["tasks"]] == ids[::-1][2:]
    assert rest["next"] is None
    assert len(client.get("/api/v1/tasks", params={"status": "running"}).json()["tasks"]) == 5
    assert client.get("/api/v1/tasks", params={"status": "completed"}).json()["tasks"] == []
    assert client.get("/api/v1/tasks", params={"kind": "matmul"}).json()["tasks"] == []


def test_health(client: TestClient) -> None:
    body = client.get("/health", headers={"x-api-key": ""}).json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["minersConnected"] == 0 and "sentiment" in body["kinds"]


BAD: list[tuple[str, dict[str, Any], int, str]] = [
    ("missing key", {"json": {"tweets": ["a"]}, "headers": {"x-api-key": ""}}, 401, "API key"),
    ("wrong key", {"json": {"tweets": ["a"]}, "headers": {"x-api-key": "nope"}}, 401, "wrong"),
    ("too many tweets", {"json": {"tweets": ["a"] * 6}}, 400, "at most 5 tweets"),
    ("empty tweets", {"json": {"tweets": []}}, 400, "must not be empty"),
    ("tweets not a list", {"json": {"tweets": "hello"}}, 400, "must be a list"),
    ("tweet not a string", {"json": {"tweets": ["ok", 3]}}, 400, "tweets[1] must be a string"),
    ("blank tweet", {"json": {"tweets": ["  "]}}, 400, "tweets[0] must not be empty"),
    (
        "malformed JSON",
        {"content": b'{"tweets": [', "headers": {"content-type": "application/json"}},
        400,
        "not valid JSON",
    ),
    ("empty body", {"content": b""}, 400, "empty"),
    ("JSON array", {"json": ["a"]}, 400, "invalid request"),
    ("unknown field", {"json": {"tweets": ["a"], "color": "red"}}, 400, "color"),
    ("unknown kind", {"json": {"kind": "nope", "input": 1}}, 400, "unknown task kind"),
    ("kind without input", {"json": {"kind": "sentiment"}}, 400, "missing 'input'"),
    ("replicas zero", {"json": {"tweets": ["a"], "replicas": 0}}, 400, "replicas"),
    ("replicas huge", {"json": {"tweets": ["a"], "replicas": 1000}}, 400, "replicas"),
    (
        "quorum above replicas",
        {"json": {"tweets": ["a"], "replicas": 2, "quorum": 3}},
        400,
        "quorum",
    ),
    ("replicas wrong type", {"json": {"tweets": ["a"], "replicas": "3"}}, 400, "replicas"),
    ("lease too short", {"json": {"tweets": ["a"], "leaseSeconds": 1e-300}}, 400, "leaseSeconds"),
    ("oversized body", {"content": b'{"tweets": ["' + b"a" * 70_000 + b'"]}'}, 413, "larger than"),
]


@pytest.mark.parametrize(
    ("name", "request_args", "status", "message"), BAD, ids=[b[0] for b in BAD]
)
def test_bad_submissions_are_refused_and_change_nothing(
    client: TestClient,
    settings: Settings,
    name: str,
    request_args: dict[str, Any],
    status: int,
    message: str,
) -> None:
    client.post("/api/v1/tasks", json={"tweets": ["a good one"]})  # something to keep intact
    before = snapshot(settings.db)
    response = client.post("/api/v1/tasks", **request_args)
    assert response.status_code == status, response.text
    body = response.json()
    assert message in body["message"], body
    assert body["error"]
    assert snapshot(settings.db) == before


def test_oversized_body_without_content_length_is_cut_off(
    client: TestClient, settings: Settings
) -> None:
    def chunks():
        yield b'{"tweets": ["'
        for _ in range(100):
            yield b"a" * 1000
        yield b'"]}'

    before = snapshot(settings.db)
    response = client.post("/api/v1/tasks", content=chunks())
    assert response.status_code == 413
    assert snapshot(settings.db) == before


@pytest.mark.parametrize("path", ["/api/v1/tasks/nope", "/api/v1/tasks/nope/proof"])
def test_unknown_task_is_404_json(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "no task 'nope'" in response.json()["message"]


def test_reads_need_the_key(client: TestClient) -> None:
    for path in ("/api/v1/tasks", "/api/v1/tasks/x", "/api/v1/miners", "/api/v1/events"):
        response = client.get(path, headers={"x-api-key": ""})
        assert response.status_code == 401, path
        assert response.json()["error"] == "Unauthorized"


def test_unknown_route_and_method_answer_json(client: TestClient) -> None:
    missing = client.get("/api/v1/nothing")
    assert missing.status_code == 404 and missing.json()["message"]
    wrong = client.delete("/api/v1/tasks")
    assert wrong.status_code == 405 and wrong.json()["message"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "weird"}, "status must be one of"),
        ({"limit": "0"}, "limit must be between"),
        ({"limit": "x"}, "limit must be an integer"),
        ({"before": "yesterday"}, "before"),
        ({"before": "nan"}, "before"),
        ({"before": "inf"}, "before"),
    ],
)
def test_bad_list_queries(client: TestClient, params: dict[str, str], message: str) -> None:
    response = client.get("/api/v1/tasks", params=params)
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_key_can_come_from_the_query_for_event_source(client: TestClient) -> None:
    response = client.get("/api/v1/tasks", headers={"x-api-key": ""}, params={"apiKey": API_KEY})
    assert response.status_code == 200
