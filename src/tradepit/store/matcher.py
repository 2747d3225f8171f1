"""The matcher shards' part of the schema: their keys, codecs, load function and readers.

A matcher shard `mK` keeps each book's counters in `{mK}:books` (`BookCounters`), each open
order with its place in the queue in `{mK}:resting` (`StoredOrder`), and every event it emits,
for market data, in the stream `{mK}:events`. An order's place is the sequence number of the
event that put it at the back of its level; loading sorts by it, which rebuilds every queue
exactly. The stage (`tradepit.stage.matcher`) writes them; everything else reads them here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from tradepit.domain.orders import Order, OrderType, Side
from tradepit.domain.session import Phase
from tradepit.matcher import Matcher, MatcherState
from tradepit.matcher.book import BookState
from tradepit.store.connection import Client
from tradepit.store.keys import ShardKeys, VenueConfig, matcher_of

__all__ = [
    "MatcherKeys",
    "BookCounters",
    "StoredOrder",
    "HELD_FOR_OPEN",
    "HELD_FOR_CLOSE",
    "event_streams",
    "load_matcher",
    "restore_matcher",
    "book_counters",
]


class MatcherKeys(ShardKeys):
    """The keys of matcher shard `mK`."""

    def __init__(self, shard: str) -> None:
        super().__init__(shard)
        tag = "{" + shard + "}"
        self.events = f"{tag}:events"  # every event, for market data
        self.channel = f"{tag}:live"  # Pub/Sub: the live copy of the events committed
        self.books = f"{tag}:books"  # symbol -> BookCounters
        self.resting = f"{tag}:resting"  # order id -> StoredOrder

    def inboxes(self, config: VenueConfig) -> list[str]:
        """What the shard reads, in the order each batch applies them: the operator's commands,
        then each ledger shard's orders."""
        return [self.inbox] + [self.link_from(name) for name in config.ledger_names()]


class BookCounters(msgspec.Struct, array_like=True):
    seq: int
    last_price: int  # ticks: the book's last trade, 0 before its first
    halted: bool
    arrival: int
    phase: Phase = Phase.OPEN  # the market's session


class StoredOrder(msgspec.Struct, array_like=True, gc=False):
    """An open order and its rank: its queue rank if resting, its stop arrival if waiting to
    trigger; `held` says whether it waits for the open (`HELD_FOR_OPEN`) or the closing
    auction (`HELD_FOR_CLOSE`), ranked by arrival, rather than being in the book."""

    rank: int
    order: Order
    held: int = 0


HELD_FOR_OPEN = 1
HELD_FOR_CLOSE = 2


_decode_counters = msgspec.json.Decoder(BookCounters).decode
_decode_stored = msgspec.json.Decoder(StoredOrder).decode


def event_streams(config: VenueConfig) -> list[str]:
    """Every matcher shard's stream of events, in shard order."""
    return [MatcherKeys(name).events for name in config.matcher_names()]


async def load_matcher(client: Client, keys: MatcherKeys) -> tuple[Matcher, dict[int, int]]:
    """A shard's books as committed in Redis, and the queue ranks of their resting orders (one
    MULTI in the shard's own slot)."""
    async with client.pipeline(transaction=True) as tx:
        tx.hgetall(keys.books)
        tx.hvals(keys.resting)
        counters, stored = await tx.execute()
    return restore_matcher(counters, stored)


def restore_matcher(
    counters: dict[bytes, bytes], stored: list[bytes]
) -> tuple[Matcher, dict[int, int]]:
    """A matcher from its stored hashes, all of `books` and the values of `resting`; and the
    queue ranks of its resting orders."""
    orders = sorted((_decode_stored(raw) for raw in stored), key=lambda entry: entry.rank)
    ranks: dict[int, int] = {}
    by_symbol: dict[str, BookState] = {}
    for raw_symbol, raw_counters in counters.items():
        symbol = raw_symbol.decode()
        book = _decode_counters(raw_counters)
        by_symbol[symbol] = BookState(
            symbol, book.seq, book.last_price, book.halted, book.arrival, [], [], [], [], book.phase
        )
    for entry in orders:
        order = entry.order
        state = by_symbol[order.symbol]
        if entry.held:
            ranks[order.order_id] = entry.rank
            (state.waiting if entry.held == HELD_FOR_OPEN else state.closing).append(order)
            continue
        waiting = order.type in (OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP)
        if waiting and order.side is Side.BUY:
            state.buy_stops.append((entry.rank, order))
        elif waiting:
            state.sell_stops.append((entry.rank, order))
        else:
            ranks[order.order_id] = entry.rank
            (state.bids if order.side is Side.BUY else state.asks).append(order)
    matcher = Matcher()
    matcher.restore(MatcherState([by_symbol[symbol] for symbol in sorted(by_symbol)]))
    return matcher, ranks


async def book_counters(
    client: Client, config: VenueConfig, names: Iterable[str] | None = None
) -> dict[str, BookCounters]:
    """The counters (last trade price, halt) of the books of `names`, or of every book; a
    symbol whose book has not been made yet is left out. One HMGET (or HGETALL) per shard,
    pipelined."""
    async with client.pipeline(transaction=False) as pipe:
        if names is None:
            for shard in config.matcher_names():
                pipe.hgetall(MatcherKeys(shard).books)
            stored: list[Any] = await pipe.execute()
            return {
                name.decode(): _decode_counters(raw)
                for books in stored
                for name, raw in books.items()
            }
        by_shard: dict[str, list[str]] = {}
        for name in names:
            by_shard.setdefault(matcher_of(name, config), []).append(name)
        for shard, shard_names in by_shard.items():
            pipe.hmget(MatcherKeys(shard).books, shard_names)
        replies: list[Any] = await pipe.execute()
    return {
        name: _decode_counters(raw)
        for shard_names, raws in zip(by_shard.values(), replies, strict=True)
        for name, raw in zip(shard_names, raws, strict=True)
        if raw is not None
    }
