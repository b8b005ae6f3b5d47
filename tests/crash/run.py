"""One crash campaign's plan, record and report."""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tests.crash.clients import Trigger, log


@dataclass(frozen=True)
class Plan:
    """The sizes of a run: the quick default, or the long one behind docs/reliability.md."""

    kills: int
    large_kills: int
    migration_kills: int
    large_window: float  # max delay of a large kill (s); long runs also kill after the commit
    rate: float = 20.0  # small tasks submitted per second
    cli_miners: int = 4  # miners in ``qortex miner --count``
    protocol_miners: int = 3  # in-campaign miners
    drain_seconds: float = 240.0  # bound on the final wait


QUICK = Plan(kills=3, large_kills=1, migration_kills=3, large_window=0.3)
LONG = Plan(kills=100, large_kills=4, migration_kills=20, large_window=0.6)


@dataclass
class Check:
    """One named promise checked against the file, and what was found."""

    ok: bool
    detail: str


@dataclass
class Run:
    """What one run did (kills, restarts, large submits) and found (checks, figures)."""

    plan: Plan
    seed: int
    tmp: Path
    rng: random.Random
    started: float = field(default_factory=time.monotonic)
    kills: int = 0
    kills_by: Counter[str] = field(default_factory=Counter)
    restarts: int = 0
    restart_seconds: list[float] = field(default_factory=list)
    large: list[dict[str, Any]] = field(default_factory=list)
    large_tweets: dict[str, list[str]] = field(default_factory=dict)
    migration: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Check] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks[name] = Check(bool(ok), detail)
        mark = "[green]ok[/]" if ok else "[bold red]FAILED[/]"
        log(f"check {name}: {mark} {detail}")


def report(run: Run) -> dict[str, Any]:
    """Every figure and check of the run, as one object (docs/reliability.md names each)."""
    f = run.figures
    restarts = run.restart_seconds
    return {
        "ok": bool(run.checks) and all(c.ok for c in run.checks.values()) and not run.errors,
        "seed": run.seed,
        "kills": run.kills,
        "killsBy": {k: run.kills_by[k] for k in Trigger.KINDS},
        "specialKills": {
            "largeSubmit": len(run.large),
        },
        "killsTotal": run.kills + len(run.large),
        "restarts": run.restarts,
        "restartSeconds": {
            "mean": round(sum(restarts) / len(restarts), 3) if restarts else None,
            "max": round(max(restarts), 3) if restarts else None,
        },
        **f,
        "largeSubmits": run.large,
        "checks": {name: {"ok": c.ok, "detail": c.detail} for name, c in run.checks.items()},
        "errors": run.errors,
        "seconds": round(time.monotonic() - run.started, 1),
        "machine": machine(),
    }


def machine() -> dict[str, Any]:
    """The machine the figures come from."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "nproc": os.cpu_count(),
        "cpuModel": model,
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "kernel": os.uname().release,
        "loadAverage": [round(x, 2) for x in os.getloadavg()],
    }


FIGURES = [
    ("kills survived (random, under load)", "kills"),
    ("  at once / on a 201 / ack / event / quorum", "killsBy"),
    ("kills during a 20k-tweet submit", ("specialKills", "largeSubmit")),
    ("restarts", "restarts"),
    ("restart to healthy, mean / max (s)", "restartSeconds"),
    ("tasks submitted (201s)", "tasksSubmitted"),
    ("tasks checked", "tasksChecked"),
    ("  completed, right labels", "tasksCompleted"),
    ("  failed, inconclusive", "tasksFailedInconclusive"),
    ("tasks committed without a 201", "tasksUnacknowledged"),
    ("results acked (protocol miners)", "resultsAcked"),
    ("results acked and found stored", "resultsChecked"),
    ("CLI miner acks / their results stored", ("cliResultsAccepted", "cliResultsStored")),
    ("microtasks decided", "microtasksDecided"),
    ("events logged", "eventsLogged"),
    ("events seen (SSE, all reconnects)", "eventsSeen"),
    ("SSE connections", "sseConnects"),
    ("duplicates seen", "duplicatesSeen"),
    ("gaps in the log", "gaps"),
    ("leases out after the drain", "leasedLeft"),
    ("lost", "lost"),
    ("time taken (s)", "seconds"),
]


def show(out: dict[str, Any]) -> None:
    """The figures and checks as two tables, for a long run's reader."""
    console = Console()
    table = Table(title="Crash campaign", show_header=True)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for label, key in FIGURES:
        if key == "killsBy":
            value = " / ".join(str(n) for n in out[key].values())
        elif key == "restartSeconds":
            value = f"{out[key]['mean']} / {out[key]['max']}"
        elif isinstance(key, tuple) and key[0] == "specialKills":
            value = str(out["specialKills"][key[1]])
        elif isinstance(key, tuple):
            value = " / ".join(str(out.get(k)) for k in key)
        else:
            value = str(out.get(key))
        table.add_row(label, value)
    console.print(table)
    checks = Table(title="Checks", show_header=True)
    checks.add_column("check")
    checks.add_column("")
    checks.add_column("detail")
    for name, c in out["checks"].items():
        checks.add_row(name, "[green]ok[/]" if c["ok"] else "[bold red]FAILED[/]", c["detail"])
    console.print(checks)
    for error in out["errors"]:
        console.print(f"[bold red]error:[/] {error}")
    console.print("[bold green]all checks passed[/]" if out["ok"] else "[bold red]FAILED[/]")
