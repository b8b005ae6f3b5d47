"""Client API keys: named, scoped, revocable, stored only as hashes.

Keys are long random tokens, so one round of SHA-256 is the right hash (a slow
password hash protects guessable secrets, which these are not). The hash is
what is looked up, so no comparison ever runs over a secret, and the match is
confirmed with a constant-time comparison. The ring is a
cache of the ``api_keys`` table: a revocation is committed, then takes effect
in memory at once, and wakes every open stream that was opened with the key.

Scopes: ``read`` (tasks, proofs, events, miners, metrics), ``submit`` (create
tasks) and ``admin`` (keys, webhooks, and everything else); ``admin`` holds
every scope.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from qortex import shapes
from qortex.errors import Conflict, InvalidInput, NotFound
from qortex.shapes import SCOPES
from qortex.store import facts as f
from qortex.store.database import Store

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
CONFIGURED = "configured"  # the key given in settings: held in memory, never stored
MAX_KEYS = 1000


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "qx_" + secrets.token_urlsafe(24)


def parse_scopes(raw: str | list[str]) -> tuple[str, ...]:
    """``"submit,read"`` or ``["submit", "read"]`` as a sorted tuple of known scopes."""
    parts = raw.split(",") if isinstance(raw, str) else raw
    scopes = {part.strip() for part in parts if part.strip()}
    unknown = sorted(scopes - set(SCOPES))
    if unknown:
        raise InvalidInput(
            f"unknown scope {', '.join(unknown)}; scopes are {', '.join(SCOPES)}", field="scopes"
        )
    if not scopes:
        raise InvalidInput(f"give at least one scope of {', '.join(SCOPES)}", field="scopes")
    return tuple(sorted(scopes))


@dataclass(slots=True)
class ApiKey:
    name: str
    digest: str
    scopes: tuple[str, ...]
    created_at: float
    revoked_at: float | None = None
    #: Set when the key is revoked; open SSE streams wait on it.
    revoked: asyncio.Event = field(default_factory=asyncio.Event)

    def allows(self, scope: str) -> bool:
        return self.revoked_at is None and (scope in self.scopes or "admin" in self.scopes)

    def public(self) -> shapes.ApiKey:
        """The key as the API shows it: never its secret."""
        return shapes.ApiKey(
            name=self.name,
            scopes=list(self.scopes),
            created_at=self.created_at,
            revoked_at=self.revoked_at,
            configured=self.name == CONFIGURED,
        )


class KeyRing:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._by_digest: dict[str, ApiKey] = {}
        self._by_name: dict[str, ApiKey] = {}

    async def load(self, configured: str, now: float) -> bool:
        """Read the stored keys; True if there is none at all and a first must be made.

        The key from settings (``api_key``, ``QORTEX_API_KEY``, ``API_KEY_SECRET``)
        is an admin key held only in memory; without it and without any stored
        key, the caller makes a first admin key once it listens (and shows it once).
        """
        rows = await self._store.reader.all(
            "SELECT name, hash, scopes, created_at, revoked_at FROM api_keys ORDER BY created_at"
        )
        for row in rows:
            self._add(
                ApiKey(
                    row["name"],
                    row["hash"],
                    tuple(row["scopes"].split(",")),
                    row["created_at"],
                    row["revoked_at"],
                )
            )
        if configured:
            self._add(ApiKey(CONFIGURED, hash_key(configured), ("admin",), now))
            return False
        return not rows

    def _add(self, key: ApiKey) -> None:
        self._by_digest[key.digest] = key
        self._by_name[key.name] = key

    def find(self, secret: str) -> ApiKey | None:
        """The key whose hash this secret has; the final check runs in constant time."""
        digest = hash_key(secret)
        key = self._by_digest.get(digest)
        if key is None or not hmac.compare_digest(key.digest, digest):
            return None
        return key

    def list(self) -> list[ApiKey]:
        return sorted(self._by_name.values(), key=lambda k: (k.created_at, k.name))

    async def create(self, name: str, scopes: tuple[str, ...], now: float) -> tuple[str, ApiKey]:
        """A new key; returns the secret (shown once) and its record, once durable."""
        if not NAME.match(name) or name == CONFIGURED:
            raise InvalidInput(
                "a key name is 1-64 letters, digits, '_', '.' or '-', starting with a letter"
                f" or digit, and not {CONFIGURED!r}",
                field="name",
            )
        if name in self._by_name:
            raise Conflict(f"a key named {name!r} exists already (names are never reused)")
        if len(self._by_name) >= MAX_KEYS:
            raise Conflict(f"at most {MAX_KEYS} keys; revoked keys count too")
        secret = new_key()
        key = ApiKey(name, hash_key(secret), scopes, now)
        self._add(key)  # reserve the name while the write commits
        try:
            await self._store.writer.write([f.api_key(name, key.digest, ",".join(scopes), now)])
        except BaseException:
            del self._by_name[name], self._by_digest[key.digest]
            raise
        return secret, key

    async def revoke(self, name: str, now: float) -> ApiKey:
        key = self._by_name.get(name)
        if key is None:
            raise NotFound(f"no key named {name!r}", name=name)
        if name == CONFIGURED:
            raise Conflict("the configured key is set in settings (api_key); change it there")
        if key.revoked_at is None:
            await self._store.writer.write([f.api_key_revoked(name, now)])
            key.revoked_at = now
            key.revoked.set()
        return key
