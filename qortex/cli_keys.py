"""``qortex keys``: make, list and revoke API keys through the Python client."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, TypeVar

import msgspec
import typer

from qortex.cli_common import ApiKey, Url, client_for, fail, url_of
from qortex.client import ApiError

T = TypeVar("T")


def _api(call: Callable[[], T]) -> T:
    """Run a client call; an API error becomes one red line and exit status 1."""
    try:
        return call()
    except ApiError as exc:
        raise fail(f"HTTP {exc.status}: {exc.message}") from None


keys_app = typer.Typer(help="Make, list and revoke API keys (needs an admin key).")


@keys_app.command("create")
def keys_create(
    name: str,
    scope: Annotated[str, typer.Option(help="Comma-separated: read, submit, admin.")] = "read",
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Make a key and print its secret (shown this once only)."""
    scopes = [part.strip() for part in scope.split(",") if part.strip()]
    target = url_of(url)
    with client_for(target, api_key) as client:
        made = _api(lambda: client.create_key(name, scopes))
    print(json.dumps(msgspec.to_builtins(made), indent=2))


@keys_app.command("list")
def keys_list(url: Url = None, api_key: ApiKey = None) -> None:
    """List keys: names, scopes, when made and revoked (never the secrets)."""
    target = url_of(url)
    with client_for(target, api_key) as client:
        print(json.dumps(_api(client.keys), indent=2))


@keys_app.command("revoke")
def keys_revoke(name: str, url: Url = None, api_key: ApiKey = None) -> None:
    """Revoke a key: refused from now on, and its open event streams end."""
    target = url_of(url)
    with client_for(target, api_key) as client:
        print(json.dumps(_api(lambda: client.revoke_key(name)), indent=2))
