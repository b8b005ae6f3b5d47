"""Frames for fuzzing the protocol: valid hellos, broken ones, results, heartbeats, JSON."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from qortex.protocol import messages as m
from qortex.protocol.server import MAX_SLOTS
from qortex.signing import Signer

NONCE = "00112233445566778899aabbccddeeff"
KNOWN = frozenset({"sentiment", "matmul"})
SIGNERS = [Signer.from_seed(bytes([i]) * 32) for i in (1, 2)]
HEX = "0123456789abcdef"

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
wrong_for_str = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.lists(st.text(max_size=3), max_size=2)
)
wrong_for_int = (
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)


@st.composite
def hellos(draw: st.DrawFn) -> tuple[Signer, dict[str, Any]]:
    """An acceptable hello: any slots from 1 to 64, at least one kind run here, maybe more."""
    signer = draw(st.sampled_from(SIGNERS))
    kinds = draw(st.lists(st.sampled_from(["sentiment", "matmul", "nope", ""]), max_size=3))
    kinds.insert(draw(st.integers(0, len(kinds))), draw(st.sampled_from(sorted(KNOWN))))
    body: dict[str, Any] = {
        "type": "hello",
        "publicKey": signer.public_hex.upper() if draw(st.booleans()) else signer.public_hex,
        "kinds": kinds,
        "slots": draw(st.integers(1, MAX_SLOTS)),
        "software": draw(st.text(max_size=150)),
        "name": "fuzz",
    }
    if draw(st.booleans()):
        body["protocol"] = m.PROTOCOL_VERSION
    body.update(draw(st.dictionaries(st.sampled_from(["future", "x-y"]), json_values, max_size=1)))
    return signer, body


def not_bad_utf8_in_a_string(data: bytes) -> bool:
    """Leaves out bytes that could put invalid UTF-8 inside a JSON string.

    Those hit a known defect, pinned in test_session_defects.py;
    drop this filter once it is fixed.
    """
    if b'"' not in data:
        return True
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def encode(frame: Any) -> bytes:
    return json.dumps(frame).encode()


class Expect:
    """What docs/protocol.md says one frame does: an event kind, nothing, or a close code."""

    def __init__(self, event: type | None = None, close: int | None = None) -> None:
        self.event = event
        self.close = close


DAMAGES = {
    "protocol 0": lambda key: {"protocol": 0},
    "protocol 1 (signatures without the input)": lambda key: {"protocol": 1},
    "protocol 3": lambda key: {"protocol": 3},
    "short key": lambda key: {"publicKey": key[:62]},
    "long key": lambda key: {"publicKey": key + "00"},
    "key not hex": lambda key: {"publicKey": "g" + key[1:]},
    "key with a space": lambda key: {"publicKey": " " + key[:63]},
    "slots 0": lambda key: {"slots": 0},
    "slots 65": lambda key: {"slots": MAX_SLOTS + 1},
    "slots -1": lambda key: {"slots": -1},
    "no kind in common": lambda key: {"kinds": ["nope", ""]},
    "no kinds": lambda key: {"kinds": []},
}

assignment_ids = st.text(HEX, min_size=24, max_size=24)
microtask_ids = st.builds(
    lambda task, index: f"{task}:{index}", st.uuids().map(str), st.integers(0, 10**9 - 1)
)
results = st.fixed_dictionaries(
    {
        "type": st.just("result"),
        "assignmentId": assignment_ids,
        "microtaskId": microtask_ids,
        "output": st.text(max_size=40),
        "signature": st.text(max_size=130),
    },
    optional={"future": json_values},
)
heartbeats = st.fixed_dictionaries(
    {"type": st.just("heartbeat")}, optional={"timeMs": st.integers(-(2**70), 2**70)}
)
