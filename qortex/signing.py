"""What a miner signs, byte for byte, and how we check it.

Signatures never cover re-serialised JSON: two JSON libraries rarely agree on
bytes. A result signature covers a few lines of UTF-8 that any language builds
the same way, with the input represented by the SHA-256 of the exact bytes of
the ``input`` value of the assign frame, and the output by the SHA-256 of the
exact bytes the miner sent::

    qortex-result-v2 \\n <assignmentId> \\n <microtaskId> \\n <inputSha256>
        \\n <hex sha256 of output bytes>

Naming the input binds a signature to the work it answers: a proof bundle whose
inputs were edited no longer verifies. Version 1 signed the ids and the output
only; :func:`result_message_v1` rebuilds it to re-check bundles made with it.

The challenge answer proves the miner holds the private key for its hello::

    qortex-hello-v1 \\n <nonce>

Keys and signatures travel as lowercase hex; a miner's id is the first 32 hex
digits of the SHA-256 of its raw 32-byte public key.
"""

from __future__ import annotations

import hashlib
import re

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

RESULT_DOMAIN = "qortex-result-v2"
RESULT_DOMAIN_V1 = "qortex-result-v1"
HELLO_DOMAIN = "qortex-hello-v1"


def input_digest(raw: bytes) -> str:
    """The ``inputSha256`` of a microtask: lowercase hex SHA-256 of its input's JSON bytes."""
    return hashlib.sha256(raw).hexdigest()


def result_message(
    assignment_id: str, microtask_id: str, input_sha256: str, output: bytes
) -> bytes:
    """The bytes a result signature covers (protocol 2)."""
    digest = hashlib.sha256(output).hexdigest()
    lines = (RESULT_DOMAIN, assignment_id, microtask_id, input_sha256, digest)
    return "\n".join(lines).encode()


def result_message_v1(assignment_id: str, microtask_id: str, output: bytes) -> bytes:
    """The bytes a protocol 1 result signature covered; only for re-checking old proofs."""
    digest = hashlib.sha256(output).hexdigest()
    return f"{RESULT_DOMAIN_V1}\n{assignment_id}\n{microtask_id}\n{digest}".encode()


def hello_message(nonce: str) -> bytes:
    return f"{HELLO_DOMAIN}\n{nonce}".encode()


def miner_id_of(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:32]


_HEX = re.compile(r"[0-9a-fA-F]*")


def _hex(text: str, digits: int) -> bytes | None:
    """Exactly ``digits`` hex digits as bytes; ``bytes.fromhex`` alone would skip spaces."""
    if len(text) != digits or not _HEX.fullmatch(text):
        return None
    return bytes.fromhex(text)


def parse_public_key(text: str) -> VerifyKey:
    """A verify key from 64 hex digits; ``ValueError`` if it is not one."""
    raw = _hex(text, 64)
    if raw is None:
        raise ValueError("publicKey must be 64 hex digits (a raw ed25519 public key)")
    return VerifyKey(raw)


def verify(key: VerifyKey, message: bytes, signature_hex: str) -> bool:
    signature = _hex(signature_hex, 128)
    if signature is None:
        return False
    try:
        key.verify(message, signature)
    except BadSignatureError:
        return False
    return True


class Signer:
    """A miner's identity: an ed25519 key pair."""

    def __init__(self, key: SigningKey | None = None) -> None:
        self.key = key or SigningKey.generate()
        self.public_key = bytes(self.key.verify_key)
        self.public_hex = self.public_key.hex()
        self.miner_id = miner_id_of(self.public_key)

    @classmethod
    def from_seed(cls, seed: bytes) -> Signer:
        return cls(SigningKey(seed))

    @property
    def seed(self) -> bytes:
        return bytes(self.key)

    def sign(self, message: bytes) -> str:
        return self.key.sign(message).signature.hex()
