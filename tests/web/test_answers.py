"""Every JSON answer the routes send validates against the schema the document states for it.

The document's response schemas are derived from the ``qortex.shapes`` structs
the handlers encode; this test closes the loop from the other side. It walks
one coordinator through a task's whole life (registration, a submit and its
retry, work held and returned over the socket and over HTTP, keys, webhooks,
the operator's changes, errors) and checks each answer, as it arrives, against
the schema ``/openapi.json`` gives for its method, path and status. The
schemas are made strict first (an object may hold no property its schema does
not name), so an answer with a field its struct lacks fails, as does one
missing a required field. Every documented 2xx JSON answer must be seen.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import msgspec
import pytest
from starlette.testclient import TestClient

from qortex.settings import Settings
from qortex.signing import Signer, result_message
from tests.helpers import API_KEY
from tests.web.socketminer import KIND, wait_status

JSON_TYPE = "application/json"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """No checker (a sampled check would hold the task for a second miner); webhooks and
    callbacks may go to a closed loopback port."""
    return Settings(
        db=str(tmp_path / "qortex.db"),
        api_key=API_KEY,
        replicas=3,
        max_request_bytes=64 * 1024,
        checker=False,
        webhook_allow_networks=["127.0.0.0/8"],
    )


def strict(node: Any) -> Any:
    """A copy of a schema in which objects with named properties allow no others."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict(value) for key, value in node.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


class AnswerChecker:
    """Checks each response against the document; remembers what it checked and what failed."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.components = strict(document["components"]["schemas"])
        self.routes: list[tuple[re.Pattern[str], str, str, dict[str, Any]]] = []
        # Literal paths before templated ones: /miners/register is not /miners/{minerId}.
        for path, item in sorted(document["paths"].items(), key=lambda p: p[0].count("{")):
            pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")
            for method, operation in item.items():
                self.routes.append((pattern, method, path, operation))
        self.expected = {
            (method, path, status)
            for path, item in document["paths"].items()
            for method, operation in item.items()
            for status, answer in operation["responses"].items()
            if status.startswith("2")
            and "$ref" in answer.get("content", {}).get(JSON_TYPE, {}).get("schema", {})
        }
        self.seen: set[tuple[str, str, str]] = set()
        self.bodies: dict[str, Any] = {}  # the last body of each schema, for the drift check
        self.failures: list[str] = []

    def schema(self, name: str) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{name}", "components": {"schemas": self.components}}

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        method, url = response.request.method.lower(), response.request.url.path
        found = [
            (path, operation)
            for pattern, m, path, operation in self.routes
            if m == method and pattern.match(url)
        ]
        if not found or not response.headers.get("content-type", "").startswith(JSON_TYPE):
            return
        path, operation = found[0]
        status = str(response.status_code)
        answer = operation["responses"].get(status)
        if answer is None:
            self.failures.append(f"{method.upper()} {url}: {status} is not documented")
            return
        schema = answer["content"][JSON_TYPE]["schema"]
        if "$ref" not in schema:
            return
        name = schema["$ref"].rsplit("/", 1)[1]
        body = response.json()
        errors = list(jsonschema.Draft202012Validator(self.schema(name)).iter_errors(body))
        for error in errors:
            where = "/".join(map(str, error.absolute_path))
            self.failures.append(
                f"{method.upper()} {url} {status} ({name}) at {where}: {error.message}"
            )
        self.seen.add((method, path, status))
        self.bodies[name] = body


def _signed_result(signer: Signer, assign: Any, output: bytes) -> dict[str, str]:
    message = result_message(assign.assignment_id, assign.microtask_id, assign.input_sha256, output)
    return {
        "assignmentId": assign.assignment_id,
        "microtaskId": assign.microtask_id,
        "output": output.decode(),
        "signature": signer.sign(message),
    }


def _walk(client: TestClient, connect: Any) -> None:
    """One coordinator through a task's whole life, touching every JSON route."""
    assert client.get("/health").status_code == 200
    assert client.get("/api/v1/kinds").status_code == 200
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["task.created", "task.completed"]}
    webhook = client.post("/api/v1/webhooks", json=hook).json()
    signer = Signer()
    registration = {"publicKey": signer.public_hex, "name": "laptop"}
    assert client.post("/api/v1/miners/register", json=registration).status_code == 201
    assert client.post("/api/v1/miners/register", json=registration).status_code == 200
    miner = connect(signer)

    body = {
        "kind": "sentiment",
        "input": {"tweets": ["what a lovely day"]},
        "replicas": 1,
        "targetError": 0.2,
        "gold": [{"input": "I hate this", "output": "negative"}],
    }
    again = {"idempotency-key": "answers-1"}
    task_id = client.post("/api/v1/tasks", json=body, headers=again).json()["taskId"]
    assert client.post("/api/v1/tasks", json=body, headers=again).status_code == 200
    first = miner.work()
    assert client.get(f"/api/v1/miners/{signer.miner_id}").json()["working"]  # a copy held
    output = msgspec.json.encode(KIND.compute(msgspec.json.decode(first.input)))
    url = f"/internal/miner/{signer.miner_id}/result"
    assert client.post(url, json=_signed_result(signer, first, output)).status_code == 200
    second = miner.work()
    miner.answer(second)
    wait_status(client, task_id, "completed")

    client.get(f"/api/v1/tasks/{task_id}", params={"outputs": "true"})
    client.get("/api/v1/tasks", params={"limit": 1})
    client.get(f"/api/v1/tasks/{task_id}/proof")
    client.get("/api/v1/miners")
    client.get(f"/api/v1/miners/{signer.miner_id}/reputation-history")
    client.get("/api/v1/leaderboard", params={"minerId": signer.miner_id})
    client.get("/api/v1/stats")
    client.get("/api/v1/events/log")
    client.get("/api/v1/events/stats")
    client.patch(f"/api/v1/miners/{signer.miner_id}", json={"status": "verified", "note": "mine"})

    scheduled = {"tweets": ["later"], "delaySeconds": 60, "callbackUrl": hook["url"]}
    assert client.post("/api/v1/tasks", json=scheduled).status_code == 201
    running = client.post("/api/v1/tasks", json={"tweets": ["soon"]}).json()["taskId"]
    assert client.post(f"/api/v1/tasks/{running}/cancel").status_code == 200

    made = client.post("/api/v1/keys", json={"name": "reader", "scopes": ["read"]})
    assert made.status_code == 201
    client.get("/api/v1/keys")
    assert client.delete("/api/v1/keys/reader").status_code == 200
    client.get("/api/v1/webhooks")
    deliveries = f"/api/v1/webhooks/{webhook['webhookId']}/deliveries"
    assert client.get(deliveries).json()["deliveries"]
    assert client.delete(f"/api/v1/webhooks/{webhook['webhookId']}").status_code == 200

    # Errors: each is the Error shape.
    assert client.get("/api/v1/tasks/nope").status_code == 404
    assert client.get("/api/v1/tasks", params={"limit": "x"}).status_code == 400
    assert client.get("/api/v1/stats", headers={"x-api-key": ""}).status_code == 401
    assert client.post(f"/api/v1/tasks/{running}/cancel").status_code == 409


def test_every_json_answer_validates_against_its_documented_schema(
    client: TestClient, connect: Any
) -> None:
    document = client.get("/openapi.json").json()
    check = AnswerChecker(document)
    client.event_hooks = {"request": [], "response": [check]}
    _walk(client, connect)
    assert not check.failures, "\n".join(check.failures)
    missing = sorted(check.expected - check.seen)
    assert not missing, f"documented answers never checked: {missing}"
    assert {"Error", "Task", "MinerDetail", "Deliveries"} <= set(check.bodies)

    # The check is strict both ways: a field the struct lacks, or one it requires missing,
    # fails, so a handler and its struct cannot drift apart unnoticed.
    validator = jsonschema.Draft202012Validator(check.schema("Task"))
    task = check.bodies["Task"]
    assert validator.is_valid(task)
    assert task["gold"]["details"] and task["microtaskDetails"][0]["votes"][0]["output"]
    extra = copy.deepcopy(task)
    extra["microtaskDetails"][0]["votes"][0]["weight"] = 1.0
    assert not validator.is_valid(extra)
    lacking = copy.deepcopy(task)
    del lacking["gold"]["details"][0]["passed"]
    assert not validator.is_valid(lacking)
