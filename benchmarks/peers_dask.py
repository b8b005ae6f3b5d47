"""Dask's leg of ``benchmarks/peers.py``: a ``LocalCluster`` of worker processes.

The scheduler runs in this process (as ``LocalCluster`` sets it up), the
workers in their own processes, each with one thread per identity it holds.
The client submits every copy of :func:`peers_work.work` to the worker
process the driver placed it on (``workers=`` restrictions) and verifies and
votes on the results in the order they complete (``as_completed``), adding
the copies it must hand out again to the same iterator.
"""

from __future__ import annotations

import logging

import peers_work
from dask.distributed import Client, LocalCluster, as_completed
from peers_cpu import CpuMeter


def run(work_list: list[peers_work.Job], replicas: int, workers: int, identities: int) -> dict:
    """Decided microtasks per second for ``work_list`` on a fresh local cluster."""
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=identities,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(workers, timeout=60)
        client.run(__import__, "peers_work")  # the workers load the code before the clock starts
        addresses = sorted(client.scheduler_info()["workers"])
        meter = CpuMeter()
        meter.start()
        tally = peers_work.Tally(work_list, replicas, workers, identities)
        copies = [tally.assign(job.microtask_id) for job in work_list for _ in range(replicas)]
        futures, args_of = [], {}
        for process in range(workers):
            mine = [args for p, args in copies if p == process]
            if mine:
                placed = client.map(
                    peers_work.work,
                    *zip(*mine, strict=True),
                    pure=False,
                    workers=addresses[process],
                )
                futures += placed
                args_of.update((f.key, args) for f, args in zip(placed, mine, strict=True))
        ongoing = as_completed(futures, with_results=True)
        for future, result in ongoing:
            args = args_of.pop(future.key)
            if tally.offer(args, tuple(result)) == "again":
                process, again = tally.assign(args[0])
                future = client.submit(
                    peers_work.work, *again, pure=False, workers=addresses[process]
                )
                args_of[future.key] = again
                ongoing.add(future)
        return tally.figures(meter.stop())
