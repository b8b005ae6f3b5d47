"""Coordinator URLs as people type them: scheme optional, ``localhost`` the same as 127.0.0.1.

The CLI takes a URL from ``--url``, ``QORTEX_URL`` or, failing both, from the
``host`` and ``port`` in ``qortex.toml``; ``qortex serve`` saves its API key
under the same normal form, so ``localhost:8000``, ``127.0.0.1:8000/`` and
``http://127.0.0.1:8000`` all find it.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from qortex.errors import ConfigError
from qortex.settings import Settings

SCHEMES = ("http", "https", "ws", "wss")
LOOPBACK_NAMES = {"localhost": "127.0.0.1"}
ANY_ADDRESS = ("0.0.0.0", "::", "")


def normalise(url: str) -> str:
    """``scheme://host[:port][/path]``: scheme defaulted to http, loopback spelt one way."""
    text = url.strip()
    if not text:
        raise ConfigError("the coordinator URL is empty")
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(f"{url!r}: the URL must start with http:// or https://")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ConfigError(f"{url!r}: the port must be a number from 1 to 65535") from None
    if not host:
        raise ConfigError(f"{url!r} names no host")
    host = LOOPBACK_NAMES.get(host, f"[{host}]" if ":" in host else host)
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


def of_settings(settings: Settings) -> str:
    """The URL a coordinator started with these settings answers on, from this machine."""
    host = "127.0.0.1" if settings.host in ANY_ADDRESS else settings.host
    return normalise(f"http://{host if ':' not in host else f'[{host}]'}:{settings.port}")
