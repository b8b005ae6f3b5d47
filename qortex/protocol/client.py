"""The miner's side of the protocol, without I/O: the CLI miner pumps frames through it."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from qortex.errors import ProtocolViolation
from qortex.protocol import messages as m
from qortex.signing import Signer, hello_message, input_digest, result_message


@dataclass(frozen=True, slots=True)
class Reply:
    """The server asked something; send ``frame`` back."""

    frame: bytes


@dataclass(frozen=True, slots=True)
class Welcomed:
    miner_id: str
    heartbeat_seconds: float


@dataclass(frozen=True, slots=True)
class Work:
    assign: m.Assign


@dataclass(frozen=True, slots=True)
class Mismatch:
    """An assign whose ``input`` bytes do not hash to its ``inputSha256``.

    Signing for it would vouch for an input the miner did not see, so it is
    neither computed nor answered; the lease expires and the copy goes elsewhere.
    """

    assign: m.Assign
    actual_sha256: str


@dataclass(frozen=True, slots=True)
class ResultAnswer:
    """The server's answer to one of our results: accepted, or refused with a reason."""

    assignment_id: str
    accepted: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Withdrawn:
    assignment_id: str
    reason: str


CoordinatorEvent = Reply | Welcomed | Work | Mismatch | ResultAnswer | Withdrawn


class ClientSession:
    def __init__(
        self, signer: Signer, slots: int, kinds: list[str], software: str, name: str = ""
    ) -> None:
        self.signer = signer
        self.slots = slots
        self.kinds = kinds
        self.software = software
        self.name = name
        self.miner_id = ""

    def hello_frame(self) -> bytes:
        hello = m.Hello(
            self.signer.public_hex,
            self.kinds,
            protocol=m.PROTOCOL_VERSION,
            software=self.software,
            slots=self.slots,
            name=self.name,
        )
        return m.encoder.encode(hello)

    def receive_all(self, data: str | bytes) -> list[CoordinatorEvent]:
        """Every event in one message, which may hold an array of frames."""
        events = (self.receive(frame) for frame in m.frames_of(data))
        return [event for event in events if event is not None]

    def receive(self, data: str | bytes) -> CoordinatorEvent | None:
        try:
            frame = m.server_decoder.decode(data)
        except msgspec.ValidationError as exc:
            kind = m.frame_type(data)
            if kind is not None and kind not in m.SERVER_TYPES:
                return None  # a frame type from a newer server: skip it, as the spec asks
            raise ProtocolViolation(m.BAD_FRAME, f"invalid frame from server: {exc}") from None
        except m.UNREADABLE as exc:
            raise ProtocolViolation(m.BAD_FRAME, f"invalid frame from server: {exc}") from None
        match frame:
            case m.Challenge(nonce=nonce):
                signature = self.signer.sign(hello_message(nonce))
                return Reply(m.encoder.encode(m.Answer(signature)))
            case m.Welcome(miner_id=miner_id, heartbeat_seconds=seconds):
                self.miner_id = miner_id
                return Welcomed(miner_id, seconds)
            case m.Assign(input=raw, input_sha256=claimed):
                actual = input_digest(bytes(raw))
                return Work(frame) if actual == claimed else Mismatch(frame, actual)
            case m.Ack(assignment_id=aid):
                return ResultAnswer(aid, True)
            case m.Refused(assignment_id=aid, reason=reason):
                return ResultAnswer(aid, False, reason)
            case m.Cancel(assignment_id=aid, reason=reason):
                return Withdrawn(aid, reason)
        return None

    def result_frame(self, assign: m.Assign, output: bytes) -> bytes:
        """The signed result for ``assign``; only for a :class:`Work`, whose digest checked out."""
        message = result_message(
            assign.assignment_id, assign.microtask_id, assign.input_sha256, output
        )
        result = m.Result(
            assign.assignment_id, assign.microtask_id, output.decode(), self.signer.sign(message)
        )
        return m.encoder.encode(result)

    @staticmethod
    def heartbeat_frame(now_ms: int) -> bytes:
        return m.encoder.encode(m.Heartbeat(now_ms))
