"""Scoped, revocable API keys in-process: made, listed, scoped, revoked, kept across restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from qortex.settings import Settings
from qortex.web.app import adopt_new_key, create_app
from tests.helpers import snapshot


def _make(client: TestClient, name: str, scopes: list[str]) -> str:
    response = client.post("/api/v1/keys", json={"name": name, "scopes": scopes})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == name and body["scopes"] == sorted(scopes)
    return str(body["key"])


def test_a_key_is_shown_once_and_stored_hashed(client: TestClient, settings: Settings) -> None:
    key = _make(client, "ci", ["submit", "read"])
    listed = client.get("/api/v1/keys").json()["keys"]
    assert [k["name"] for k in listed] == ["configured", "ci"]
    assert all("key" not in k for k in listed)
    assert key.encode() not in Path(settings.db).read_bytes()
    created = client.post("/api/v1/tasks", json={"tweets": ["a"]}, headers={"x-api-key": key})
    assert created.status_code == 201


def test_a_read_key_cannot_submit_and_changes_nothing(
    client: TestClient, settings: Settings
) -> None:
    key = _make(client, "reader", ["read"])
    before = snapshot(settings.db)
    refused = client.post("/api/v1/tasks", json={"tweets": ["a"]}, headers={"x-api-key": key})
    assert refused.status_code == 403
    assert "needs 'submit'" in refused.json()["message"]
    assert snapshot(settings.db) == before
    assert client.get("/api/v1/tasks", headers={"x-api-key": key}).status_code == 200
    assert client.get("/api/v1/keys", headers={"x-api-key": key}).status_code == 403


def test_a_submit_key_cannot_manage_keys_but_admin_holds_every_scope(client: TestClient) -> None:
    submit = _make(client, "submitter", ["submit"])
    admin = _make(client, "second-admin", ["admin"])
    assert client.get("/api/v1/tasks", headers={"x-api-key": submit}).status_code == 403
    body = {"name": "x", "scopes": ["read"]}
    assert client.post("/api/v1/keys", json=body, headers={"x-api-key": submit}).status_code == 403
    assert client.post("/api/v1/keys", json=body, headers={"x-api-key": admin}).status_code == 201
    assert client.get("/api/v1/tasks", headers={"x-api-key": admin}).status_code == 200


def test_a_revoked_key_is_refused_at_once(client: TestClient) -> None:
    key = _make(client, "temp", ["read"])
    assert client.get("/api/v1/tasks", headers={"x-api-key": key}).status_code == 200
    revoked = client.delete("/api/v1/keys/temp")
    assert revoked.status_code == 200 and revoked.json()["revokedAt"] is not None
    refused = client.get("/api/v1/tasks", headers={"x-api-key": key})
    assert refused.status_code == 401 and "revoked" in refused.json()["message"]
    assert client.delete("/api/v1/keys/temp").status_code == 200  # revoking twice is fine
    # The name stays taken, so a log line naming it always means one key.
    assert client.post("/api/v1/keys", json={"name": "temp", "scopes": ["read"]}).status_code == 409


def test_keys_and_revocations_survive_a_restart(settings: Settings, tmp_path: Path) -> None:
    headers = {"x-api-key": settings.api_key}
    with TestClient(create_app(settings), headers=headers) as client:
        kept = _make(client, "kept", ["read"])
        gone = _make(client, "gone", ["read"])
        client.delete("/api/v1/keys/gone")
    with TestClient(create_app(settings), headers=headers) as client:
        assert client.get("/api/v1/tasks", headers={"x-api-key": kept}).status_code == 200
        assert client.get("/api/v1/tasks", headers={"x-api-key": gone}).status_code == 401


def test_without_a_configured_key_a_first_admin_key_is_made_once(tmp_path: Path) -> None:
    settings = Settings(db=str(tmp_path / "q.db"))
    app = create_app(settings)
    with TestClient(app) as client:
        listed = client.get("/api/v1/keys")
        assert listed.status_code == 401
        # Made once the server listens (qortex serve calls this then), and only once.
        key = client.portal.call(adopt_new_key, app)
        assert key is not None and client.portal.call(adopt_new_key, app) is None
        assert client.get("/api/v1/keys", headers={"x-api-key": key}).status_code == 200
    import sqlite3

    rows = sqlite3.connect(settings.db).execute("SELECT name, scopes FROM api_keys").fetchall()
    assert rows == [("admin", "admin")]


BAD: list[tuple[str, Any, int, str]] = [
    ("unknown scope", {"name": "a", "scopes": ["read", "root"]}, 400, "unknown scope root"),
    ("no scope", {"name": "a", "scopes": []}, 400, "at least one scope"),
    ("bad name", {"name": "a b", "scopes": ["read"]}, 400, "key name"),
    ("long name", {"name": "a" * 65, "scopes": ["read"]}, 400, "key name"),
    ("reserved name", {"name": "configured", "scopes": ["read"]}, 400, "key name"),
    ("no name", {"scopes": ["read"]}, 400, "name"),
    ("extra field", {"name": "a", "scopes": ["read"], "admin": True}, 400, "admin"),
]


@pytest.mark.parametrize(("case", "body", "status", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_key_requests_change_nothing(
    client: TestClient, settings: Settings, case: str, body: Any, status: int, message: str
) -> None:
    before = snapshot(settings.db)
    response = client.post("/api/v1/keys", json=body)
    assert response.status_code == status
    assert message in response.json()["message"]
    assert snapshot(settings.db) == before


def test_the_configured_key_cannot_be_revoked_and_unknown_names_are_404(
    client: TestClient,
) -> None:
    assert client.delete("/api/v1/keys/configured").status_code == 409
    assert client.delete("/api/v1/keys/nobody").status_code == 404
