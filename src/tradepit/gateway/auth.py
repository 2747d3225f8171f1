"""Who is calling: API keys checked in constant time against their stored hash, and a rate limit
per key.

Keys live in the `tradepit:keys` hash with only a SHA-256 of the secret. A gateway keeps the
keys it has seen for a short while, so a busy bot costs no lookup per request, and a revoked or
changed key stops working within `KEY_CACHE_SECONDS`.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

import msgspec
import redis.asyncio as aioredis

from tradepit.admin import ApiKey, hash_secret
from tradepit.gateway.errors import ApiError
from tradepit.stage.keys import API_KEYS

__all__ = ["Principal", "KeyStore", "RateLimiter", "KEY_CACHE_SECONDS"]

KEY_CACHE_SECONDS = 5.0
_decode_key = msgspec.json.Decoder(ApiKey).decode
_MAX_KEY_LENGTH = 128


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    account_id: int
    admin: bool


class KeyStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    async def authenticate(self, key_id: str | None, secret: str | None) -> Principal:
        if not key_id or not secret:
            raise ApiError(
                401, "request is not authorized: send APCA-API-KEY-ID and APCA-API-SECRET-KEY"
            )
        if len(key_id) > _MAX_KEY_LENGTH or len(secret) > _MAX_KEY_LENGTH:
            raise ApiError(401, "request is not authorized")
        key = await self._lookup(key_id)
        # Compared in constant time whether or not the key exists, so timing tells nothing.
        expected = key.secret_sha256 if key is not None else "0" * 64
        if not hmac.compare_digest(hash_secret(secret), expected) or key is None:
            raise ApiError(401, "request is not authorized")
        return Principal(key_id, key.account_id, key.admin)

    async def _lookup(self, key_id: str) -> ApiKey | None:
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        raw = await self.redis.hget(API_KEYS, key_id)
        key = None
        if raw is not None:
            try:
                key = _decode_key(raw)
            except msgspec.DecodeError:
                key = None
        if key is not None:  # unknown keys are not cached: a flood of them must not grow it
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[key_id] = (now + KEY_CACHE_SECONDS, key)
        return key


class RateLimiter:
    """A token bucket per key: `rate` requests a second on average, bursts up to `burst`."""

    PRUNE_EVERY = 10_000  # checks between sweeps of the buckets that are full again

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate * 2)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._checks = 0

    def check(self, key_id: str, now: float | None = None) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic() if now is None else now
        self._checks += 1
        if self._checks % self.PRUNE_EVERY == 0:
            self._prune(now)
        tokens, last = self._buckets.get(key_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key_id] = (tokens, now)
            raise ApiError(429, "rate limit exceeded")
        self._buckets[key_id] = (tokens - 1, now)

    def _prune(self, now: float) -> None:
        """Forget the buckets that have refilled: a new one starts full, just like them. (Keys
        and client addresses come and go; their buckets must not pile up.)"""
        refill = self.burst / self.rate
        self._buckets = {
            key: (tokens, last)
            for key, (tokens, last) in self._buckets.items()
            if now - last < refill
        }

    def __len__(self) -> int:
        return len(self._buckets)
