"""`LiveFeed`: one per gateway, the market data stage's live output handed to the clients that
asked for it, gap-free (recovery.py), routed and framed once per group of clients
(subscriptions.py), and sent to each at the pace it reads (backpressure.py)."""

from __future__ import annotations

import asyncio
import contextlib

from tradepit.gateway.datastream.backpressure import DataClient, cut_stalled
from tradepit.gateway.datastream.protocol import Encoded
from tradepit.gateway.datastream.recovery import GaplessFeed
from tradepit.gateway.datastream.subscriptions import Subscriptions
from tradepit.gateway.market import Market
from tradepit.gateway.service import GatewaySettings
from tradepit.marketdata.feed import Depth, SymbolFeed
from tradepit.store.connection import Client
from tradepit.store.marketdata import FeedBatch

__all__ = ["LiveFeed"]


class LiveFeed:
    def __init__(
        self, redis: Client, market: Market, settings: GatewaySettings | None = None
    ) -> None:
        self.market = market
        self.settings = settings or GatewaySettings()
        self.subscriptions = Subscriptions()
        self.feed = GaplessFeed(redis, self._send_batch, self._send_books_afresh)
        self.delivered = 0  # messages handed to clients, counted once per client
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        clients = self.subscriptions.clients
        self._tasks = [
            asyncio.create_task(self.feed.run(), name="live-feed"),
            asyncio.create_task(
                cut_stalled(clients, self.settings.stream_send_timeout), name="live-feed-stalls"
            ),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def join(self, client: DataClient, timeout: float = 10.0) -> None:
        """Count `client` in; once this returns, the feed is current (books for snapshots)."""
        self.subscriptions.add(client)
        self.feed.wanted.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.feed.ready.wait()

    def send_snapshots(self, client: DataClient, symbols: list[str]) -> None:
        """The current book of each of `symbols` ("*": all), to a new orderbook subscriber."""
        for symbol in symbols:
            for name in sorted(self.feed.feeds) if symbol == "*" else [symbol]:
                self._send_snapshot(client, name)

    def forget(self, client: DataClient) -> None:
        self.subscriptions.remove(client)
        if not self.subscriptions.clients:
            self.feed.wanted.clear()

    def _send_snapshot(self, client: DataClient, name: str) -> None:
        listing = self.market.get(name)
        if listing is None:
            return
        feed = self.feed.feeds.get(name) or SymbolFeed(name)
        bids, asks = feed.depth()
        snapshot = Depth(name, feed.seq, feed.clock, feed.book_seq, True, bids, asks)
        client.push(Encoded(snapshot, listing.symbol))

    def _send_batch(self, batch: FeedBatch) -> None:
        for group in self.subscriptions.route(batch.messages, self.market):
            self.delivered += group.send()

    def _send_books_afresh(self) -> None:
        """Whoever watches a book gets it afresh: deltas from the old one no longer apply."""
        for client, subscriptions in list(self.subscriptions.clients.items()):
            watched = subscriptions["orderbook"]
            for symbol in sorted(self.feed.feeds) if "*" in watched else sorted(watched):
                self._send_snapshot(client, symbol)
