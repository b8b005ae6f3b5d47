"""Python CPU per WebSocket frame on the miner socket, without the kernel: the wire alone.

    python benchmarks/wire_cost.py [--frames 100000] [--json]

Feeds masked client frames, one per call as the network would deliver them,
into the parts of the miner socket path that turn bytes into a message and a
reply into bytes, and times them per frame (in, then one reply out):

- ``websockets``: ``websockets``' sans-I/O ``ServerProtocol`` for both ways
  (``receive_data``, ``events_received``, ``send_text``, ``data_to_send``),
  which :class:`qortex.web.wire.MinerWire` started with;
- ``wire``: :class:`qortex.web.wire.MinerWire` as shipped (whole data frames
  parsed and framed by itself, everything else left to ``ServerProtocol``);
- ``frame``: only what every path does, decoding the heartbeat with msgspec
  and encoding the reply, for scale.

The transport is a list that keeps what is written; the peer decodes each
message and answers a heartbeat. ``benchmarks/frame_cost.py`` measures the
whole path with real sockets and a real coordinator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

from qortex.protocol import messages as m
from qortex.web.channel import Wire
from qortex.web.wire import MinerWire


class ListTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False


class HeartbeatPeer:
    def __init__(self, wire: Wire, address: str) -> None:
        self.wire = wire

    def opened(self) -> None:
        pass

    def ended(self, reason: str) -> None:
        pass

    def flush(self) -> None:
        pass  # every reply was written as it was made

    def received(self, data: bytes) -> None:
        m.miner_decoder.decode(data)
        self.wire.send(m.encoder.encode(m.Heartbeat(int(time.time() * 1000))), 1)


def per_frame(run: Any, frames: int) -> float:
    began = time.perf_counter()
    run(frames)
    return round(1e6 * (time.perf_counter() - began) / frames, 2)


async def measure(frames: int) -> dict[str, float]:
    beat = m.encoder.encode(m.Heartbeat(1))
    raw = Frame(Opcode.TEXT, beat).serialize(mask=True, extensions=[])

    def with_websockets(count: int) -> None:
        ws = ServerProtocol(state=OPEN)
        out = ListTransport()
        for _ in range(count):
            ws.receive_data(raw)
            for event in ws.events_received():
                m.miner_decoder.decode(event.data)
                ws.send_text(m.encoder.encode(m.Heartbeat(int(time.time() * 1000))))
                out.write(ws.data_to_send()[0])
            out.written.clear()

    def with_wire(count: int) -> None:
        wire = MinerWire(1 << 20, 0, set(), lambda transport: None)
        out = ListTransport()
        wire.transport = out  # type: ignore[assignment]
        wire._peer = HeartbeatPeer(wire, "")
        for _ in range(count):
            wire.data_received(raw)
            out.written.clear()

    def frame_only(count: int) -> None:
        for _ in range(count):
            m.miner_decoder.decode(beat)
            m.encoder.encode(m.Heartbeat(int(time.time() * 1000)))

    return {
        "websockets_us": per_frame(with_websockets, frames),
        "wire_us": per_frame(with_wire, frames),
        "frame_us": per_frame(frame_only, frames),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(measure(args.frames))
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
