"""The miner's side of the protocol, driven frame by frame."""

from __future__ import annotations

import json

import msgspec
import pytest

from qortex.errors import ProtocolViolation
from qortex.protocol import messages as m
from qortex.protocol.client import (
    ClientSession,
    Mismatch,
    Reply,
    ResultAnswer,
    Welcomed,
    Withdrawn,
    Work,
)
from qortex.signing import (
    Signer,
    hello_message,
    input_digest,
    parse_public_key,
    result_message,
    verify,
)


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.from_seed(b"\x07" * 32)


@pytest.fixture
def client(signer: Signer) -> ClientSession:
    return ClientSession(signer, 3, ["sentiment", "echo"], "qortex-miner/0.1", name="rig-1")


def test_hello_frame(client: ClientSession, signer: Signer) -> None:
    assert json.loads(client.hello_frame()) == {
        "type": "hello",
        "publicKey": signer.public_hex,
        "protocol": 2,
        "software": "qortex-miner/0.1",
        "slots": 3,
        "kinds": ["sentiment", "echo"],
        "name": "rig-1",
    }
    assert client.miner_id == ""


def test_answers_a_challenge_with_a_signature_that_verifies(
    client: ClientSession, signer: Signer
) -> None:
    reply = client.receive(b'{"type":"challenge","nonce":"abc123"}')
    assert isinstance(reply, Reply)
    answer = json.loads(reply.frame)
    assert set(answer) == {"type", "signature"}
    assert answer["type"] == "answer"
    assert len(answer["signature"]) == 128
    key = parse_public_key(signer.public_hex)
    assert verify(key, hello_message("abc123"), answer["signature"])
    assert not verify(key, hello_message("abc124"), answer["signature"])
    # ed25519 is deterministic: the same challenge gives the same answer
    assert client.receive('{"type":"challenge","nonce":"abc123"}') == reply


def test_welcome_records_the_miner_id(client: ClientSession) -> None:
    event = client.receive(
        b'{"type":"welcome","minerId":"m-1","heartbeatSeconds":12.5,"maxMessageBytes":99}'
    )
    assert event == Welcomed("m-1", 12.5)
    assert client.miner_id == "m-1"


def assign_frame(raw_input: bytes, digest: str | None = None, aid: bytes = b"a-1") -> bytes:
    """An assign frame as the coordinator writes it; ``digest`` defaults to the right one."""
    digest = input_digest(raw_input) if digest is None else digest
    return (
        b'{"type":"assign","assignmentId":"' + aid + b'","microtaskId":"t:0","taskId":"t",'
        b'"kind":"sentiment","input":' + raw_input + b',"deadlineMs":5000,'
        b'"inputSha256":"' + digest.encode() + b'"}'
    )


def test_assign_keeps_the_input_as_raw_json(client: ClientSession) -> None:
    raw_input = b'{ "tweet" : "caf\\u00e9 \xf0\x9f\x98\x80",  "n": [1, 2.50] }'
    event = client.receive(assign_frame(raw_input))
    assert isinstance(event, Work)
    assign = event.assign
    assert isinstance(assign.input, msgspec.Raw)
    assert bytes(assign.input) == raw_input  # byte for byte, whitespace included
    assert assign.input_sha256 == input_digest(raw_input)
    assert (assign.assignment_id, assign.microtask_id, assign.task_id) == ("a-1", "t:0", "t")
    assert (assign.kind, assign.deadline_ms) == ("sentiment", 5000)


def test_assign_with_a_string_input(client: ClientSession) -> None:
    event = client.receive(assign_frame(b'"just text"').decode())
    assert isinstance(event, Work)
    assert bytes(event.assign.input) == b'"just text"'


def test_assign_inside_an_array_keeps_its_exact_input_bytes(client: ClientSession) -> None:
    frames = [assign_frame(b"[ 1,2 ]", aid=b"a-1"), assign_frame(b'"x"', aid=b"a-2")]
    events = client.receive_all(m.batch(frames).decode())
    assert [type(e) for e in events] == [Work, Work]
    assert [bytes(e.assign.input) for e in events if isinstance(e, Work)] == [b"[ 1,2 ]", b'"x"']


@pytest.mark.parametrize(
    ("raw_input", "digest"),
    [
        (b'"I love it"', input_digest(b'"I hate it"')),  # the input was swapped
        (b'"caf\\u00e9"', input_digest('"café"'.encode())),  # same value, other bytes
        (b'"x"', input_digest(b'"x"').upper()),  # not lowercase hex
        (b'"x"', ""),  # a server that sends no digest
    ],
)
def test_an_input_that_does_not_match_its_digest_is_not_work(
    client: ClientSession, raw_input: bytes, digest: str
) -> None:
    event = client.receive(assign_frame(raw_input, digest))
    assert isinstance(event, Mismatch)
    assert event.actual_sha256 == input_digest(raw_input)
    assert event.assign.input_sha256 == digest
    assert event.assign.assignment_id == "a-1"


def test_ack_refused_and_cancel(client: ClientSession) -> None:
    assert client.receive(b'{"type":"ack","assignmentId":"a-1"}') == ResultAnswer("a-1", True)
    assert client.receive(
        b'{"type":"refused","assignmentId":"a-2","reason":"late","message":"too slow"}'
    ) == ResultAnswer("a-2", False, "late")
    assert client.receive(b'{"type":"cancel","assignmentId":"a-3","reason":"expired"}') == (
        Withdrawn("a-3", "expired")
    )
    # cancel's reason defaults to "decided"
    assert client.receive(b'{"type":"cancel","assignmentId":"a-4"}') == Withdrawn("a-4", "decided")


def test_heartbeat_from_the_server_is_no_event(client: ClientSession) -> None:
    assert client.receive(b'{"type":"heartbeat","timeMs":5}') is None


@pytest.mark.parametrize(
    "data", [b'{"type":"nonsense"}', b'{"type":"hello","publicKey":"00"}', b'{"type":"v2-news"}']
)
def test_frame_types_it_does_not_know_are_skipped(client: ClientSession, data: bytes) -> None:
    # A newer server may send frames an older miner has never heard of.
    assert client.receive(data) is None


@pytest.mark.parametrize(
    "data",
    [
        b"garbage",
        b"",
        b"[1, 2]",
        b'{"type":"ack"}',  # missing assignmentId
        b'{"type":"ack","assignmentId":5}',
        b'{"type":"welcome","minerId":"m","heartbeatSeconds":"x","maxMessageBytes":1}',
        b'{"type":"assign","assignmentId":"a","microtaskId":"m","taskId":"t","kind":"k",'
        b'"input":{"x":1},"deadlineMs":"soon"}',
        b'{"type":"challenge"}',
    ],
)
def test_garbage_raises_protocol_violation(client: ClientSession, data: bytes) -> None:
    with pytest.raises(ProtocolViolation) as info:
        client.receive(data)
    assert info.value.close_code == m.BAD_FRAME == 4000
    assert info.value.message.startswith("invalid frame from server: ")


def test_result_frame_is_signed_over_the_input_digest_and_exact_output(
    client: ClientSession, signer: Signer
) -> None:
    digest = input_digest(b"{}")
    assign = m.Assign("a-9", "t:3", "t", "sentiment", msgspec.Raw(b"{}"), 0, digest)
    output = '{"label":"négatif"}'.encode()
    body = json.loads(client.result_frame(assign, output))
    assert body["type"] == "result"
    assert body["assignmentId"] == "a-9"
    assert body["microtaskId"] == "t:3"
    assert body["output"].encode() == output
    key = parse_public_key(signer.public_hex)
    assert verify(key, result_message("a-9", "t:3", digest, output), body["signature"])
    assert not verify(key, result_message("a-9", "t:4", digest, output), body["signature"])
    other = input_digest(b"[]")
    assert not verify(key, result_message("a-9", "t:3", other, output), body["signature"])


def test_heartbeat_frame() -> None:
    assert json.loads(ClientSession.heartbeat_frame(123)) == {"type": "heartbeat", "timeMs": 123}


def test_a_message_may_hold_an_array_of_frames(client: ClientSession) -> None:
    message = m.batch(
        [
            b'{"type":"ack","assignmentId":"a1"}',
            b'{"type":"from-the-future","x":1}',
            b'{"type":"cancel","assignmentId":"a2","reason":"decided"}',
        ]
    )
    events = client.receive_all(message)
    assert [type(e).__name__ for e in events] == ["ResultAnswer", "Withdrawn"]
    assert client.receive_all(b'  {"type":"ack","assignmentId":"a3"}') == [ResultAnswer("a3", True)]


def test_a_bad_frame_inside_an_array_is_still_refused(client: ClientSession) -> None:
    with pytest.raises(ProtocolViolation):
        client.receive_all(b'[{"type":"ack"}]')
    with pytest.raises(ProtocolViolation):
        client.receive_all(b"[1, 2")
