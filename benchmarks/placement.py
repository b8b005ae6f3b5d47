"""Placement under a backlog: the dispatch table's cost per copy placed and per result,
with 0, 100k and 1M microtasks pending.

    python benchmarks/placement.py [--pending 0 100000 1000000] [--results 60000] [--json]

Pure core, as the coordinator drives it: ``fill`` leases copies to free
miners, each copy comes back with an agreeing answer (``evaluate`` then
``apply``, which decides the microtask inline and cancels its spare copies),
and the freed slots are filled again. The backlog sits behind the work in
flight: tasks of 500 microtasks added before the run, and topped up so that
``pending`` stay queued however many are decided. The figure is process CPU
time per result over the steady part of the run (the table is single
threaded, so CPU time is its cost, and it holds up on a busy machine).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
from typing import Any

import msgspec

from qortex.core.credibility import Vote
from qortex.core.dispatch import DispatchTable
from qortex.core.quorum import Policy
from qortex.core.work import evaluate

PER_TASK = 500
POLICY = Policy(replicas=3, quorum=2, max_replicas=5, lease_seconds=60.0, target_error=1e-3)
ERROR = 1e-2  # each miner's error rate: two agreeing votes meet the target


def same(a: Any, b: Any) -> bool:
    return a == b


def run(pending: int, results: int, miners: int, slots: int) -> dict[str, Any]:
    gc.collect()
    table = DispatchTable(random.Random(7))
    inputs = [msgspec.Raw(b'"tweet %d"' % i) for i in range(PER_TASK)]
    added = 0

    def top_up() -> None:
        nonlocal added
        while table.open < pending + miners * slots:
            table.add_task(f"task-{added}", "x", POLICY, inputs)
            added += 1

    top_up()
    gc.freeze()  # as qortex serve does once recovery loaded the backlog
    for i in range(miners):
        table.connect(f"m{i}", slots, ("x",), f"net{i}", ERROR, allowance=slots)
    now = 0.0
    done = placed = 0
    warmup = results // 5
    start_cpu = start_done = start_placed = 0.0
    fill_cpu = 0.0
    leases = table.fill(now)
    while done < warmup + results:
        if done >= warmup and not start_cpu:
            start_cpu, start_done, start_placed = time.process_time(), done, placed
            fill_cpu = 0.0
        for lease in leases:
            if lease.id not in table.leases:  # cancelled when its microtask was decided
                continue
            vote = Vote(lease.miner_id, f"net{lease.miner_id[1:]}", ERROR)
            table.apply(evaluate(lease, vote, "positive", same))
            done += 1
        now += 0.001
        top_up()
        began = time.process_time()
        leases = table.fill(now)
        fill_cpu += time.process_time() - began
        placed += len(leases)
    cpu = time.process_time() - start_cpu
    counted = done - start_done
    gc.unfreeze()
    return {
        "pending": pending,
        "results": counted,
        "us_per_result": round(cpu / counted * 1e6, 2),
        "fill_us_per_copy": round(fill_cpu / (placed - start_placed) * 1e6, 2),
        "open": table.open,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pending", type=int, nargs="+", default=[0, 100_000, 1_000_000])
    parser.add_argument("--results", type=int, default=60_000)
    parser.add_argument("--miners", type=int, default=64)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [run(p, args.results, args.miners, args.slots) for p in args.pending]
    base = rows[0]["us_per_result"]
    for row in rows:
        row["vs_first"] = round(row["us_per_result"] / base, 2)
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            print("  ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
