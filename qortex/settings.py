"""Settings, layered: built-in defaults < ``qortex.toml`` < ``QORTEX_*`` env vars < CLI flags.

Every field here is also a key in the shipped ``qortex.toml`` and a row in the
README's settings table (a docs test keeps the three in step). The seed's own
environment variable names are honoured as aliases so that old deployments
keep their configuration.
"""

from __future__ import annotations

import os
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from qortex.errors import ConfigError
from qortex.webhooks.destinations import networks

ENV_PREFIX = "QORTEX_"

#: Shortest client API key accepted: shorter ones could be guessed.
MIN_KEY_LENGTH = 16

# The seed's variable names, mapped onto our fields. QORTEX_* wins over these.
SEED_ALIASES: dict[str, str] = {
    "API_KEY_SECRET": "api_key",
    "PORT": "port",
    "DATABASE_PATH": "db",
    "ALLOWED_ORIGINS": "cors_origins",
    "DISPATCH_REPLICAS": "replicas",
    "RESULT_TIMEOUT_MS": "result_timeout_ms",
    "MAX_TWEETS_PER_TASK": "max_tweets_per_task",
}

# Seed variables Qortex has no use for, and why; `qortex serve` says so once.
SEED_UNNEEDED: dict[str, str] = {
    "MINER_SHARED_SECRET": (
        "miners are not trusted through a shared secret: each signs its results with its own"
        " ed25519 key, checked against the key it registered"
    ),
    "QUORUM_CHECK_INTERVAL_MS": (
        "quorum is decided the moment the deciding result arrives, not by a periodic check"
    ),
}
LOG_FORMATS = ("auto", "text", "json")


#: The default ``max_replicas``: room for new miners to outvote a liar.
MIN_MAX_REPLICAS = 10


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    db: str = "qortex.db"
    api_key: str = ""
    replicas: int = 1
    quorum: int = 0
    max_replicas: int = 0
    target_error: float = 1e-3
    fault_fraction: float = 0.1
    check_rate: float = 0.1
    checker: bool = True
    lease_seconds: float = 30.0
    patience_seconds: float = 1.0
    result_timeout_ms: int = 30_000
    max_tweets_per_task: int = 5
    matmul_tile: int = 64
    max_request_bytes: int = 4 * 1024 * 1024
    max_message_bytes: int = 1024 * 1024
    ws_ping_seconds: float = 45.0
    heartbeat_seconds: float = 30.0
    handshake_seconds: float = 5.0
    sse_heartbeat_seconds: float = 15.0
    commit_batch: int = 4096
    verify_threads: int = 2
    sync: str = "full"
    trusted_proxies: list[str] = field(default_factory=lambda: ["127.0.0.1", "::1"])
    cors_origins: list[str] = field(default_factory=list)
    api_rate: float = 50.0
    api_burst: int = 200
    miner_rate: float = 2000.0
    miner_burst: int = 4000
    max_pending: int = 2_000_000
    register_rate: float = 1.0
    register_burst: int = 20
    identity_rate: float = 0.1
    identity_burst: int = 20
    handshake_rate: float = 2.0
    handshake_burst: int = 60
    auth_failure_rate: float = 0.5
    auth_failure_burst: int = 20
    result_rate: float = 50.0
    result_burst: int = 200
    max_connections_per_address: int = 200
    head_seconds: float = 10.0
    max_subscribers: int = 100
    subscriber_bytes: int = 1024 * 1024
    log_level: str = "info"
    log_format: str = "auto"
    max_schedule_days: float = 30.0
    webhook_allow_networks: list[str] = field(default_factory=list)
    webhook_retry_seconds: float = 5.0
    webhook_max_attempts: int = 12
    webhook_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ConfigError("replicas must be at least 1")
        quorum = self.quorum or self.replicas // 2 + 1
        max_replicas = self.max_replicas or max(MIN_MAX_REPLICAS, 2 * self.replicas - 1)
        if not 1 <= quorum <= self.replicas:
            raise ConfigError(f"quorum must be between 1 and replicas ({self.replicas})")
        if max_replicas < self.replicas:
            raise ConfigError("max_replicas must be at least replicas")
        if not 0 < self.target_error < 1:
            raise ConfigError("target_error must be between 0 and 1")
        if not 0 < self.fault_fraction < 1:
            raise ConfigError("fault_fraction must be between 0 and 1")
        if not 0 <= self.check_rate <= 1:
            raise ConfigError("check_rate must be between 0 and 1")
        if self.sync not in ("full", "normal"):
            raise ConfigError("sync must be 'full' or 'normal'")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"log_format must be one of {', '.join(LOG_FORMATS)}")
        try:
            networks(self.webhook_allow_networks)
        except ValueError as exc:
            raise ConfigError(f"webhook_allow_networks: {exc}") from None
        if not 8 <= self.matmul_tile <= 512:
            raise ConfigError("matmul_tile must be between 8 and 512")
        positive = (
            "lease_seconds",
            "result_timeout_ms",
            "max_tweets_per_task",
            "commit_batch",
            "api_rate",
            "api_burst",
            "miner_rate",
            "miner_burst",
            "max_pending",
            "max_schedule_days",
            "webhook_retry_seconds",
            "webhook_max_attempts",
            "webhook_timeout_seconds",
            "register_rate",
            "register_burst",
            "identity_rate",
            "identity_burst",
            "handshake_rate",
            "handshake_burst",
            "auth_failure_rate",
            "auth_failure_burst",
            "result_rate",
            "result_burst",
            "max_connections_per_address",
            "head_seconds",
            "max_subscribers",
            "subscriber_bytes",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        if self.patience_seconds < 0:
            raise ConfigError("patience_seconds must be 0 (no companions) or more")
        if self.api_key and len(self.api_key) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"api_key must be at least {MIN_KEY_LENGTH} characters, got {len(self.api_key)};"
                " leave it empty and `qortex serve` creates one, or make one with: python -c"
                " \"import secrets; print('qx_' + secrets.token_urlsafe(24))\""
            )
        object.__setattr__(self, "quorum", quorum)
        object.__setattr__(self, "max_replicas", max_replicas)

    @property
    def lease_limit_seconds(self) -> float:
        """A copy's deadline: the lease, capped by the seed's result timeout."""
        return min(self.lease_seconds, self.result_timeout_ms / 1000)


def _coerce(name: str, kind: Any, value: Any) -> Any:
    if get_origin(kind) is list:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise ConfigError(f"{name} must be a list of strings")
    if isinstance(kind, types.UnionType):
        kind = get_args(kind)[0]
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    try:
        if isinstance(value, bool) or (kind is str and not isinstance(value, str)):
            raise ValueError
        if kind is int and isinstance(value, float):
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be of type {kind.__name__}, got {value!r}") from None


def unneeded_seed_variables(env: Mapping[str, str] | None = None) -> list[str]:
    """One warning per seed variable that is set but means nothing to Qortex."""
    env = os.environ if env is None else env
    return [
        f"{name} is set but Qortex does not use it: {why}"
        for name, why in SEED_UNNEEDED.items()
        if name in env
    ]


def load_settings(
    config: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build settings from the layers; ``config=None`` reads ``./qortex.toml`` if present."""
    env = os.environ if env is None else env
    hints = get_type_hints(Settings)
    names = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}

    path = Path(config) if config is not None else Path("qortex.toml")
    if config is not None and not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{path}: unknown settings {', '.join(unknown)}")
        values.update(data)

    for alias, name in SEED_ALIASES.items():
        if alias in env:
            values[name] = env[alias]
    for name in names:
        key = ENV_PREFIX + name.upper()
        if key in env:
            values[name] = env[key]
    for name, value in (overrides or {}).items():
        if name not in names:
            raise ConfigError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = value

    coerced = {name: _coerce(name, hints[name], value) for name, value in values.items()}
    return Settings(**coerced)
