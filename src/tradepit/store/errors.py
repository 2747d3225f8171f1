"""The store's failures, under names the rest of tradepit can catch without knowing the client
library: a server that cannot be reached, one still loading its data, a command it refused."""

from __future__ import annotations

from redis.exceptions import BusyLoadingError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["StoreError", "Unreachable", "Loading", "Refused", "TimedOut"]

StoreError = RedisError  # any of them
Unreachable = RedisConnectionError  # no connection (a `Loading` is one too, to redis-py)
Loading = BusyLoadingError  # the server is up and still loading its data
Refused = ResponseError  # the server answered with an error (a full disk: MISCONF)
TimedOut = RedisTimeoutError
