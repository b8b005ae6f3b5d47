"""Defects the session state machine found, pinned: bad UTF-8 and deep nesting
inside frames, padded signatures, arrays handled frame by frame.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from qortex.errors import ProtocolViolation
from qortex.protocol import messages as m
from qortex.protocol.server import AWAITING_HELLO, READY, Authenticated, ServerSession
from qortex.signing import hello_message
from tests.core.frames import KNOWN, NONCE, SIGNERS, encode


def _ready_session() -> ServerSession:
    session = ServerSession(NONCE, KNOWN)
    signer = SIGNERS[0]
    session.receive(
        encode({"type": "hello", "publicKey": signer.public_hex, "kinds": ["sentiment"]})
    )
    event = session.receive(
        encode({"type": "answer", "signature": signer.sign(hello_message(NONCE))})
    )
    assert isinstance(event, Authenticated)
    return session


def _decoded_string_fields(state: str) -> list[tuple[str, dict[str, Any]]]:
    signer = SIGNERS[0]
    if state == AWAITING_HELLO:
        body = {
            "type": "hello",
            "publicKey": signer.public_hex,
            "kinds": ["sentiment"],
            "name": "n",
        }
        return [("publicKey", body), ("name", body)]
    body = {
        "type": "result",
        "assignmentId": "a1" * 12,
        "microtaskId": "3f0c0d4e-0000-4000-8000-000000000009:0",
        "output": '"x"',
        "signature": "00",
    }
    return [(name, body) for name in ("assignmentId", "microtaskId", "output", "signature")]


UTF8_CASES = [
    (state, name, bad)
    for state in (AWAITING_HELLO, READY)
    for name, _ in _decoded_string_fields(state)
    for bad in (b"\xff", b"\xc3\x28", b"\xed\xa0\x80")
]


@pytest.mark.parametrize(("state", "name", "bad"), UTF8_CASES)
def test_invalid_utf8_inside_a_string_closes_4000(state: str, name: str, bad: bytes) -> None:
    body = dict(_decoded_string_fields(state))[name]
    marker = "\u0001MARK\u0001"
    data = json.dumps({**body, name: marker}).encode().replace(b"\\u0001MARK\\u0001", bad)
    assert bad in data
    session = _ready_session() if state == READY else ServerSession(NONCE, KNOWN)
    with pytest.raises(ProtocolViolation) as info:
        list(session.receive_all(data))
    assert info.value.close_code == m.BAD_FRAME


@pytest.mark.parametrize("state", [AWAITING_HELLO, READY])
@pytest.mark.parametrize("depth", [1_000, 100_000])
@pytest.mark.parametrize("shape", ["array message", "nested field"])
def test_deeply_nested_json_closes_with_a_protocol_code(state: str, depth: int, shape: str) -> None:
    nested = "[" * depth + "]" * depth
    data = nested if shape == "array message" else '{"type":"heartbeat","deep":' + nested + "}"
    session = _ready_session() if state == READY else ServerSession(NONCE, KNOWN)
    try:
        list(session.receive_all(data))
    except ProtocolViolation as exc:
        assert 4000 <= exc.close_code <= 4999


@pytest.mark.parametrize("spacing", [" {}", "{} ", "{}\n", "sep"])
def test_an_answer_signature_must_be_128_hex_characters(spacing: str) -> None:
    signer = SIGNERS[0]
    session = ServerSession(NONCE, KNOWN)
    session.receive(
        encode({"type": "hello", "publicKey": signer.public_hex, "kinds": ["sentiment"]})
    )
    valid = signer.sign(hello_message(NONCE))
    if spacing == "sep":
        signature = " ".join(valid[i : i + 2] for i in range(0, 128, 2))
    else:
        signature = spacing.format(valid)
    assert len(signature) != 128
    with pytest.raises(ProtocolViolation) as info:
        session.receive(encode({"type": "answer", "signature": signature}))
    assert info.value.close_code == m.AUTH_FAILED


def test_frames_before_a_bad_frame_in_an_array_are_still_handled() -> None:
    session = _ready_session()
    handled: list[Any] = []
    beat = {"type": "heartbeat"}
    with pytest.raises(ProtocolViolation):
        for event in session.receive_all(encode([beat, beat, {"type": "bogus"}])):
            handled.append(event)
    assert len(handled) == 2
