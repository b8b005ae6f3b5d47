"""The miner socket as ``qortex serve`` answers it, off ASGI: what uvicorn used to do for it.

Real ``qortex serve``, real WebSocket clients (and a raw socket where a client
library would answer for us): the message limit, keepalive pings, the close on
shutdown, UTF-8 text, the opening handshake's checks and quotas kept per
forwarded address.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.sync.client import ClientConnection, connect

from qortex.protocol import messages as m
from qortex.protocol.client import ClientSession, Reply, Welcomed
from qortex.signing import Signer
from tests.helpers import Server, timeout

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    settings = getattr(request, "param", {})
    srv = Server(tmp_path, **settings).start()
    yield srv
    srv.stop()


@contextlib.contextmanager
def _welcomed(server: Server, headers: dict[str, str] | None = None) -> Iterator[ClientConnection]:
    url = server.url.replace("http", "ws") + "/ws/miner"
    with connect(url, additional_headers=headers) as ws:
        session = ClientSession(Signer(), 1, ["sentiment"], "wire-test")
        ws.send(session.hello_frame().decode())
        (reply,) = session.receive_all(ws.recv(timeout(10)))
        assert isinstance(reply, Reply)
        ws.send(reply.frame.decode())
        (welcome,) = session.receive_all(ws.recv(timeout(10)))
        assert isinstance(welcome, Welcomed)
        yield ws


def _closed_with(ws: ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout(10))
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


def test_heartbeats_pings_and_several_frames_in_one_message(server: Server) -> None:
    with _welcomed(server) as ws:
        beat = m.encoder.encode(m.Heartbeat(1)).decode()
        ws.send(f"[{beat},{beat}]")
        replies: list[Any] = []
        while len(replies) < 2:
            replies += m.frames_of(ws.recv(timeout(10)))
        assert [m.frame_type(r) for r in replies] == ["heartbeat", "heartbeat"]
        assert ws.ping(b"are you there").wait(timeout(10))  # the pong came back


@pytest.mark.parametrize("server", [{"max_message_bytes": 4096}], indirect=True)
def test_a_message_over_the_limit_closes_1009(server: Server) -> None:
    with _welcomed(server) as ws:
        ws.send("x" * 5000)
        code, _ = _closed_with(ws)
    assert code == 1009


def test_a_text_message_that_is_not_utf8_closes_1007(server: Server) -> None:
    with _welcomed(server) as ws:
        ws.send(b'{"type":"heartbeat","timeMs":1}', text=True)  # valid: answered
        assert m.frame_type(ws.recv(timeout(10))) == "heartbeat"
        ws.send(b'{"type":"\xff"}', text=True)
        code, _ = _closed_with(ws)
    assert code == 1007


@pytest.mark.parametrize("server", [{"handshake_rate": 0.001, "handshake_burst": 2}], indirect=True)
def test_handshake_quota_is_kept_per_forwarded_address(server: Server) -> None:
    first = {"x-forwarded-for": "203.0.113.7"}
    for _ in range(2):
        with _welcomed(server, first):
            pass
    with connect(server.url.replace("http", "ws") + "/ws/miner", additional_headers=first) as ws:
        code, reason = _closed_with(ws)
    assert code == m.ADDRESS_LIMIT
    assert "handshakes" in reason
    with _welcomed(server, {"x-forwarded-for": "203.0.113.8"}):  # a quota of its own
        pass
    for _ in range(3):  # this machine's own miners, not forwarded: no quota
        with _welcomed(server):
            pass


def test_shutdown_closes_miners_with_1012(server: Server) -> None:
    with _welcomed(server) as ws:
        assert server.proc is not None
        server.proc.terminate()
        code, _ = _closed_with(ws)
    assert code == 1012


def _raw_upgrade(server: Server, key: bool = True) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout(10))
    head = (
        "GET /ws/miner HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        + ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" if key else "")
        + "\r\n"
    )
    sock.sendall(head.encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            break
        response += chunk
    return sock, response


def test_an_upgrade_without_a_key_is_refused_in_plain_http(server: Server) -> None:
    sock, response = _raw_upgrade(server, key=False)
    sock.close()
    assert response.startswith(b"HTTP/1.1 400 ")


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "the server closed the socket before a whole frame"
        data += chunk
    return data


def _frame(sock: socket.socket) -> tuple[int, bytes]:
    """One unmasked server frame: (opcode, payload)."""
    first, second = _read_exact(sock, 2)
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", _read_exact(sock, 2))
    elif size == 127:
        (size,) = struct.unpack("!Q", _read_exact(sock, 8))
    return first & 0x0F, _read_exact(sock, size)


@pytest.mark.parametrize("server", [{"ws_ping_seconds": 0.5}], indirect=True)
def test_a_peer_that_never_answers_pings_is_closed_1011(server: Server) -> None:
    sock, response = _raw_upgrade(server)
    assert response.startswith(b"HTTP/1.1 101 ")
    opcodes: list[Any] = []
    with sock:
        while True:
            opcode, payload = _frame(sock)
            opcodes.append(opcode)
            if opcode == 0x8:  # close
                break
    assert opcodes[0] == 0x9  # a ping first, then, unanswered, the close
    (code,) = struct.unpack("!H", payload[:2])
    assert (code, payload[2:]) == (1011, b"keepalive ping timeout")


def _masked(payload: bytes) -> bytes:
    return Frame(Opcode.TEXT, payload).serialize(mask=True, extensions=[])


def test_frames_sent_during_admission_are_answered_and_work_flows_after(server: Server) -> None:
    """A heartbeat in the same packet as the answer waits out the admission, then is answered.

    Nothing else is sent after it, so the coordinator's frames (the heartbeat's
    answer, then work) must go out without waiting for another read.
    """
    sock, response = _raw_upgrade(server)
    assert response.startswith(b"HTTP/1.1 101 ")
    session = ClientSession(Signer(), 1, ["sentiment"], "wire-test")
    with sock:
        sock.sendall(_masked(session.hello_frame()))
        (reply,) = session.receive_all(_frame(sock)[1])
        assert isinstance(reply, Reply)
        sock.sendall(_masked(reply.frame) + _masked(m.encoder.encode(m.Heartbeat(1))))
        types: list[str] = []
        while "heartbeat" not in types:
            types += [m.frame_type(f) for f in m.frames_of(_frame(sock)[1])]
        assert types[0] == "welcome"
        with server.client() as client:
            answer = client.post("/api/v1/tasks", json={"tweets": ["good day"], "replicas": 1})
            assert answer.status_code == 201, answer.text
        while "assign" not in types:
            types += [m.frame_type(f) for f in m.frames_of(_frame(sock)[1])]
