"""The market data stage on real Valkey: its L2 book is the matchers' books, its bars and tape
are the trades, it survives a restart unchanged, and it dead-letters what it cannot read."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from harness import Venue, running_venue

from tradepit.domain.orders import OrderType, Side, TimeInForce
from tradepit.marketdata.bars import MINUTE_NS
from tradepit.stage.matcher import top_of
from tradepit.store.keys import VenueConfig
from tradepit.store.marketdata import (
    MESSAGE,
    FeedKeys,
    decode_bar,
    decode_message,
    load_feeds,
)
from tradepit.store.matcher import MatcherKeys
from tradepit.verify import verify

SYMBOLS = ("ACME", "GLOBEX", "INITECH")


async def feed_caught_up(venue: Venue, timeout: float = 10.0) -> None:
    """Wait until the feed has applied every matcher's events."""
    keys = FeedKeys()
    deadline = time.monotonic() + timeout
    while True:
        await venue.settle()
        checkpoints: Any = await venue.redis.hgetall(keys.checkpoints)
        behind = False
        for name in venue.config.matcher_names():
            stream = MatcherKeys(name).events
            newest: Any = await venue.redis.xrevrange(stream, count=1)
            if newest and checkpoints.get(stream.encode(), b"0-0") != newest[0][0]:
                behind = True
        if not behind:
            return
        assert time.monotonic() < deadline, "the feed did not catch up"
        await asyncio.sleep(0.02)


async def random_market(venue: Venue, seed: int, orders: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    accounts = [
        await venue.account("1000000.00", **dict.fromkeys(SYMBOLS, "10000")) for _ in range(4)
    ]
    placed = []
    for _ in range(orders):
        side = rng.choice((Side.BUY, Side.SELL))
        kind = OrderType.MARKET if rng.random() < 0.1 else OrderType.LIMIT
        price = 10_000 + rng.randint(-30, 30) if kind is OrderType.LIMIT else 0
        if kind is OrderType.MARKET:
            price = 11_000 if side is Side.BUY else 9_000
        tif = TimeInForce.IOC if kind is OrderType.MARKET else TimeInForce.GTC
        account = rng.choice(accounts)
        order_id, reply = await venue.place(
            account, rng.choice(SYMBOLS), side, rng.randint(1, 20), price, kind=kind, tif=tif
        )
        if reply.ok:
            placed.append((account, order_id))
    return placed


def test_the_feed_is_the_books_and_the_tape(redis_url: str) -> None:
    config = VenueConfig(ledgers=2, matchers=2)

    async def main() -> None:
        async with running_venue(redis_url, config, SYMBOLS) as venue:
            await random_market(venue, seed=3, orders=400)
            await feed_caught_up(venue)
            feeds, _ = await load_feeds(venue.redis)
            traded = 0
            for symbol in SYMBOLS:
                book = (await venue.matcher(symbol)).books[symbol]
                top = top_of(book, 0)
                assert feeds[symbol].depth() == (top.bids, top.asks), symbol
                quote = feeds[symbol].quote
                assert quote is not None
                assert (quote.bid, quote.ask) == (book.best_bid() or 0, book.best_ask() or 0)
                # The tape is every trade, once, in order, and the bars add up to it.
                entries: Any = await venue.redis.xrange(FeedKeys().trades(symbol))
                tape = [decode_message(fields[MESSAGE]) for _, fields in entries]
                ids = [entry.trade_id for entry in tape]  # type: ignore[union-attr]
                assert ids == sorted(set(ids))
                assert feeds[symbol].last == (tape[-1] if tape else None)
                bars: Any = await venue.redis.zrange(FeedKeys().bars(symbol), 0, -1)
                volume = sum(decode_bar(raw).bar.volume for raw in bars)
                assert volume == sum(entry.qty for entry in tape)  # type: ignore[union-attr]
                day = feeds[symbol].day
                assert day is not None and day.volume == volume
                traded += len(tape)
            assert traded > 50, "too few trades to prove anything"
            report = await verify(venue.redis)
            assert report.ok and "feed: 3 symbols' books checked" in report.notes, report.text()

            # A restart loads what was committed: the same state, and it carries on from it.
            await venue.stop_stages()
            venue.start_stages()
            await random_market(venue, seed=4, orders=100)
            await feed_caught_up(venue)
            after, _ = await load_feeds(venue.redis)
            for symbol in SYMBOLS:
                book = (await venue.matcher(symbol)).books[symbol]
                top = top_of(book, 0)
                assert after[symbol].depth() == (top.bids, top.asks), symbol
                assert after[symbol].seq >= feeds[symbol].seq

    asyncio.run(main())


def test_the_clock_closes_minute_bars_and_garbage_is_dead_lettered(redis_url: str) -> None:
    async def main() -> None:
        async with running_venue(redis_url, symbols=("ACME",)) as venue:
            keys = FeedKeys()
            seller = await venue.account("0", ACME="10")
            buyer = await venue.account("10000.00")
            await venue.place(seller, "ACME", Side.SELL, 3, 10_000)
            await venue.place(buyer, "ACME", Side.BUY, 3, 10_000)
            await feed_caught_up(venue)
            feeds, batch_seq = await load_feeds(venue.redis)
            assert feeds["ACME"].minute is not None
            await venue.redis.xadd(keys.inbox, {b"c": b"not json"})
            ticked = b'[["clock",%d]]' % (time.time_ns() + MINUTE_NS)
            await venue.redis.xadd(keys.inbox, {b"c": ticked})
            deadline = time.monotonic() + 10
            while (await load_feeds(venue.redis))[0]["ACME"].minute is not None:
                assert time.monotonic() < deadline, "the minute bar never closed"
                await asyncio.sleep(0.02)
            dead: Any = await venue.redis.xrange(keys.dead_letters)
            assert len(dead) == 1 and b"clock" in dead[0][1][b"reason"]
            last = await venue.redis.xrevrange(keys.feed, count=1)
            assert int(last[0][0].split(b"-")[0]) == batch_seq + 1

    asyncio.run(main())
