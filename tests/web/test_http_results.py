"""Registration and the signed-result route over HTTP, in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from starlette.testclient import TestClient

from qortex.settings import Settings
from qortex.signing import Signer, result_message
from tests.helpers import API_KEY, WORK_TABLES, snapshot
from tests.web.socketminer import submit, wait_status


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Without checkers: these tests are about the route, and disagree on purpose."""
    return Settings(
        db=str(tmp_path / "qortex.db"),
        api_key=API_KEY,
        replicas=3,
        max_request_bytes=64 * 1024,
        checker=False,
    )


def _signed(
    signer: Signer, assign: Any, output: bytes, input_sha256: str | None = None
) -> dict[str, str]:
    digest = assign.input_sha256 if input_sha256 is None else input_sha256
    message = result_message(assign.assignment_id, assign.microtask_id, digest, output)
    return {
        "assignmentId": assign.assignment_id,
        "microtaskId": assign.microtask_id,
        "output": output.decode(),
        "signature": signer.sign(message),
    }


def test_register_returns_the_derived_id_and_never_rewrites(client: TestClient) -> None:
    signer = Signer()
    first = client.post(
        "/api/v1/miners/register", json={"publicKey": signer.public_hex.upper(), "name": "laptop"}
    )
    assert first.status_code == 201
    assert first.json() == {"minerId": signer.miner_id, "publicKey": signer.public_hex}
    again = client.post(
        "/api/v1/miners/register", json={"publicKey": signer.public_hex, "name": "impostor"}
    )
    assert again.status_code == 200
    (miner,) = client.get("/api/v1/miners").json()["miners"]
    assert miner["name"] == "laptop" and miner["publicKey"] == signer.public_hex
    bad = client.post("/api/v1/miners/register", json={"publicKey": "xyz"})
    assert bad.status_code == 400 and "publicKey" in bad.json()["message"]


def test_result_over_http_counts_like_one_over_the_socket(
    client: TestClient, connect: Any, settings: Settings
) -> None:
    miner = connect()
    task_id = submit(client, ["what a lovely day"], replicas=1, targetError=0.2)
    assign = miner.work()
    url = f"/internal/miner/{miner.signer.miner_id}/result"
    before = snapshot(settings.db, WORK_TABLES)

    forged = client.post(url, json=_signed(Signer(), assign, b'"negative"'))
    assert forged.status_code == 401 and forged.json()["detail"]["reason"] == "bad_signature"
    elsewhere = client.post(url, json=_signed(miner.signer, assign, b'"positive"', "0" * 64))
    assert elsewhere.status_code == 401  # signed for an input that is not this assignment's
    unknown = client.post(
        "/internal/miner/" + "0" * 32 + "/result", json=_signed(miner.signer, assign, b'"positive"')
    )
    assert unknown.status_code == 404
    malformed = client.post(url, json={"assignmentId": assign.assignment_id})
    assert malformed.status_code == 400
    assert snapshot(settings.db, WORK_TABLES) == before
    # Nobody proved they are this miner, so the failures are not charged to it.
    assert client.get("/api/v1/miners").json()["miners"][0]["refused"] == 0

    accepted = client.post(url, json=_signed(miner.signer, assign, b'"positive"'))
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    replay = client.post(url, json=_signed(miner.signer, assign, b'"positive"'))
    assert replay.status_code == 409 and replay.json()["detail"]["reason"] == "duplicate"
    task = wait_status(client, task_id, "completed")
    assert task["output"] == [{"tweet": "what a lovely day", "label": "positive"}]


def test_disagreement_past_max_replicas_fails_the_task(client: TestClient, connect: Any) -> None:
    miners = [connect() for _ in range(3)]
    task_id = submit(client, ["hm"], replicas=3, quorum=3, maxReplicas=3, targetError=0.01)
    assigns = [miner.work() for miner in miners]
    miners[0].answer(assigns[0], "positive")
    miners[1].answer(assigns[1], "negative")  # quorum 3 of 3 can no longer be reached
    assert miners[2].next().reason == "inconclusive"  # its copy is cancelled, and says why
    task = wait_status(client, task_id, "failed")
    assert task["microtaskDetails"][0]["status"] == "inconclusive"
    assert task["output"] is None
    detailed = client.get(f"/api/v1/tasks/{task_id}", params={"outputs": "true"}).json()
    votes = detailed["microtaskDetails"][0]["votes"]
    assert sorted(v["output"] for v in votes) == ["negative", "positive"]
    assert {v["agrees"] for v in votes} == {None}  # no decision to agree with
    proof = client.get(f"/api/v1/tasks/{task_id}/proof").json()
    assert proof["microtasks"][0]["decision"] is None
    outputs = [msgspec.json.decode(v["output"]) for v in proof["microtasks"][0]["votes"]]
    assert sorted(outputs) == ["negative", "positive"]
