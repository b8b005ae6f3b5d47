"""The ``qortex`` command: build the object, turn domain errors into CLI errors, run it."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.logging import RichHandler

from qortex import __version__, cli_keys, cli_tasks, credentials, logs, urls
from qortex.cli_common import (
    DEFAULTS,
    ApiKey,
    Url,
    client_for,
    err,
    fail,
    settings_of,
    url_of,
)
from qortex.client import ApiError, Client
from qortex.errors import ConfigError
from qortex.settings import unneeded_seed_variables

app = typer.Typer(
    help="Qortex: trusted results from untrusted volunteer computers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: no boxes, no <str> type markers
)


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(metavar="HOST", help=f"Address to listen on [default: {DEFAULTS.host}]."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(metavar="PORT", help=f"Port to listen on [default: {DEFAULTS.port}]."),
    ] = None,
    db: Annotated[
        str | None, typer.Option(metavar="FILE", help=f"SQLite file [default: {DEFAULTS.db}].")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Settings file [default: ./qortex.toml if present]."),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            metavar="LEVEL",
            help=f"debug, info, warning or error [default: {DEFAULTS.log_level}].",
        ),
    ] = None,
) -> None:
    """Run the coordinator. Settings: flags > QORTEX_* env vars > qortex.toml > defaults."""
    from qortex import serving
    from qortex.plugins import load_kinds
    from qortex.store.database import StoreUnwritable, prepare
    from qortex.store.lock import DatabaseLock
    from qortex.web import guard, redact
    from qortex.web.app import adopt_new_key, create_app

    settings = settings_of(config, host=host, port=port, db=db, log_level=log_level)
    redact.install()
    logs.configure(settings.log_level, settings.log_format)
    for warning in unneeded_seed_variables():
        logging.getLogger("qortex.settings").warning(warning)
    files = guard.raise_open_files_limit()
    logging.getLogger("qortex").info("open files limit: %d", files)
    url = urls.of_settings(settings)
    try:
        kinds = load_kinds(settings)  # here, so a broken plugin is one clear line, not a trace
        # Before anything is written: the port must be free, and the file ours.
        sock = serving.bind(settings.host, settings.port)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    try:
        lock = DatabaseLock.acquire(settings.db, f"qortex serve on {url}")
    except ConfigError as exc:
        sock.close()
        raise fail(str(exc), 2) from None
    try:
        prepare(settings.db, settings.sync)  # an unwritable file is refused before listening
    except StoreUnwritable as exc:
        sock.close()
        lock.release()
        raise fail(str(exc), 2) from None

    def fatal(exc: BaseException) -> None:
        # Memory may now be ahead of the file: stop, and let the next start recover from it.
        err.print(f"[bold red]fatal:[/] the database stopped accepting writes: {exc}")
        os.kill(os.getpid(), signal.SIGTERM)

    # The dispatch table holds millions of small objects that live for minutes;
    # Python's collector would walk all of them over and over. Collect the young
    # generation less often, and park what recovery loaded outside the collector.
    gc.set_threshold(10_000, 20, 100)
    application = create_app(settings, kinds=kinds, on_fatal=fatal, on_started=gc.freeze)

    async def listening() -> None:
        key = await adopt_new_key(application)
        if key is not None:
            saved = credentials.save(url, key)
            print(
                f"\n  Client API key (admin scope; shown once, only its hash is stored): {key}\n"
                f"  Saved for the qortex CLI in {saved} (for {url})\n"
                f"  Use it as the x-api-key header, or export QORTEX_API_KEY={key}\n"
                "  Make narrower keys with: qortex keys create NAME --scope submit,read\n",
                flush=True,
            )
        # Last, so that whoever waits for this line finds the key saved.
        print(f"qortex serve: listening on {url} (database {settings.db})", flush=True)

    try:
        serving.serve(application, settings, sock, listening)
    finally:
        lock.release()


@app.command()
def miner(
    url: Url = None,
    count: Annotated[
        int, typer.Option(min=1, max=1000, metavar="N", help="Miners (identities) to run.")
    ] = 1,
    concurrency: Annotated[
        int, typer.Option(min=1, max=64, metavar="N", help="Slots per miner.")
    ] = 1,
    key_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            show_default=False,
            help="Where key files live [default: miners/ in the user's qortex config directory].",
        ),
    ] = None,
    key: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="FILE",
            show_default=False,
            help="A key file from `qortex keygen`; repeat for several miners (instead of --count).",
        ),
    ] = None,
    name: Annotated[
        str, typer.Option(metavar="NAME", help="A name shown on the coordinator.")
    ] = "",
) -> None:
    """Run CLI miners: each its own ed25519 identity, kept in a 0600 key file.

    Each process takes key files no other running miner holds (and creates
    new ones when all are taken), so several can run side by side.
    """
    from qortex.miner.keys import claim_files, claim_free
    from qortex.miner.report import Report
    from qortex.miner.runner import Miner, run_all
    from qortex.plugins import load_kinds

    # Errors logged by the miners print above the live status line, not through it.
    handler = RichHandler(console=err, show_time=False, show_path=False, markup=False)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[handler])
    target = url_of(url)
    kinds = load_kinds(settings_of())
    directory = key_dir or credentials.config_dir() / "miners"
    try:
        keys = claim_files(key) if key else claim_free(directory, count)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    report = Report(err)
    shown = ", ".join(str(k.path) for k in keys[:3]) + (", ..." if len(keys) > 3 else "")
    report.say(f"{len(keys)} miner(s) for {target}; keys: {shown}")
    miners = [
        Miner(
            target,
            k.signer,
            kinds,
            concurrency,
            f"{name or 'cli'}-{k.path.stem.removeprefix('miner-')}",
            report=report,
            key_path=str(k.path),
        )
        for k in keys
    ]
    report.start([miner.stats for miner in miners])
    stopped = 0
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as on Ctrl-C: say the tally
    try:
        stopped = asyncio.run(run_all(miners))
    except KeyboardInterrupt:
        pass
    finally:
        report.stop()
        err.print(report.summary(), highlight=False, soft_wrap=True)
        for k in keys:
            k.release()
    if stopped:
        raise typer.Exit(1)


@app.command()
def submit(
    source: Annotated[
        str,
        typer.Argument(
            metavar="FILE",
            help="Tweets, one per line; or JSON (a task body or an input); - for stdin.",
        ),
    ],
    url: Url = None,
    api_key: ApiKey = None,
    kind: Annotated[
        str | None,
        typer.Option(
            metavar="KIND",
            help="Task kind [default: sentiment for lines, the body's own kind for JSON].",
        ),
    ] = None,
    replicas: Annotated[int | None, typer.Option(metavar="N", help="Copies per microtask.")] = None,
    wait: Annotated[bool, typer.Option(help="Follow progress and print the output.")] = False,
    at: Annotated[
        str | None, typer.Option("--at", metavar="TIME", help="Start no earlier than this time.")
    ] = None,
    delay: Annotated[
        float | None,
        typer.Option(
            "--in", metavar="SECONDS", help="Start no earlier than this many seconds from now."
        ),
    ] = None,
) -> None:
    """Submit a task; with --wait, show progress and print the result as JSON.

    A file with more tweets than one task may hold is sent as several tasks,
    followed under one progress bar, its output printed in the file's order.
    Each submit carries its own Idempotency-Key, so a retry never makes a second task.
    """
    text = sys.stdin.read() if source == "-" else _read(Path(source))
    target = url_of(url)
    try:
        start = cli_tasks.start_time(at, delay)
        body = {**cli_tasks.task_body(text, kind, replicas), **start}
        with client_for(target, api_key) as client:
            created = cli_tasks.submit_all(client, cli_tasks.fit(client, body))
            if not wait:
                print(json.dumps(created[0] if len(created) == 1 else created, indent=2))
                return
            tasks = _wait(client, created)
    except ApiError as exc:
        raise fail(str(cli_tasks.refused(exc))) from None
    except ConfigError as exc:
        raise fail(str(exc)) from None
    failed = [task for task in tasks if task["status"] != "completed"]
    if failed:
        for task in failed:
            print(json.dumps(task, indent=2))
        raise fail(", ".join(f"task {t['taskId']} {t['status']}" for t in failed))
    outputs = [task["output"] for task in tasks]
    output = outputs[0] if len(outputs) == 1 else [item for out in outputs for item in out]
    print(json.dumps(output, indent=2, ensure_ascii=False))


def _wait(client: Client, created: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [task["taskId"] for task in created]
    if len(ids) > 1:
        err.print(f"{len(ids)} tasks: {', '.join(ids)}", highlight=False)
    try:
        cli_tasks.follow(client, created, err)
    except KeyboardInterrupt:
        err.print(
            f"stopped following; still running: {', '.join(ids)}"
            f" (see them with `qortex status {ids[0]}`)",
            highlight=False,
        )
        raise typer.Exit(130) from None
    return [client.task(task_id) for task_id in ids]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror}") from None


@app.command()
def status(
    task_id: Annotated[str, typer.Argument(metavar="TASK_ID", help="A task id, or its start.")],
    url: Url = None,
    api_key: ApiKey = None,
    raw: Annotated[bool, typer.Option("--json", help="The task as the API returns it.")] = False,
) -> None:
    """Show a task: status, progress, each microtask's decision and who voted."""
    target = url_of(url)
    try:
        with client_for(target, api_key) as client:
            task = client.task(cli_tasks.resolve(client, task_id))
    except ApiError as exc:
        raise fail(str(cli_tasks.refused(exc))) from None
    except ConfigError as exc:
        raise fail(str(exc)) from None
    print(json.dumps(task, indent=2, ensure_ascii=False) if raw else cli_tasks.summary(task))


@app.command()
def cancel(
    task_id: Annotated[str, typer.Argument(metavar="TASK_ID", help="A task id, or its start.")],
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Cancel a running task: its copies are withdrawn from the miners (needs an admin key)."""
    target = url_of(url)
    try:
        with client_for(target, api_key) as client:
            full_id = cli_tasks.resolve(client, task_id)
            answer = client.cancel(full_id)
    except ApiError as exc:
        raise fail(str(cli_tasks.refused(exc))) from None
    except ConfigError as exc:
        raise fail(str(exc)) from None
    print(json.dumps(answer, indent=2, ensure_ascii=False))


app.add_typer(cli_keys.keys_app, name="keys")


@app.command()
def keygen(
    out: Annotated[Path, typer.Argument(metavar="FILE", help="Key file to create (mode 0600).")],
) -> None:
    """Create a miner identity and print its id and public key; run it with --key FILE."""
    from qortex.miner.keys import write_key
    from qortex.signing import Signer

    signer = Signer()
    try:
        write_key(out, signer)
    except FileExistsError:
        raise fail(f"{out} exists; refusing to overwrite a key") from None
    print(json.dumps({"minerId": signer.miner_id, "publicKey": signer.public_hex}, indent=2))
    err.print(f"mine with it: qortex miner --key {out}", highlight=False)


@app.command()
def verify(
    proof: Annotated[
        Path,
        typer.Argument(metavar="PROOF.json", help="A proof bundle from /api/v1/tasks/{id}/proof."),
    ],
) -> None:
    """Re-check a task's proof offline: every signature and every quorum."""
    from qortex.plugins import load_kinds
    from qortex.proof import check_proof

    try:
        bundle = json.loads(_read(proof))
    except ValueError as exc:
        raise fail(f"{proof} is not JSON: {exc}") from None
    problems = check_proof(bundle, load_kinds(settings_of()))
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
