"""``tests/vectors/signing.json``: the worked signing example of docs/protocol.md, as data.

The same file is checked against the browser miner's own code in
``tests/browser``; here every value is re-derived with the coordinator's code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from qortex.protocol import messages as m
from qortex.signing import (
    Signer,
    hello_message,
    input_digest,
    miner_id_of,
    parse_public_key,
    result_message,
    result_message_v1,
    verify,
)

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors" / "signing.json"
PKCS8_ED25519_PREFIX = "302e020100300506032b657004220420"


@pytest.fixture(scope="module")
def vector() -> dict[str, Any]:
    return json.loads(VECTORS.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def signer(vector: dict[str, Any]) -> Signer:
    return Signer.from_seed(bytes.fromhex(vector["seed"]))


def test_every_hex_value_is_lowercase_and_sized(vector: dict[str, Any]) -> None:
    sizes = {
        "seed": 64,
        "publicKey": 64,
        "publicKeySha256": 64,
        "minerId": 32,
        "challengeSignature": 128,
        "inputSha256": 64,
        "outputSha256": 64,
        "resultSignature": 128,
        "v1ResultSignature": 128,
        "utf8OutputSha256": 64,
        "escapedInputSha256": 64,
    }
    for name, size in sizes.items():
        value = vector[name]
        assert len(value) == size, name
        assert value == value.lower() and bytes.fromhex(value), name


def test_key_and_miner_id(vector: dict[str, Any], signer: Signer) -> None:
    assert signer.seed.hex() == vector["seed"]
    assert signer.public_hex == vector["publicKey"]
    assert hashlib.sha256(signer.public_key).hexdigest() == vector["publicKeySha256"]
    assert miner_id_of(signer.public_key) == vector["minerId"] == signer.miner_id
    assert vector["publicKeySha256"].startswith(vector["minerId"])
    # The PKCS#8 form WebCrypto imports: a fixed prefix and the seed.
    assert vector["pkcs8"] == PKCS8_ED25519_PREFIX + vector["seed"]


def test_challenge_answer(vector: dict[str, Any], signer: Signer) -> None:
    message = hello_message(vector["nonce"])
    assert message == vector["challengeMessage"].encode()
    assert message.hex() == vector["challengeMessageHex"]
    assert len(message) == 48
    assert signer.sign(message) == vector["challengeSignature"]
    key = parse_public_key(vector["publicKey"])
    assert verify(key, message, vector["challengeSignature"])
    assert not verify(key, message + b"\n", vector["challengeSignature"])


def test_the_assign_frame_carries_the_input_and_its_digest(vector: dict[str, Any]) -> None:
    frame = m.server_decoder.decode(vector["assignFrame"])
    assert isinstance(frame, m.Assign)
    assert (frame.assignment_id, frame.microtask_id) == (
        vector["assignmentId"],
        vector["microtaskId"],
    )
    raw = bytes(frame.input)
    assert raw == vector["input"].encode() and raw.hex() == vector["inputBytesHex"]
    assert json.loads(raw) == "I love my new phone!"
    assert input_digest(raw) == hashlib.sha256(raw).hexdigest() == vector["inputSha256"]
    assert frame.input_sha256 == vector["inputSha256"]
    # the coordinator's encoder writes this very frame, byte for byte
    again = m.Assign(
        frame.assignment_id,
        frame.microtask_id,
        frame.task_id,
        frame.kind,
        msgspec.Raw(raw),
        frame.deadline_ms,
        input_sha256=input_digest(raw),
    )
    assert m.encoder.encode(again).decode() == vector["assignFrame"]


def test_the_digest_is_of_the_input_bytes_not_its_value(vector: dict[str, Any]) -> None:
    escaped = vector["escapedInput"].encode()
    plain = vector["utf8Output"].encode()  # the same string value, written without the escape
    assert json.loads(escaped) == json.loads(plain) == "café"
    assert escaped.hex() == vector["escapedInputBytesHex"]
    assert input_digest(escaped) == vector["escapedInputSha256"]
    assert input_digest(plain) == vector["utf8OutputSha256"] != vector["escapedInputSha256"]


def test_result_signature(vector: dict[str, Any], signer: Signer) -> None:
    output = vector["output"].encode()
    assert output.hex() == vector["outputBytesHex"]
    assert json.loads(vector["output"]) == "positive"
    assert hashlib.sha256(output).hexdigest() == vector["outputSha256"]
    message = result_message(
        vector["assignmentId"], vector["microtaskId"], vector["inputSha256"], output
    )
    assert message == vector["resultMessage"].encode()
    assert len(message) == 210 and not message.endswith(b"\n")
    assert message.split(b"\n") == [
        b"qortex-result-v2",
        vector["assignmentId"].encode(),
        vector["microtaskId"].encode(),
        vector["inputSha256"].encode(),
        vector["outputSha256"].encode(),
    ]
    assert signer.sign(message) == vector["resultSignature"]
    key = parse_public_key(vector["publicKey"])
    assert verify(key, message, vector["resultSignature"])
    assert not verify(key, message, vector["challengeSignature"])  # domains keep them apart
    # another input under the same ids and output is another message
    other = result_message(
        vector["assignmentId"], vector["microtaskId"], vector["escapedInputSha256"], output
    )
    assert not verify(key, other, vector["resultSignature"])


def test_the_version_1_result_signature(vector: dict[str, Any], signer: Signer) -> None:
    """Kept so proof bundles signed before protocol 2 can still be re-checked."""
    output = vector["output"].encode()
    message = result_message_v1(vector["assignmentId"], vector["microtaskId"], output)
    assert message == vector["v1ResultMessage"].encode()
    assert message.split(b"\n") == [
        b"qortex-result-v1",
        vector["assignmentId"].encode(),
        vector["microtaskId"].encode(),
        vector["outputSha256"].encode(),
    ]
    assert signer.sign(message) == vector["v1ResultSignature"]
    key = parse_public_key(vector["publicKey"])
    assert not verify(key, message, vector["resultSignature"])  # versions keep them apart


def test_utf8_output_is_hashed_as_utf8(vector: dict[str, Any]) -> None:
    output = vector["utf8Output"].encode("utf-8")
    assert output.hex() == vector["utf8OutputBytesHex"] == "22636166c3a922"
    assert hashlib.sha256(output).hexdigest() == vector["utf8OutputSha256"]


def test_the_protocol_document_shows_the_same_example(vector: dict[str, Any]) -> None:
    """The vectors are the doc's worked example: a change to one must change the other."""
    doc = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    names = ("seed", "publicKey", "publicKeySha256", "minerId", "nonce", "outputSha256")
    for name in (*names, "inputSha256", "assignFrame"):
        assert vector[name] in doc, name
    for name in ("challengeSignature", "resultSignature"):
        signature = vector[name]
        assert signature in doc, name  # in the example frames, whole
        assert signature[:64] in doc and signature[64:] in doc, name  # and wrapped
    assert vector["assignmentId"] in doc and vector["microtaskId"] in doc
    assert vector["utf8OutputSha256"] in doc
    assert vector["escapedInputSha256"] in doc
