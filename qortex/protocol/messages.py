"""Every frame of the miner protocol, as frozen typed structs.

Frames are JSON text objects with a ``type`` field; field names are camelCase
on the wire. New fields always get defaults, so older miners keep decoding.
What a miner sends is bounded by the formats in :mod:`qortex.protocol.formats`
as it is decoded, so an identifier of the wrong shape never reaches the store.
"""

from __future__ import annotations

import msgspec

from qortex.protocol.formats import AssignmentId, KindList, MicrotaskId

#: 2: a result signature names the SHA-256 of the microtask's input (``inputSha256``).
PROTOCOL_VERSION = 2


class Frame(
    msgspec.Struct, frozen=True, tag_field="type", rename="camel", forbid_unknown_fields=False
):
    pass


# -- miner to coordinator ---------------------------------------------------


class Hello(Frame, tag="hello"):
    public_key: str  # checked by the session: a bad key is a bad hello (4005), not a bad frame
    kinds: KindList
    protocol: int = PROTOCOL_VERSION
    software: str = ""  # cut to MAX_LABEL characters
    slots: int = 1
    name: str = ""  # cut to MAX_LABEL characters


class Answer(Frame, tag="answer"):
    signature: str


class Result(Frame, tag="result"):
    assignment_id: AssignmentId
    microtask_id: MicrotaskId
    output: str
    signature: str


class Heartbeat(Frame, tag="heartbeat"):
    time_ms: int = 0


# -- coordinator to miner ---------------------------------------------------


class Challenge(Frame, tag="challenge"):
    nonce: str


class Welcome(Frame, tag="welcome"):
    miner_id: str
    heartbeat_seconds: float
    max_message_bytes: int
    protocol: int = PROTOCOL_VERSION
    server: str = ""


class Assign(Frame, tag="assign"):
    """One copy of a microtask to compute.

    ``input`` holds the exact bytes of the JSON value as sent, and
    ``input_sha256`` their SHA-256 in hex: the result signature names it, and a
    miner that can recomputes it to be sure it computes what it will sign for.
    """

    assignment_id: str
    microtask_id: str
    task_id: str
    kind: str
    input: msgspec.Raw
    deadline_ms: int
    input_sha256: str = ""


class Ack(Frame, tag="ack"):
    assignment_id: str


class Refused(Frame, tag="refused"):
    assignment_id: str
    reason: str
    message: str = ""


class Cancel(Frame, tag="cancel"):
    assignment_id: str
    reason: str = "decided"


MinerFrame = Hello | Answer | Result | Heartbeat
ServerFrame = Challenge | Welcome | Assign | Ack | Refused | Cancel | Heartbeat

# Application close codes (4000-4999); the reason text says more.
BAD_FRAME = 4000  # not JSON, unknown type, wrong or missing fields
AUTH_FAILED = 4001  # the challenge answer did not verify
UNEXPECTED = 4002  # a frame not allowed at this point of the conversation
UNSUPPORTED = 4003  # protocol version not spoken here
REPLACED = 4004  # the same key connected again from a newer socket
SLOW_READER = 4008  # the miner does not read what it is sent
BAD_HELLO = 4005  # malformed public key, slots out of range, no kind we run
TIMEOUT = 4009  # handshake too slow, or silent past the heartbeat limit
RATE_LIMITED = 4010  # more frames per second than the coordinator allows
BANNED = 4011  # the miner failed a check (or the operator banned it): never come back
UNAVAILABLE = 4012  # the coordinator cannot record results now (disk full); come back later
ADDRESS_LIMIT = 4013  # too many handshakes or new identities from one address

CLOSE_CODES = {
    BAD_FRAME: "bad frame",
    AUTH_FAILED: "authentication failed",
    UNEXPECTED: "unexpected frame",
    UNSUPPORTED: "unsupported protocol version",
    REPLACED: "replaced by a newer connection",
    BAD_HELLO: "bad hello",
    SLOW_READER: "slow reader",
    TIMEOUT: "timeout",
    RATE_LIMITED: "rate limited",
    BANNED: "banned",
    UNAVAILABLE: "come back later",
    ADDRESS_LIMIT: "address limit",
}

SERVER_TYPES = frozenset(t.__struct_config__.tag for t in ServerFrame.__args__)

_peek = msgspec.json.Decoder(dict)


def frame_type(data: str | bytes) -> str | None:
    """The ``type`` of a JSON object frame, or ``None``; for skipping unknown frames."""
    try:
        value = _peek.decode(data).get("type")
    except UNREADABLE:  # also covers ValidationError: not a JSON object
        return None
    return value if isinstance(value, str) else None


_batch = msgspec.json.Decoder(list[msgspec.Raw])

#: Everything decoding untrusted bytes can raise: bad JSON or types, bad UTF-8
#: inside a binary message, nesting deeper than the decoder recurses.
UNREADABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def frames_of(data: str | bytes) -> list[bytes | str]:
    """The frames in one message: a message holds a frame, or a JSON array of frames.

    Senders put every frame that is ready at the same moment into one message,
    so a busy connection pays for one send, not one per frame.
    """
    head = data.lstrip()[:1]
    if head in ("[", b"["):
        try:
            return [bytes(raw) for raw in _batch.decode(data)]
        except UNREADABLE:
            pass  # let the frame decoder name the problem
    return [data]


def batch(frames: list[bytes]) -> bytes:
    """One message holding ``frames``, in order."""
    return frames[0] if len(frames) == 1 else b"[" + b",".join(frames) + b"]"


miner_decoder = msgspec.json.Decoder(MinerFrame)
server_decoder = msgspec.json.Decoder(ServerFrame)
encoder = msgspec.json.Encoder()
