"""The destination rule: which addresses a webhook may reach, decided without any network."""

from __future__ import annotations

import ipaddress

import pytest

from qortex.errors import InvalidInput
from qortex.webhooks.destinations import allowed, check_url, networks

REFUSED = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.0.10",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # shared address space (carrier-grade NAT)
    "0.0.0.0",
    "224.0.0.1",
    "::1",
    "fd00::1",
    "fe80::1",
    "::ffff:10.0.0.1",  # IPv4-mapped private
    "192.0.2.1",  # documentation
]
ALLOWED = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED)
def test_private_and_local_addresses_are_refused(address: str) -> None:
    assert not allowed(ipaddress.ip_address(address), [])


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert allowed(ipaddress.ip_address(address), [])


def test_the_operator_can_allow_a_network() -> None:
    allow = networks(["10.20.0.0/16", "127.0.0.1"])
    assert allowed(ipaddress.ip_address("10.20.3.4"), allow)
    assert allowed(ipaddress.ip_address("127.0.0.1"), allow)
    assert not allowed(ipaddress.ip_address("10.21.0.1"), allow)
    assert check_url("http://10.20.0.5:8080/hook", allow) == "http://10.20.0.5:8080/hook"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://[::1]:8000/x", "private"),
        ("http://LOCALHOST/x", "private"),
        ("http://api.localhost/x", "private"),
        ("file:///etc/passwd", "http"),
        ("gopher://x.org/", "http"),
        ("https://", "host"),
        ("https://x.org:0/", "not a valid URL"),
        ("https://x.org/\nHost: evil", "not a valid URL"),
        ("https://[::1/", "not a valid URL"),
    ],
)
def test_urls_that_are_refused_when_given(url: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        check_url(url, [])


def test_names_are_left_to_the_delivery_check() -> None:
    assert check_url("https://hooks.example.com/a?b=1", []) == "https://hooks.example.com/a?b=1"
