"""The market data stage's batches, every one once and in order, though Pub/Sub may drop some.

The stage publishes each batch on its Pub/Sub channel and appends it to the durable
`{d0}:feed` stream, numbered by a gapless seq. A batch after a gap waits until the gap is
filled from the stream; a gap older than the stream keeps, or a stream that does not fill it,
reloads the whole state (every symbol's book and clock) instead. The state is kept so that a new
order book subscriber gets the current book.

The channel is read only while somebody wants it (`wanted`): a gateway that streams to nobody
reads no feed, and the first client after a quiet spell waits for the state to reload
(`ready`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgspec

from tradepit.marketdata.feed import Depth, SymbolFeed
from tradepit.store import marketdata
from tradepit.store.connection import Client
from tradepit.store.errors import StoreError
from tradepit.store.marketdata import FeedBatch, decode_batch

__all__ = ["GaplessFeed"]

log = logging.getLogger("tradepit.gateway.data")


class GaplessFeed:
    """Hands each batch to `on_batch` once its state is applied, and calls `on_reload` after
    the state was loaded afresh (what came before no longer follows on)."""

    def __init__(
        self,
        redis: Client,
        on_batch: Callable[[FeedBatch], None],
        on_reload: Callable[[], None],
    ) -> None:
        self.redis = redis
        self.on_batch = on_batch
        self.on_reload = on_reload
        self.feeds: dict[str, SymbolFeed] = {}  # each symbol's state: books for snapshots
        self.batch_seq = 0
        self.wanted = asyncio.Event()  # set while anyone wants the feed
        self.ready = asyncio.Event()  # the state is current and the channel is listened to

    async def run(self) -> None:
        while True:
            await self.wanted.wait()
            try:
                async with marketdata.subscribe(self.redis) as live:
                    await self._catch_up(reload=not self.ready.is_set())
                    self.ready.set()
                    while True:
                        if not self.wanted.is_set():
                            # Nobody listens: stop reading; the next one reloads the state.
                            self.ready.clear()
                            break
                        raw = await live.next(timeout=1.0)
                        if raw is None:
                            continue
                        batch = decode_batch(raw)
                        if batch.seq > self.batch_seq + 1:
                            await self._catch_up(reload=False, before=batch.seq)
                        self._apply(batch)
            except (StoreError, OSError) as error:
                log.warning("live feed: %s; reconnecting", error)
                await asyncio.sleep(0.2)
            except msgspec.DecodeError as error:
                log.warning("live feed: undecodable batch (%s); resyncing", error)

    async def _catch_up(self, *, reload: bool, before: int | None = None) -> None:
        """Apply the batches after the last one seen from the durable stream (all of them up to
        `before`, or to its end); reload the whole state if they are no longer there."""
        if reload:
            await self._reload()
            return
        expected = self.batch_seq + 1
        found = await marketdata.batches(
            self.redis, expected, before - 1 if before is not None else None
        )
        if found and found[0].seq != expected:
            await self._reload()  # the gap is older than the stream keeps
            return
        for batch in found:
            self._apply(batch)
        if before is not None and self.batch_seq != before - 1:
            await self._reload()

    async def _reload(self) -> None:
        self.feeds, self.batch_seq = await marketdata.load_feeds(self.redis)
        self.on_reload()

    def _apply(self, batch: FeedBatch) -> None:
        if batch.seq <= self.batch_seq:
            return  # already applied (read from the stream while it was being published)
        self.batch_seq = batch.seq
        feeds = self.feeds
        for message in batch.messages:
            name = message.symbol
            feed = feeds.get(name)
            if feed is None:
                feed = feeds[name] = SymbolFeed(name)
            feed.seq, feed.clock = message.seq, max(feed.clock, message.ts)
            if isinstance(message, Depth):
                feed.apply_depth(message)
        self.on_batch(batch)
