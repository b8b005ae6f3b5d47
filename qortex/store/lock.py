"""One database file, one coordinator: an exclusive lock held for the process's life.

Two coordinators on one SQLite file would each trust their own in-memory
dispatch table and write conflicting facts; the first commit that collides
stops one of them. So ``qortex serve`` takes an exclusive ``flock`` on
``<db>.lock`` before anything is written, and keeps it until it exits (the
kernel drops it when the process dies, ``kill -9`` included). The holder writes
its pid and URL into the file so that the refusal can say who holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from qortex.errors import ConfigError


class DatabaseInUse(ConfigError):
    """Another process holds the database file."""


def lock_path(db: str | Path) -> Path:
    return Path(f"{db}.lock")


class DatabaseLock:
    """An exclusive claim on one database file; ``release`` or process exit ends it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, db: str | Path, owner: str = "") -> DatabaseLock:
        """Claim ``db`` or raise ``DatabaseInUse`` naming the file and its holder."""
        path = lock_path(db)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:  # a read-only or foreign directory: say so, no traceback
            raise ConfigError(
                f"cannot write the database {db}: cannot create {path}"
                f" ({exc.strerror}; is the disk read-only, or the directory not yours?)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, _, owner = _read(fd).partition(" ")
            os.close(fd)
            who = f"process {pid}" if pid else "another process"
            who += f" ({owner})" if owner else ""
            raise DatabaseInUse(
                f"{db} is in use by {who}: one database file belongs to one coordinator;"
                " stop that one, or start this one with another --db"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {owner}".strip().encode() + b"\n", 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 512, 0).decode(errors="replace").strip()
    except OSError:
        return ""
