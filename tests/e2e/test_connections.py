"""Connections to a real ``qortex serve``: slow heads, deep pipelines, too many from one address.

Outside addresses are loopback addresses other than 127.0.0.1 (a trusted
proxy, whose own connections are not capped).
"""

from __future__ import annotations

import re
import resource
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import Server, timeout, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path, head_seconds=1, max_connections_per_address=3).start()
    yield server
    server.stop()


def _connect(server: Server, source: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(timeout(10))
    sock.connect(("127.0.0.1", server.port))
    return sock


def _closed(sock: socket.socket) -> bool:
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def _health(sock: socket.socket, count: int = 1) -> bytes:
    sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n" * count)
    return sock.recv(65536)


def test_a_head_not_sent_in_time_is_closed(server: Server) -> None:
    silent = _connect(server, "127.0.0.2")
    slow = _connect(server, "127.0.0.2")
    slow.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n")  # never finished
    assert _closed(silent) and _closed(slow)
    quick = _connect(server, "127.0.0.2")
    assert _health(quick).startswith(b"HTTP/1.1 200")
    wait_until(lambda: "no complete request head" in server.log.read_text(), 10, "logged")


def test_a_deep_pipeline_is_closed_and_a_shallow_one_answered(server: Server) -> None:
    shallow = _connect(server, "127.0.0.2")
    shallow.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n" * 5)
    answers = b""
    while answers.count(b"HTTP/1.1 200") < 5:
        answers += shallow.recv(65536)
    deep = _connect(server, "127.0.0.2")
    deep.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n" * 200)
    assert _closed(deep)
    wait_until(lambda: "pipelined requests" in server.log.read_text(), 10, "logged")
    server.stop()
    assert "Traceback" not in server.log.read_text()


def test_connections_per_address_are_capped_but_not_the_proxys(server: Server) -> None:
    held = [_connect(server, "127.0.0.3") for _ in range(3)]
    extra = _connect(server, "127.0.0.3")
    assert _closed(extra)
    assert _health(_connect(server, "127.0.0.4")).startswith(b"HTTP/1.1 200")
    local = [_connect(server, "127.0.0.1") for _ in range(5)]
    assert all(_health(sock).startswith(b"HTTP/1.1 200") for sock in local)
    wait_until(lambda: "more than 3 open from 127.0.0.3" in server.log.read_text(), 10, "logged")
    for sock in held:
        sock.close()


def test_the_open_files_limit_is_raised_to_the_hard_limit(tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, hard)

    def lower() -> None:  # in the child: the 1024-ish soft limit many systems start with
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    server = Server(tmp_path / "own")
    (tmp_path / "own").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "qortex", "serve"],
        cwd=server.tmp,
        env=server.env,
        preexec_fn=lower,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _answers(server), 30, "the server answers")
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        soft = re.search(r"Max open files\s+(\S+)", limits)
        assert soft is not None and soft[1] == str(hard)
    finally:
        proc.terminate()
        proc.wait(timeout(10))


def _answers(server: Server) -> bool:
    try:
        return httpx.get(server.url + "/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
