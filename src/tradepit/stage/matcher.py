"""A matcher shard on the bus: the books of the symbols that map to it.

Inboxes, applied in this order each batch: `{mK}:in` (the operator: books, halts, the session
close) and then each ledger shard's outbox to this shard (orders, cancels, replaces). Outputs:
to each ledger shard, the events about its accounts' orders; to `{mK}:events` and the live
channel, every event, for market data, and beside them (field `d`) the top levels of each book
the batch touched (`BookTop`): the feed's L2 book is exactly the matcher's.

In Redis (`tradepit.store.matcher`), `{mK}:books` holds each book's counters and `{mK}:resting`
each open order with its place in the queue: the sequence number of the event that put it at
the back of its level (accepted, triggered, or replaced at a new price or size); a replace
that keeps priority keeps it.
"""

from __future__ import annotations

import msgspec

from tradepit.domain.events import (
    Accepted,
    Event,
    Queued,
    Replaced,
    SessionChanged,
    Trade,
    TradingStatus,
    Triggered,
)
from tradepit.domain.orders import Side
from tradepit.marketdata.feed import DEPTH_LEVELS, BookTop
from tradepit.matcher import Matcher
from tradepit.matcher.book import Book
from tradepit.stage.loop import BadEntryError, Fields, StageCore
from tradepit.stage.messages import (
    COMMANDS,
    DEPTH,
    EVENTS,
    AddBook,
    decode_matcher_commands,
    encode,
)
from tradepit.stage.resp import CommandBuffer
from tradepit.store.connection import Client
from tradepit.store.keys import VenueConfig
from tradepit.store.matcher import (
    HELD_FOR_CLOSE,
    HELD_FOR_OPEN,
    BookCounters,
    MatcherKeys,
    StoredOrder,
    load_matcher,
)

__all__ = ["MatcherShard", "top_of", "EVENTS_KEPT"]

EVENTS_KEPT = 1_000  # batches of events kept in `{mK}:events` for market data to catch up


class MatcherShard(StageCore):
    keys: MatcherKeys

    def __init__(self, index: int, config: VenueConfig) -> None:
        self.index = index
        self.config = config
        self.keys = MatcherKeys(f"m{index}")
        self.matcher = Matcher()
        self.ranks: dict[int, int] = {}  # resting order id -> queue rank
        self.new_books: set[str] = set()
        self.trades = 0  # made by the batch written last, for the metrics (`made`)

    def inboxes(self) -> list[str]:
        return self.keys.inboxes(self.config)

    def outboxes(self) -> list[str]:
        links = [self.keys.link_to(name) for name in self.config.ledger_names()]
        return [*links, self.keys.events]  # the market data stage reads the events

    async def load(self, redis: Client) -> None:
        self.matcher, self.ranks = await load_matcher(redis, self.keys)
        self.new_books = set()

    def apply(self, stream: str, fields: Fields) -> None:
        try:
            commands = decode_matcher_commands(fields[COMMANDS])
        except (KeyError, msgspec.DecodeError) as error:
            raise BadEntryError(f"not a list of matcher commands: {error}") from None
        matcher = self.matcher
        for command in commands:
            if isinstance(command, AddBook) and command.symbol not in matcher.books:
                self.new_books.add(command.symbol)
        matcher.apply(commands)

    def write(self, tx: CommandBuffer) -> list[tuple[str, bytes]]:
        events = self.matcher.take_events()
        symbols, self.new_books = self.new_books, set()
        keys = self.keys
        self.trades = 0
        if not events:
            self._write_counters(tx, symbols)
            return []
        ledgers = self.config.ledgers
        per_ledger: list[list[Event]] = [[] for _ in range(ledgers)]
        touched: dict[int, str] = {}  # order id -> symbol
        ranks = self.ranks
        trades = 0
        for event in events:
            symbols.add(event.symbol)
            if isinstance(event, Trade):
                trades += 1
                # Both owners settle it: once each, or once if one shard holds both.
                touched[event.maker_order_id] = touched[event.taker_order_id] = event.symbol
                maker_shard = event.maker_account_id % ledgers
                taker_shard = event.taker_account_id % ledgers
                per_ledger[maker_shard].append(event)
                if taker_shard != maker_shard:
                    per_ledger[taker_shard].append(event)
                continue
            if isinstance(event, TradingStatus | SessionChanged):
                continue  # no order to store or settle
            order_id: int = event.order_id  # type: ignore[attr-defined]
            touched[order_id] = event.symbol
            per_ledger[event.account_id % ledgers].append(event)  # type: ignore[attr-defined]
            if isinstance(event, Accepted | Triggered | Queued):
                ranks[order_id] = event.seq
            elif isinstance(event, Replaced):
                touched[event.new_order_id] = event.symbol
                rank = ranks.pop(order_id, event.seq)
                ranks[event.new_order_id] = rank if event.kept_priority else event.seq
        self.trades = trades
        all_events = encode(events)
        books = self.matcher.books
        ts = events[-1].ts
        depth = [top_of(books[name], ts) for name in sorted(symbols) if name in books]
        tx.xadd(
            keys.events,
            {EVENTS: all_events, DEPTH: encode(depth)},
            maxlen=EVENTS_KEPT,
            approximate=True,
        )
        for index, ledger_events in enumerate(per_ledger):
            if len(ledger_events) == len(events):
                # Every event, in order (one ledger shard, no status): the bytes already made.
                tx.xadd(keys.link_to(f"l{index}"), {EVENTS: all_events})
            elif ledger_events:
                tx.xadd(keys.link_to(f"l{index}"), {EVENTS: encode(ledger_events)})
        self._write_orders(tx, touched)
        self._write_counters(tx, symbols)
        return [(keys.channel, all_events)]

    def made(self) -> int:
        """The trades of the batch written last."""
        return self.trades

    def _write_counters(self, tx: CommandBuffer, symbols: set[str]) -> None:
        books = self.matcher.books
        counters = {
            symbol: encode(
                BookCounters(
                    books[symbol].seq,
                    books[symbol].last_price,
                    books[symbol].halted,
                    books[symbol].arrival,
                    books[symbol].phase,
                )
            )
            for symbol in symbols
            if symbol in books
        }
        if counters:
            tx.hset(self.keys.books, mapping=counters)

    def _write_orders(self, tx: CommandBuffer, touched: dict[int, str]) -> None:
        books = self.matcher.books
        ranks = self.ranks
        still_open: dict[int, bytes] = {}
        gone: list[int] = []
        for order_id, symbol in touched.items():
            book = books.get(symbol)
            order = book.orders.get(order_id) if book is not None else None
            if order is not None:
                still_open[order_id] = encode(StoredOrder(ranks[order_id], order))
                continue
            stop = book.stops.get(order_id) if book is not None else None
            if stop is not None and book is not None:
                still_open[order_id] = encode(StoredOrder(stop[1], book.stop_orders[order_id]))
            elif book is not None and (held := book.held(order_id)) is not None:
                place = HELD_FOR_OPEN if order_id in book.waiting else HELD_FOR_CLOSE
                still_open[order_id] = encode(StoredOrder(ranks[order_id], held, place))
            else:
                gone.append(order_id)
                ranks.pop(order_id, None)
        if still_open:
            tx.hset(self.keys.resting, mapping=still_open)
        if gone:
            tx.hdel(self.keys.resting, *gone)


def top_of(book: Book, ts: int) -> BookTop:
    """A book's best `DEPTH_LEVELS` levels per side, best first."""
    bids = [level for level in book.depth(Side.BUY, DEPTH_LEVELS) if level[1]]
    asks = [level for level in book.depth(Side.SELL, DEPTH_LEVELS) if level[1]]
    return BookTop(book.symbol, book.seq, ts, bids, asks)
