"""The gateway's token buckets: bursts, refills, refusals, and buckets forgotten once full."""

from __future__ import annotations

import pytest

from tradepit.gateway.auth import RateLimiter, RateLimitError
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


def test_a_refusal_says_when_to_retry() -> None:
    limiter = RateLimiter(rate=0.1, burst=1)  # one request, then one every 10 s
    limiter.check("k", now=0.0)
    with pytest.raises(RateLimitError) as refused:
        limiter.check("k", now=2.5)
    # 0.25 of a token is back: the next whole one is 7.5 s away, said in whole seconds.
    assert refused.value.retry_after == 8
    assert refused.value.headers == {"Retry-After": "8"}
    with pytest.raises(RateLimitError) as refused:
        limiter.check("k", now=9.2)
    assert refused.value.retry_after == 1  # never 0: at least a second
    limiter.check("k", now=10.5)


def test_failures_only_are_charged_and_refused_before_they_are_checked() -> None:
    """The gate a client address's failed authentications go through: looking costs nothing,
    each failure costs a token, and failures made at once (concurrent guesses, each looked at
    while the bucket still had tokens) are all charged: the debt is waited out."""
    failures = RateLimiter(rate=1.0, burst=3, message="too many failed authentications")
    for _ in range(100):
        failures.refuse_if_empty("addr", now=0.0)  # successes: never charged
    for _ in range(5):
        failures.charge("addr", now=0.0)  # 5 failures against a burst of 3: 2 in debt
    with pytest.raises(RateLimitError) as refused:
        failures.refuse_if_empty("addr", now=0.0)
    assert refused.value.status == 429 and refused.value.retry_after == 3
    assert refused.value.message == "too many failed authentications"
    failures.refuse_if_empty("other", now=0.0)
    with pytest.raises(RateLimitError):
        failures.refuse_if_empty("addr", now=2.5)
    failures.refuse_if_empty("addr", now=3.0)


def test_a_bucket_in_debt_is_not_forgotten_until_it_is_full() -> None:
    limiter = RateLimiter(rate=1.0, burst=2)
    for _ in range(6):
        limiter.charge("guesser", now=0.0)  # 4 in debt: a token at 5 s, full at 6 s
    with pytest.raises(RateLimitError):
        limiter.refuse_if_empty("guesser", now=4.5)
    limiter.PRUNE_EVERY = 1  # from now on every check sweeps
    limiter.check("a", now=5.0)
    assert len(limiter) == 2  # the sweep kept "guesser": a token back, not full
    limiter.check("b", now=6.0)
    assert len(limiter) == 1  # full again, it was forgotten (and "a" with it)


def test_a_limit_of_zero_is_no_limit() -> None:
    for limiter in (RateLimiter(rate=0.0), RateLimiter(rate=1.0, burst=0)):
        for _ in range(100):
            limiter.check("k", now=0.0)
            limiter.charge("k", now=0.0)
            limiter.refuse_if_empty("k", now=0.0)
