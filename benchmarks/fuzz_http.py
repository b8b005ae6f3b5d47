"""Fuzz a real ``qortex serve`` over HTTP with schemathesis, against its own /openapi.json.

    python benchmarks/fuzz_http.py [--examples N] [--max-time S] [--no-stateful] [--seed N] [--json]

The long mode of ``tests/web/test_openapi.py``: a coordinator subprocess on a
free loopback port with a fresh SQLite file, and schemathesis' whole run
(examples, coverage, fuzzing with positive and negative data, then stateful
sequences that follow the links it infers) with ``--examples`` cases per
operation and mode. Checks: no 5xx, only documented status codes, content
types and response schemas, declared auth enforced, and a JSON ``message``
on every 4xx. Half the well-formed signed results are signed by a registered
miner, so they reach the coordinator rather than stopping at the signature.

Afterwards the database must hold exactly what the accepted requests created:
one ``tasks`` row per 201 from ``POST /api/v1/tasks`` and the ``microtasks``
those 201s announced, one ``miners`` row per 201 from registration, and no
``results`` at all (no miner is connected). The rate limit
is lifted (``api_burst``) so requests are not just 429s.

Everything runs in a temporary directory that is removed at the end, as is
the server (on errors and Ctrl-C too). Progress goes to stderr; stdout gets a
table, or one JSON object with ``--json``. Exit status 1 if anything failed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import fuzzing
import httpx
import schemathesis
from processes import HOST, die_with_parent, free_port
from rich.console import Console
from rich.table import Table
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events

from qortex.signing import Signer

API_KEY = "fuzz-" + os.urandom(12).hex()
TABLES = ("tasks", "microtasks", "results", "miners")

err = Console(stderr=True)


def log(message: str) -> None:
    err.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}")


# -- the server ---------------------------------------------------------------


class Server:
    """``qortex serve`` in its own process group, ended with SIGTERM, then SIGKILL."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.db = tmp / "qortex.db"
        self.log = tmp / "serve.log"
        self.env = {
            **os.environ,
            "QORTEX_API_KEY": API_KEY,
            "QORTEX_DB": str(self.db),
            "QORTEX_HOST": HOST,
            "QORTEX_PORT": str(self.port),
            "QORTEX_LOG_LEVEL": "warning",
            "QORTEX_API_BURST": str(10**9),  # the limiter stays on, but never says 429
            "QORTEX_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
            "XDG_CONFIG_HOME": str(tmp / "config"),
        }
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "qortex", "serve"],
                cwd=self.tmp,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"qortex serve exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"qortex serve did not become healthy: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def unhandled_errors(self) -> int:
        return self.log.read_text(errors="replace").count("unhandled error on ")


def count_rows(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        conn.close()


# -- the run ------------------------------------------------------------------


def config(args: argparse.Namespace) -> SchemathesisConfig:
    return fuzzing.config(
        API_KEY, args.seed, args.examples, stateful=args.stateful, request_timeout=10
    )


def fuzz(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    server = Server(tmp)
    log(f"starting qortex serve on {server.url}")
    server.start()
    signer = Signer.from_seed(os.urandom(32))
    requests: collections.Counter[str] = collections.Counter()
    by_class: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    codes: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    silent_4xx: collections.Counter[str] = collections.Counter()
    created: collections.Counter[str] = collections.Counter()
    announced_microtasks = 0
    failures: dict[tuple[str, str, str], str] = {}
    errors: list[str] = []

    def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
        fuzzing.keep_on_loopback(case.body)
        fuzzing.sign_some_results(case, signer)

    def after_call(context: Any, case: Any, response: Any) -> None:
        nonlocal announced_microtasks
        label = case.operation.label
        status = response.status_code
        requests[label] += 1
        by_class[label][f"{status // 100}xx"] += 1
        codes[label][status] += 1
        if 400 <= status < 500 and fuzzing.json_message(response) is None:
            silent_4xx[label] += 1
        if status == 201:
            created[label] += 1
            if case.operation.path == "/api/v1/tasks":
                announced_microtasks += response.json()["microtasks"]

    started = time.monotonic()
    schemathesis.hook(before_call)
    try:
        registered = httpx.post(
            server.url + "/api/v1/miners/register", json={"publicKey": signer.public_hex}
        )
        assert registered.status_code == 201, registered.text
        before = count_rows(server.db)
        schema = schemathesis.openapi.from_url(server.url + "/openapi.json", config=config(args))
        schema.hook(after_call)
        operations = [result.ok().label for result in schema.get_all_operations()]
        log(
            f"{len(operations)} operations, {args.examples} examples each per mode"
            f"{', then stateful' if args.stateful else ''}; at most {args.max_time} s"
        )
        stream = schemathesis.engine.from_schema(schema).execute()
        timer = threading.Timer(args.max_time, stream.stop)
        timer.start()
        for event in stream:
            if isinstance(event, events.PhaseStarted):
                log(f"phase {event.phase.name.value}")
            elif isinstance(event, events.ScenarioFinished):
                for nodes in event.recorder.checks.values():
                    for node in nodes:
                        if node.failure_info is not None:
                            info = node.failure_info
                            key = (event.label or "stateful", node.name, info.failure.title)
                            failures.setdefault(key, info.code_sample)
            elif isinstance(event, events.NonFatalError):
                errors.append(f"{event.label}: {event.value!r}")
            elif isinstance(event, events.FatalError):
                errors.append(f"fatal: {event.exception!r}")
        timer.cancel()
        elapsed = time.monotonic() - started
        after = count_rows(server.db)
    finally:
        schemathesis.hooks.unregister(before_call)
        server.stop()
    expected = {
        "tasks": before["tasks"] + created["POST /api/v1/tasks"],
        "microtasks": before["microtasks"] + announced_microtasks,
        "results": before["results"],
        "miners": before["miners"] + created["POST /api/v1/miners/register"],
    }
    totals: collections.Counter[str] = collections.Counter()
    for counts in by_class.values():
        totals.update(counts)
    return {
        "examples": args.examples,
        "stateful": args.stateful,
        "seed": args.seed,
        "duration_seconds": round(elapsed, 1),
        "time_limit_reached": elapsed >= args.max_time,
        "operations": {
            label: {
                "requests": requests[label],
                **{k: by_class[label][k] for k in ("2xx", "3xx", "4xx", "5xx")},
                "4xx_without_message": silent_4xx[label],
                "201": created[label],
                "statuses": {str(code): n for code, n in sorted(codes[label].items())},
            }
            for label in operations
        },
        "requests": sum(requests.values()),
        "by_class": dict(sorted(totals.items())),
        "server_errors_logged": server.unhandled_errors(),
        "failures": [
            {"operation": op, "check": check, "title": title, "reproduce": curl}
            for (op, check, title), curl in sorted(failures.items())
        ],
        "errors": errors,
        "database": {"before": before, "after": after, "expected": expected},
    }


def ok(report: dict[str, Any]) -> bool:
    db = report["database"]
    return (
        not report["failures"]
        and not report["errors"]
        and report["by_class"].get("5xx", 0) == 0
        and report["server_errors_logged"] == 0
        and all(op["4xx_without_message"] == 0 for op in report["operations"].values())
        and db["after"] == db["expected"]
    )


def table(report: dict[str, Any]) -> Table:
    t = Table(
        title=(
            f"HTTP fuzzing: {report['requests']} requests in {report['duration_seconds']} s "
            f"({report['examples']} examples per operation and mode"
            f"{', stateful' if report['stateful'] else ''}, seed {report['seed']})"
        )
    )
    columns = ("operation", "requests", "2xx", "3xx", "4xx", "5xx", "4xx no msg", "status codes")
    for column in columns:
        t.add_column(column, justify="right" if column in columns[1:-1] else "left")
    for label, op in report["operations"].items():
        t.add_row(
            label,
            *(str(op[k]) for k in ("requests", "2xx", "3xx", "4xx", "5xx")),
            str(op["4xx_without_message"]),
            " ".join(f"{code}:{n}" for code, n in op["statuses"].items()),
        )
    t.add_section()
    classes = report["by_class"]
    silent = sum(op["4xx_without_message"] for op in report["operations"].values())
    t.add_row(
        "all",
        str(report["requests"]),
        *(str(classes.get(k, 0)) for k in ("2xx", "3xx", "4xx", "5xx")),
        str(silent),
        f"201:{sum(op['201'] for op in report['operations'].values())}",
    )
    t.add_section()
    db = report["database"]
    for name in TABLES:
        before, after, expected = (db[k][name] for k in ("before", "after", "expected"))
        verdict = "ok" if after == expected else f"[red]expected {expected}[/]"
        t.add_row(f"rows in {name}", f"{before} -> {after}", verdict)
    t.add_row("failed checks", str(len(report["failures"])))
    t.add_row("engine errors", str(len(report["errors"])))
    t.add_row("500s in the server log", str(report["server_errors_logged"]))
    if report["time_limit_reached"]:
        t.add_row("time limit", "[yellow]reached: not every case ran[/]")
    t.add_row("verdict", "[green]ok[/]" if ok(report) else "[red]FAILED[/]")
    return t


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Fuzz qortex serve over HTTP (see module doc).")
    parser.add_argument("--examples", type=int, default=500, help="cases per operation and mode")
    parser.add_argument("--max-time", type=int, default=1800, help="stop after this many seconds")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--no-stateful", dest="stateful", action="store_false", help="skip the stateful phase"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    return parser.parse_args()


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # so that the server is stopped and the directory removed


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    tmp = Path(tempfile.mkdtemp(prefix="qortex-fuzz-"))
    try:
        report = fuzz(args, tmp)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        Console(width=160).print(table(report))
        for failure in report["failures"]:
            Console().print(
                f"[red]{failure['operation']}[/] {failure['check']}: {failure['title']}\n"
                f"  {failure['reproduce']}"
            )
        for error in report["errors"]:
            Console().print(f"[red]error[/] {error}")
    return 0 if ok(report) else 1


if __name__ == "__main__":
    sys.exit(main())
