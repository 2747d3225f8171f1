"""The market data stage's part of the schema: its keys, codecs, load function and readers.

The stage keeps the market's data under the hash tag `{d0}`:

- `{d0}:trades:SYM` and `{d0}:quotes:SYM`: the tape and the quotes, streams whose entry ids are
  `<ms>-<the message's seq>`, so XRANGE reads a time range;
- `{d0}:bars:SYM` and `{d0}:days:SYM`: minute and daily bars (`BarUpdate`s), sorted sets scored
  by the minute (day) number;
- `{d0}:feeds`: each symbol's `SymbolFeed` (last trade, quote, bars in progress, L2 book);
- `{d0}:feed`: every batch of messages as one `FeedBatch`, with entry id `<batch seq>-1`, and
  the same bytes PUBLISHed on `{d0}:live`;
- `{d0}:in`: its clock (`Clock`), which `serve` appends every second.

The stage (`tradepit.stage.marketdata`) writes them; the gateway reads them here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec

from tradepit.marketdata.feed import AnyFeedMessage, BarUpdate, BookTop, SymbolFeed
from tradepit.stage.messages import COMMANDS, encode
from tradepit.store.connection import Client, is_cluster_client
from tradepit.store.errors import StoreError
from tradepit.store.keys import ShardKeys, VenueConfig
from tradepit.store.matcher import event_streams

__all__ = [
    "FEED_SHARD",
    "MESSAGE",
    "Clock",
    "FeedBatch",
    "FeedKeys",
    "FeedSubscription",
    "decode_batch",
    "decode_bar",
    "decode_clocks",
    "decode_feed",
    "decode_message",
    "decode_tops",
    "load_feeds",
    "feeds",
    "tape",
    "bars",
    "newest_bar",
    "batches",
    "subscribe",
    "append_clock",
]

FEED_SHARD = "d0"
MESSAGE = b"m"  # the field that holds a message (or a batch) in the feed's streams


class Clock(msgspec.Struct, array_like=True, tag="clock"):
    """The time, in ns, appended to the feed's inbox by whoever runs it."""

    ts: int


class FeedBatch(msgspec.Struct, array_like=True):
    seq: int  # gapless across the feed's batches
    messages: list[AnyFeedMessage]


decode_clocks = msgspec.json.Decoder(list[Clock]).decode
decode_tops = msgspec.json.Decoder(list[BookTop]).decode
decode_batch = msgspec.json.Decoder(FeedBatch).decode
decode_feed = msgspec.json.Decoder(SymbolFeed).decode
decode_message = msgspec.json.Decoder(AnyFeedMessage).decode
decode_bar = msgspec.json.Decoder(BarUpdate).decode


class FeedKeys(ShardKeys):
    """The keys of the market data stage."""

    def __init__(self, shard: str = FEED_SHARD) -> None:
        super().__init__(shard)
        tag = "{" + shard + "}"
        self.channel = f"{tag}:live"  # Pub/Sub: each batch as committed
        self.feeds = f"{tag}:feeds"  # symbol -> SymbolFeed
        self.feed = f"{tag}:feed"  # every batch of messages, by batch seq

    def inboxes(self, config: VenueConfig) -> list[str]:
        """What the stage reads: the operator's commands, then every matcher shard's events."""
        return [self.inbox, *event_streams(config)]

    def trades(self, symbol: str) -> str:
        return "{" + self.shard + "}:trades:" + symbol

    def quotes(self, symbol: str) -> str:
        return "{" + self.shard + "}:quotes:" + symbol

    def bars(self, symbol: str) -> str:
        return "{" + self.shard + "}:bars:" + symbol

    def days(self, symbol: str) -> str:
        return "{" + self.shard + "}:days:" + symbol


_KEYS = FeedKeys()


async def load_feeds(
    client: Client, keys: FeedKeys | None = None
) -> tuple[dict[str, SymbolFeed], int]:
    """Every symbol's feed state and the last batch seq, as committed together (one MULTI in
    the stage's own slot)."""
    keys = keys or _KEYS
    async with client.pipeline(transaction=True) as tx:
        tx.hgetall(keys.feeds)
        tx.hget(keys.state, "batch_seq")
        stored, batch_seq = await tx.execute()
    loaded: dict[str, SymbolFeed] = {}
    raw: Any
    for raw in stored.values():
        feed = decode_feed(raw)
        loaded[feed.symbol] = feed
    return loaded, int(batch_seq or 0)


async def feeds(client: Client, names: Sequence[str]) -> dict[str, SymbolFeed]:
    """The feed state of each of `names` that has one."""
    if not names:
        return {}
    raws: Any = await client.hmget(_KEYS.feeds, list(names))
    return {name: decode_feed(raw) for name, raw in zip(names, raws, strict=True) if raw}


async def tape(
    client: Client,
    symbol: str,
    *,
    quotes: bool,
    start_ms: int,
    end_ms: int,
    after: str,
    count: int,
    descending: bool,
) -> list[tuple[str, AnyFeedMessage]]:
    """Up to `count` of a symbol's trades (or quotes) within [start_ms, end_ms], after the
    entry id `after` ("" for the first) in the order asked for, each with its entry id."""
    key = _KEYS.quotes(symbol) if quotes else _KEYS.trades(symbol)
    entries: Any
    if descending:
        high = "(" + after if after else str(end_ms)
        entries = await client.xrevrange(key, max=high, min=str(start_ms), count=count)
    else:
        low = "(" + after if after else str(start_ms)
        entries = await client.xrange(key, min=low, max=str(end_ms), count=count)
    return [(entry_id.decode(), decode_message(fields[MESSAGE])) for entry_id, fields in entries]


async def bars(
    client: Client,
    symbol: str,
    *,
    daily: bool,
    low: int,
    high: int,
    count: int,
    descending: bool = False,
) -> list[BarUpdate]:
    """Up to `count` of a symbol's stored minute (or daily) bars whose minute (day) number is
    within [low, high], in the order asked for."""
    key = _KEYS.days(symbol) if daily else _KEYS.bars(symbol)
    stored: Any
    if descending:
        stored = await client.zrevrangebyscore(key, high, low, start=0, num=count)
    else:
        stored = await client.zrangebyscore(key, low, high, start=0, num=count)
    return [decode_bar(raw) for raw in stored]


async def newest_bar(client: Client, symbol: str) -> BarUpdate | None:
    """The symbol's last stored minute bar."""
    stored: Any = await client.zrevrange(_KEYS.bars(symbol), 0, 0)
    return decode_bar(stored[0]) if stored else None


async def batches(client: Client, first: int, last: int | None = None) -> list[FeedBatch]:
    """The feed's batches from seq `first` to `last` (or its newest) that it still keeps."""
    high = f"{last}-1" if last is not None else "+"
    entries: Any = await client.xrange(_KEYS.feed, min=f"{first}-0", max=high)
    return [decode_batch(fields[MESSAGE]) for _entry_id, fields in entries]


class FeedSubscription:
    """The feed's live batches, as published: a fast path that may drop some (`batches` reads
    the durable copy)."""

    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    async def next(self, timeout: float) -> bytes | None:
        """The next batch's bytes (for `decode_batch`), or None if none came in `timeout` s."""
        message: Any = await self._pubsub.get_message(timeout=timeout)
        return None if message is None else bytes(message["data"])


@contextlib.asynccontextmanager
async def subscribe(client: Client) -> AsyncIterator[FeedSubscription]:
    """Listen to the feed's live batches; every batch published after this enters is heard."""
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(_KEYS.channel)
        yield FeedSubscription(pubsub)
    finally:
        with contextlib.suppress(StoreError, OSError):  # the connection may be gone already
            await pubsub.aclose()


async def append_clock(client: Client, ts: int, kept: int) -> None:
    """Append the time `ts` (ns) to the feed's inbox, which keeps about `kept` ticks."""
    entry: Any = {COMMANDS: encode([Clock(ts)])}
    await client.xadd(_KEYS.inbox, entry, maxlen=kept, approximate=True)
    if is_cluster_client(client):
        await client.spublish(_KEYS.inbox, b"")  # the feed sleeps on its doorbell
