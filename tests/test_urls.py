"""Coordinator URLs as users type them, and the key the CLI files under each."""

from __future__ import annotations

from pathlib import Path

import pytest

from qortex import credentials, urls
from qortex.errors import ConfigError
from qortex.settings import Settings


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("127.0.0.1:18001", "http://127.0.0.1:18001"),
        ("localhost:18001", "http://127.0.0.1:18001"),
        ("http://localhost:18001/", "http://127.0.0.1:18001"),
        ("HTTP://LocalHost:18001", "http://127.0.0.1:18001"),
        ("https://example.org", "https://example.org"),
        ("https://example.org/prefix/", "https://example.org/prefix"),
        ("[::1]:9000", "http://[::1]:9000"),
        ("  example.org:80  ", "http://example.org:80"),
    ],
)
def test_urls_are_normalised(given: str, normal: str) -> None:
    assert urls.normalise(given) == normal


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("", "empty"),
        ("ftp://example.org", "http:// or https://"),
        ("127.0.0.1:99999", "port"),
        ("127.0.0.1:port", "port"),
        ("http://", "no host"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(given: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        urls.normalise(given)


def test_a_coordinators_url_follows_its_settings() -> None:
    assert urls.of_settings(Settings(port=18001)) == "http://127.0.0.1:18001"
    assert urls.of_settings(Settings(host="0.0.0.0", port=9)) == "http://127.0.0.1:9"
    assert urls.of_settings(Settings(host="::1", port=9)) == "http://[::1]:9"


def test_a_saved_key_is_found_however_the_url_is_spelt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    credentials.save("http://127.0.0.1:18001", "qx_one")
    credentials.save("https://example.org", "qx_two")
    for spelling in ("localhost:18001", "http://localhost:18001/", "127.0.0.1:18001"):
        assert credentials.load(spelling) == "qx_one"
    assert credentials.load("127.0.0.1:18002") is None
    credentials.save("localhost:18001", "qx_three")  # the same coordinator: replaced, not added
    assert credentials.load("http://127.0.0.1:18001") == "qx_three"
    assert credentials.load("https://example.org") == "qx_two"
