"""Behind a tunnel: forwarded headers are believed from a local proxy only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import Server

pytestmark = pytest.mark.e2e

FORWARDED = {"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.7"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path).start()
    yield srv
    srv.stop()


def _base_url(server: Server, source: str) -> str:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport) as client:
        return client.get(server.url + "/health", headers=FORWARDED).json()["baseUrl"]


def test_a_tunnel_agent_on_this_host_is_trusted(server: Server) -> None:
    # ngrok and cloudflared run beside the coordinator and connect from loopback.
    assert _base_url(server, "127.0.0.1").startswith("https://")


def test_anyone_else_cannot_claim_https(server: Server) -> None:
    # 127.0.0.2 is still this machine, but it is not a trusted proxy address.
    assert _base_url(server, "127.0.0.2").startswith("http://")
