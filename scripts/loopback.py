"""What every script that starts Qortex processes on this machine shares.

Everything runs on the loopback address only, on ports the kernel hands out,
with an environment from which any Qortex setting of the caller's has been
removed, so the defaults under test are the shipped ones.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from qortex.settings import SEED_ALIASES

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def base_env(tmp: Path) -> dict[str, str]:
    """This environment minus Qortex settings, with its own config dir under ``tmp``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("QORTEX_") and k not in SEED_ALIASES
    }
    env["XDG_CONFIG_HOME"] = str(tmp / "config")
    env["PYTHONUNBUFFERED"] = "1"
    return env
