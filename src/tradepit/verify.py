"""`tradepit verify`: read the venue's state from Redis and prove it balances.

Checks, per ledger shard, the ledger's own invariant (every asset's balances sum to deposits
minus withdrawals plus what was settled with other shards; nothing negative; reserved balances
equal the open orders' reservations). Then, once nothing is in flight between the stages:
what the shards settled with each other sums to zero, and the ledgers' open orders are exactly
the books' open orders, with the same side and lots left; and, where the market data stage
has read every matcher's events, its L2 books are the matchers' books.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from tradepit.client import load_config
from tradepit.domain.orders import Side
from tradepit.ledger import OpenOrder
from tradepit.matcher import Book
from tradepit.stage.keys import ShardKeys, VenueConfig
from tradepit.stage.ledger import LedgerShard, load_ledger
from tradepit.stage.loop import StageCore
from tradepit.stage.marketdata import FeedKeys, load_feeds
from tradepit.stage.matcher import MatcherShard, load_matcher, top_of

__all__ = ["Report", "verify", "entries_in_flight"]


class Report:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.notes: list[str] = []

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        lines = [*self.notes]
        lines += [f"VIOLATION {problem}" for problem in self.problems]
        lines.append("OK: the venue balances" if self.ok else f"{len(self.problems)} violation(s)")
        return "\n".join(lines)


async def entries_in_flight(redis: aioredis.Redis, config: VenueConfig) -> int:
    """Entries appended to any stage's inbox that it has not applied yet.

    The matchers first: once no client command is in flight, a matcher's last commit can add
    to a ledger's inbox, never the other way round, so a count that saw the matchers empty
    and then the ledgers empty is not fooled by a commit between the two."""
    count = 0
    shards: list[StageCore] = [MatcherShard(index, config) for index in range(config.matchers)]
    shards += [LedgerShard(index, config) for index in range(config.ledgers)]
    for shard in shards:
        checkpoints: Any = await redis.hgetall(shard.keys.checkpoints)
        for stream in shard.inboxes():
            after = checkpoints.get(stream.encode(), b"0-0")
            pending: Any = await redis.xrange(stream, min=b"(" + after, count=1000)
            count += len(pending)
    return count


async def verify(redis: aioredis.Redis, settle_timeout: float = 10.0) -> Report:
    report = Report()
    config = await load_config(redis)
    deadline = asyncio.get_running_loop().time() + settle_timeout
    while (in_flight := await entries_in_flight(redis, config)) and (
        asyncio.get_running_loop().time() < deadline
    ):
        await asyncio.sleep(0.1)
    ledger_orders: dict[int, OpenOrder] = {}
    flow: dict[str, int] = {}
    for shard in config.ledger_names():
        ledger, _history = await load_ledger(redis, ShardKeys(shard), config)
        report.problems += [f"{shard}: {problem}" for problem in ledger.check_invariants()]
        ledger_orders.update(ledger.open_orders)
        for asset, amount in ledger.trade_flow.items():
            flow[asset] = flow.get(asset, 0) + amount
        report.notes.append(
            f"{shard}: {len(ledger.accounts)} accounts, {len(ledger.open_orders)} open orders"
        )
    if in_flight:
        report.problems.append(
            f"{in_flight} inbox entries still unapplied after {settle_timeout} s: are all "
            "stages running? The cross-shard checks need a settled venue."
        )
        return report
    for asset, amount in sorted(flow.items()):
        if amount:
            report.problems.append(f"{asset}: shards settled {amount} more than they paid")
    book_orders = {}
    books: dict[str, Book] = {}
    for shard in config.matcher_names():
        matcher, _ranks = await load_matcher(redis, ShardKeys(shard))
        for book in matcher.books.values():
            book_orders.update(book.orders)
            book_orders.update(book.stop_orders)
        books.update(matcher.books)
        report.notes.append(f"{shard}: {len(matcher.books)} books")
    await _check_feed(redis, config, books, report)
    for order_id, open_order in ledger_orders.items():
        book_order = book_orders.get(order_id)
        if book_order is None:
            report.problems.append(f"order {order_id}: open in the ledger, not in any book")
        elif (
            book_order.leaves != open_order.leaves
            or book_order.side != open_order.side
            or book_order.account_id != open_order.account_id
        ):
            side = "buy" if open_order.side is Side.BUY else "sell"
            report.problems.append(
                f"order {order_id}: ledger has {side} {open_order.leaves} left, "
                f"book has {book_order.leaves}"
            )
    for order_id in book_orders.keys() - ledger_orders.keys():
        report.problems.append(f"order {order_id}: in a book, not open in any ledger")
    return report


async def _check_feed(
    redis: aioredis.Redis, config: VenueConfig, books: dict[str, Book], report: Report
) -> None:
    """The feed's books are the matchers' books, if it has read all they said."""
    keys = FeedKeys()
    checkpoints: Any = await redis.hgetall(keys.checkpoints)
    for shard in config.matcher_names():
        events = ShardKeys(shard).events
        newest: Any = await redis.xrevrange(events, count=1)
        if newest and checkpoints.get(events.encode()) != newest[0][0]:
            report.notes.append("feed: not checked, the market data stage is behind or stopped")
            return
    feeds, _ = await load_feeds(redis, keys)
    for name, book in sorted(books.items()):
        top = top_of(book, 0)
        feed = feeds.get(name)
        shown = feed.depth() if feed is not None else ([], [])
        if shown != (top.bids, top.asks):
            report.problems.append(f"feed: its {name} book {shown} is not the matcher's {top}")
    report.notes.append(f"feed: {len(feeds)} symbols' books checked")
