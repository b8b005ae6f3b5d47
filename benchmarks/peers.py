"""Qortex against Celery and Dask on the same work, one after the other, in one run.

    python benchmarks/peers.py [--microtasks 3000] [--replicas 3] [--json]
    python benchmarks/peers.py --qortex-only --microtasks 60

The work (``benchmarks/peers_work.py``): each microtask, one tweet, goes to
``--replicas`` distinct workers; each labels it with Qortex's sentiment kind
and signs the label with its own ed25519 key; the side that decides verifies
every signature and decides by majority (2 of 3). Each leg gets the same
machine and the same workers: ``--workers`` processes, each holding
``--identities`` signing identities (WebSocket miner connections for Qortex,
pool threads for Celery and Dask). The figure is decided microtasks per second
from just before the first submit to the last decision; every decision is
checked against the kind's own label.

- Qortex (``benchmarks/peers_qortex.py``): ``qortex serve`` on a loopback
  port with ``sync = "full"``, miners from ``benchmarks/bench_load.py``.
- Celery (``benchmarks/peers_celery.py``): Redis broker and result backend
  (``redis-server`` started here on a free loopback port, persistence off),
  ``celery worker -P threads``.
- Dask (``benchmarks/peers_dask.py``): ``distributed.LocalCluster`` with
  worker processes.

Celery, Redis's client and Dask come with ``pip install '.[bench]'``;
``redis-server`` is installed from the distribution's packages when it is
missing and this runs as root with apt-get. ``--qortex-only`` needs neither.
Progress goes to stderr; stdout gets a table, or one JSON line with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import bench_harness
import bench_load
import peers_qortex
import peers_work
import processes
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent

PEERS = ("celery", "dask")
EXTRA = ("celery", "redis", "dask", "distributed")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--microtasks", type=int, default=3000, help="tweets to decide (3000)")
    parser.add_argument("--replicas", type=int, default=3, help="copies of each, majority (3)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per leg (2)")
    parser.add_argument(
        "--identities", type=int, default=8, help="signing identities per worker process (8)"
    )
    parser.add_argument(
        "--slots", type=int, default=16, help="copies in flight per Qortex miner connection (16)"
    )
    parser.add_argument("--qortex-only", action="store_true", help="run the Qortex leg alone")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.microtasks < 1:
        parser.error("--microtasks must be at least 1")
    if not 1 <= args.replicas <= args.workers * args.identities:
        parser.error("--replicas must be between 1 and --workers x --identities")
    if args.workers < 1 or args.identities < 1 or not 1 <= args.slots <= 64:
        parser.error("--workers and --identities must be at least 1, --slots 1 to 64")
    return args


def missing_extra() -> list[str]:
    missing = []
    for name in EXTRA:
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    return missing


async def amain(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    work = peers_work.jobs(bench_load.tweets(args.microtasks))
    sizes = (args.replicas, args.workers, args.identities)
    result: dict[str, Any] = {
        "machine": bench_harness.machine(),
        "config": {
            "microtasks": args.microtasks,
            "replicas": args.replicas,
            "quorum": args.replicas // 2 + 1,
            "workers": args.workers,
            "identities": args.identities,
            "slots": args.slots,
        },
        "legs": {},
        "errors": {},
    }
    legs: list[tuple[str, Any]] = [
        ("qortex", lambda: peers_qortex.run(tmp, work, *sizes, args.slots)),
    ]
    if not args.qortex_only:
        import peers_celery
        import peers_dask

        result["machine"]["versions"] = {name: metadata.version(name) for name in EXTRA}
        legs.append(("celery", lambda: peers_celery.run(tmp, work, *sizes)))
        legs.append(("dask", lambda: asyncio.to_thread(peers_dask.run, work, *sizes)))
    try:
        for name, leg in legs:
            bench_harness.log(f"[bold]{name}[/]: {args.microtasks:,} microtasks x {args.replicas}")
            try:
                figures = result["legs"][name] = await leg()
                bench_harness.log(f"{name}: {figures['decidedPerSecond']:,} decided/s {figures}")
            except Exception as exc:  # one failed leg should not lose the others
                result["errors"][name] = f"{type(exc).__name__}: {exc}"
                bench_harness.log(f"[red]{name} failed:[/] {exc}")
    finally:
        await processes.end_all(grace=3.0)
    result["ratios"] = ratios(result["legs"], "decidedPerSecond")
    result["cpuRatios"] = ratios(result["legs"], "decidedPerCpuSecond")
    return result


def ratios(legs: dict[str, dict[str, Any]], figure: str) -> dict[str, float]:
    """Qortex's ``figure`` over each peer's, and over the faster peer's."""
    if "qortex" not in legs:
        return {}
    ours = legs["qortex"][figure]
    out = {name: round(ours / legs[name][figure], 1) for name in PEERS if name in legs}
    if out:
        out["fasterPeer"] = round(ours / max(legs[n][figure] for n in out), 1)
    return out


def table(result: dict[str, Any]) -> Table:
    cfg = result["config"]
    title = (
        f"{cfg['microtasks']:,} microtasks x {cfg['replicas']} (quorum {cfg['quorum']}),"
        f" {cfg['workers']} worker processes x {cfg['identities']} identities,"
        f" {result['machine']['nproc']} cores"
    )
    out = Table(title=title)
    columns = ("leg", "decided/s", "Qortex x", "seconds", "CPU s", "decided/CPU s", "Qortex x")
    for column in columns:
        out.add_column(column, justify="left" if column == "leg" else "right")
    for name in ("qortex", *PEERS):
        legs = result["legs"]
        if name in legs:
            leg = legs[name]
            out.add_row(
                name,
                f"{leg['decidedPerSecond']:,.1f}",
                _times(result["ratios"].get(name)),
                f"{leg['seconds']:.2f}",
                f"{leg['cpuSeconds']:.2f}",
                f"{leg['decidedPerCpuSecond']:,.1f}",
                _times(result["cpuRatios"].get(name)),
            )
        elif name in result["errors"]:
            out.add_row(name, "failed", result["errors"][name][:60])
    if "fasterPeer" in result["ratios"]:
        out.caption = (
            f"Qortex / faster peer: {result['ratios']['fasterPeer']:,.1f}x per second,"
            f" {result['cpuRatios']['fasterPeer']:,.1f}x per CPU second"
        )
    return out


def _times(ratio: float | None) -> str:
    return "" if ratio is None else f"{ratio:,.1f}"


def main() -> int:
    args = parse_args()
    missing = [] if args.qortex_only else missing_extra()
    if missing:
        print(
            f"missing {', '.join(missing)}: install the bench extra with"
            " pip install '.[bench]' (or run --qortex-only)",
            file=sys.stderr,
        )
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="qortex-peers-"))
    bench_harness.log(f"peers run in {tmp}")
    try:
        result = asyncio.run(amain(args, tmp))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        processes.kill_all()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(result, separators=(",", ":")))
    else:
        Console().print(table(result))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
