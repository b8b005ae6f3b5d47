"""Token buckets: how much a client or a miner may send, and when it may send again.

Pure: the caller passes the time, so limits are tested without sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Bucket:
    rate: float  # tokens added per second
    burst: float  # most tokens held
    tokens: float = -1.0
    stamp: float = 0.0

    def take(self, now: float, cost: float = 1.0) -> float:
        """0 if ``cost`` tokens were taken, else seconds until they would be there."""
        if self.tokens < 0:  # first use: start full
            self.tokens, self.stamp = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate


class Limiter:
    """One bucket per key (an API key's hash, a miner id), made on first use."""

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, Bucket] = {}
        self._max_keys = max_keys

    def take(self, key: str, now: float, cost: float = 1.0) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:  # forget the oldest, never grow unbounded
                del self._buckets[next(iter(self._buckets))]
            bucket = self._buckets[key] = Bucket(self.rate, self.burst)
        return bucket.take(now, cost)

    def waiting(self, key: str, now: float) -> float:
        """0 if one token could be taken now, else seconds until one could; takes nothing."""
        bucket = self._buckets.get(key)
        if bucket is None or bucket.tokens < 0:
            return 0.0
        tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)
