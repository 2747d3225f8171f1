"""The gateway's token buckets: bursts, refills, refusals, and buckets forgotten once full."""

from __future__ import annotations

import pytest

from tradepit.gateway.auth import RateLimiter
from tradepit.gateway.errors import ApiError


def test_a_burst_then_the_rate() -> None:
    limiter = RateLimiter(rate=2.0, burst=4)
    for _ in range(4):
        limiter.check("k", now=100.0)
    with pytest.raises(ApiError) as refused:
        limiter.check("k", now=100.0)
    assert refused.value.status == 429
    limiter.check("other", now=100.0)  # each key has its own bucket
    limiter.check("k", now=100.5)  # half a second brings one token back
    with pytest.raises(ApiError):
        limiter.check("k", now=100.5)


def test_full_buckets_are_forgotten() -> None:
    limiter = RateLimiter(rate=1.0, burst=2)
    limiter.PRUNE_EVERY = 100
    for index in range(99):
        limiter.check(f"client-{index}", now=0.0)
    assert len(limiter) == 99
    limiter.check("late", now=2.5)  # the 100th check sweeps: the others are full again
    assert len(limiter) == 1
    limiter.check("client-0", now=2.5)  # and start full, as if never seen
    limiter.check("client-0", now=2.5)
    with pytest.raises(ApiError):
        limiter.check("client-0", now=2.5)
