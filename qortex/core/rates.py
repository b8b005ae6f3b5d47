"""Results and decisions per second over the last minute and hour, from counters.

The coordinator's counters only ever grow; sampling them once a second and
keeping an hour of samples gives every rate the console shows (the last minute,
the last hour, a per-second series for the chart) by subtraction, with no
per-result work at all. Time comes from the caller.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import pairwise

HOUR = 3600


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    results: int
    decisions: int


class Throughput:
    def __init__(self, keep_seconds: int = HOUR) -> None:
        self._samples: deque[Sample] = deque(maxlen=keep_seconds + 1)

    def sample(self, now: float, results: int, decisions: int) -> None:
        self._samples.append(Sample(now, results, decisions))

    def rate(self, seconds: float) -> tuple[float, float]:
        """Results and decisions per second over the last ``seconds`` (or as long as sampled)."""
        if len(self._samples) < 2:
            return 0.0, 0.0
        last = self._samples[-1]
        first = last
        for sample in reversed(self._samples):
            if last.at - sample.at > seconds:
                break
            first = sample
        elapsed = last.at - first.at
        if elapsed <= 0:
            return 0.0, 0.0
        return (last.results - first.results) / elapsed, (
            last.decisions - first.decisions
        ) / elapsed

    def series(self, points: int) -> list[tuple[float, float, float]]:
        """The last ``points`` intervals as (end time, results/s, decisions/s), oldest first."""
        recent = list(self._samples)[-(points + 1) :]
        out = []
        for before, after in pairwise(recent):
            span = after.at - before.at
            if span > 0:
                out.append(
                    (
                        after.at,
                        (after.results - before.results) / span,
                        (after.decisions - before.decisions) / span,
                    )
                )
        return out
