"""The price feed on the bus: one stage that reads every matcher's `{mK}:events` and keeps the
market's data in Redis, under the hash tag `{d0}` (its layout: `tradepit.store.marketdata`).

Inboxes: `{d0}:in` (the clock: `serve` appends the time every second, so minute bars close
when nobody trades) and each matcher's events. Each batch commits, in one MULTI/EXEC:

- `{d0}:trades:SYM` and `{d0}:quotes:SYM`: the tape and the quotes, streams whose entry ids are
  `<ms>-<the message's seq>`, so XRANGE reads a time range; capped at `TAPE_KEPT` entries;
- `{d0}:bars:SYM` and `{d0}:days:SYM`: minute and daily bars, sorted sets scored by the
  minute (day) number; minute bars older than `MINUTE_BARS_DAYS` days are dropped;
- `{d0}:feeds`: each symbol's `SymbolFeed` (last trade, quote, bars in progress, L2 book);
- `{d0}:feed`: the batch's messages as one `FeedBatch`, with entry id `<batch seq>-1`, and the
  same bytes PUBLISHed on `{d0}:live`. A gateway that sees a batch seq skip reads the missing
  batches from the stream: Pub/Sub is the fast path, the stream the durable one.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec

from tradepit.domain.events import Event
from tradepit.marketdata.bars import DAY_NS, MINUTE_NS
from tradepit.marketdata.feed import AnyFeedMessage, BarUpdate, MarketData, Print, Quote
from tradepit.stage.loop import BadEntryError, Fields, StageCore
from tradepit.stage.messages import COMMANDS, DEPTH, EVENTS, decode_events, encode
from tradepit.stage.resp import CommandBuffer
from tradepit.store.connection import Client, open_client
from tradepit.store.errors import StoreError
from tradepit.store.keys import VenueConfig
from tradepit.store.marketdata import (
    MESSAGE,
    FeedBatch,
    FeedKeys,
    append_clock,
    decode_clocks,
    decode_tops,
    load_feeds,
)

__all__ = ["TAPE_KEPT", "FEED_KEPT", "MINUTE_BARS_DAYS", "MarketDataShard", "keep_feed_clock"]

log = logging.getLogger("tradepit.stage")

TAPE_KEPT = 100_000  # trades (and quotes) kept per symbol
FEED_KEPT = 10_000  # batches kept in `{d0}:feed` for gateways to fill gaps from
MINUTE_BARS_DAYS = 30
CLOCK_KEPT = 1_000  # clock ticks kept in the feed's inbox


def tape_id(message: AnyFeedMessage) -> str:
    """A tape entry's stream id: its time in ms, then its seq (both never go back)."""
    return f"{message.ts // 1_000_000}-{message.seq}"


class MarketDataShard(StageCore):
    keys: FeedKeys

    def __init__(self, config: VenueConfig) -> None:
        self.config = config
        self.feed_keys = FeedKeys()
        self.keys = self.feed_keys
        self.core = MarketData()
        self.batch_seq = 0

    def inboxes(self) -> list[str]:
        return self.feed_keys.inboxes(self.config)

    def outboxes(self) -> list[str]:
        return []  # no stage reads the feed: the gateways do, live

    async def load(self, redis: Client) -> None:
        feeds, self.batch_seq = await load_feeds(redis, self.feed_keys)
        self.core = MarketData(feeds)

    def apply(self, stream: str, fields: Fields) -> None:
        if stream == self.keys.inbox:
            try:
                clocks = decode_clocks(fields[COMMANDS])
            except (KeyError, msgspec.DecodeError) as error:
                raise BadEntryError(f"not a list of clock ticks: {error}") from None
            for clock in clocks:
                self.core.tick(clock.ts)
            return
        try:
            events: list[Event] = decode_events(fields[EVENTS])  # type: ignore[assignment]
            tops = decode_tops(fields[DEPTH]) if DEPTH in fields else []
        except (KeyError, msgspec.DecodeError) as error:
            raise BadEntryError(f"not a matcher's events: {error}") from None
        self.core.apply_events(events)
        for top in tops:
            self.core.apply_top(top)

    def write(self, tx: CommandBuffer) -> list[tuple[str, bytes]]:
        messages = self.core.take_messages()
        changed, self.core.changed = self.core.changed, set()
        if not messages and not changed:
            return []
        keys = self.feed_keys
        for message in messages:
            if isinstance(message, Print | Quote):
                tape = keys.trades if isinstance(message, Print) else keys.quotes
                tx.xadd(
                    tape(message.symbol),
                    {MESSAGE: encode(message)},
                    id=tape_id(message),
                    maxlen=TAPE_KEPT,
                    approximate=True,
                )
            elif isinstance(message, BarUpdate):
                self._write_bar(tx, message)
        feeds = self.core.feeds
        if changed:
            stored = {symbol: encode(feeds[symbol]) for symbol in changed}
            tx.hset(keys.feeds, mapping=stored)
        if not messages:
            return []
        self.batch_seq += 1
        batch = encode(FeedBatch(self.batch_seq, messages))
        tx.hset(keys.state, "batch_seq", self.batch_seq)
        tx.xadd(
            keys.feed,
            {MESSAGE: batch},
            id=f"{self.batch_seq}-1",
            maxlen=FEED_KEPT,
            approximate=True,
        )
        return [(keys.channel, batch)]

    def _write_bar(self, tx: CommandBuffer, message: BarUpdate) -> None:
        bar = message.bar
        if message.kind == "d":
            key, number = self.feed_keys.days(message.symbol), bar.start // DAY_NS
        else:
            key, number = self.feed_keys.bars(message.symbol), bar.start // MINUTE_NS
        # One member per period: the bar in progress replaces its last version.
        tx.zremrangebyscore(key, number, number)
        tx.zadd(key, {encode(message): number})
        if message.kind == "b":
            tx.zremrangebyscore(key, "-inf", f"({number - MINUTE_BARS_DAYS * 24 * 60}")


async def keep_feed_clock(redis_url: str, every: float = 1.0) -> None:
    """Append the time to the feed's inbox every `every` seconds, for as long as it runs: the
    feed reads no clock, so this is how its minute bars close in a quiet market."""
    client = await open_client(redis_url)
    try:
        while True:
            try:
                await append_clock(client, time.time_ns(), CLOCK_KEPT)
            except StoreError as error:
                log.warning("feed clock: %s", error)
            await asyncio.sleep(every)
    finally:
        await client.aclose()
