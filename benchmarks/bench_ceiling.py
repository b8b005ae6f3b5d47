"""The ceiling for ``benchmarks/bench.py``: the least a server must do per signed result.

A bare Starlette app whose ``/ws/miner`` is served the way ``qortex serve``
serves the coordinator's, run by ``qortex serve`` itself with only the
application swapped (see :func:`main`): the same socket path (uvicorn's HTTP
protocol, then :class:`qortex.web.wire.MinerWire` off ASGI, driving a peer
given as ``app.state.miner_endpoint``), the same options (message limit,
pings, no per-message deflate, loop and HTTP implementation auto-detected the
same way) from the same settings (``qortex.toml`` in the working directory,
``QORTEX_*`` variables such as ``QORTEX_PORT``).

Per connection it reads one ``hello`` (for the public key) and answers with a
``welcome``; then, for every ``result`` frame, it verifies the ed25519
signature over the same canonical bytes as the coordinator
(``qortex.signing.result_message``, naming the SHA-256 of the microtask's
input, which it hashes per result as the coordinator does; the input is the
synthetic tweet ``bench_load.py`` chose for that microtask) and answers with an
``ack`` (a ``refused`` if the signature does not verify). Heartbeats get a heartbeat back. There is
no queue, no placement, no quorum, no database and no event: the difference
between this and the coordinator is what those cost. Signatures are checked on
the event loop, one at a time (the coordinator may use ``verify_threads``).

Run: ``QORTEX_PORT=8765 python benchmarks/bench_ceiling.py``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import msgspec
from bench_load import synthetic_input
from starlette.applications import Starlette

from qortex.protocol import messages as m
from qortex.signing import input_digest, miner_id_of, parse_public_key, result_message, verify
from qortex.web.channel import Wire, short_reason


class CeilingPeer:
    """One connection of the ceiling: hello, welcome, then verify and ack each result."""

    __slots__ = ("key", "wire")

    def __init__(self, wire: Wire, address: str) -> None:
        self.wire = wire
        self.key: Any = None

    def opened(self) -> None:
        pass

    def ended(self, reason: str) -> None:
        pass

    def flush(self) -> None:
        pass  # every reply was written as it was made

    def received(self, data: bytes) -> None:
        if self.key is None:
            self._hello(data)
            return
        try:
            frame = m.miner_decoder.decode(data)
        except msgspec.DecodeError as exc:
            self.wire.close(m.BAD_FRAME, short_reason(str(exc)))
            return
        if isinstance(frame, m.Result):
            digest = input_digest(synthetic_input(frame.microtask_id))
            message = result_message(
                frame.assignment_id, frame.microtask_id, digest, frame.output.encode()
            )
            if verify(self.key, message, frame.signature):
                reply: m.Frame = m.Ack(frame.assignment_id)
            else:
                reply = m.Refused(frame.assignment_id, "bad_signature")
        elif isinstance(frame, m.Heartbeat):
            reply = m.Heartbeat(int(time.time() * 1000))
        else:
            return
        self.wire.send(m.encoder.encode(reply), 1)

    def _hello(self, data: bytes) -> None:
        try:
            hello = m.miner_decoder.decode(data)
            if not isinstance(hello, m.Hello):
                raise ValueError("expected hello")
            self.key = parse_public_key(hello.public_key)
        except (msgspec.DecodeError, ValueError) as exc:
            self.wire.close(m.BAD_HELLO, short_reason(str(exc)))
            return
        welcome = m.Welcome(miner_id_of(bytes(self.key)), 15.0, 1 << 20, server="ceiling")
        self.wire.send(m.encoder.encode(welcome), 1)


app = Starlette()
app.state.miner_endpoint = CeilingPeer


def main() -> None:
    """Run ``app`` through ``qortex serve`` itself, so every uvicorn option is the same.

    Only the application is swapped: settings, logging, the socket, the miner
    socket's path and the uvicorn options (message limit, pings, deflate,
    proxy headers, loop and HTTP auto-detection) are those of ``qortex serve``,
    even when that command changes.
    """
    import qortex.web.app
    from qortex import cli, serving

    real_serve = serving.serve

    def serve(application: Any, settings: Any, sock: Any, on_listening: Any) -> None:
        if application is not app:
            sys.exit("bench_ceiling: qortex serve did not take the ceiling app; update this script")
        options = serving.uvicorn_options(settings, application)
        shown = ", ".join(f"{k}={v!r}" for k, v in sorted(options.items()))
        print(f"ceiling: uvicorn({shown})", file=sys.stderr, flush=True)
        real_serve(app, settings, sock, on_listening)

    def create_app(*args: Any, **kwargs: Any) -> Starlette:
        return app

    async def adopt_new_key(application: Any) -> None:
        return None

    serving.serve = serve
    qortex.web.app.create_app = create_app
    qortex.web.app.adopt_new_key = adopt_new_key
    cli.app(["serve"], prog_name="qortex")


if __name__ == "__main__":
    main()
