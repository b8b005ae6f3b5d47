"""``tests/vectors/signing.json``: the worked signing example of docs/protocol.md, as data.

The same file is checked against the browser miner's own code in
``tests/browser``; here every value is re-derived with the coordinator's code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from qortex.signing import (
    Signer,
    hello_message,
    miner_id_of,
    parse_public_key,
    result_message,
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
        "outputSha256": 64,
        "resultSignature": 128,
        "utf8OutputSha256": 64,
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


def test_result_signature(vector: dict[str, Any], signer: Signer) -> None:
    output = vector["output"].encode()
    assert output.hex() == vector["outputBytesHex"]
    assert json.loads(vector["output"]) == "positive"
    assert hashlib.sha256(output).hexdigest() == vector["outputSha256"]
    message = result_message(vector["assignmentId"], vector["microtaskId"], output)
    assert message == vector["resultMessage"].encode()
    assert len(message) == 145 and not message.endswith(b"\n")
    assert message.split(b"\n") == [
        b"qortex-result-v1",
        vector["assignmentId"].encode(),
        vector["microtaskId"].encode(),
        vector["outputSha256"].encode(),
    ]
    assert signer.sign(message) == vector["resultSignature"]
    key = parse_public_key(vector["publicKey"])
    assert verify(key, message, vector["resultSignature"])
    assert not verify(key, message, vector["challengeSignature"])  # domains keep them apart


def test_utf8_output_is_hashed_as_utf8(vector: dict[str, Any]) -> None:
    output = vector["utf8Output"].encode("utf-8")
    assert output.hex() == vector["utf8OutputBytesHex"] == "22636166c3a922"
    assert hashlib.sha256(output).hexdigest() == vector["utf8OutputSha256"]


def test_the_protocol_document_shows_the_same_example(vector: dict[str, Any]) -> None:
    """The vectors are the doc's worked example: a change to one must change the other."""
    doc = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    for name in ("seed", "publicKey", "publicKeySha256", "minerId", "nonce", "outputSha256"):
        assert vector[name] in doc, name
    for name in ("challengeSignature", "resultSignature"):
        signature = vector[name]
        assert signature in doc, name  # in the example frames, whole
        assert signature[:64] in doc and signature[64:] in doc, name  # and wrapped
    assert vector["assignmentId"] in doc and vector["microtaskId"] in doc
    assert vector["utf8OutputSha256"] in doc
