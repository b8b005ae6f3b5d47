"""Miner identities on disk: one ed25519 seed per file, hex, readable only by its owner.

A running miner holds an exclusive ``flock`` on its key file for as long as it
runs, so a second ``qortex miner`` on the same machine skips the keys in use
and takes (or creates) the next free ones: every process gets identities of
its own without flags, and a restart comes back with the same ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from qortex.errors import ConfigError
from qortex.signing import Signer

KEY_PATTERN = "miner-{}.key"


class KeyFileError(ConfigError):
    """A key file that cannot be used: unreadable, readable by others, or not a key."""


def write_key(path: Path, signer: Signer) -> None:
    """Create ``path`` (mode 0600) holding ``signer``'s seed; never overwrite a file.

    The seed is written to a private temporary file first and linked into
    place, so another process never sees a half-written key.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(signer.seed.hex() + "\n")
        os.link(temporary, path)  # FileExistsError if the name is taken
    finally:
        temporary.unlink()


def read_key(path: Path) -> Signer:
    try:
        mode = path.stat().st_mode & 0o777
        text = path.read_text()
    except OSError as exc:
        raise KeyFileError(f"cannot read the key file {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise KeyFileError(f"{path} is readable by others (mode {mode:o}): run `chmod 600 {path}`")
    try:
        seed = bytes.fromhex(text.strip())
    except ValueError:
        seed = b""
    if len(seed) != 32:
        raise KeyFileError(f"{path} does not hold a 32-byte ed25519 seed in hex")
    return Signer.from_seed(seed)


@dataclass
class ClaimedKey:
    """A key file this process holds; other ``qortex miner`` processes leave it alone."""

    path: Path
    signer: Signer
    fd: int

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def claim(path: Path) -> ClaimedKey | None:
    """Hold ``path`` and read its key, or ``None`` if another process holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeyFileError(f"cannot open the key file {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    try:
        return ClaimedKey(path, read_key(path), fd)
    except BaseException:
        os.close(fd)
        raise


def claim_free(key_dir: Path, count: int) -> list[ClaimedKey]:
    """``count`` keys from ``key_dir`` that no other process holds, creating new ones as needed.

    Keys are taken in order (``miner-0.key``, ``miner-1.key``, ...), so one
    process run again and again keeps its identities.
    """
    claimed: list[ClaimedKey] = []
    index = 0
    try:
        while len(claimed) < count:
            path = key_dir / KEY_PATTERN.format(index)
            key = claim(path)
            if key is None and not path.exists():
                with contextlib.suppress(FileExistsError):
                    write_key(path, Signer())
                key = claim(path)
            if key is not None:
                claimed.append(key)
            index += 1
    except BaseException:
        for key in claimed:
            key.release()
        raise
    return claimed


def claim_files(paths: list[Path]) -> list[ClaimedKey]:
    """The given key files (from ``qortex keygen``); each must not be held by another process."""
    claimed: list[ClaimedKey] = []
    try:
        for path in paths:
            if not path.is_file():
                raise KeyFileError(f"no key file {path}: create one with `qortex keygen {path}`")
            key = claim(path)
            if key is None:
                raise KeyFileError(f"{path} is in use by another qortex miner on this machine")
            claimed.append(key)
    except BaseException:
        for key in claimed:
            key.release()
        raise
    return claimed
