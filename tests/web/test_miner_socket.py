"""The miner WebSocket in-process: the real protocol classes over Starlette's test socket."""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from qortex.kinds.sentiment import SentimentKind
from qortex.protocol import messages as m
from qortex.protocol.client import ClientSession, ResultAnswer, Withdrawn
from qortex.settings import Settings
from qortex.signing import Signer, input_digest, result_message, result_message_v1
from tests.helpers import API_KEY, WORK_TABLES, labels, snapshot, timeout
from tests.web.socketminer import SocketMiner, submit, wait_status

KIND = SentimentKind()


@pytest.fixture(params=[0, 2], ids=["verify-on-loop", "verify-on-threads"])
def settings(request: pytest.FixtureRequest, tmp_path: Any) -> Settings:
    """Every socket test runs with signatures checked on the loop and on worker threads."""
    return Settings(
        db=str(tmp_path / "qortex.db"),
        api_key=API_KEY,
        replicas=3,
        max_request_bytes=64 * 1024,
        verify_threads=request.param,
    )


def test_three_miners_decide_a_task(client: TestClient, connect: Any) -> None:
    tweets = ["I love it", "I hate it"]
    miners = [connect(slots=2) for _ in range(3)]
    task_id = submit(client, tweets)
    for miner in miners:
        # A new miner has earned one slot: it gets its next copy once it answers.
        # Two agreeing checked results decide (quorum 2 of 3), so a third copy may
        # be withdrawn before its result counts: that is no fault of its miner.
        first = miner.work()
        miner.answer(first)
        assert miner.verdict(first.assignment_id).reason in ("", "withdrawn")
        second = miner.work(skip_withdrawn=True)
        miner.answer(second)
        assert {first.task_id, second.task_id} == {task_id}
        assert first.microtask_id != second.microtask_id  # distinct microtasks per miner
    task = wait_status(client, task_id, "completed")
    assert [item["label"] for item in task["output"]] == labels(tweets)
    for mt in task["microtaskDetails"]:
        assert mt["status"] == "decided"
        assert len({v["minerId"] for v in mt["votes"]}) == len(mt["votes"]) >= 2
        assert all(v["agrees"] is True for v in mt["votes"])  # honest miners all agree
        assert all("output" not in v for v in mt["votes"])


def test_ack_only_after_commit_and_results_are_stored(
    client: TestClient, connect: Any, settings: Settings
) -> None:
    miner = connect()
    submit(client, ["nice"], replicas=1)
    assign = miner.work()
    miner.answer(assign)
    verdict = miner.next()
    assert verdict == ResultAnswer(assign.assignment_id, True)
    # The ack came after the commit, so the row is already in the file.
    results = snapshot(settings.db, ("results",))["results"]
    assert [r[0] for r in results] == [assign.assignment_id]


def _refusal(miner: SocketMiner) -> ResultAnswer:
    while True:
        event = miner.next()
        if isinstance(event, ResultAnswer):
            assert not event.accepted
            return event


def test_forged_signature_is_refused_and_changes_nothing(
    client: TestClient, connect: Any, settings: Settings
) -> None:
    miner = connect()
    submit(client, ["nice"], replicas=1)
    assign = miner.work()
    before = snapshot(settings.db, WORK_TABLES)
    forger = Signer()
    output = b'"negative"'
    ids = (assign.assignment_id, assign.microtask_id)
    assert assign.input_sha256 == input_digest(bytes(assign.input)) == input_digest(b'"nice"')
    signature = forger.sign(result_message(*ids, assign.input_sha256, output))
    miner.send(m.Result(*ids, output.decode(), signature))
    assert _refusal(miner).reason == "bad_signature"
    # Signed for another input:
    elsewhere = miner.signer.sign(result_message(*ids, input_digest(b'"nasty"'), output))
    miner.send(m.Result(*ids, output.decode(), elsewhere))
    assert _refusal(miner).reason == "bad_signature"
    # Signed the way protocol 1 did, without the input:
    old = miner.signer.sign(result_message_v1(*ids, output))
    miner.send(m.Result(*ids, output.decode(), old))
    assert _refusal(miner).reason == "bad_signature"
    # Output altered after signing:
    good = miner.signer.sign(result_message(*ids, assign.input_sha256, output))
    miner.send(m.Result(assign.assignment_id, assign.microtask_id, '"positive"', good))
    assert _refusal(miner).reason == "bad_signature"
    # Unsigned:
    miner.send(m.Result(assign.assignment_id, assign.microtask_id, '"positive"', ""))
    assert _refusal(miner).reason == "bad_signature"
    assert snapshot(settings.db, WORK_TABLES) == before
    miners = client.get("/api/v1/miners").json()["miners"]
    assert miners[0]["minerId"] == miner.signer.miner_id
    deadline = time.monotonic() + timeout(20)
    while client.get("/api/v1/miners").json()["miners"][0]["refused"] != 5:
        assert time.monotonic() < deadline


def test_someone_elses_assignment_and_replays_are_refused(
    client: TestClient, connect: Any, settings: Settings
) -> None:
    alice, bob = connect(), connect()
    submit(client, ["nice"], replicas=2)
    a_assign, b_assign = alice.work(), bob.work()
    assert a_assign.microtask_id == b_assign.microtask_id
    assert a_assign.assignment_id != b_assign.assignment_id
    before = snapshot(settings.db, WORK_TABLES)
    # Bob signs a result for Alice's assignment with his own key:
    bob.answer(a_assign)
    assert _refusal(bob).reason == "not_your_assignment"
    # Bob replays Alice's own signed frame: refused before its signature is even looked at.
    frame = alice.session.result_frame(a_assign, b'"positive"')
    bob.ws.send_text(frame.decode())
    assert _refusal(bob).reason == "not_your_assignment"
    # Alice's signature over Bob's own assignment does not verify under Bob's key.
    bob.ws.send_text(alice.session.result_frame(b_assign, b'"positive"').decode())
    assert _refusal(bob).reason == "bad_signature"
    # An assignment nobody was given:
    bob.answer(m.Assign("0" * 24, b_assign.microtask_id, "t", "sentiment", msgspec.Raw(b'"x"'), 0))
    assert _refusal(bob).reason == "unknown_assignment"
    # The right assignment but a made-up microtask:
    bob.answer(
        m.Assign(
            b_assign.assignment_id, f"{uuid.uuid4()}:0", "t", "sentiment", msgspec.Raw(b'"x"'), 0
        )
    )
    assert _refusal(bob).reason == "wrong_microtask"
    assert snapshot(settings.db, WORK_TABLES) == before
    # Alice's honest result counts once; the replay of it is a duplicate.
    alice.ws.send_text(frame.decode())
    assert alice.next() == ResultAnswer(a_assign.assignment_id, True)
    alice.ws.send_text(frame.decode())
    assert _refusal(alice).reason == "duplicate"


def test_output_that_is_not_json_is_refused(client: TestClient, connect: Any) -> None:
    miner = connect()
    submit(client, ["nice"], replicas=1)
    assign = miner.work()
    frame = miner.session.result_frame(assign, b"not json")
    miner.ws.send_text(frame.decode())
    assert _refusal(miner).reason == "bad_output"
    miner.answer(assign)  # the lease is still held: a correct result still counts
    assert miner.next() == ResultAnswer(assign.assignment_id, True)


def test_late_result_is_refused_and_the_copy_goes_elsewhere(
    client: TestClient, connect: Any
) -> None:
    slow = connect()
    task_id = submit(client, ["nice"], replicas=1, leaseSeconds=0.2)
    assign = slow.work()
    assert slow.next() == Withdrawn(assign.assignment_id, "expired")
    slow.answer(assign)
    assert _refusal(slow).reason == "late"
    # A miner that let a copy expire never gets that microtask again; a new one does.
    other = connect()
    spare = other.work()
    assert spare.microtask_id == assign.microtask_id
    assert spare.assignment_id != assign.assignment_id
    other.answer(spare)
    wait_status(client, task_id, "completed")


def test_disconnect_releases_leases_at_once(client: TestClient, connect: Any) -> None:
    task_id = submit(client, ["nice"], replicas=1, leaseSeconds=3600)
    with client.websocket_connect("/ws/miner") as ws:
        leaver = SocketMiner(ws)
        leaver.handshake()
        first = leaver.work()
    other = connect()  # connects after the leaver left: the copy must be waiting for it
    again = other.work()
    assert again.microtask_id == first.microtask_id
    other.answer(again)
    task = wait_status(client, task_id, "completed")
    assert task["microtaskDetails"][0]["votes"][0]["minerId"] == other.signer.miner_id


def test_same_key_twice_replaces_the_older_socket(client: TestClient) -> None:
    signer = Signer()
    with client.websocket_connect("/ws/miner") as first:
        SocketMiner(first, signer).handshake()
        with client.websocket_connect("/ws/miner") as second:
            SocketMiner(second, signer).handshake()
            with pytest.raises(WebSocketDisconnect) as closed:
                first.receive_text()
            assert closed.value.code == m.REPLACED


def test_heartbeat_is_answered(connect: Any) -> None:
    miner = connect()
    miner.send(m.Heartbeat(1))
    reply = m.server_decoder.decode(miner.ws.receive_text())
    assert isinstance(reply, m.Heartbeat) and reply.time_ms > 0


def _closed_with(client: TestClient, frames: list[Any]) -> int:
    with client.websocket_connect("/ws/miner") as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            for frame in frames:
                ws.send_text(frame if isinstance(frame, str) else frame.decode())
            while True:
                ws.receive_text()
        return closed.value.code


def test_protocol_violations_close_with_their_codes(client: TestClient) -> None:
    signer = Signer()
    hello = ClientSession(signer, 1, ["sentiment"], "test").hello_frame()
    assert _closed_with(client, ["not json"]) == m.BAD_FRAME
    assert _closed_with(client, ['{"type": "bogus"}']) == m.BAD_FRAME
    assert _closed_with(client, ['{"type": "hello"}']) == m.BAD_FRAME
    assert _closed_with(client, [m.encoder.encode(m.Answer("00"))]) == m.UNEXPECTED
    assert (
        _closed_with(
            client, [m.encoder.encode(m.Hello(signer.public_hex, protocol=1, kinds=["sentiment"]))]
        )
        == m.UNSUPPORTED
    )
    assert _closed_with(client, [m.encoder.encode(m.Hello("abcd", kinds=["sentiment"]))]) == (
        m.BAD_HELLO
    )
    assert (
        _closed_with(
            client, [m.encoder.encode(m.Hello(signer.public_hex, slots=0, kinds=["sentiment"]))]
        )
        == m.BAD_HELLO
    )
    assert (
        _closed_with(client, [m.encoder.encode(m.Hello(signer.public_hex, kinds=["video"]))])
        == m.BAD_HELLO
    )
    wrong = m.encoder.encode(m.Answer(Signer().sign(b"qortex-hello-v1\nwhatever")))
    assert _closed_with(client, [hello, wrong]) == m.AUTH_FAILED


@pytest.fixture
def quick_settings(tmp_path: Any) -> Settings:
    return Settings(
        db=str(tmp_path / "q.db"), api_key=API_KEY, heartbeat_seconds=0.2, handshake_seconds=0.5
    )


def test_a_slow_handshake_is_closed(quick_settings: Settings) -> None:
    from qortex.web.app import create_app

    with (
        TestClient(create_app(quick_settings)) as client,
        client.websocket_connect("/ws/miner") as ws,
    ):
        started = time.monotonic()
        for _ in range(3):  # heartbeats before the handshake do not buy time
            ws.send_text(m.encoder.encode(m.Heartbeat(1)).decode())
            time.sleep(0.1)
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        assert closed.value.code == m.TIMEOUT
        assert time.monotonic() - started < timeout(5)


def test_a_silent_miner_is_closed_and_its_leases_released(quick_settings: Settings) -> None:
    from qortex.web.app import create_app

    with TestClient(create_app(quick_settings), headers={"x-api-key": API_KEY}) as client:
        with client.websocket_connect("/ws/miner") as ws:
            miner = SocketMiner(ws)
            miner.handshake()
            submit(client, ["nice"], replicas=1)
            miner.work()
            with pytest.raises(WebSocketDisconnect) as closed:
                while True:
                    miner.next()
            assert closed.value.code == m.TIMEOUT
        deadline = time.monotonic() + timeout(20)
        while client.get("/health").json()["leasesOut"] != 0:
            assert time.monotonic() < deadline, "the silent miner kept its lease"
            time.sleep(0.05)


def test_frames_ready_together_travel_in_one_message(client: TestClient, connect: Any) -> None:
    miner = connect(slots=4)
    # Three checks passed earn it the four slots it declared.
    submit(client, ["x", "y", "z"], replicas=1)
    for _ in range(3):
        warmup = miner.work()
        miner.answer(warmup)
        assert miner.verdict(warmup.assignment_id).accepted
    before = miner.messages
    submit(client, ["a", "b", "c", "d"], replicas=1)
    assigns = [miner.work() for _ in range(4)]
    assert miner.messages - before == 1  # four assignments placed in one pass, one message
    # A miner may batch too: four results in one array, answered by the acks of one commit.
    frames = [
        miner.session.result_frame(
            a, msgspec.json.encode(KIND.compute(msgspec.json.decode(a.input)))
        )
        for a in assigns
    ]
    miner.ws.send_text(m.batch(frames).decode())
    verdicts = [miner.next() for _ in range(4)]
    assert {v.assignment_id for v in verdicts} == {a.assignment_id for a in assigns}
    assert all(v.accepted for v in verdicts)
    assert miner.messages - before <= 3
