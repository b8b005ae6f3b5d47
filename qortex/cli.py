"""The ``qortex`` command: build the object, turn domain errors into CLI errors, run it."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import msgspec
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from qortex import __version__, credentials, logs
from qortex.client import ApiError, Client, Event, Task
from qortex.errors import ConfigError
from qortex.settings import Settings, load_settings, unneeded_seed_variables

app = typer.Typer(
    help="Qortex: trusted results from untrusted volunteer computers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8000"
Url = Annotated[str, typer.Option("--url", envvar="QORTEX_URL", help="Coordinator URL.")]
ApiKey = Annotated[
    str | None,
    typer.Option("--api-key", help="Client API key (default: QORTEX_API_KEY or the saved one)."),
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _settings(config: Path | None = None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, overrides=overrides)
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    db: Annotated[str | None, typer.Option(help="SQLite file.")] = None,
    config: Annotated[
        Path | None, typer.Option(help="Settings file (default ./qortex.toml).")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error.")] = None,
) -> None:
    """Run the coordinator."""
    import uvicorn

    from qortex.web import guard, redact
    from qortex.web.app import create_app

    settings = _settings(config, host=host, port=port, db=db, log_level=log_level)
    redact.install()
    logs.configure(settings.log_level, settings.log_format)
    for warning in unneeded_seed_variables():
        logging.getLogger("qortex.settings").warning(warning)
    files = guard.raise_open_files_limit()
    logging.getLogger("qortex").info("open files limit: %d", files)

    def fatal(exc: BaseException) -> None:
        # Memory may now be ahead of the file: stop, and let the next start recover from it.
        err.print(f"[bold red]fatal:[/] the database stopped accepting writes: {exc}")
        os.kill(os.getpid(), signal.SIGTERM)

    from qortex.plugins import load_kinds
    from qortex.store.database import StoreUnwritable, prepare

    try:
        kinds = load_kinds(settings)  # here, so a broken plugin is one clear line, not a trace
        prepare(settings.db, settings.sync)  # and an unwritable file is refused before listening
    except (ConfigError, StoreUnwritable) as exc:
        raise _fail(str(exc), 2) from None
    # The dispatch table holds millions of small objects that live for minutes;
    # Python's collector would walk all of them over and over. Collect the young
    # generation less often, and park what recovery loaded outside the collector.
    gc.set_threshold(10_000, 20, 100)
    application = create_app(settings, kinds=kinds, on_fatal=fatal, on_started=gc.freeze)
    http, ws = guard.protocols(settings)
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        http=http,
        ws=ws,
        log_level=settings.log_level,
        log_config=None,  # logs.configure above: one format for every logger
        access_log=False,  # qortex.logs.AccessLog writes access lines, with request ids
        ws_max_size=settings.max_message_bytes,
        ws_ping_interval=settings.ws_ping_seconds,
        ws_ping_timeout=settings.ws_ping_seconds,
        ws_per_message_deflate=False,  # frames are small JSON: compressing costs more than it saves
        proxy_headers=True,
        forwarded_allow_ips=",".join(settings.trusted_proxies),
        timeout_graceful_shutdown=5,
    )


@app.command()
def miner(
    url: Url = DEFAULT_URL,
    count: Annotated[int, typer.Option(min=1, max=1000, help="Miners (identities) to run.")] = 1,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Slots per miner.")] = 1,
    key_dir: Annotated[Path | None, typer.Option(help="Where key files live.")] = None,
    name: Annotated[str, typer.Option(help="A name shown on the coordinator.")] = "",
) -> None:
    """Run CLI miners: each its own ed25519 identity, kept in a 0600 key file."""
    from qortex.miner.keys import load_or_create
    from qortex.miner.runner import Miner, MinerStopped
    from qortex.plugins import load_kinds

    logging.basicConfig(level="INFO", format="%(asctime)s %(name)s: %(message)s")
    kinds = load_kinds(_settings())
    directory = key_dir or credentials.config_dir() / "miners"
    miners = [
        Miner(url, load_or_create(directory, i), kinds, concurrency, f"{name or 'cli'}-{i}")
        for i in range(count)
    ]

    async def run_all() -> None:
        await asyncio.gather(*(mnr.run() for mnr in miners))

    try:
        asyncio.run(run_all())
    except MinerStopped as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        pass
    finally:
        stats = [mnr.stats for mnr in miners]
        refused = sum(sum(s.refused.values()) for s in stats)
        err.print(
            f"{len(miners)} miner(s): {sum(s.connects for s in stats)} connection(s),"
            f" {sum(s.computed for s in stats)} computed, {sum(s.accepted for s in stats)}"
            f" accepted, {refused} refused, {sum(s.cancelled for s in stats)} cancelled,"
            f" {sum(s.mismatched for s in stats)} skipped for an input digest mismatch"
        )


def _key(url: str, given: str | None) -> str:
    key = (
        given
        or os.environ.get("QORTEX_API_KEY")
        or os.environ.get("API_KEY_SECRET")
        or credentials.load(url)
    )
    if not key:
        raise _fail("no API key: pass --api-key, set QORTEX_API_KEY, or run `qortex serve` here")
    return key


def _client(url: str, api_key: str | None) -> Client:
    return Client(url, _key(url, api_key))


def _api(call: Callable[[], T]) -> T:
    """Run a client call; an API error becomes one red line and exit status 1."""
    try:
        return call()
    except ApiError as exc:
        raise _fail(f"HTTP {exc.status}: {exc.message}") from None


def _task_body(text: str, kind: str, replicas: int | None) -> dict[str, Any]:
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            body = json.loads(stripped)
        except ValueError as exc:
            raise _fail(f"input looks like JSON but is not: {exc}") from None
    elif kind == "sentiment":
        body = {"tweets": [line.strip() for line in text.splitlines() if line.strip()]}
    else:
        raise _fail(f"input for kind {kind!r} must be a JSON task body")
    if replicas is not None:
        body["replicas"] = replicas
    return body


def _start(at: str | None, delay: float | None) -> dict[str, Any]:
    """``--at`` (an ISO time; local time if it names no zone) or ``--in`` seconds."""
    if at is not None and delay is not None:
        raise _fail("give --at or --in, not both")
    if delay is not None:
        return {"delaySeconds": delay}
    if at is None:
        return {}
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        raise _fail(
            f"--at must be a time such as 2030-01-01T09:00 or 2030-01-01T09:00Z, got {at!r}"
        ) from None
    return {"not_before": when if when.tzinfo else when.astimezone()}


@app.command()
def submit(
    source: Annotated[
        str, typer.Argument(help="File of tweets (one per line) or JSON; - for stdin.")
    ],
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
    kind: Annotated[str, typer.Option(help="Task kind for line input.")] = "sentiment",
    replicas: Annotated[int | None, typer.Option(help="Copies per microtask.")] = None,
    wait: Annotated[bool, typer.Option(help="Follow progress and print the output.")] = False,
    at: Annotated[str | None, typer.Option("--at", help="Start no earlier than this time.")] = None,
    delay: Annotated[
        float | None, typer.Option("--in", help="Start no earlier than this many seconds from now.")
    ] = None,
) -> None:
    """Submit a task; with --wait, show progress and print the result as JSON.

    The submit carries an Idempotency-Key, so its retries never make a second task.
    """
    text = sys.stdin.read() if source == "-" else _read(Path(source))
    body = {**_task_body(text, kind, replicas), **_start(at, delay)}
    with _client(url, api_key) as client:
        made = _api(lambda: client.submit_body(body))
        if not wait:
            print(json.dumps(msgspec.to_builtins(made), indent=2))
            return
        task = _follow(client, made.task_id, made.microtasks or 0)
    if task.status != "completed":
        print(json.dumps(msgspec.to_builtins(task), indent=2))
        raise _fail(f"task {task.task_id} {task.status}")
    print(json.dumps(task.output, indent=2, ensure_ascii=False))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror}") from None


def _follow(client: Client, task_id: str, total: int) -> Task:
    """Show a progress bar from the task's own event stream until it ends."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        bar = progress.add_task(f"task {task_id[:8]}", total=total)

        def advance(event: Event) -> None:
            if event.type == "microtask.quorum":
                progress.advance(bar)

        return _api(lambda: client.wait(task_id, on_event=advance))


@app.command()
def status(task_id: str, url: Url = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """Show a task: status, each microtask's decision and votes, and the output."""
    with _client(url, api_key) as client:
        task = _api(lambda: client.status(task_id))
    print(json.dumps(msgspec.to_builtins(task), indent=2, ensure_ascii=False))


keys_app = typer.Typer(help="Make, list and revoke API keys (needs an admin key).")
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    name: str,
    scope: Annotated[str, typer.Option(help="Comma-separated: read, submit, admin.")] = "read",
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Make a key and print its secret (shown this once only)."""
    scopes = [part.strip() for part in scope.split(",") if part.strip()]
    with _client(url, api_key) as client:
        made = _api(lambda: client.create_key(name, scopes))
    print(json.dumps(msgspec.to_builtins(made), indent=2))


@keys_app.command("list")
def keys_list(url: Url = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """List keys: names, scopes, when made and revoked (never the secrets)."""
    with _client(url, api_key) as client:
        print(json.dumps(_api(client.keys), indent=2))


@keys_app.command("revoke")
def keys_revoke(name: str, url: Url = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """Revoke a key: refused from now on, and its open event streams end."""
    with _client(url, api_key) as client:
        print(json.dumps(_api(lambda: client.revoke_key(name)), indent=2))


@app.command()
def keygen(out: Annotated[Path, typer.Argument(help="Key file to create (mode 0600).")]) -> None:
    """Create a miner identity and print its id and public key."""
    from qortex.miner.keys import write_key
    from qortex.signing import Signer

    signer = Signer()
    try:
        write_key(out, signer)
    except FileExistsError:
        raise _fail(f"{out} exists; refusing to overwrite a key") from None
    print(json.dumps({"minerId": signer.miner_id, "publicKey": signer.public_hex}, indent=2))


@app.command()
def verify(
    proof: Annotated[Path, typer.Argument(help="A proof bundle from /api/v1/tasks/{id}/proof.")],
) -> None:
    """Re-check a task's proof offline: every signature and every quorum."""
    from qortex.plugins import load_kinds
    from qortex.proof import check_proof

    try:
        bundle = json.loads(_read(proof))
    except ValueError as exc:
        raise _fail(f"{proof} is not JSON: {exc}") from None
    problems = check_proof(bundle, load_kinds(_settings()))
    for problem in problems:
        err.print(f"[red]✗[/] {problem}")
    if problems:
        raise typer.Exit(1)
    votes = sum(len(mt["votes"]) for mt in bundle["microtasks"])
    print(f"ok: {votes} signatures and every decision check out")


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


def main() -> None:
    try:
        app()
    except httpx.TransportError as exc:
        err.print(f"[bold red]error:[/] cannot reach the coordinator: {exc}")
        sys.exit(1)
