"""Portfolio history: every account's equity, sampled once a minute by `serve`.

Equity is cash (free and reserved) plus each holding valued at its symbol's last trade price
(its reference price before the first trade). Samples go to one capped stream per account,
`tradepit:equity:<account id>`, whose entry ids are the sampling times in milliseconds, so a
time range is one XRANGE.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tradepit.ledger import Account, Holding
from tradepit.stage.matcher import BookCounters
from tradepit.stage.messages import SymbolSpec, symbol_of
from tradepit.store.keys import SYMBOLS, ShardKeys, VenueConfig

__all__ = [
    "SAMPLE_SECONDS",
    "SAMPLES_KEPT",
    "equity_key",
    "equity_of",
    "sample_equity",
    "sample_forever",
]

log = logging.getLogger("tradepit.portfolio")

SAMPLE_SECONDS = 60
SAMPLES_KEPT = 60 * 24 * 31  # a month of minutes
_decode_account = msgspec.json.Decoder(Account).decode
_decode_spec = msgspec.json.Decoder(SymbolSpec).decode
_decode_counters = msgspec.json.Decoder(BookCounters).decode


def equity_key(account_id: int) -> str:
    return f"tradepit:equity:{account_id}"


def holding_value(holding: Holding, price: int, cash_per_tick_lot: int) -> int:
    """Cents: a holding at `price` ticks; at its cost if there is no price (0)."""
    lots = holding.free + holding.reserved
    return price * lots * cash_per_tick_lot if price else holding.cost


def equity_of(account: Account, prices: Mapping[str, tuple[int, int]]) -> int:
    """Cents: cash plus holdings at `prices` (symbol -> (ticks, cents per tick-lot))."""
    total = account.cash_free + account.cash_reserved
    for name, holding in account.holdings.items():
        price, cash_per_tick_lot = prices.get(name, (0, 0))
        total += holding_value(holding, price, cash_per_tick_lot)
    return total


async def market_prices(redis: aioredis.Redis, config: VenueConfig) -> dict[str, tuple[int, int]]:
    specs: Any = await redis.hgetall(SYMBOLS)
    prices: dict[str, tuple[int, int]] = {}
    for raw in specs.values():
        spec = _decode_spec(raw)
        prices[spec.name] = (spec.reference, symbol_of(spec).cash_per_tick_lot)
    for shard in config.matcher_names():
        books: Any = await redis.hgetall(ShardKeys(shard).books)
        for name, raw in books.items():
            counters = _decode_counters(raw)
            known = prices.get(name.decode())
            if known is not None and counters.last_price:
                prices[name.decode()] = (counters.last_price, known[1])
    return prices


async def sample_equity(redis: aioredis.Redis, config: VenueConfig) -> int:
    """Append every account's equity now; how many accounts were sampled."""
    prices = await market_prices(redis, config)
    count = 0
    async with redis.pipeline(transaction=False) as pipe:
        for shard in config.ledger_names():
            for raw in await redis.hvals(ShardKeys(shard).accounts):
                account = _decode_account(raw)
                pipe.xadd(
                    equity_key(account.account_id),
                    {b"e": equity_of(account, prices)},
                    maxlen=SAMPLES_KEPT,
                    approximate=True,
                )
                count += 1
        await pipe.execute()
    return count


async def sample_forever(redis_url: str, config: VenueConfig) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    try:
        while True:
            try:
                await sample_equity(redis, config)
            except RedisError as error:
                log.warning("sampling equity failed: %s", error)
            await asyncio.sleep(SAMPLE_SECONDS)
    finally:
        await redis.aclose()
