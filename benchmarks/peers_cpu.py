"""CPU seconds a leg of ``benchmarks/peers.py`` spends, in this process and all it started.

The machine the peers run on is often shared, so wall time alone says as much
about the neighbours as about the leg. Process CPU time does not: each leg
also reports decided microtasks per CPU second, counting this process (all
its threads: the drivers, Dask's scheduler) and every live descendant (the
coordinator, miners, redis-server, Celery and Dask workers).
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> tuple[int, float] | None:
    """(parent pid, user + system seconds) of ``pid``, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def _descendants() -> dict[int, float]:
    """CPU seconds of every process below this one, by pid."""
    parents: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(entry)) is not None:
            parents[int(entry)] = stat
    ours, out = {os.getpid()}, {}
    grew = True
    while grew:
        grew = False
        for pid, (parent, seconds) in parents.items():
            if parent in ours and pid not in ours:
                ours.add(pid)
                out[pid] = seconds
                grew = True
    return out


def _own() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU seconds between :meth:`start` and :meth:`stop`, of processes alive at both."""

    def __init__(self) -> None:
        self.own = 0.0
        self.children: dict[int, float] = {}

    def start(self) -> None:
        self.own, self.children = _own(), _descendants()

    def stop(self) -> float:
        own, children = _own(), _descendants()
        spent = own - self.own
        for pid, seconds in children.items():
            if pid in self.children:
                spent += seconds - self.children[pid]
        return spent
