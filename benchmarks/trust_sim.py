"""Attack Qortex the way its threat model says, and count the wrong decisions.

    python benchmarks/trust_sim.py [--quick] [--json] [--adversarial 0.3] [filters]

For each cell (kind x mode x config x strategy) the harness starts a real
``qortex serve`` on loopback with a fresh database, connects honest miners
(one process per operator, 50-200 ms per microtask) and adversarial miners
(in this process, answering at once, 64 slots), submits work through the REST
API, waits until everything has settled, and judges every decision against
the truth it computed itself. docs/trust.md explains the cells and figures.

Progress goes to stderr; stdout gets a Markdown table, or one JSON object
with ``--json``. The exit status is 1 if any cell could not be measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench_harness import raise_nofile
from processes import kill_all
from trust.cell import Cell, CellRun, Plan
from trust.strategies import STRATEGIES

FULL = Plan(
    name="full",
    operators=10,
    identities=2,
    honest_slots=4,
    honest_processes=3,
    tasks=12,
    honest_tasks=30,
    interval=1.0,
    deadline=90.0,
    stall=35.0,
    quiet=1.0,
    rejoins=10,
)
QUICK = replace(
    FULL,
    name="quick",
    operators=7,
    honest_processes=2,
    tasks=3,
    honest_tasks=6,
    interval=0.5,
    deadline=20.0,
    stall=10.0,
    quiet=0.5,
    rejoins=3,
)

KINDS = ("sentiment", "matmul")
MODES = ("paced", "backlog")
CONFIGS = {
    "default": ("collude", "lazy", "random", "onoff", "memory", "hoard"),
    "sybil": ("sybil-net", "sybil-spread"),
    "gold": ("collude", "onoff"),
    "honest": ("none",),
}
QUICK_CELLS = (
    Cell("sentiment", "paced", "default", "collude"),
    Cell("matmul", "backlog", "default", "onoff"),
    Cell("sentiment", "backlog", "sybil", "sybil-net"),
    Cell("matmul", "paced", "gold", "collude"),
    Cell("sentiment", "backlog", "honest", "none"),
)


def plan_cells(args: argparse.Namespace) -> list[Cell]:
    if args.quick and not (args.kind or args.mode or args.config or args.strategy):
        return list(QUICK_CELLS)
    cells = [
        Cell(kind, mode, config, strategy)
        for config, strategies in CONFIGS.items()
        for strategy in strategies
        for kind in KINDS
        for mode in MODES
    ]
    return [
        c
        for c in cells
        if (not args.kind or c.kind in args.kind)
        and (not args.mode or c.mode in args.mode)
        and (not args.config or c.config in args.config)
        and (not args.strategy or c.strategy in args.strategy)
    ]


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def _total(cells: list[dict[str, Any]]) -> dict[str, Any]:
    def add(key: str) -> int:
        return sum(c.get(key) or 0 for c in cells)

    decided, microtasks = add("decided"), add("microtasks")
    judged = [c for c in cells if c.get("wrongPct") is not None]
    liars = add("liars")
    return {
        "cells": len(cells),
        "microtasks": microtasks,
        "decided": decided,
        "wrong": add("wrong"),
        "wrongPct": 100 * add("wrong") / decided if decided else None,
        "worstWrongPct": max((c["wrongPct"] for c in judged), default=None),
        "inconclusivePct": 100 * add("inconclusive") / microtasks if microtasks else None,
        "pendingPct": 100 * add("pending") / microtasks if microtasks else None,
        "liars": liars,
        "caught": add("caught"),
        "honestBanned": add("honestBanned"),
        "seconds": round(sum(c.get("seconds") or 0 for c in cells), 1),
    }


def _n(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


COLUMNS = (
    ("cell", "cell", 0),
    ("wrong %", "wrongPct", 2),
    ("inconcl. %", "inconclusivePct", 2),
    ("pending %", "pendingPct", 2),
    ("results/decided", "resultsPerDecided", 2),
    ("after warm-up", "warmResultsPerDecided", 2),
    ("liar votes %", "adversaryVotePct", 1),
    ("liars caught", None, 0),
    ("catch median s", "catchMedianS", 2),
    ("catch max s", "catchMaxS", 2),
    ("honest banned", "honestBanned", 0),
    ("task p50 s", "taskP50S", 1),
    ("task max s", "taskMaxS", 1),
    ("s", "seconds", 0),
)


def table(report: dict[str, Any]) -> str:
    lines = [
        "| " + " | ".join(c[0] for c in COLUMNS) + " |",
        "|" + "|".join("---" if i == 0 else "--:" for i in range(len(COLUMNS))) + "|",
    ]
    for cell in report["cells"]:
        row = []
        for _, key, digits in COLUMNS:
            if key is None:
                row.append(f"{cell.get('caught', 0)}/{cell.get('liars', 0)}")
            else:
                row.append(_n(cell.get(key), digits))
        lines.append("| " + " | ".join(row) + " |")
    t = report["total"]
    lines.append(
        f"\nTotal: {t['cells']} cells, {t['decided']} of {t['microtasks']} microtasks decided,"
        f" {t['wrong']} wrong ({_n(t['wrongPct'])} %, worst cell {_n(t['worstWrongPct'])} %),"
        f" inconclusive {_n(t['inconclusivePct'])} %, pending {_n(t['pendingPct'])} %,"
        f" liars caught {t['caught']}/{t['liars']},"
        f" honest miners banned {t['honestBanned']}, {t['seconds']:.0f} s."
    )
    for cell in report["cells"]:
        for problem in cell["errors"] + cell["notes"]:
            lines.append(f"- {cell['cell']}: {problem}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few small cells, about a minute")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--adversarial", type=float, default=0.3, help="share of operators")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kind", action="append", choices=KINDS)
    p.add_argument("--mode", action="append", choices=MODES)
    p.add_argument("--config", action="append", choices=tuple(CONFIGS))
    p.add_argument("--strategy", action="append", choices=(*STRATEGIES, "none"))
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)
    if not 0 < args.adversarial < 1:
        p.error("--adversarial must be between 0 and 1")
    return args


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    plan = QUICK if args.quick else FULL
    cells = plan_cells(args)
    results = []
    for number, cell in enumerate(cells, 1):
        log(f"[{number}/{len(cells)}] {cell.name}")
        folder = tmp / cell.name.replace("/", "-")
        result = await CellRun(cell, plan, folder, args.seed, args.adversarial).run()
        log(
            f"    wrong {_n(result.get('wrongPct'))} %, inconclusive"
            f" {_n(result.get('inconclusivePct'))} %, {result['seconds']} s"
            + f" {result['phases']}"
            + "".join(f"; {e}" for e in result["errors"])
        )
        results.append(result)
    return {
        "plan": plan.name,
        "adversarial": args.adversarial,
        "seed": args.seed,
        "cells": results,
        "total": _total(results),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="qortex-trust-"))
    try:
        report = asyncio.run(run(args, tmp))
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted")
        return 130
    finally:
        kill_all()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report, indent=2) if args.json else table(report))
    return 1 if any(c["errors"] for c in report["cells"]) else 0


if __name__ == "__main__":
    sys.exit(main())
