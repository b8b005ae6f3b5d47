"""What every ``qortex`` subcommand shares: its options, the coordinator's URL and key, errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from qortex import credentials, urls
from qortex.client import Client
from qortex.errors import ConfigError
from qortex.settings import Settings, load_settings

err = Console(stderr=True, soft_wrap=True)  # messages are read, copied and grepped whole
DEFAULTS = Settings()

Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="QORTEX_URL",
        metavar="URL",
        show_default=False,
        help="Coordinator URL; scheme optional [default: http://127.0.0.1 and the port"
        " in ./qortex.toml, else 8000; env QORTEX_URL].",
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        metavar="KEY",
        help="Client API key [default: QORTEX_API_KEY, or the key qortex serve saved].",
    ),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def settings_of(config: Path | None = None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, overrides=overrides)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None


def url_of(given: str | None) -> str:
    """The coordinator's URL: as given (normalised), or from ./qortex.toml's host and port."""
    try:
        return urls.normalise(given) if given else urls.of_settings(settings_of())
    except ConfigError as exc:
        raise fail(str(exc), 2) from None


def key_of(url: str, given: str | None) -> str:
    key = (
        given
        or os.environ.get("QORTEX_API_KEY")
        or os.environ.get("API_KEY_SECRET")
        or credentials.load(url)
    )
    if not key:
        raise fail(
            f"no API key for {url}: pass --api-key, set QORTEX_API_KEY, or run `qortex serve`"
            " on this machine (it saves its key for the CLI)"
        )
    return key


def client_for(url: str, given: str | None) -> Client:
    """The API client for ``url`` with the key the user gave or saved for it."""
    return Client(url, key_of(url, given))
