"""``GET /openapi.json``, and schemathesis fuzzing the app in-process against it.

The document must be valid OpenAPI 3.1, list every HTTP route, and carry the
request and answer schemas msgspec derives from the structs that decode
requests and encode answers. The fuzz run (examples, coverage and fuzzing
phases, then a short stateful phase; ``deterministic`` so CI sees the same
requests every time) asserts no 5xx, only documented status codes and content
types, a JSON ``message`` on every 4xx, and a database that only accepted
201s have changed. The long mode is
``benchmarks/fuzz_http.py`` against a real ``qortex serve``.

The last tests pin three 500s found while building the fuzzing, one focused
test each: inputs schemathesis does not generate (bytes that are not UTF-8,
JSON nested past msgspec's depth limit, non-ASCII digits).
"""

from __future__ import annotations

import collections
import dataclasses
import re
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest
import schemathesis
from openapi_spec_validator import validate
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient

from benchmarks import fuzzing
from qortex import shapes
from qortex.keys import SCOPES
from qortex.settings import Settings
from qortex.signing import Signer
from qortex.web.app import create_app
from qortex.web.control import MinerStatusChange
from qortex.web.keys import KeyRequest
from qortex.web.miners import Registration, SignedResult
from qortex.web.tasks import TaskRequest
from qortex.web.webhooks import WebhookRequest
from tests.helpers import API_KEY, WORK_TABLES, timeout

EXAMPLES = 40  # per operation and generation mode; the long mode uses many more
UNDOCUMENTED = {"/ws/miner", "/static", "/docs/static"}  # a WebSocket, mounts of fixed files


def _document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json", headers={"x-api-key": ""})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def test_document_is_valid_openapi_3_1(client: TestClient) -> None:
    document = _document(client)
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"] == "Qortex"
    validate(document)  # raises on any violation of the 3.1 meta-schema
    assert client.get("/openapi.json").content == client.get("/openapi.json").content


def _template(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_every_route_is_documented(client: TestClient) -> None:
    served = set()
    for route in client.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, WebSocketRoute | Mount):
            assert route.path in UNDOCUMENTED, f"{route.path}: document it or explain why not"
            continue
        assert isinstance(route, Route)
        for method in route.methods or ():
            if method != "HEAD":
                served.add((method.lower(), _template(route.path)))
    documented = {
        (method, _template(path))
        for path, item in _document(client)["paths"].items()
        for method in item
    }
    assert documented == served


def test_request_bodies_are_msgspecs_own_schemas(client: TestClient) -> None:
    document = _document(client)
    _, expected = msgspec.json.schema_components(
        [TaskRequest, Registration, SignedResult, MinerStatusChange, KeyRequest, WebhookRequest],
        ref_template="#/components/schemas/{name}",
    )
    schemas = document["components"]["schemas"]
    for name, schema in expected.items():
        assert schemas[name] == schema
    bodies = {
        (path, method): item[method]["requestBody"]["content"]["application/json"]["schema"]
        for path, item in document["paths"].items()
        for method in item
        if "requestBody" in item[method]
    }
    assert bodies == {
        ("/api/v1/tasks", "post"): {"$ref": "#/components/schemas/TaskRequest"},
        ("/api/v1/miners/register", "post"): {"$ref": "#/components/schemas/Registration"},
        (fuzzing.RESULT, "post"): {"$ref": "#/components/schemas/SignedResult"},
        ("/api/v1/miners/{minerId}", "patch"): {"$ref": "#/components/schemas/MinerStatusChange"},
        ("/api/v1/keys", "post"): {"$ref": "#/components/schemas/KeyRequest"},
        ("/api/v1/webhooks", "post"): {"$ref": "#/components/schemas/WebhookRequest"},
    }


def test_answer_schemas_are_derived_from_the_shapes(client: TestClient) -> None:
    """Every JSON answer names a ``qortex.shapes`` struct, and its schema is msgspec's own."""
    document = _document(client)
    named = {
        answer["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        for item in document["paths"].values()
        for operation in item.values()
        for answer in operation["responses"].values()
        if "$ref" in answer.get("content", {}).get("application/json", {}).get("schema", {})
    }
    assert {"Error", "Task", "TaskCreated", "MinerDetail", "Stats", "Health"} <= named
    structs = [getattr(shapes, name) for name in sorted(named)]
    _, expected = msgspec.json.schema_components(
        structs, ref_template="#/components/schemas/{name}"
    )
    schemas = document["components"]["schemas"]
    for name, schema in expected.items():
        assert schemas[name] == schema, name


def test_the_api_key_is_declared_exactly_where_it_is_required(settings: Settings) -> None:
    # Every route is tried without a key: the quota on failed checks would end it early.
    unthrottled = dataclasses.replace(settings, auth_failure_burst=10**6)
    with TestClient(create_app(unthrottled)) as anonymous:
        for path, item in _document(anonymous)["paths"].items():
            for method, operation in item.items():
                url = re.sub(r"\{[^}]*\}", "x", path)
                body = {"content": b"{}"} if "requestBody" in operation else {}
                status = anonymous.request(method, url, **body).status_code
                assert (status == 401) == bool(operation["security"]), (method, path)


def test_each_scope_is_stated_and_enforced(client: TestClient) -> None:
    """A key with every scope but the one an operation states gets 403 there, and only there."""
    others = {
        scope: client.post(
            "/api/v1/keys",
            json={
                "name": f"not-{scope}",
                "scopes": [s for s in SCOPES if s != scope and s != "admin"],
            },
        ).json()["key"]
        for scope in ("read", "submit")
    }
    scoped = 0
    for path, item in _document(client)["paths"].items():
        for method, operation in item.items():
            if not operation["security"]:
                continue
            scope = operation["x-scope"]
            assert operation["security"][0] == {"apiKey": [scope]}
            assert f"`{scope}`" in operation["description"]
            url = re.sub(r"\{[^}]*\}", "x", path)
            body = {"content": b"{}"} if "requestBody" in operation else {}
            for held, key in others.items():
                lacks = held == scope or scope == "admin"
                if not lacks and path == "/api/v1/events":
                    continue  # an endless stream: the other key shows the route checks
                status = client.request(method, url, headers={"x-api-key": key}, **body).status_code
                assert (status == 403) == lacks, (method, path, held)
            scoped += 1
    assert scoped >= 15


def _config(examples: int) -> SchemathesisConfig:
    return fuzzing.config(API_KEY, 20240601, examples, max_steps=6, stream_seconds=0.1)


def _rows(db: str) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in WORK_TABLES}


# Hundreds of generated requests: slow on a busy machine, so a wider cap than 120 s.
@pytest.mark.timeout(timeout(300))
def test_fuzz_in_process(tmp_path: Path) -> None:
    """Schemathesis against the ASGI app: no 5xx, nothing undocumented, no silent 4xx."""
    db = str(tmp_path / "qortex.db")
    # Rate limits are tested in test_limits.py; here they would only turn the fuzz into 429s.
    unlimited = {
        f"{name}_burst": 10**9
        for name in ("api", "register", "identity", "auth_failure", "result", "handshake")
    }
    settings = Settings(
        db=db,
        api_key=API_KEY,
        replicas=3,
        max_request_bytes=64 * 1024,
        webhook_allow_networks=["127.0.0.0/8"],
        **unlimited,
    )
    app = create_app(settings)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=_config(EXAMPLES))
    signer = Signer.from_seed(b"fuzz" * 8)
    statuses: collections.Counter[tuple[str, int]] = collections.Counter()
    created_microtasks = 0

    def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
        fuzzing.keep_on_loopback(case.body)
        fuzzing.sign_some_results(case, signer)

    @schema.hook
    def after_call(context: Any, case: Any, response: Any) -> None:
        nonlocal created_microtasks
        statuses[(case.operation.label, response.status_code)] += 1
        if response.status_code == 201 and case.operation.path == "/api/v1/tasks":
            created_microtasks += response.json()["microtasks"]

    failures: list[str] = []
    schemathesis.hook(before_call)  # before_call hooks exist only globally
    try:
        register = schema["/api/v1/miners/register"]["POST"]
        registered = register.Case(body={"publicKey": signer.public_hex}).call()
        assert registered.status_code == 201
        before = _rows(db)
        for event in schemathesis.engine.from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                for nodes in event.recorder.checks.values():
                    for node in nodes:
                        if node.failure_info is not None:
                            failure = node.failure_info
                            failures.append(
                                f"{event.label} [{event.phase.value}] {node.name}: "
                                f"{failure.failure.title}\n{failure.code_sample}"
                            )
            elif isinstance(event, events.NonFatalError):  # in-process, a 500 raises too
                failures.append(f"{event.label}: {event.value!r}")
            elif isinstance(event, events.FatalError):
                failures.append(f"fatal: {event.exception!r}")
    finally:
        schemathesis.hooks.unregister(before_call)
        schemathesis.python.asgi.shutdown_lifespans()  # the app's lifespan: store closed

    assert not failures, "\n\n".join(sorted(set(failures)))
    operations = {label for label, _ in statuses}
    assert operations >= {op.ok().label for op in schema.get_all_operations()}
    assert statuses[("POST /api/v1/tasks", 201)] > 0, "the body examples were never accepted"
    assert statuses[(f"POST {fuzzing.RESULT}", 409)] > 0, "no signed result reached the coordinator"
    tasks_created = statuses[("POST /api/v1/tasks", 201)]
    # Rejected requests changed nothing: only the accepted tasks (no miner ran, so no
    # result) are new.
    after = _rows(db)
    assert after == {
        "tasks": before["tasks"] + tasks_created,
        "microtasks": before["microtasks"] + created_microtasks,
        "results": before["results"],
    }


# -- 500s found while fuzzing, each now a 400 ----------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/tasks", b'{"kind": "\xff\xfe"}'),
        ("/api/v1/miners/register", b'{"publicKey": "\xed\xa0\x80"}'),
        ("/internal/miner/" + "0" * 32 + "/result", b'{"output": "\xc3"}'),
    ],
    ids=["tasks", "register", "result"],
)
def test_invalid_utf8_inside_a_json_string_is_a_400(
    client: TestClient, path: str, body: bytes
) -> None:
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    # The wording after the colon is the JSON decoder's own, and varies between its versions.
    message = response.json()["message"]
    assert message.startswith("request body is not valid JSON: ")
    assert "UTF-8" in message


def test_json_nested_too_deeply_is_a_400(client: TestClient) -> None:
    depth = 10_000
    body = b'{"kind": "sentiment", "input": ' + b"[" * depth + b"]" * depth + b"}"
    response = client.post("/api/v1/tasks", content=body)
    assert response.status_code == 400
    assert response.json()["message"] == "request body is not valid JSON: nested too deeply"


@pytest.mark.parametrize(
    "last",
    [
        "\u00b2",  # SUPERSCRIPT TWO: str.isdigit() is true, int() refuses it
        "\u0661",  # ARABIC-INDIC DIGIT ONE: int() takes it, but it is no event id
        "9" * 5000,  # int() refuses more than 4300 digits
        str(2**63),  # too large for an SQLite integer
        "-1",
        "",
    ],
    ids=["superscript-two", "arabic-indic-one", "5000-digits", "2**63", "negative", "empty"],
)
def test_last_event_id_must_be_ascii_digits_an_sqlite_integer_holds(
    client: TestClient, last: str
) -> None:
    message = {"error": "InvalidInput", "message": "Last-Event-ID must be a non-negative integer"}
    query = client.get("/api/v1/events", params={"lastEventId": last})
    assert (query.status_code, query.json()) == (400, message)
    try:
        raw = last.encode("latin-1")  # header bytes, as a real server decodes them
    except UnicodeEncodeError:
        return
    if raw:
        header = client.get("/api/v1/events", headers={"last-event-id": raw})
        assert (header.status_code, header.json()) == (400, message)
