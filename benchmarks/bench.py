"""Benchmark Qortex end to end with real processes on loopback.

    python benchmarks/bench.py [--quick] [--json]

Five figures, in one run (docs/performance.md explains each):

1. ceiling: verified round trips per second that a bare uvicorn + Starlette
   WebSocket app (``benchmarks/bench_ceiling.py``) sustains with the same load
   clients, i.e. what the machine allows before Qortex does anything;
2. throughput: results per second Qortex acknowledges (verified, quorum
   applied, committed with ``sync = "full"``, events written), and its ratio
   to the ceiling;
3. latency: client-side time from ``POST /api/v1/tasks`` to the
   ``microtask.quorum`` event on the SSE stream, for 1-microtask tasks, alone
   and under a background load of half the throughput;
4. connections: the coordinator's resident memory per idle miner and its CPU
   at idle, with thousands of miners connected and heartbeating;
5. backlog: throughput with many pending microtasks, and the time to restart
   after ``kill -9`` with the largest backlog.

This module is the command line, the order of the figures and the table; each
figure is measured in its own module (``bench_throughput`` for 1 and 2,
``bench_latency``, ``bench_connections``, ``bench_backlog``), and what they
share is ``bench_harness``.

Everything runs on 127.0.0.1 in a temporary directory that is removed at the
end, as is every process started (on errors and Ctrl-C too; children are
also told to die with this process). Progress goes to stderr; stdout gets
a table, or one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_backlog import backlog
from bench_connections import connections
from bench_harness import BIG_TASK, FIGURES, FULL, QUICK, REPLICAS, Run, err, log, raise_nofile
from bench_throughput import ceiling, throughput_and_latency
from processes import end_all, kill_all
from rich.console import Console
from rich.table import Table


async def phase(run: Run, name: str, coro: Any) -> Any:
    """Measure one figure, logging how long it took."""
    log(f"[bold]{name}[/]")
    began = time.perf_counter()
    try:
        return await coro
    except Exception as exc:  # one failed figure should not lose the others
        run.result["errors"][name] = f"{type(exc).__name__}: {exc}"
        log(f"[red]{name} failed:[/] {exc}")
        return None
    finally:
        log(f"{name} took {time.perf_counter() - began:.1f}s")


async def measure(run: Run) -> dict[str, Any]:
    """The figures ``--only`` names, in order; one that fails is noted, not fatal."""
    began = time.perf_counter()
    only = run.args.only
    if "ceiling" in only:
        await phase(run, "ceiling", ceiling(run))
    if "throughput" in only:
        await phase(run, "throughput and latency", throughput_and_latency(run))
    if "connections" in only:
        await phase(run, "connections", connections(run))
    if "backlog" in only:
        await phase(run, "backlog", backlog(run))
    run.result["duration_seconds"] = round(time.perf_counter() - began, 1)
    return run.result


# -- output ---------------------------------------------------------------------


def _n(value: Any, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}{unit}"


def table(r: dict[str, Any]) -> Table:
    cfg, lat, con, bl, mach = (
        r["config"],
        r["latency_ms"],
        r["connections"],
        r["backlog"],
        r["machine"],
    )
    t = Table(title=f"Qortex benchmark ({r['mode']} mode, {r.get('duration_seconds', '?')}s)")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("how")
    load = f"{cfg['load_procs']} load proc(s), {cfg['connections']} miners x {cfg['slots']} slots"
    t.add_row("1. ceiling", _n(r["ceiling_per_s"], "/s"), f"bare uvicorn: verify + ack; {load}")
    t.add_row(
        "2. throughput",
        _n(r["throughput_per_s"], "/s"),
        f"acked results, replicas {cfg['replicas']}, sync full",
    )
    t.add_row("   ratio", _n(r["ratio"], "", 3), "throughput / ceiling")
    t.add_row(
        "3. latency, light",
        f"{_n(lat.get('light_p50'), '', 1)} / {_n(lat.get('light_p99'), '', 1)} ms",
        f"p50 / p99, POST to microtask.quorum, {lat.get('light_n', 0)} tasks one at a time",
    )
    t.add_row(
        "   latency, half load",
        f"{_n(lat.get('half_p50'), '', 1)} / {_n(lat.get('half_p99'), '', 1)} ms",
        f"p50 / p99, {lat.get('half_n', 0)} tasks, background at"
        f" {_n(lat.get('half_rate_per_s'), '/s')}"
        f" (target {_n(lat.get('half_target_per_s'), '/s')})",
    )
    miners = con.get("miners", [])
    if miners:
        rss = ", ".join(
            f"{m:,}: {b / 2**20:.0f} MiB" for m, b in zip(miners, con["rss_bytes"], strict=False)
        )
        t.add_row("4. memory per miner", _n(con.get("bytes_per_miner"), " B"), f"RSS {rss}")
        cpus = ", ".join(
            f"{m:,}: {c}%" for m, c in zip(miners, con["idle_cpu_percent_each"], strict=False)
        )
        t.add_row("   CPU at idle", _n(con.get("idle_cpu_percent"), "%", 1), cpus)
    pending = bl.get("pending", [])
    if pending:
        rates = ", ".join(
            f"{p:,}: {_n(v, '/s')}"
            for p, v in zip(pending, bl.get("throughput_per_s", []), strict=False)
        )
        t.add_row("5. backlog throughput", "", rates)
        seeds = bl.get("seed_seconds", [])
        if len(seeds) > 1:
            t.add_row(
                "   seeding",
                f"{seeds[-1]:.1f} s",
                f"{pending[-1]:,} microtasks via POST /api/v1/tasks ({BIG_TASK:,} per task)",
            )
        t.add_row(
            "   restart after kill -9",
            _n(bl.get("restart_seconds"), " s", 2),
            f"{_n(bl.get('restart_pending'))} pending; to /health 200 (empty DB:"
            f" {_n(r.get('start_seconds_empty'), ' s', 2)})",
        )
    t.caption = (
        f"{mach['nproc']} CPU(s) {mach['cpu_model']}, Python {mach['python']},"
        f" uvicorn {mach['uvicorn']} ({mach['loop']}, {mach['http']}, {mach['ws']})"
    )
    for phase, message in r["errors"].items():
        t.add_row(f"[red]error: {phase}[/]", "", message)
    return t


# -- main -----------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    cores = len(os.sched_getaffinity(0))
    parser = argparse.ArgumentParser(description="Benchmark Qortex on loopback (see module doc).")
    parser.add_argument("--quick", action="store_true", help="about a minute, scaled down")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--procs", type=int, default=max(1, cores - 1), help="load processes (default cores-1)"
    )
    parser.add_argument("--connections", type=int, default=32, help="working miners in all")
    parser.add_argument("--slots", type=int, default=16, help="slots per working miner")
    parser.add_argument(
        "--compression",
        choices=("deflate", "none"),
        default="deflate",
        help="what the load clients offer (deflate: like the CLI miner and browsers)",
    )
    parser.add_argument("--profile", metavar="DIR", help="py-spy the throughput window into DIR")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, DBs)")
    parser.add_argument(
        "--only",
        default=",".join(FIGURES),
        help=f"comma-separated figures to measure, of {','.join(FIGURES)} (default: all)",
    )
    parser.add_argument(
        "--miners", help="idle miner counts for the connections figure, e.g. 1000,10000"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=1.5,
        help="seconds between the last idle miner connecting and measuring (default 1.5)",
    )
    args = parser.parse_args()
    args.only = set(args.only.split(","))
    if args.only - set(FIGURES):
        parser.error(f"--only takes {', '.join(FIGURES)}")
    if args.miners is not None:
        try:
            args.miners = tuple(int(n) for n in args.miners.split(","))
        except ValueError:
            parser.error("--miners takes counts such as 1000,10000")
    if args.connections < REPLICAS:
        parser.error(f"--connections must be at least {REPLICAS} (replicas)")
    if not 1 <= args.slots <= 64:
        parser.error("--slots must be between 1 and 64")
    return args


async def amain(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    try:
        plan = QUICK if args.quick else FULL
        if args.miners is not None:
            plan = dataclasses.replace(plan, miners=args.miners)
        return await measure(Run(args, plan, tmp))
    finally:
        await end_all(grace=3.0)


def main() -> int:
    args = parse_args()
    limit = raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="qortex-bench-"))
    log(f"{'quick' if args.quick else 'full'} run in {tmp}; open files limit {limit}")
    try:
        result = asyncio.run(amain(args, tmp))
    except (KeyboardInterrupt, asyncio.CancelledError):
        err.print("[red]interrupted[/]")
        return 130
    finally:
        kill_all()
        if args.keep:
            err.print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        Console().print(table(result))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
