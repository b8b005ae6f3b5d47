"""The coordinator's side of a miner connection, driven frame by frame."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from qortex.errors import ProtocolViolation
from qortex.protocol import messages as m
from qortex.protocol.client import ClientSession, Reply
from qortex.protocol.server import (
    AWAITING_ANSWER,
    AWAITING_HELLO,
    MAX_SLOTS,
    READY,
    Authenticated,
    Challenged,
    HeartbeatIn,
    ResultIn,
    ServerSession,
)
from qortex.signing import (
    Signer,
    hello_message,
    input_digest,
    miner_id_of,
    result_message,
    result_message_v1,
)

NONCE = "5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5"
KINDS = frozenset({"sentiment", "echo"})


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.from_seed(bytes(range(32)))


@pytest.fixture(scope="module")
def other() -> Signer:
    return Signer.from_seed(bytes(range(1, 33)))


def frame(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def hello(signer: Signer, **over: Any) -> bytes:
    body: dict[str, Any] = {
        "type": "hello",
        "publicKey": signer.public_hex,
        "protocol": 2,
        "software": "test-miner/1",
        "slots": 4,
        "kinds": ["sentiment"],
        "name": "bench",
    }
    body.update(over)
    return json.dumps(body).encode()


def violation(session: ServerSession, data: str | bytes) -> ProtocolViolation:
    with pytest.raises(ProtocolViolation) as info:
        session.receive(data)
    assert 4000 <= info.value.close_code <= 4999
    assert info.value.detail == {"close_code": info.value.close_code}
    return info.value


def ready(signer: Signer) -> ServerSession:
    session = ServerSession(NONCE, KINDS)
    client = ClientSession(signer, 4, ["sentiment"], "test-miner/1")
    challenged = session.receive(client.hello_frame())
    assert isinstance(challenged, Challenged)
    reply = client.receive(challenged.frame)
    assert isinstance(reply, Reply)
    event = session.receive(reply.frame)
    assert isinstance(event, Authenticated)
    return session


INPUT = b'"hi"'
DIGEST = input_digest(INPUT)
TASK = "3f0c0d4e-0000-4000-8000-000000000009"
AID_1, AID_2 = "a1" * 12, "a2" * 12


def assign_for(aid: str = AID_1, mid: str = f"{TASK}:0") -> m.Assign:
    return m.Assign(aid, mid, TASK, "sentiment", msgspec.Raw(INPUT), 1234, DIGEST)


# -- the handshake ----------------------------------------------------------------


def test_full_handshake_with_a_real_signer(signer: Signer) -> None:
    session = ServerSession(NONCE, KINDS)
    assert session.state == AWAITING_HELLO
    challenged = session.receive(hello(signer, kinds=["sentiment", "nope", "sentiment"]))
    assert challenged == Challenged(session.challenge_frame())
    assert json.loads(challenged.frame) == {"type": "challenge", "nonce": NONCE}
    assert session.state == AWAITING_ANSWER
    answer = frame(type="answer", signature=signer.sign(hello_message(NONCE)))
    event = session.receive(answer)
    assert event == Authenticated(
        miner_id=signer.miner_id,
        public_key=signer.public_hex,
        slots=4,
        kinds=("sentiment",),
        software="test-miner/1",
        name="bench",
    )
    assert session.state == READY
    assert session.miner_id == miner_id_of(bytes.fromhex(signer.public_hex))
    assert len(session.miner_id) == 32


def test_handshake_through_client_session(signer: Signer) -> None:
    session = ServerSession(NONCE, KINDS)
    client = ClientSession(signer, 2, ["echo", "sentiment", "other"], "sw", name="n")
    challenged = session.receive(client.hello_frame())
    assert isinstance(challenged, Challenged)
    reply = client.receive(challenged.frame)
    assert isinstance(reply, Reply)
    event = session.receive(reply.frame)
    assert isinstance(event, Authenticated)
    assert event.miner_id == signer.miner_id
    assert event.kinds == ("echo", "sentiment")  # hello order, only kinds we run
    assert event.slots == 2
    assert (event.software, event.name) == ("sw", "n")


def test_handshake_accepts_str_frames(signer: Signer) -> None:
    session = ServerSession(NONCE, KINDS)
    assert isinstance(session.receive(hello(signer).decode()), Challenged)
    answer = frame(type="answer", signature=signer.sign(hello_message(NONCE))).decode()
    assert isinstance(session.receive(answer), Authenticated)


def test_hello_defaults_and_software_truncation(signer: Signer) -> None:
    session = ServerSession(NONCE, KINDS)
    data = frame(
        type="hello",
        publicKey=signer.public_hex,
        kinds=["echo"],
        software="s" * 300,
        name="é" * 101,
    )
    session.receive(data)
    event = session.receive(frame(type="answer", signature=signer.sign(hello_message(NONCE))))
    assert isinstance(event, Authenticated)
    assert event.slots == 1
    assert event.software == "s" * 100
    assert event.name == "é" * 100


def test_unknown_fields_are_ignored(signer: Signer) -> None:
    session = ServerSession(NONCE, KINDS)
    assert isinstance(session.receive(hello(signer, future="field")), Challenged)
    assert session.state == AWAITING_ANSWER


def test_welcome_frame_carries_the_miner_id(signer: Signer) -> None:
    session = ready(signer)
    welcome = json.loads(session.welcome_frame(15.0, 1024, "qortex/0.1"))
    assert welcome == {
        "type": "welcome",
        "minerId": signer.miner_id,
        "heartbeatSeconds": 15.0,
        "maxMessageBytes": 1024,
        "protocol": 2,
        "server": "qortex/0.1",
    }


def test_heartbeat_frame() -> None:
    assert json.loads(ServerSession.heartbeat_frame(42)) == {"type": "heartbeat", "timeMs": 42}


# -- violations -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"not json", b"", b"{", b"\xff\xfe", "{'type': 'hello'}"],
)
def test_non_json_is_a_bad_frame(data: bytes | str) -> None:
    err = violation(ServerSession(NONCE, KINDS), data)
    assert err.close_code == m.BAD_FRAME == 4000


@pytest.mark.parametrize(
    "data",
    [
        b'{"type": "launch"}',
        b'{"type": "challenge", "nonce": "x"}',  # a server frame from a miner
        b'{"publicKey": "00"}',  # no type at all
        b"[]",
        b"42",
        b"null",
        b'"hello"',
    ],
)
def test_unknown_type_or_non_object_is_a_bad_frame(data: bytes) -> None:
    assert violation(ServerSession(NONCE, KINDS), data).close_code == 4000


@pytest.mark.parametrize(
    "over",
    [
        {"slots": "4"},
        {"slots": 1.5},
        {"slots": True},
        {"kinds": "sentiment"},
        {"kinds": [1, 2]},
        {"protocol": "1"},
        {"publicKey": 1234},
        {"software": None},
    ],
)
def test_wrong_field_types_are_a_bad_frame(signer: Signer, over: dict[str, Any]) -> None:
    session = ServerSession(NONCE, KINDS)
    assert violation(session, hello(signer, **over)).close_code == 4000
    assert session.state == AWAITING_HELLO


def test_missing_required_field_is_a_bad_frame() -> None:
    assert violation(ServerSession(NONCE, KINDS), b'{"type": "hello"}').close_code == 4000


def test_wrong_types_in_answer_and_result_are_bad_frames(signer: Signer) -> None:
    session = ServerSession(NONCE, KINDS)
    session.receive(hello(signer))
    assert violation(session, frame(type="answer", signature=5)).close_code == 4000
    session = ready(signer)
    bad = frame(
        type="result", assignmentId=AID_1, microtaskId=f"{TASK}:0", output={"x": 1}, signature="s"
    )
    assert violation(session, bad).close_code == 4000


def test_result_before_welcome_is_unexpected(signer: Signer) -> None:
    result = frame(
        type="result", assignmentId=AID_1, microtaskId=f"{TASK}:0", output="1", signature="00"
    )
    session = ServerSession(NONCE, KINDS)
    err = violation(session, result)
    assert err.close_code == m.UNEXPECTED == 4002
    assert err.message == "expected hello, got result"
    session = ServerSession(NONCE, KINDS)
    session.receive(hello(signer))
    err = violation(session, result)
    assert err.close_code == 4002
    assert err.message == "expected answer, got result"


def test_answer_before_hello_is_unexpected(signer: Signer) -> None:
    session = ServerSession(NONCE, KINDS)
    answer = frame(type="answer", signature=signer.sign(hello_message(NONCE)))
    err = violation(session, answer)
    assert err.close_code == 4002
    assert "expected hello" in err.message
    assert session.state == AWAITING_HELLO


def test_second_hello_is_unexpected(signer: Signer) -> None:
    session = ServerSession(NONCE, KINDS)
    session.receive(hello(signer))
    assert violation(session, hello(signer)).close_code == 4002
    session = ready(signer)
    err = violation(session, hello(signer))
    assert err.close_code == 4002
    assert err.message == "hello is not expected after welcome"
    answer = frame(type="answer", signature=signer.sign(hello_message(NONCE)))
    assert violation(session, answer).close_code == 4002


@pytest.mark.parametrize("version", [0, 1, 3, 99])
def test_other_protocol_versions_are_unsupported(signer: Signer, version: int) -> None:
    err = violation(ServerSession(NONCE, KINDS), hello(signer, protocol=version))
    assert err.close_code == m.UNSUPPORTED == 4003
    assert f"protocol {version} is not supported" in err.message
    # an older miner learns what changed and what to do about it
    assert "speaks protocol 2" in err.message
    assert "input digest" in err.message and "upgrade the miner" in err.message


@pytest.mark.parametrize(
    "key",
    [
        "",
        "00" * 31,  # too short
        "00" * 33,  # too long
        "zz" * 32,  # not hex, right length
        "0" * 63,
        "g" + "0" * 63,
    ],
)
def test_bad_public_key_is_a_bad_hello(key: str) -> None:
    session = ServerSession(NONCE, KINDS)
    data = frame(type="hello", publicKey=key, slots=1, kinds=["sentiment"])
    assert violation(session, data).close_code == m.BAD_HELLO == 4005
    assert session.state == AWAITING_HELLO


@pytest.mark.parametrize("slots", [0, -1, MAX_SLOTS + 1, 1000])
def test_slots_out_of_range_is_a_bad_hello(signer: Signer, slots: int) -> None:
    err = violation(ServerSession(NONCE, KINDS), hello(signer, slots=slots))
    assert err.close_code == 4005
    assert "slots must be between 1 and 64" in err.message


@pytest.mark.parametrize("slots", [1, MAX_SLOTS])
def test_slot_bounds_are_accepted(signer: Signer, slots: int) -> None:
    session = ServerSession(NONCE, KINDS)
    assert isinstance(session.receive(hello(signer, slots=slots)), Challenged)
    event = session.receive(frame(type="answer", signature=signer.sign(hello_message(NONCE))))
    assert isinstance(event, Authenticated)
    assert event.slots == slots
    assert MAX_SLOTS == 64


@pytest.mark.parametrize("kinds", [[], ["other"], ["Sentiment", "ECHO"]])
def test_no_common_kind_is_a_bad_hello(signer: Signer, kinds: list[str]) -> None:
    err = violation(ServerSession(NONCE, KINDS), hello(signer, kinds=kinds))
    assert err.close_code == 4005
    assert err.message == "no kind in common; this server runs echo, sentiment"


def test_challenge_signed_by_another_key_fails(signer: Signer, other: Signer) -> None:
    session = ServerSession(NONCE, KINDS)
    session.receive(hello(signer))
    err = violation(session, frame(type="answer", signature=other.sign(hello_message(NONCE))))
    assert err.close_code == m.AUTH_FAILED == 4001
    assert session.state == AWAITING_ANSWER
    assert session.miner_id == ""


@pytest.mark.parametrize(
    "message",
    [
        hello_message("another nonce"),
        NONCE.encode(),  # without the domain
        result_message("a", NONCE, "", b""),
    ],
)
def test_challenge_signed_over_another_message_fails(signer: Signer, message: bytes) -> None:
    session = ServerSession(NONCE, KINDS)
    session.receive(hello(signer))
    assert violation(session, frame(type="answer", signature=signer.sign(message))).close_code == (
        4001
    )


@pytest.mark.parametrize("signature", ["", "zz", "00" * 64, "ab" * 63])
def test_malformed_challenge_signature_fails(signer: Signer, signature: str) -> None:
    session = ServerSession(NONCE, KINDS)
    session.receive(hello(signer))
    assert violation(session, frame(type="answer", signature=signature)).close_code == 4001


def test_another_sessions_nonce_fails(signer: Signer) -> None:
    client = ClientSession(signer, 1, ["sentiment"], "sw")
    first = ServerSession("nonce-one", KINDS)
    second = ServerSession("nonce-two", KINDS)
    challenged = first.receive(client.hello_frame())
    second.receive(client.hello_frame())
    assert isinstance(challenged, Challenged)
    reply = client.receive(challenged.frame)
    assert isinstance(reply, Reply)
    assert violation(second, reply.frame).close_code == 4001
    assert isinstance(first.receive(reply.frame), Authenticated)


# -- after ready ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "output",
    [b'"positive"', b'{"label": "caf\xc3\xa9", "n": [1, 2.5]}', b"", b'"\\u00e9 \\n"'],
)
def test_correctly_signed_result_is_accepted_with_exact_bytes(
    signer: Signer, output: bytes
) -> None:
    session = ready(signer)
    client = ClientSession(signer, 4, ["sentiment"], "sw")
    assign = assign_for()
    event = session.receive(client.result_frame(assign, output))
    assert isinstance(event, ResultIn) and session.check(event, DIGEST)
    assert event.output == output
    assert event.result.assignment_id == AID_1
    assert event.result.microtask_id == f"{TASK}:0"
    assert event.result.output == output.decode()
    assert session.state == READY


def test_result_signed_by_another_key_is_a_bad_signature(signer: Signer, other: Signer) -> None:
    session = ready(signer)
    stranger = ClientSession(other, 1, ["sentiment"], "sw")
    event = session.receive(stranger.result_frame(assign_for(), b'"positive"'))
    assert isinstance(event, ResultIn) and not session.check(event, DIGEST)
    assert event.result.assignment_id == AID_1
    assert session.state == READY


def _tampered(signer: Signer, **change: str) -> bytes:
    client = ClientSession(signer, 1, ["sentiment"], "sw")
    body = json.loads(client.result_frame(assign_for(), b'"positive"'))
    body.update(change)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    "change",
    [
        {"output": '"negative"'},
        {"output": '"positive" '},
        {"assignmentId": AID_2},
        {"microtaskId": f"{TASK}:1"},
        {"signature": "00" * 64},
        {"signature": "nothex"},
        {"signature": ""},
    ],
)
def test_altered_results_are_bad_signatures(signer: Signer, change: dict[str, str]) -> None:
    session = ready(signer)
    untouched = session.receive(_tampered(signer))
    assert isinstance(untouched, ResultIn) and session.check(untouched, DIGEST)
    event = session.receive(_tampered(signer, **change))
    assert isinstance(event, ResultIn) and not session.check(event, DIGEST)
    for key, value in change.items():
        field = {"assignmentId": "assignment_id", "microtaskId": "microtask_id"}.get(key, key)
        assert getattr(event.result, field) == value


def test_a_result_checks_only_against_the_input_it_was_assigned(signer: Signer) -> None:
    session = ready(signer)
    event = session.receive(_tampered(signer))
    assert isinstance(event, ResultIn) and session.check(event, DIGEST)
    assert not session.check(event, input_digest(b'"bye"'))  # another input's digest
    assert not session.check(event, input_digest(b' "hi"'))  # same value, other bytes
    assert not session.check(event, "")  # the coordinator knew of no input


def test_a_version_1_signature_no_longer_counts(signer: Signer) -> None:
    session = ready(signer)
    body = json.loads(_tampered(signer))
    body["signature"] = signer.sign(result_message_v1(AID_1, f"{TASK}:0", b'"positive"'))
    event = session.receive(json.dumps(body))
    assert isinstance(event, ResultIn) and not session.check(event, DIGEST)


@pytest.mark.parametrize(
    "change",
    [
        {"assignmentId": "as-2"},
        {"assignmentId": "A1" * 12},
        {"assignmentId": "a" * 1_000_000},
        {"microtaskId": "task-9:1"},
        {"microtaskId": f"{TASK}:01"},
        {"microtaskId": f"{TASK}:0" + "0" * 100},
    ],
)
def test_identifiers_out_of_format_are_bad_frames(signer: Signer, change: dict[str, str]) -> None:
    session = ready(signer)
    err = violation(session, _tampered(signer, **change))
    assert err.close_code == m.BAD_FRAME
    field = next(iter(change))
    assert err.message.endswith(f"at `$.{field}`") and len(err.message.encode()) <= 123


def test_heartbeat_before_ready_is_ignored_and_after_ready_is_reported(signer: Signer) -> None:
    beat = ServerSession.heartbeat_frame(7)
    session = ServerSession(NONCE, KINDS)
    assert session.receive(beat) is None
    assert session.state == AWAITING_HELLO
    assert isinstance(session.receive(hello(signer)), Challenged)
    assert session.receive(beat) is None
    assert session.state == AWAITING_ANSWER
    session.receive(frame(type="answer", signature=signer.sign(hello_message(NONCE))))
    assert session.receive(beat) == HeartbeatIn()
    assert session.receive(b'{"type": "heartbeat"}') == HeartbeatIn()


def test_bad_frame_after_ready_still_closes(signer: Signer) -> None:
    session = ready(signer)
    assert violation(session, b"garbage").close_code == 4000
    assert violation(session, b'{"type": "mystery"}').close_code == 4000


def test_close_codes_table() -> None:
    assert m.CLOSE_CODES == {
        4000: "bad frame",
        4001: "authentication failed",
        4002: "unexpected frame",
        4003: "unsupported protocol version",
        4004: "replaced by a newer connection",
        4005: "bad hello",
        4008: "slow reader",
        4009: "timeout",
        4010: "rate limited",
        4011: "banned",
        4012: "come back later",
        4013: "address limit",
    }
