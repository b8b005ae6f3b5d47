"""The coordinator's side of one miner connection, as a state machine without I/O.

Frames go in through :meth:`ServerSession.receive`, which returns what they
mean as events; frames to send come out of the ``*_frame`` methods as bytes.
A frame that breaks the protocol raises :class:`ProtocolViolation` carrying the
close code and reason the endpoint closes with. The endpoint owns the socket,
the coordinator owns the consequences; this class only knows the conversation::

    awaiting hello --hello--> awaiting answer --answer--> ready --result/heartbeat--> ready
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import msgspec

from qortex.errors import ProtocolViolation
from qortex.protocol import messages as m
from qortex.protocol.formats import MAX_LABEL
from qortex.signing import hello_message, miner_id_of, parse_public_key, result_message, verify

AWAITING_HELLO = "awaiting hello"
AWAITING_ANSWER = "awaiting answer"
READY = "ready"

MAX_SLOTS = 64


@dataclass(frozen=True, slots=True)
class Challenged:
    """The hello was acceptable; send ``frame`` (the challenge) back."""

    frame: bytes


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The miner proved it holds its key; it may now be given work."""

    miner_id: str
    public_key: str
    slots: int
    kinds: tuple[str, ...]
    software: str
    name: str


@dataclass(frozen=True, slots=True)
class ResultIn:
    """A result, not yet verified: :meth:`ServerSession.check` says whether it is signed.

    The check is left to the caller because it is most of the CPU a result
    costs: results that would be refused anyway need none, and PyNaCl releases
    the GIL while it verifies, so the rest can run on worker threads.
    """

    result: m.Result
    output: bytes


@dataclass(frozen=True, slots=True)
class HeartbeatIn:
    pass


MinerEvent = Challenged | Authenticated | ResultIn | HeartbeatIn


class ServerSession:
    def __init__(self, nonce: str, known_kinds: frozenset[str]) -> None:
        self.state = AWAITING_HELLO
        self.nonce = nonce
        self.known_kinds = known_kinds
        self.hello: m.Hello | None = None
        self.miner_id = ""
        self._key = None

    # -- frames in ----------------------------------------------------------

    def receive_all(self, data: str | bytes) -> Iterator[MinerEvent]:
        """The events of one message, one frame at a time, in order.

        A generator, so the caller acts on each frame before the next is even
        decoded: a bad frame ends the conversation after the good ones before it.
        """
        for frame in m.frames_of(data):
            event = self.receive(frame)
            if event is not None:
                yield event

    def receive(self, data: str | bytes) -> MinerEvent | None:
        try:
            frame = m.miner_decoder.decode(data)
        except msgspec.ValidationError as exc:
            raise ProtocolViolation(m.BAD_FRAME, f"invalid frame: {_short(exc)}") from None
        except m.UNREADABLE:
            raise ProtocolViolation(m.BAD_FRAME, "frames must be JSON objects") from None
        if isinstance(frame, m.Heartbeat):
            return HeartbeatIn() if self.state == READY else None
        if self.state == AWAITING_HELLO:
            if not isinstance(frame, m.Hello):
                raise ProtocolViolation(m.UNEXPECTED, f"expected hello, got {_type(frame)}")
            self._on_hello(frame)
            return Challenged(self.challenge_frame())
        if self.state == AWAITING_ANSWER:
            if not isinstance(frame, m.Answer):
                raise ProtocolViolation(m.UNEXPECTED, f"expected answer, got {_type(frame)}")
            return self._on_answer(frame)
        if isinstance(frame, m.Result):
            return ResultIn(frame, frame.output.encode())
        raise ProtocolViolation(m.UNEXPECTED, f"{_type(frame)} is not expected after welcome")

    def _on_hello(self, hello: m.Hello) -> None:
        if hello.protocol != m.PROTOCOL_VERSION:
            raise ProtocolViolation(
                m.UNSUPPORTED,
                f"protocol {hello.protocol} is not supported; this server speaks protocol "
                f"{m.PROTOCOL_VERSION}, where results sign the input digest (inputSha256): "
                "upgrade the miner",
            )
        try:
            self._key = parse_public_key(hello.public_key)
        except ValueError as exc:
            raise ProtocolViolation(m.BAD_HELLO, str(exc)) from None
        if not 1 <= hello.slots <= MAX_SLOTS:
            raise ProtocolViolation(m.BAD_HELLO, f"slots must be between 1 and {MAX_SLOTS}")
        if not set(hello.kinds) & self.known_kinds:
            known = ", ".join(sorted(self.known_kinds))
            raise ProtocolViolation(m.BAD_HELLO, f"no kind in common; this server runs {known}")
        self.hello = hello
        self.state = AWAITING_ANSWER

    def _on_answer(self, answer: m.Answer) -> Authenticated:
        assert self.hello is not None
        if not verify(self._key, hello_message(self.nonce), answer.signature):
            raise ProtocolViolation(m.AUTH_FAILED, "the challenge signature does not verify")
        self.state = READY
        self.miner_id = miner_id_of(bytes(self._key))
        kinds = tuple(k for k in dict.fromkeys(self.hello.kinds) if k in self.known_kinds)
        return Authenticated(
            self.miner_id,
            bytes(self._key).hex(),
            self.hello.slots,
            kinds,
            self.hello.software[:MAX_LABEL],
            self.hello.name[:MAX_LABEL],
        )

    def check(self, event: ResultIn, input_sha256: str) -> bool:
        """Whether a result's signature verifies under this miner's key (thread-safe).

        ``input_sha256`` is the digest of the input the coordinator assigned:
        the caller knows the assignment, this conversation does not.
        """
        frame = event.result
        message = result_message(
            frame.assignment_id, frame.microtask_id, input_sha256, event.output
        )
        return verify(self._key, message, frame.signature)

    # -- frames out ---------------------------------------------------------

    def challenge_frame(self) -> bytes:
        return m.encoder.encode(m.Challenge(self.nonce))

    def welcome_frame(self, heartbeat_seconds: float, max_message_bytes: int, server: str) -> bytes:
        return m.encoder.encode(
            m.Welcome(self.miner_id, heartbeat_seconds, max_message_bytes, server=server)
        )

    @staticmethod
    def heartbeat_frame(now_ms: int) -> bytes:
        return m.encoder.encode(m.Heartbeat(now_ms))


def _short(exc: msgspec.ValidationError) -> str:
    """msgspec's message, with a pattern named rather than spelled out: a close reason
    holds 123 bytes, and the field's name must fit."""
    what, at, where = str(exc).rpartition(" - at ")
    if at and "matching regex" in what:
        return f"Expected `str` in its documented format - at {where}"
    return str(exc)


def _type(frame: m.Frame) -> str:
    return type(frame).__name__.lower()
