"""The malformed frames tried, each with the answer docs/protocol.md gives it."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

from qortex.signing import Signer
from tests.faults.frames import DROP, NO_TASK, hello_body, result_frame

# (stage, name, frames, expected answer(s), field the close reason must name)
Malformed = tuple[str, str, Sequence[Any], str | tuple[str, ...], str | None]


def malformed_cases(signer: Signer, rng: random.Random, rnd: int) -> list[Malformed]:
    pk = signer.public_hex
    h = hello_body
    cases: list[Malformed] = [
        ("fresh", "not JSON", ["hello?"], "close 4000", None),
        ("fresh", "JSON array", ["[1, 2]"], "close 4000", None),
        ("fresh", "JSON string", ['"hello"'], "close 4000", None),
        ("fresh", "empty object", ["{}"], "close 4000", None),
        ("fresh", "empty text", [""], "close 4000", None),
        ("fresh", "unknown type", [json.dumps({"type": "bogus"})], "close 4000", None),
        (
            "fresh",
            "type is case-sensitive",
            [json.dumps(h(signer, type="HELLO"))],
            "close 4000",
            None,
        ),
        ("fresh", "type not a string", [json.dumps(h(signer, type=1))], "close 4000", None),
        (
            "fresh",
            "hello without publicKey",
            [json.dumps(h(signer, publicKey=DROP))],
            "close 4000",
            "publicKey",
        ),
        (
            "fresh",
            "hello without kinds",
            [json.dumps(h(signer, kinds=DROP))],
            "close 4000",
            "kinds",
        ),
        ("fresh", "slots as a string", [json.dumps(h(signer, slots="2"))], "close 4000", "slots"),
        ("fresh", "slots as 2.0", [json.dumps(h(signer, slots=2.0))], "close 4000", "slots"),
        ("fresh", "slots as true", [json.dumps(h(signer, slots=True))], "close 4000", "slots"),
        (
            "fresh",
            "kinds as a string",
            [json.dumps(h(signer, kinds="sentiment"))],
            "close 4000",
            "kinds",
        ),
        (
            "fresh",
            "kinds with a number",
            [json.dumps(h(signer, kinds=["sentiment", 3]))],
            "close 4000",
            "kinds",
        ),
        ("fresh", "name null", [json.dumps(h(signer, name=None))], "close 4000", "name"),
        (
            "fresh",
            "protocol as a string",
            [json.dumps(h(signer, protocol="1"))],
            "close 4000",
            "protocol",
        ),
        (
            "fresh",
            "publicKey as a number",
            [json.dumps(h(signer, publicKey=12))],
            "close 4000",
            "publicKey",
        ),
        ("fresh", "protocol 1", [json.dumps(h(signer, protocol=1))], "close 4003", None),
        ("fresh", "protocol 3", [json.dumps(h(signer, protocol=3))], "close 4003", None),
        ("fresh", "protocol 0", [json.dumps(h(signer, protocol=0))], "close 4003", None),
        (
            "fresh",
            "publicKey not hex",
            [json.dumps(h(signer, publicKey="zz" * 32))],
            "close 4005",
            None,
        ),
        (
            "fresh",
            "publicKey too short",
            [json.dumps(h(signer, publicKey=pk[:62]))],
            "close 4005",
            None,
        ),
        (
            "fresh",
            "publicKey too long",
            [json.dumps(h(signer, publicKey=pk + "00"))],
            "close 4005",
            None,
        ),
        (
            "fresh",
            "publicKey with spaces",
            [json.dumps(h(signer, publicKey=" " + pk[:63]))],
            "close 4005",
            None,
        ),
        ("fresh", "slots 0", [json.dumps(h(signer, slots=0))], "close 4005", None),
        ("fresh", "slots 65", [json.dumps(h(signer, slots=65))], "close 4005", None),
        ("fresh", "slots -1", [json.dumps(h(signer, slots=-1))], "close 4005", None),
        ("fresh", "kinds empty", [json.dumps(h(signer, kinds=[]))], "close 4005", None),
        ("fresh", "no kind in common", [json.dumps(h(signer, kinds=["nope"]))], "close 4005", None),
        (
            "fresh",
            "protocol checked before publicKey",
            [json.dumps(h(signer, protocol=3, publicKey="x"))],
            "close 4003",
            None,
        ),
        (
            "fresh",
            "answer before hello",
            [json.dumps({"type": "answer", "signature": "00"})],
            "close 4002",
            None,
        ),
        (
            "fresh",
            "result before hello",
            [result_frame(signer, "a" * 24, f"{NO_TASK}:0", b'"positive"')],
            "close 4002",
            None,
        ),
        ("fresh", "binary frame, not UTF-8", [b"\xff\xfe\x00garbage"], "close 4000", None),
        (
            "fresh",
            "binary hello, publicKey not UTF-8",
            [b'{"type":"hello","publicKey":"\xc3\x28","kinds":["sentiment"]}'],
            "close 4000",
            None,
        ),
        ("fresh", "array nested 100000 deep", ["[" * 100_000 + "]" * 100_000], "close 4000", None),
        (
            "fresh",
            "hello with a field nested 100000 deep",
            [json.dumps(h(signer))[:-1] + ',"x":' + "[" * 100_000 + "]" * 100_000 + "}"],
            "close 4000",
            None,
        ),
        ("fresh", "text frame, not UTF-8", [("text", b'{"type":"\xff"}')], "close 1007", None),
        ("hello", "second hello", [json.dumps(h(signer))], "close 4002", None),
        (
            "hello",
            "result before welcome",
            [result_frame(signer, "a" * 24, f"{NO_TASK}:0", b'"positive"')],
            "close 4002",
            None,
        ),
        (
            "hello",
            "answer without signature",
            [json.dumps({"type": "answer"})],
            "close 4000",
            "signature",
        ),
        (
            "hello",
            "answer signature a number",
            [json.dumps({"type": "answer", "signature": 7})],
            "close 4000",
            "signature",
        ),
        (
            "hello",
            "unknown type while awaiting the answer",
            [json.dumps({"type": "x"})],
            "close 4000",
            None,
        ),
        ("ready", "second hello after welcome", [json.dumps(h(signer))], "close 4002", None),
        (
            "ready",
            "answer after welcome",
            [json.dumps({"type": "answer", "signature": "00"})],
            "close 4002",
            None,
        ),
        ("ready", "unknown type after welcome", [json.dumps({"type": "ping"})], "close 4000", None),
        (
            "ready",
            "server frame type sent by the miner",
            [json.dumps({"type": "ack", "assignmentId": "x"})],
            "close 4000",
            None,
        ),
        ("ready", "not JSON after welcome", ["{not json"], "close 4000", None),
        ("ready", "truncated JSON", ['{"type":"heartbeat","timeMs":1'], "close 4000", None),
        ("ready", "JSON number", ["42"], "close 4000", None),
        (
            "ready",
            "heartbeat timeMs a string",
            [json.dumps({"type": "heartbeat", "timeMs": "x"})],
            "close 4000",
            "timeMs",
        ),
        (
            "ready",
            "heartbeat timeMs 1.5",
            [json.dumps({"type": "heartbeat", "timeMs": 1.5})],
            "close 4000",
            "timeMs",
        ),
        (
            "ready",
            "heartbeat timeMs null",
            [json.dumps({"type": "heartbeat", "timeMs": None})],
            "close 4000",
            "timeMs",
        ),
        (
            "ready",
            "text frame, not UTF-8, after welcome",
            [("text", b"\xc3\x28")],
            "close 1007",
            None,
        ),
        (
            "ready",
            "binary result, output not UTF-8",
            [
                b'{"type":"result","assignmentId":"a","microtaskId":"b","output":"\xff",'
                b'"signature":"00"}'
            ],
            "close 4000",
            None,
        ),
        (
            "ready",
            "heartbeat with a field nested 100000 deep",
            ['{"type":"heartbeat","x":' + "[" * 100_000 + "]" * 100_000 + "}"],
            ("heartbeat", "close 4000"),  # valid JSON in an unknown field: ignore it, or refuse
            None,
        ),
        # Tolerated by the document: these must be answered normally, not closed over.
        (
            "ready",
            "heartbeat with unknown fields",
            [json.dumps({"type": "heartbeat", "timeMs": 1, "extra": {"a": [1]}})],
            "heartbeat",
            None,
        ),
        (
            "ready",
            "heartbeat in a binary frame",
            [b'{"type":"heartbeat","timeMs":1}'],
            "heartbeat",
            None,
        ),
        (
            "ready",
            "heartbeat without timeMs",
            [json.dumps({"type": "heartbeat"})],
            "heartbeat",
            None,
        ),
        (
            "ready",
            "heartbeat with a huge timeMs",
            [json.dumps({"type": "heartbeat", "timeMs": 10**30})],
            "heartbeat",
            None,
        ),
        (
            "ready",
            "fields in another order",
            ['{"timeMs":5,"type":"heartbeat"}'],
            "heartbeat",
            None,
        ),
        (
            "fresh",
            "heartbeat before hello, then hello",
            [json.dumps({"type": "heartbeat"}), json.dumps(h(signer))],
            "challenge",
            None,
        ),
        (
            "fresh",
            "uppercase publicKey",
            [json.dumps(h(signer, publicKey=pk.upper()))],
            "challenge",
            None,
        ),
        (
            "fresh",
            "duplicate and unknown kinds",
            [json.dumps(h(signer, kinds=["x", "sentiment", "sentiment"]))],
            "challenge",
            None,
        ),
        (
            "fresh",
            "long software and name",
            [json.dumps(h(signer, software="s" * 5000, name="n" * 5000))],
            "challenge",
            None,
        ),
    ]
    # Identifiers out of their format: 4000 before anything is looked up or stored.
    for bad in ("", "x", "a" * 10_000, "ünïcödé ✓ 🚀", "../../etc/passwd", "' OR 1=1 --"):
        frame = result_frame(signer, bad, f"{NO_TASK}:0", b'"positive"')
        cases.append(("ready", "assignmentId out of format", [frame], "close 4000", "assignmentId"))
        frame = result_frame(signer, "a" * 24, bad, b'"positive"')
        cases.append(("ready", "microtaskId out of format", [frame], "close 4000", "microtaskId"))
    # Results with one field removed or of the wrong type: 4000, naming the field.
    base = json.loads(result_frame(signer, "a" * 24, f"{NO_TASK}:0", b'"positive"'))
    wrong_values: list[Any] = [1, 2.5, True, None, [], {}, ["x"]]
    for name in ("assignmentId", "microtaskId", "output", "signature"):
        body = dict(base)
        del body[name]
        cases.append(("ready", f"result without {name}", [json.dumps(body)], "close 4000", name))
        body = dict(base)
        body[name] = rng.choice(wrong_values)
        cases.append(
            ("ready", f"result {name} of the wrong type", [json.dumps(body)], "close 4000", name)
        )
    # Random binary garbage: never a JSON object, always 4000.
    for _ in range(2 if rnd == 0 else 4):
        junk = rng.randbytes(rng.randint(1, 300))
        cases.append((rng.choice(["fresh", "ready"]), "random bytes", [junk], "close 4000", None))
    return cases
