"""The ceiling for ``scripts/bench.py``: the least a server must do per signed result.

A bare Starlette app with one WebSocket route, run by ``qortex serve`` itself
with only the application swapped (see :func:`main`): the same uvicorn
options (WebSocket implementation and message limit, ping interval and
timeout, per-message deflate, loop and HTTP implementation auto-detected the
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

Run: ``QORTEX_PORT=8765 python scripts/bench_ceiling.py``.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

import msgspec
from bench_load import synthetic_input
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from qortex.protocol import messages as m
from qortex.signing import input_digest, miner_id_of, parse_public_key, result_message, verify


async def _frame(ws: WebSocket) -> str | bytes:
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    return text if text is not None else message.get("bytes") or b""


async def miner_socket(ws: WebSocket) -> None:
    await ws.accept()
    with contextlib.suppress(WebSocketDisconnect):
        try:
            hello = m.miner_decoder.decode(await _frame(ws))
            if not isinstance(hello, m.Hello):
                raise ValueError("expected hello")
            key = parse_public_key(hello.public_key)
        except (msgspec.DecodeError, ValueError) as exc:
            await ws.close(m.BAD_HELLO, str(exc)[:120])
            return
        welcome = m.Welcome(miner_id_of(bytes(key)), 15.0, 1 << 20, server="ceiling")
        await ws.send_text(m.encoder.encode(welcome).decode())
        while True:
            try:
                frame = m.miner_decoder.decode(await _frame(ws))
            except msgspec.DecodeError as exc:
                await ws.close(m.BAD_FRAME, str(exc)[:120])
                return
            if isinstance(frame, m.Result):
                digest = input_digest(synthetic_input(frame.microtask_id))
                message = result_message(
                    frame.assignment_id, frame.microtask_id, digest, frame.output.encode()
                )
                if verify(key, message, frame.signature):
                    reply: m.Frame = m.Ack(frame.assignment_id)
                else:
                    reply = m.Refused(frame.assignment_id, "bad_signature")
            elif isinstance(frame, m.Heartbeat):
                reply = m.Heartbeat(int(time.time() * 1000))
            else:
                continue
            await ws.send_text(m.encoder.encode(reply).decode())


app = Starlette(routes=[WebSocketRoute("/ws/miner", miner_socket)])


def main() -> None:
    """Run ``app`` through ``qortex serve`` itself, so every uvicorn option is the same.

    Only the application is swapped: settings, logging, the socket and the
    uvicorn options (WebSocket implementation, message limit, pings, deflate,
    proxy headers, loop and HTTP auto-detection) are those of ``qortex serve``,
    even when that command changes.
    """
    import qortex.web.app
    from qortex import cli, serving

    real_serve = serving.serve

    def serve(application: Any, settings: Any, sock: Any, on_listening: Any) -> None:
        if application is not app:
            sys.exit("bench_ceiling: qortex serve did not take the ceiling app; update this script")
        options = serving.uvicorn_options(settings)
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
