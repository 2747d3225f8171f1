"""The price feed's state machine: from the matchers' events to what traders watch.

It turns trades into the tape and OHLCV bars, the matchers' depth changes into each symbol's L2
book and L1 quote, and halts into statuses, and says each change as a `FeedMessage`. Every
message carries its symbol's sequence number (gapless, one per message); depth messages also
carry `book_seq`, gapless over the symbol's depth messages alone, which is what a client of
the order book channel checks. A symbol's messages are stamped with its clock, the latest time
it has seen, so their times never go back even when commands arrive slightly out of order.

Pure and deterministic: time comes with the events and with `tick(now)`, which the stage feeds
from the clock, so minute bars close even when nobody trades.

Depth is a symbol's best `DEPTH_LEVELS` levels per side, as the matcher reports them after each
batch (`BookTop`); the feed says what changed, a level's new total (0: it left the top).
Prices are ticks, sizes lots.
"""

from __future__ import annotations

import msgspec

from tradepit.domain.events import Event, Trade, TradingStatus
from tradepit.domain.orders import Side
from tradepit.marketdata.bars import Bar, add_trade, day_of, minute_of

__all__ = [
    "DEPTH_LEVELS",
    "BookTop",
    "FeedMessage",
    "Print",
    "Quote",
    "BarUpdate",
    "Depth",
    "Status",
    "AnyFeedMessage",
    "SymbolFeed",
    "MarketData",
    "diff_levels",
]

DEPTH_LEVELS = 20  # levels per side that the matcher reports and the feed keeps

Level = tuple[int, int]  # (price in ticks, total size in lots)


class BookTop(msgspec.Struct, array_like=True, gc=False):
    """A matcher's report of a book's top levels after a batch that touched it, best first.

    Whole, not a diff: a feed that missed reports (the matcher's outbox is capped) is right
    again at the next one."""

    symbol: str
    seq: int  # the book's sequence number after the batch
    ts: int
    bids: list[Level]
    asks: list[Level]


def diff_levels(old: dict[int, int], new: dict[int, int]) -> list[Level]:
    """The changes that turn levels `old` into `new` (price -> size), in price order."""
    changes = [(price, size) for price, size in new.items() if old.get(price) != size]
    changes += [(price, 0) for price in old if price not in new]
    changes.sort()
    return changes


# What the feed says. Tags are Alpaca's stream types where one exists.


class FeedMessage(msgspec.Struct, array_like=True, gc=False, tag=True):
    symbol: str
    seq: int
    ts: int


class Print(FeedMessage, tag="t"):
    """A trade on the tape. `trade_id` is the trade's sequence number in its book."""

    trade_id: int
    price: int
    qty: int
    taker_side: Side


class Quote(FeedMessage, tag="q"):
    """The best bid and ask and their sizes; 0 where a side is empty."""

    bid: int
    bid_size: int
    ask: int
    ask_size: int


class BarUpdate(FeedMessage, tag="b"):
    """`kind` "b": a minute bar that closed; "u": the minute bar in progress; "d": the day's."""

    kind: str
    bar: Bar


class Depth(FeedMessage, tag="o"):
    """L2 changes (or, with `snapshot`, the whole top of the book) with the book's own seq."""

    book_seq: int
    snapshot: bool
    bids: list[Level]
    asks: list[Level]


class Status(FeedMessage, tag="s"):
    halted: bool


AnyFeedMessage = Print | Quote | BarUpdate | Depth | Status


class SymbolFeed(msgspec.Struct, array_like=True, gc=False):
    """One symbol's market data state: what the stage stores and a gateway starts from."""

    symbol: str
    seq: int = 0
    book_seq: int = 0
    last: Print | None = None
    quote: Quote | None = None
    minute: Bar | None = None  # the minute bar in progress
    day: Bar | None = None
    prev_day: Bar | None = None
    bids: dict[int, int] = msgspec.field(default_factory=dict)
    asks: dict[int, int] = msgspec.field(default_factory=dict)
    halted: bool = False
    # Bars are built on a clock that never goes back: trades and ticks move it forward.
    clock: int = 0

    def apply_depth(self, depth: Depth) -> None:
        """Follow a book from its messages, as a reader of the feed does: `depth`'s levels
        (size 0 removes one) and its `book_seq`."""
        for side, levels in ((self.bids, depth.bids), (self.asks, depth.asks)):
            for price, size in levels:
                if size:
                    side[price] = size
                else:
                    side.pop(price, None)
        self.book_seq = depth.book_seq

    def depth(self, levels: int = DEPTH_LEVELS) -> tuple[list[Level], list[Level]]:
        """Bids and asks, best first."""
        bids = sorted(self.bids.items(), reverse=True)[:levels]
        asks = sorted(self.asks.items())[:levels]
        return bids, asks


class MarketData:
    """Every symbol's feed. Apply events, depth changes and ticks; `take_messages()` after."""

    def __init__(self, feeds: dict[str, SymbolFeed] | None = None) -> None:
        self.feeds: dict[str, SymbolFeed] = feeds if feeds is not None else {}
        self.messages: list[AnyFeedMessage] = []
        self.changed: set[str] = set()  # symbols whose state changed since `take_messages`
        self._bars_moved: set[str] = set()

    def feed(self, symbol: str) -> SymbolFeed:
        feed = self.feeds.get(symbol)
        if feed is None:
            feed = self.feeds[symbol] = SymbolFeed(symbol)
        return feed

    def _say(self, feed: SymbolFeed, message: AnyFeedMessage) -> None:
        self.messages.append(message)
        self.changed.add(feed.symbol)

    def _next_seq(self, feed: SymbolFeed) -> int:
        feed.seq += 1
        return feed.seq

    # Inputs.

    def apply_events(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Trade):
                self._trade(event)
            elif isinstance(event, TradingStatus):
                feed = self.feed(event.symbol)
                self._advance(feed, event.ts)
                feed.halted = event.halted
                self._say(
                    feed, Status(event.symbol, self._next_seq(feed), feed.clock, event.halted)
                )

    def _trade(self, trade: Trade) -> None:
        feed = self.feed(trade.symbol)
        self._advance(feed, trade.ts)
        ts = feed.clock
        printed = Print(
            trade.symbol,
            self._next_seq(feed),
            ts,
            trade.seq,
            trade.price,
            trade.qty,
            trade.taker_side,
        )
        feed.last = printed
        self._say(feed, printed)
        feed.minute = add_trade(feed.minute, minute_of(ts), trade.price, trade.qty)
        feed.day = add_trade(feed.day, day_of(ts), trade.price, trade.qty)
        self._bars_moved.add(trade.symbol)

    def _advance(self, feed: SymbolFeed, ts: int) -> None:
        """Move the symbol's clock to `ts` (never back), closing the bars it leaves behind."""
        if ts <= feed.clock:
            return
        feed.clock = ts
        minute = feed.minute
        if minute is not None and minute.start != minute_of(ts):
            self._say(feed, BarUpdate(feed.symbol, self._next_seq(feed), ts, "b", minute))
            feed.minute = None
        day = feed.day
        if day is not None and day.start != day_of(ts):
            feed.prev_day, feed.day = day, None
            self.changed.add(feed.symbol)

    def apply_top(self, top: BookTop) -> None:
        """A book's top levels as they are now: say how they changed, and the quote if it did."""
        feed = self.feed(top.symbol)
        self._advance(feed, top.ts)
        bids, asks = dict(top.bids), dict(top.asks)
        bid_changes, ask_changes = diff_levels(feed.bids, bids), diff_levels(feed.asks, asks)
        if not bid_changes and not ask_changes:
            return
        feed.bids, feed.asks = bids, asks
        feed.book_seq += 1
        self._say(
            feed,
            Depth(
                top.symbol,
                self._next_seq(feed),
                feed.clock,
                feed.book_seq,
                False,
                bid_changes,
                ask_changes,
            ),
        )
        bid = top.bids[0] if top.bids else (0, 0)
        ask = top.asks[0] if top.asks else (0, 0)
        old = feed.quote
        if old is None or (old.bid, old.bid_size, old.ask, old.ask_size) != (*bid, *ask):
            feed.quote = Quote(top.symbol, self._next_seq(feed), feed.clock, *bid, *ask)
            self._say(feed, feed.quote)

    def tick(self, now: int) -> None:
        """The time is `now` (ns): close every minute bar that ended before it."""
        for feed in self.feeds.values():
            self._advance(feed, now)

    # Outputs.

    def take_messages(self) -> list[AnyFeedMessage]:
        """What was said since the last call, with the bars in progress that trades moved."""
        for symbol in sorted(self._bars_moved):
            feed = self.feeds[symbol]
            for kind, bar in (("u", feed.minute), ("d", feed.day)):
                if bar is not None:
                    self._say(feed, BarUpdate(symbol, self._next_seq(feed), feed.clock, kind, bar))
        self._bars_moved.clear()
        messages = self.messages[:]
        self.messages.clear()
        return messages
