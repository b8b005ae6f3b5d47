from __future__ import annotations

import pytest

from qortex.core.limits import Bucket, Limiter


def test_a_bucket_starts_full_and_refills_at_its_rate() -> None:
    bucket = Bucket(rate=10, burst=3)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.1)  # one token comes back in 0.1 s
    assert bucket.take(0.05) == pytest.approx(0.05)
    assert bucket.take(0.1) == 0.0
    assert bucket.take(10.0) == 0.0 and bucket.tokens == pytest.approx(2)  # capped at burst


def test_a_limiter_keeps_keys_apart_and_bounded() -> None:
    limiter = Limiter(rate=1, burst=1, max_keys=2)
    assert limiter.take("a", 0.0) == 0.0
    assert limiter.take("a", 0.0) > 0
    assert limiter.take("b", 0.0) == 0.0
    assert limiter.take("c", 0.0) == 0.0  # "a" is forgotten to make room
    assert limiter.take("a", 0.0) == 0.0
    limiter.forget("a")
    assert limiter.take("a", 0.0) == 0.0
