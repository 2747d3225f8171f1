"""The price feed's pure core: bars, timeframes, the L1/L2 book from depth changes, the tape,
and the reference-price walk."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepit.domain.events import Trade, TradingStatus
from tradepit.domain.orders import Side
from tradepit.marketdata import (
    Bar,
    BarUpdate,
    BookTop,
    Depth,
    MarketData,
    Print,
    Quote,
    RandomWalk,
    Status,
    SymbolFeed,
    TimeFrameError,
    aggregate,
    diff_levels,
    parse_timeframe,
)
from tradepit.marketdata.bars import DAY_NS, MINUTE_NS

T0 = int(datetime(2026, 11, 27, 14, 30, tzinfo=UTC).timestamp()) * 1_000_000_000


def trade(ts: int, price: int, qty: int, seq: int = 1, symbol: str = "ACME") -> Trade:
    return Trade(symbol, seq, ts, price, qty, 1, 2, 0, 3, 4, Side.BUY, 0)


# Timeframes.


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        *[("1Min", "1Min"), ("15T", "15Min"), ("1Hour", "1Hour"), ("4H", "4Hour")],
        *[("1Day", "1Day"), ("1D", "1Day"), ("1Week", "1Week"), ("3Month", "3Month")],
        ("12M", "12Month"),
    ],
)
def test_timeframes_alpaca_spells(text: str, shown: str) -> None:
    assert str(parse_timeframe(text)) == shown


@pytest.mark.parametrize("text", ["0Min", "60Min", "24Hour", "2Day", "5Month", "1min", "", "Min"])
def test_timeframes_alpaca_does_not_have_are_refused(text: str) -> None:
    with pytest.raises(TimeFrameError):
        parse_timeframe(text)


def test_buckets_align_to_utc_periods() -> None:
    ts = T0 + 7 * MINUTE_NS + 5
    assert parse_timeframe("5Min").bucket(ts) == T0 + 5 * MINUTE_NS
    assert parse_timeframe("1Hour").bucket(ts) == T0 - 30 * MINUTE_NS
    assert parse_timeframe("1Day").bucket(ts) == T0 - T0 % DAY_NS
    monday = int(datetime(2026, 11, 23, tzinfo=UTC).timestamp()) * 1_000_000_000
    assert parse_timeframe("1Week").bucket(ts) == monday
    november = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp()) * 1_000_000_000
    assert parse_timeframe("1Month").bucket(ts) == november
    october = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp()) * 1_000_000_000
    assert parse_timeframe("3Month").bucket(ts) == october


# Bars.


def test_aggregation_keeps_ohlc_volume_count_and_notional() -> None:
    minutes = [
        Bar(T0, 100, 105, 99, 101, 10, 2, 1005),
        Bar(T0 + MINUTE_NS, 101, 110, 100, 108, 5, 1, 540),
        Bar(T0 + 5 * MINUTE_NS, 108, 108, 90, 95, 1, 1, 95),
    ]
    five = aggregate(minutes, parse_timeframe("5Min"))
    assert five == [
        Bar(T0, 100, 110, 99, 108, 15, 3, 1545),
        Bar(T0 + 5 * MINUTE_NS, 108, 108, 90, 95, 1, 1, 95),
    ]


@given(
    st.lists(
        st.tuples(st.integers(0, 600), st.integers(1, 1000), st.integers(1, 50)),
        min_size=1,
        max_size=60,
    )
)
def test_any_aggregation_equals_bars_built_directly(trades: list[tuple[int, int, int]]) -> None:
    feed = MarketData()
    for seq, (seconds, price, qty) in enumerate(sorted(trades), start=1):
        feed.apply_events([trade(T0 + seconds * 1_000_000_000, price, qty, seq)])
    messages = feed.take_messages()
    minutes: dict[int, Bar] = {}
    for message in messages:
        if isinstance(message, BarUpdate) and message.kind in "bu":
            minutes[message.bar.start] = message.bar
    five = aggregate(sorted(minutes.values(), key=lambda bar: bar.start), parse_timeframe("5Min"))
    ordered = sorted(trades)
    assert sum(bar.volume for bar in five) == sum(qty for _, _, qty in trades)
    assert sum(bar.trades for bar in five) == len(trades)
    assert sum(bar.notional for bar in five) == sum(p * q for _, p, q in trades)
    assert five[0].open == ordered[0][1] and five[-1].close == ordered[-1][1]
    assert max(bar.high for bar in five) == max(p for _, p, _ in trades)
    day = [m for m in messages if isinstance(m, BarUpdate) and m.kind == "d"][-1].bar
    assert (day.volume, day.trades) == (sum(q for _, _, q in trades), len(trades))


# The feed.


def test_trades_make_the_tape_and_bars_and_close_the_minute() -> None:
    feed = MarketData()
    feed.apply_events([trade(T0 + 1, 100, 5, 7), trade(T0 + 2, 102, 1, 8)])
    messages = feed.take_messages()
    prints = [m for m in messages if isinstance(m, Print)]
    assert [(p.trade_id, p.price, p.qty) for p in prints] == [(7, 100, 5), (8, 102, 1)]
    updated = [m for m in messages if isinstance(m, BarUpdate)]
    assert [m.kind for m in updated] == ["u", "d"]
    assert updated[0].bar == Bar(T0, 100, 102, 100, 102, 6, 2, 602)
    # Every message has the next seq of its symbol.
    assert [m.seq for m in messages] == list(range(1, len(messages) + 1))

    feed.tick(T0 + MINUTE_NS)  # the minute is over: its bar closes
    closed = feed.take_messages()
    assert [(m.kind, m.bar.volume) for m in closed if isinstance(m, BarUpdate)] == [("b", 6)]
    assert feed.feeds["ACME"].minute is None
    feed.tick(T0 + MINUTE_NS + 5)
    assert feed.take_messages() == []  # nothing left to close


def test_a_new_day_keeps_the_previous_days_bar() -> None:
    feed = MarketData()
    feed.apply_events([trade(T0, 100, 5)])
    feed.apply_events([trade(T0 + DAY_NS, 90, 1, 2)])
    feed.take_messages()
    state = feed.feeds["ACME"]
    assert state.prev_day is not None and (state.prev_day.close, state.prev_day.volume) == (100, 5)
    assert state.day is not None and (state.day.open, state.day.volume) == (90, 1)


def test_time_never_goes_back() -> None:
    feed = MarketData()
    feed.apply_events([trade(T0 + MINUTE_NS, 100, 1), trade(T0 + 5, 101, 1, 2)])
    late = [m for m in feed.take_messages() if isinstance(m, Print)][1]
    assert late.ts == T0 + MINUTE_NS  # stamped with the symbol's clock, not before it
    assert feed.feeds["ACME"].minute == Bar(T0 + MINUTE_NS, 100, 101, 100, 101, 2, 2, 201)


def test_book_tops_make_the_book_its_changes_and_the_quote() -> None:
    feed = MarketData()
    feed.apply_top(BookTop("ACME", 3, T0, [(99, 10), (98, 5)], [(101, 7)]))
    messages = feed.take_messages()
    depth = [m for m in messages if isinstance(m, Depth)]
    assert [(d.book_seq, d.bids, d.asks) for d in depth] == [(1, [(98, 5), (99, 10)], [(101, 7)])]
    quotes = [m for m in messages if isinstance(m, Quote)]
    assert [(q.bid, q.bid_size, q.ask, q.ask_size) for q in quotes] == [(99, 10, 101, 7)]

    feed.apply_top(BookTop("ACME", 4, T0, [(99, 10), (98, 5)], [(101, 7)]))
    assert feed.take_messages() == []  # nothing changed, nothing said

    feed.apply_top(BookTop("ACME", 5, T0 + 1, [(99, 10)], [(101, 7)]))  # below the top: no quote
    messages = feed.take_messages()
    assert [(type(m), getattr(m, "bids", None)) for m in messages] == [(Depth, [(98, 0)])]
    assert feed.feeds["ACME"].depth() == ([(99, 10)], [(101, 7)])

    feed.apply_top(BookTop("ACME", 9, T0 + 2, [], []))
    quote = next(m for m in feed.take_messages() if isinstance(m, Quote))
    assert (quote.bid, quote.bid_size, quote.ask, quote.ask_size) == (0, 0, 0, 0)
    assert feed.feeds["ACME"].book_seq == 3


def test_halts_are_statuses() -> None:
    feed = MarketData()
    feed.apply_events([TradingStatus("ACME", 1, T0, True)])
    (status,) = feed.take_messages()
    assert isinstance(status, Status) and status.halted


@given(
    st.dictionaries(st.integers(1, 50), st.integers(1, 9), max_size=20),
    st.dictionaries(st.integers(1, 50), st.integers(1, 9), max_size=20),
)
def test_diff_levels_turns_one_book_into_the_other(
    old: dict[int, int], new: dict[int, int]
) -> None:
    book = dict(old)
    for price, size in diff_levels(old, new):
        if size:
            book[price] = size
        else:
            del book[price]
    assert book == new


# The reference price.


def test_random_walk_is_seeded_and_stays_positive() -> None:
    first = RandomWalk(10_000, volatility=0.01, rng=random.Random(5))
    second = RandomWalk(10_000, volatility=0.01, rng=random.Random(5))
    path = [first.step() for _ in range(1_000)]
    assert path == [second.step() for _ in range(1_000)]
    assert all(price >= 1 for price in path)
    assert len(set(path)) > 100
    with pytest.raises(ValueError, match="above zero"):
        RandomWalk(0)


def test_random_walk_follows_its_drift() -> None:
    up = RandomWalk(10_000, drift=0.001, volatility=0.0001, rng=random.Random(1))
    for _ in range(1_000):
        up.step()
    assert up.price > 20_000  # e^1 ~ 2.7x


@given(
    st.lists(
        st.tuples(
            st.dictionaries(st.integers(1, 40), st.integers(1, 9), max_size=8),
            st.dictionaries(st.integers(41, 80), st.integers(1, 9), max_size=8),
        ),
        max_size=20,
    )
)
def test_a_reader_following_the_depth_messages_has_the_feeds_book(
    tops: list[tuple[dict[int, int], dict[int, int]]],
) -> None:
    feed = MarketData()
    reader = SymbolFeed("ACME")
    for seq, (bids, asks) in enumerate(tops, start=1):
        feed.apply_top(
            BookTop("ACME", seq, T0, sorted(bids.items(), reverse=True), sorted(asks.items()))
        )
        for message in feed.take_messages():
            if isinstance(message, Depth):
                assert message.book_seq == reader.book_seq + 1  # gapless
                reader.apply_depth(message)
    if tops:
        assert (reader.bids, reader.asks) == tops[-1]
        assert reader.book_seq == feed.feeds["ACME"].book_seq
