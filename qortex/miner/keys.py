"""Miner identities on disk: one ed25519 seed per file, hex, readable only by its owner."""

from __future__ import annotations

import os
from pathlib import Path

from qortex.signing import Signer


def write_key(path: Path, signer: Signer) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(signer.seed.hex() + "\n")


def read_key(path: Path) -> Signer:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise PermissionError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
    seed = bytes.fromhex(path.read_text().strip())
    if len(seed) != 32:
        raise ValueError(f"{path} does not hold a 32-byte ed25519 seed in hex")
    return Signer.from_seed(seed)


def load_or_create(key_dir: Path, index: int) -> Signer:
    """The identity of miner number ``index``: the same one on every run."""
    path = key_dir / f"miner-{index}.key"
    if path.exists():
        return read_key(path)
    signer = Signer()
    write_key(path, signer)
    return signer
