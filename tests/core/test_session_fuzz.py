"""Stateful fuzzing of the server side of the protocol.

:class:`SessionFuzz` feeds a :class:`ServerSession` valid and broken frames in
any order (hello, answer, result, heartbeat, wrong types, missing fields,
unknown types, garbage bytes, arrays of frames) and checks each answer
against docs/protocol.md, including that a result's signature verifies only
over its own ids, input digest and output. Defects it found are pinned in
test_session_defects.py.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import hypothesis
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from qortex.errors import ProtocolViolation
from qortex.protocol import messages as m
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
from qortex.signing import Signer, hello_message, miner_id_of, result_message
from tests.core.frames import (
    DAMAGES,
    HEX,
    KNOWN,
    NONCE,
    SIGNERS,
    Expect,
    assignment_ids,
    encode,
    heartbeats,
    hellos,
    json_scalars,
    json_values,
    microtask_ids,
    not_bad_utf8_in_a_string,
    results,
    wrong_for_int,
    wrong_for_str,
)
from tests.core.fuzzing import PROFILE, TIMEOUT


class SessionFuzz(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.fresh()

    def fresh(self) -> None:
        self.session = ServerSession(NONCE, KNOWN)
        self.model = AWAITING_HELLO
        self.signer: Signer | None = None
        self.hello: dict[str, Any] | None = None
        self.dead = False

    # -- the model: what the document says each frame does in each state

    def expect_hello(self, body: dict[str, Any]) -> Expect:
        if self.model != AWAITING_HELLO:
            return Expect(close=4002)
        if body.get("protocol", m.PROTOCOL_VERSION) != m.PROTOCOL_VERSION:
            return Expect(close=4003)
        key = body["publicKey"]
        if len(key) != 64 or any(ch not in HEX for ch in key.lower()):
            return Expect(close=4005)
        if not 1 <= body.get("slots", 1) <= MAX_SLOTS:
            return Expect(close=4005)
        if not set(body["kinds"]) & KNOWN:
            return Expect(close=4005)
        return Expect(Challenged)

    def expect_traffic(self, frame: dict[str, Any]) -> Expect:
        if frame["type"] == "heartbeat":
            return Expect(HeartbeatIn) if self.model == READY else Expect()
        return Expect(ResultIn) if self.model == READY else Expect(close=4002)

    def send(self, data: bytes | str, expect: Expect, batch: bool = False) -> Any:
        """Feed one message; check the answer against ``expect``; keep the model in step."""
        try:
            if batch:
                events = list(self.session.receive_all(data))
                assert len(events) <= 1
                event = events[0] if events else None
            else:
                event = self.session.receive(data)
        except ProtocolViolation as exc:
            assert 4000 <= exc.close_code <= 4999
            assert expect.close == exc.close_code, (expect.close, exc.close_code, exc.message)
            self.dead = True  # the endpoint closes the socket: this sequence is over
            return None
        assert expect.close is None, f"expected close {expect.close}, got {event!r}"
        if expect.event is None:
            assert event is None
        else:
            assert isinstance(event, expect.event), (expect.event, event)
        return event

    # -- after a close, the next miner connects afresh

    @precondition(lambda self: self.dead)
    @rule()
    def new_connection(self) -> None:
        self.fresh()

    # -- the handshake

    def _hello(self, signer: Signer, body: dict[str, Any], batch: bool) -> Any:
        event = self.send(encode([body] if batch else body), self.expect_hello(body), batch)
        if isinstance(event, Challenged):
            assert json.loads(event.frame) == {"type": "challenge", "nonce": NONCE}
            self.model, self.signer, self.hello = AWAITING_ANSWER, signer, body
        return event

    def _answer(self, signature: str, batch: bool) -> None:
        valid = (self.signer or SIGNERS[0]).sign(hello_message(NONCE))
        if self.model != AWAITING_ANSWER:
            expect = Expect(close=4002)
        elif signature == valid:
            expect = Expect(Authenticated)
        else:
            expect = Expect(close=4001)
        body = {"type": "answer", "signature": signature}
        event = self.send(encode([body] if batch else body), expect, batch)
        if isinstance(event, Authenticated):
            # Never authenticated without the valid signature of this nonce by the hello's key.
            assert self.signer is not None and self.hello is not None
            assert signature == self.signer.sign(hello_message(NONCE))
            assert event.miner_id == self.signer.miner_id == miner_id_of(self.signer.public_key)
            assert event.public_key == self.signer.public_hex  # lowercase, whatever was sent
            assert event.slots == self.hello.get("slots", 1)
            kinds = [k for k in dict.fromkeys(self.hello["kinds"]) if k in KNOWN]
            assert list(event.kinds) == kinds
            assert event.software == self.hello["software"][:100]
            self.model = READY
            hypothesis.event("authenticated")

    @precondition(lambda self: not self.dead)
    @rule(
        body=hellos(),
        damage=st.none() | st.sampled_from(sorted(DAMAGES)),
        batch=st.booleans(),
    )
    def hello(self, body: tuple[Signer, dict[str, Any]], damage: str | None, batch: bool) -> None:
        """A hello: acceptable, or well-formed but refused by the document (4003, 4005)."""
        signer, fields = body
        if damage is not None:
            fields = {**fields, **DAMAGES[damage](fields["publicKey"])}
        self._hello(signer, fields, batch)

    @precondition(lambda self: not self.dead and self.model == AWAITING_HELLO)
    @rule(body=hellos(), batch=st.booleans())
    def handshake(self, body: tuple[Signer, dict[str, Any]], batch: bool) -> None:
        """A good hello and its good answer, so that sequences reach ``ready`` often."""
        signer, fields = body
        assert isinstance(self._hello(signer, fields, batch), Challenged)
        self._answer(signer.sign(hello_message(NONCE)), batch)
        assert self.model == READY

    @precondition(lambda self: not self.dead)
    @rule(
        how=st.sampled_from(
            [
                "valid",
                "other key",
                "other nonce",
                "bare nonce",
                "truncated",
                "not hex",
                "empty",
                "zeros",
                "random hex",
            ]
        ),
        random_hex=st.text(alphabet=HEX, min_size=128, max_size=128),
        batch=st.booleans(),
    )
    def answer(self, how: str, random_hex: str, batch: bool) -> None:
        signer = self.signer or SIGNERS[0]
        other = SIGNERS[1] if signer is SIGNERS[0] else SIGNERS[0]
        valid = signer.sign(hello_message(NONCE))
        signature = {
            "valid": valid,
            "other key": other.sign(hello_message(NONCE)),
            "other nonce": signer.sign(hello_message(NONCE[::-1])),
            "bare nonce": signer.sign(NONCE.encode()),
            "truncated": valid[:-2],
            "not hex": "x" + valid[1:],
            "empty": "",
            "zeros": "00" * 64,
            "random hex": random_hex,
        }[how]
        self._answer(signature, batch)

    # -- what a miner sends once it is ready (and, out of turn, before)

    @precondition(lambda self: not self.dead)
    @rule(frames=st.lists(results | heartbeats, min_size=1, max_size=6), as_array=st.booleans())
    def traffic(self, frames: list[dict[str, Any]], as_array: bool) -> None:
        """Results and heartbeats, one message each or all in one array (section 1).

        Ready: one event per frame, in order. Before: heartbeats are ignored
        and a result closes with 4002.
        """
        expected = []
        for frame in frames:
            expect = self.expect_traffic(frame)
            expected.append(expect)
            if expect.close is not None:
                break
        if not as_array:
            for frame, expect in zip(frames, expected, strict=False):
                event = self.send(encode(frame), expect)
                self.check_result(frame, event)
            return
        try:
            events = list(self.session.receive_all(encode(frames)))
        except ProtocolViolation as exc:
            assert exc.close_code == expected[-1].close == 4002
            self.dead = True
            return
        assert expected[-1].close is None
        wanted = [e.event for e in expected if e.event is not None]
        assert [type(event) for event in events] == wanted
        answered = [f for f, e in zip(frames, expected, strict=True) if e.event is not None]
        for frame, event in zip(answered, events, strict=True):
            self.check_result(frame, event)

    @precondition(lambda self: not self.dead and self.model == READY)
    @rule(frames=st.lists(results | heartbeats, min_size=1, max_size=6), as_array=st.booleans())
    def ready_traffic(self, frames: list[dict[str, Any]], as_array: bool) -> None:
        """The same as :meth:`traffic`; a second rule so that ready sessions live longer."""
        self.traffic(frames, as_array)

    @staticmethod
    def check_result(frame: dict[str, Any], event: Any) -> None:
        if isinstance(event, ResultIn):
            hypothesis.event("result after welcome")
            assert event.result.assignment_id == frame["assignmentId"]
            assert event.result.microtask_id == frame["microtaskId"]
            assert event.result.signature == frame["signature"]
            assert event.output == frame["output"].encode()

    @precondition(lambda self: not self.dead and self.model == READY)
    @rule(
        ids=st.tuples(assignment_ids, microtask_ids),
        task_input=st.binary(max_size=40),
        output=st.text(max_size=40),
        forged=st.sampled_from(["", "input", "output", "ids", "key"]),
    )
    def signed_result(
        self, ids: tuple[str, str], task_input: bytes, output: str, forged: str
    ) -> None:
        """A result verifies only over its own ids, input digest and output, by its key."""
        assert self.signer is not None
        assignment_id, microtask_id = ids
        digest = hashlib.sha256(task_input).hexdigest()
        signed_digest = (
            hashlib.sha256(b"x" + task_input).hexdigest() if forged == "input" else digest
        )
        signed_output = output + "!" if forged == "output" else output
        signed_id = assignment_id + "x" if forged == "ids" else assignment_id
        signer = self.signer
        if forged == "key":
            signer = SIGNERS[1] if signer is SIGNERS[0] else SIGNERS[0]
        message = result_message(signed_id, microtask_id, signed_digest, signed_output.encode())
        frame = {
            "type": "result",
            "assignmentId": assignment_id,
            "microtaskId": microtask_id,
            "output": output,
            "signature": signer.sign(message),
        }
        event = self.send(encode(frame), Expect(ResultIn))
        self.check_result(frame, event)
        assert self.session.check(event, digest) is (forged == "")
        other = hashlib.sha256(task_input + b"!").hexdigest()
        assert self.session.check(event, other) is False
        hypothesis.event(f"signed result, forged: {forged or 'nothing'}")

    # -- frames the document says close the connection with 4000

    @precondition(lambda self: not self.dead)
    @rule(
        which=st.sampled_from(
            [
                "hello missing a field",
                "hello field of the wrong type",
                "answer missing its signature",
                "answer signature of the wrong type",
                "result missing a field",
                "result field of the wrong type",
                "result identifier out of format",
                "heartbeat timeMs of the wrong type",
                "unknown type",
                "not an object",
                "array holding a bad frame",
                "array inside an array",
            ]
        ),
        data=st.data(),
    )
    def bad_frame(self, which: str, data: st.DataObject) -> None:
        draw = data.draw
        if which.startswith("hello"):
            body: Any = {
                "type": "hello",
                "publicKey": SIGNERS[0].public_hex,
                "kinds": ["sentiment"],
            }
            if which == "hello missing a field":
                del body[draw(st.sampled_from(["publicKey", "kinds"]))]
            else:
                field, strategy = draw(
                    st.sampled_from(
                        [
                            ("publicKey", wrong_for_str),
                            ("kinds", st.none() | st.text() | st.lists(st.integers(), min_size=1)),
                            ("slots", wrong_for_int),
                            ("protocol", wrong_for_int),
                            ("software", wrong_for_str),
                            ("name", wrong_for_str),
                        ]
                    )
                )
                body[field] = draw(strategy)
        elif which.startswith("answer"):
            body = {"type": "answer"}
            if which == "answer signature of the wrong type":
                body["signature"] = draw(wrong_for_str)
        elif which.startswith("result"):
            body = draw(results)
            field = draw(st.sampled_from(["assignmentId", "microtaskId", "output", "signature"]))
            if which == "result missing a field":
                del body[field]
            elif which == "result identifier out of format":
                field = draw(st.sampled_from(["assignmentId", "microtaskId"]))
                body[field] = draw(
                    st.text(max_size=60).filter(lambda t: len(t) != 24 or t.strip(HEX))
                    if field == "assignmentId"
                    else st.text(max_size=60).filter(lambda t: ":" not in t)
                )
            else:
                body[field] = draw(wrong_for_str)
        elif which == "heartbeat timeMs of the wrong type":
            body = {"type": "heartbeat", "timeMs": draw(wrong_for_int)}
        elif which == "unknown type":
            kind = draw(
                st.sampled_from(["HELLO", "Heartbeat", "ack", "assign", "welcome", "ping", ""])
                | st.text(max_size=10).filter(
                    lambda k: k not in ("hello", "answer", "result", "heartbeat")
                )
                | st.integers()
                | st.none()
            )
            body = {
                **draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)),
                "type": kind,
            }
        elif which == "not an object":
            body = draw(json_scalars)
        elif which == "array holding a bad frame":
            body = [{"type": "heartbeat"}] * draw(st.integers(0, 3)) + [draw(json_scalars)]
        else:
            body = [[{"type": "heartbeat"}]]
        self.send(encode(body), Expect(close=4000), batch=True)

    @precondition(lambda self: not self.dead)
    @rule(data=st.binary(max_size=64).filter(not_bad_utf8_in_a_string) | st.text().map(str.encode))
    def garbage(self, data: bytes) -> None:
        """Anything at all: an event or nothing, or a close with a 4000-4999 code."""
        try:
            list(self.session.receive_all(data))
        except ProtocolViolation as exc:
            assert 4000 <= exc.close_code <= 4999
            self.dead = True
            return
        # Only a valid frame for the current state passes; keep the model in step.
        self.model = self.session.state

    # -- invariants

    @invariant()
    def the_state_follows_the_model(self) -> None:
        if not self.dead:
            assert self.session.state == self.model
        if self.session.state == READY:
            assert self.session.miner_id and self.signer is not None
            assert self.session.miner_id == self.signer.miner_id
        else:
            assert self.session.miner_id == ""


TestSessionFuzz = SessionFuzz.TestCase
TestSessionFuzz.settings = PROFILE
TestSessionFuzz.pytestmark = TIMEOUT
