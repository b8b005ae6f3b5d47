"""The CLI's own credential store: API keys for the coordinators this user runs.

``qortex serve`` saves a key it generated here (mode 0600) so that ``qortex
submit`` on the same machine works without copying it; the coordinator itself
keeps only the key's hash.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer


def config_dir() -> Path:
    return Path(typer.get_app_dir("qortex"))


def _path() -> Path:
    return config_dir() / "credentials.json"


def load(url: str) -> str | None:
    try:
        data = json.loads(_path().read_text())
    except (OSError, ValueError):
        return None
    value = data.get(url.rstrip("/")) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def save(url: str, key: str) -> Path:
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data[url.rstrip("/")] = key
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.chmod(path, 0o600)
    return path
