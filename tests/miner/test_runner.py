"""Which connection failures a CLI miner gives up on, and how it words a close."""

from __future__ import annotations

import socket
import ssl

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from qortex.miner.runner import _close_words, _permanent

URL = "ws://example.test:8000/ws/miner"


def _status(code: int) -> InvalidStatus:
    return InvalidStatus(Response(code, "", Headers()))


@pytest.mark.parametrize("code", [400, 401, 403, 405, 410])
def test_a_client_error_on_the_upgrade_is_final(code: int) -> None:
    assert f"HTTP {code}" in (_permanent(_status(code), URL) or "")


@pytest.mark.parametrize("code", [404, 408, 429, 500, 502, 503])
def test_what_a_tunnel_or_a_restart_answers_is_retried(code: int) -> None:
    assert _permanent(_status(code), URL) is None


def test_a_host_that_does_not_exist_is_final_but_a_resolver_hiccup_is_not() -> None:
    missing = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert "cannot resolve" in (_permanent(missing, URL) or "")
    hiccup = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    assert _permanent(hiccup, URL) is None
    assert _permanent(ConnectionRefusedError(111, "refused"), URL) is None


def test_tls_to_plain_http_is_final_and_says_what_to_try() -> None:
    error = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    assert "try http://" in (_permanent(error, URL) or "")


def test_closes_are_told_in_words_even_without_a_reason() -> None:
    assert _close_words(1012, "") == "1012 server restarting"
    assert _close_words(1006, "") == "1006 connection lost"
    assert _close_words(4009, "") == "4009 timeout"
    assert _close_words(1001, "server shutting down") == "1001 server shutting down"
