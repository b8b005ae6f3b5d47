"""Where a webhook may be sent: public addresses, unless the operator allows more.

A coordinator posts to URLs its clients choose, so without a rule it would be a
way for anyone with a key to reach the operator's private network (an admin
panel on 10.0.0.1, a cloud metadata service on 169.254.169.254). The rule:
a destination must be ``http`` or ``https`` and every address its host
resolves to must be global (not loopback, private, link-local, shared,
reserved or multicast), unless it lies in ``webhook_allow_networks``. Literal
addresses and ``localhost`` are checked when the URL is given; names are
checked on every delivery, and the request goes to the address that was
checked, so a name cannot be re-pointed between the check and the connection.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from qortex.errors import InvalidInput

MAX_URL = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(cidrs: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(cidr, strict=False) for cidr in cidrs]


def allowed(address: IPAddress, allow: list[Network]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in net for net in allow):
        return True
    return address.is_global and not address.is_multicast


def check_url(url: str, allow: list[Network], field: str = "url") -> str:
    """The URL if it is a well-formed http(s) URL whose literal host may be reached."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise InvalidInput(f"{field} must be an http(s) URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"{field} is not a valid URL: {exc}", field=field) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{field} must start with http:// or https:// and name a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(f"{field} must not carry a user name or password", field=field)
    if port == 0 or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise InvalidInput(f"{field} is not a valid URL", field=field)
    host = parts.hostname
    try:
        address: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        local = host == "localhost" or host.endswith(".localhost")
        address = ipaddress.ip_address("127.0.0.1") if local else None
    if address is not None and not allowed(address, allow):
        raise InvalidInput(
            f"{field} points at {host}, a private or local address; webhooks go only to public"
            " addresses unless the operator lists the network in webhook_allow_networks",
            field=field,
        )
    return url
