"""Who is calling: API keys checked in constant time against their stored hash, and the token
buckets that limit callers: per key, per client address on the routes that need no key, and per
client address for failed authentications.

Keys live in the `tradepit:keys` hash with only a SHA-256 of the secret. A gateway keeps the
keys it has seen for a short while, so a busy bot costs no lookup per request, and a revoked or
changed key stops working within `KEY_CACHE_SECONDS`.

A secret is 128 bits of randomness, so guessing one is hopeless; still, a client address that
keeps sending wrong secrets is slowed to a few guesses and then one a second, and while it waits
every key it sends is refused (429) before it is looked at, so that its guesses tell it nothing.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tradepit.gateway.errors import ApiError
from tradepit.store import catalog
from tradepit.store.catalog import ApiKey, hash_secret
from tradepit.store.connection import Client

__all__ = [
    "Principal",
    "KeyStore",
    "RateLimiter",
    "RateLimitError",
    "client_address",
    "KEY_CACHE_SECONDS",
]

KEY_CACHE_SECONDS = 5.0
_MAX_KEY_LENGTH = 128


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    account_id: int
    admin: bool


class KeyStore:
    def __init__(self, redis: Client, failures: RateLimiter | None = None) -> None:
        self.redis = redis
        # Failed authentications per client address (off if None).
        self.failures = failures if failures is not None else RateLimiter(0)
        # Keys seen lately, by id: until when, the key, and its owner as a Principal.
        self._cache: dict[str, tuple[float, ApiKey, Principal]] = {}

    async def authenticate(self, key_id: str | None, secret: str | None, address: str) -> Principal:
        """The key's owner, or ApiError: 401 for a key missing or wrong, 429 (before the key is
        looked at) while `address` has failed too often. A request that sends no key guesses
        nothing, and is not counted."""
        key_id, secret = self._admit(key_id, secret, address)
        key = await self._lookup(key_id) if self._plausible(key_id, secret) else None
        return self._judge(key_id, secret, address, key)

    def authenticate_cached(
        self, key_id: str | None, secret: str | None, address: str
    ) -> Principal | None:
        """`authenticate`, without waiting: the same answer when the key was seen lately, None
        when it must be looked up (then await `authenticate`). The busy path, a bot's every
        request, costs no coroutine."""
        key_id, secret = self._admit(key_id, secret, address)
        cached = self._cache.get(key_id)
        if cached is None or cached[0] <= time.monotonic():
            return None
        _, key, principal = cached
        return self._judge(key_id, secret, address, key, principal)

    def _admit(self, key_id: str | None, secret: str | None, address: str) -> tuple[str, str]:
        if not key_id or not secret:
            raise ApiError(
                401, "request is not authorized: send APCA-API-KEY-ID and APCA-API-SECRET-KEY"
            )
        self.failures.refuse_if_empty(address)
        return key_id, secret

    @staticmethod
    def _plausible(key_id: str, secret: str) -> bool:
        return len(key_id) <= _MAX_KEY_LENGTH and len(secret) <= _MAX_KEY_LENGTH

    def _judge(
        self,
        key_id: str,
        secret: str,
        address: str,
        key: ApiKey | None,
        principal: Principal | None = None,
    ) -> Principal:
        # Compared in constant time whether or not the key exists, so timing tells nothing.
        expected = key.secret_sha256 if key is not None else "0" * 64
        right = hmac.compare_digest(hash_secret(secret), expected)
        if not right or key is None or not self._plausible(key_id, secret):
            self.failures.charge(address)
            raise ApiError(401, "request is not authorized")
        return principal if principal is not None else Principal(key_id, key.account_id, key.admin)

    async def _lookup(self, key_id: str) -> ApiKey | None:
        cached = self._cache.get(key_id)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        key = await catalog.api_key(self.redis, key_id)
        if key is not None:  # unknown keys are not cached: a flood of them must not grow it
            if len(self._cache) > 100_000:
                self._cache.clear()
            principal = Principal(key_id, key.account_id, key.admin)
            self._cache[key_id] = (now + KEY_CACHE_SECONDS, key, principal)
        return key


def client_address(scope: Mapping[str, Any]) -> str:
    """The address a request or WebSocket comes from (as the server saw it, or as a proxy it
    trusts said): what the limits per client count by."""
    client = scope.get("client")
    return str(client[0]) if client else ""


class RateLimitError(ApiError):
    """A 429, with the whole seconds until the caller's bucket has a token again."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(429, message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class RateLimiter:
    """A token bucket per key (an API key, a client address): `rate` tokens a second, up to
    `burst`. A rate or burst of 0 is no limit."""

    PRUNE_EVERY = 10_000  # checks between sweeps of the buckets that are full again

    def __init__(
        self, rate: float, burst: float | None = None, message: str = "rate limit exceeded"
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate * 2)
        self.message = message
        self.off = rate <= 0 or self.burst <= 0
        self._buckets: dict[str, tuple[float, float]] = {}
        self._checks = 0
        self.refused = 0  # requests refused since the start (the gateway's metrics read it)

    def check(self, key: str, now: float | None = None) -> None:
        """Take a token, or raise RateLimitError saying when there will be one."""
        if self.off:
            return
        now = time.monotonic() if now is None else now
        tokens = self._refilled(key, now)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            raise self._refusal(tokens)
        self._buckets[key] = (tokens - 1, now)

    def refuse_if_empty(self, key: str, now: float | None = None) -> None:
        """Raise RateLimitError if there is no token, and take none: to gate what only its
        failures are charged for."""
        if self.off:
            return
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is not None:
            tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            if tokens < 1:
                raise self._refusal(tokens)

    def charge(self, key: str, now: float | None = None) -> None:
        """Take a token even if there is none: a bucket in debt refuses until it is paid off.
        (Failures made at once all passed the gate before any was charged; each still costs.)"""
        if self.off:
            return
        now = time.monotonic() if now is None else now
        self._buckets[key] = (self._refilled(key, now) - 1, now)

    def _refilled(self, key: str, now: float) -> float:
        self._checks += 1
        if self._checks % self.PRUNE_EVERY == 0:
            self._prune(now)
        tokens, last = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - last) * self.rate)

    def _refusal(self, tokens: float) -> RateLimitError:
        # HTTP's Retry-After is whole seconds: rounded up, so that a client that waits as told
        # finds a token.
        self.refused += 1
        return RateLimitError(self.message, max(1, math.ceil((1 - tokens) / self.rate)))

    def _prune(self, now: float) -> None:
        """Forget the buckets that have refilled: a new one starts full, just like them. (Keys
        and client addresses come and go; their buckets must not pile up.)"""
        self._buckets = {
            key: (tokens, last)
            for key, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * self.rate < self.burst
        }

    def __len__(self) -> int:
        return len(self._buckets)
