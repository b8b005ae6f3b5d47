"""The CLI's own credential store: API keys for the coordinators this user runs.

``qortex serve`` saves a key it generated here (mode 0600) so that ``qortex
submit`` on the same machine works without copying it; the coordinator itself
keeps only the key's hash. Keys are filed under the coordinator's URL in its
normal form (``qortex.urls.normalise``), however the user spells it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from qortex import urls
from qortex.errors import ConfigError


def config_dir() -> Path:
    return Path(typer.get_app_dir("qortex"))


def _path() -> Path:
    return config_dir() / "credentials.json"


def _same(a: str, b: str) -> bool:
    try:
        return urls.normalise(a) == urls.normalise(b)
    except ConfigError:
        return False


def _read() -> dict[str, Any]:
    try:
        data = json.loads(_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load(url: str) -> str | None:
    """The key saved for the coordinator at ``url``, if any."""
    for saved_url, value in _read().items():
        if isinstance(value, str) and _same(saved_url, url):
            return value
    return None


def save(url: str, key: str) -> Path:
    """File ``key`` under ``url``, replacing what was saved for that coordinator."""
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {saved: value for saved, value in _read().items() if not _same(saved, url)}
    data[urls.normalise(url)] = key
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.chmod(path, 0o600)
    return path
