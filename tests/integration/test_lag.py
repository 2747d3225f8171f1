"""How far behind the stages are, as `tradepit.store.lag` reads it: what the stages' metrics,
the gateway's /readyz and `tradepit status` show."""

from __future__ import annotations

import asyncio
import time

import pytest
from harness import running_venue

from tradepit.ledger import CASH
from tradepit.stage.messages import Transfer
from tradepit.store.connection import open_client
from tradepit.store.keys import ledger_of
from tradepit.store.lag import COUNT_CAP, shard_lag, venue_inboxes, venue_lag


@pytest.fixture
def redis_url(any_redis_url: str) -> str:
    return any_redis_url


def test_a_stopped_shard_lags_by_what_waits_and_for_how_long(redis_url: str) -> None:
    async def main() -> None:
        async with running_venue(redis_url) as venue:
            account = await venue.account("0")
            shard = ledger_of(account, venue.config)
            redis = await open_client(redis_url)
            try:
                lags = await venue_lag(redis, venue.config)
                assert [lag.shard for lag in lags] == list(venue_inboxes(venue.config))
                assert all(lag.entries == 0 and lag.seconds(_now_ms()) == 0 for lag in lags)
                assert all(lag.commits > 0 for lag in lags if lag.shard == shard)

                await venue.stop_stages()
                before = _now_ms()
                for n in range(3):  # each its own flush, so its own entry
                    venue.client.send(account, Transfer(0, f"t-{n}", account, CASH, 1_00))
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.2)
                lag = await shard_lag(redis, shard, venue_inboxes(venue.config)[shard])
                assert lag.entries == 3
                inbox = next(inbox for inbox in lag.inboxes if inbox.entries)
                assert inbox.oldest_ms is not None and before - 50 <= inbox.oldest_ms
                assert lag.seconds(_now_ms()) >= 0.2

                venue.start_stages()
                await venue.settle()
                lag = await shard_lag(redis, shard, venue_inboxes(venue.config)[shard])
                assert (lag.entries, lag.seconds(_now_ms())) == (0, 0)
                assert lag.last_input_ms is not None and lag.last_input_ms >= inbox.oldest_ms
            finally:
                await redis.aclose()

    asyncio.run(main())


def test_the_count_stops_at_its_cap(redis_url: str) -> None:
    async def main() -> None:
        async with running_venue(redis_url) as venue:
            account = await venue.account("0")
            shard = ledger_of(account, venue.config)
            await venue.stop_stages()
            redis = await open_client(redis_url)
            try:
                inbox = venue_inboxes(venue.config)[shard][-1]  # the shard's commands
                for n in range(COUNT_CAP + 5):
                    await redis.xadd(inbox, {b"n": n})
                lag = await shard_lag(redis, shard, venue_inboxes(venue.config)[shard])
                assert lag.entries == COUNT_CAP
            finally:
                await redis.delete(inbox)
                await redis.aclose()

    asyncio.run(main())


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
