"""Unit tests for the matcher: one test per matching rule."""

from __future__ import annotations

from typing import TypeVar

import msgspec
import pytest
from builders import make
from hypothesis import given
from hypothesis import strategies as st

from tradepit.domain.commands import (
    AddBook,
    Cancel,
    CloseSession,
    MatcherCommand,
    Replace,
    SetHalted,
    Submit,
)
from tradepit.domain.events import (
    Accepted,
    Canceled,
    CancelRejected,
    Event,
    Expired,
    Rejected,
    Replaced,
    ReplaceRejected,
    Trade,
    TradingStatus,
    Triggered,
)
from tradepit.domain.orders import Order, OrderType, SelfTradePrevention, Side, TimeInForce
from tradepit.matcher import Book, Matcher, MatcherState

SYM = "AAA"
BUY = Side.BUY
SELL = Side.SELL
LIMIT = OrderType.LIMIT
MARKET = OrderType.MARKET
STOP = OrderType.STOP
STOP_LIMIT = OrderType.STOP_LIMIT
DAY = TimeInForce.DAY
GTC = TimeInForce.GTC
IOC = TimeInForce.IOC
FOK = TimeInForce.FOK
STP = SelfTradePrevention

E = TypeVar("E", bound=Event)


def new_matcher(*symbols: str) -> Matcher:
    matcher = Matcher()
    for symbol in symbols or (SYM,):
        matcher.add_symbol(symbol)
    return matcher


def submit(matcher: Matcher, *orders: Order) -> list[Event]:
    for order in orders:
        matcher.submit(order)
    return matcher.take_events()


def only(events: list[Event], cls: type[E]) -> list[E]:
    """The events of exactly type `cls`."""
    return [event for event in events if type(event) is cls]


def book(matcher: Matcher, symbol: str = SYM) -> Book:
    return matcher.books[symbol]


def resting(matcher: Matcher, side: Side, symbol: str = SYM) -> list[tuple[int, int, int]]:
    """(order id, price, leaves) of one side's resting orders, in priority order."""
    return [
        (order.order_id, order.price, order.leaves)
        for order in matcher.books[symbol].resting_orders(side)
    ]


def makers(events: list[Event]) -> list[int]:
    return [trade.maker_order_id for trade in only(events, Trade)]


# Priority and prices.


def test_price_time_priority_on_the_asks() -> None:
    matcher = new_matcher()
    submit(
        matcher,
        make(1, 1, SELL, 1, 101),
        make(2, 2, SELL, 1, 100),
        make(3, 3, SELL, 1, 100),
        make(4, 4, SELL, 1, 102),
    )
    events = submit(matcher, make(10, 9, BUY, 3, 102))
    assert makers(events) == [2, 3, 1]  # better price first, then FIFO
    assert [trade.price for trade in only(events, Trade)] == [100, 100, 101]
    assert resting(matcher, SELL) == [(4, 102, 1)]


def test_price_time_priority_on_the_bids() -> None:
    matcher = new_matcher()
    submit(
        matcher,
        make(1, 1, BUY, 1, 99),
        make(2, 2, BUY, 1, 100),
        make(3, 3, BUY, 1, 100),
        make(4, 4, BUY, 1, 98),
    )
    events = submit(matcher, make(10, 9, SELL, 3, 99))
    assert makers(events) == [2, 3, 1]
    assert [trade.price for trade in only(events, Trade)] == [100, 100, 99]
    assert resting(matcher, BUY) == [(4, 98, 1)]


def test_trade_is_at_the_makers_price() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, SELL, 5, 100))
    events = submit(matcher, make(2, 2, BUY, 5, 105))
    assert [(trade.price, trade.qty) for trade in only(events, Trade)] == [(100, 5)]

    submit(matcher, make(3, 1, BUY, 5, 105))
    events = submit(matcher, make(4, 2, SELL, 5, 100))
    assert [(trade.price, trade.taker_side) for trade in only(events, Trade)] == [(105, SELL)]


def test_a_trade_reports_both_sides_leaves() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, SELL, 10, 100))
    events = submit(matcher, make(2, 2, BUY, 4, 100))
    assert [type(event) for event in events] == [Accepted, Trade]
    trade = events[1]
    assert isinstance(trade, Trade)
    assert (trade.qty, trade.maker_order_id, trade.maker_account_id, trade.maker_leaves) == (
        4,
        1,
        1,
        6,
    )
    assert (trade.taker_order_id, trade.taker_account_id, trade.taker_leaves) == (2, 2, 0)
    assert trade.seq == events[0].seq + 1

    # A larger buy: the maker is done, the taker rests with the rest.
    events = submit(matcher, make(3, 3, BUY, 10, 100))
    assert [
        (t.maker_order_id, t.qty, t.maker_leaves, t.taker_leaves) for t in only(events, Trade)
    ] == [(1, 6, 0, 4)]
    order = book(matcher).get(3)
    assert order is not None and (order.qty, order.leaves) == (10, 4)
    assert resting(matcher, BUY) == [(3, 100, 4)]
    assert resting(matcher, SELL) == []


def test_one_taker_across_several_makers() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, SELL, 2, 100), make(2, 2, SELL, 3, 101))
    events = submit(matcher, make(3, 3, BUY, 4, 101))
    trades = only(events, Trade)
    assert [(t.maker_order_id, t.qty, t.price, t.maker_leaves, t.taker_leaves) for t in trades] == [
        (1, 2, 100, 0, 2),
        (2, 2, 101, 1, 0),
    ]
    assert [t.seq for t in trades] == [trades[0].seq, trades[0].seq + 1]
    assert resting(matcher, SELL) == [(2, 101, 1)]


def test_sequence_numbers_are_gapless_per_symbol() -> None:
    matcher = new_matcher("AAA", "BBB")
    events: list[Event] = []
    matcher.submit(make(1, 1, SELL, 5, 100, symbol="AAA"))
    matcher.submit(make(2, 1, SELL, 5, 200, symbol="BBB", tif=DAY))
    matcher.submit(make(3, 2, BUY, 7, 100, symbol="AAA"))  # trades, rests 2
    matcher.submit(make(1, 1, SELL, 5, 100, symbol="AAA"))  # trades again (id reusable)
    matcher.submit(make(2, 2, BUY, 1, 200, symbol="BBB"))  # duplicate id: rejected
    matcher.cancel("BBB", 99, 1, 0)  # unknown: cancel rejected
    matcher.cancel("AAA", 1, 1, 0)
    matcher.replace("BBB", 2, 1, 5, 4, 200, 0, 0)
    matcher.replace("AAA", 77, 1, 78, 4, 200, 0, 0)  # unknown: replace rejected
    matcher.set_halted("AAA", True, 0)
    matcher.set_halted("AAA", False, 0)
    matcher.submit(make(6, 3, BUY, 1, 0, symbol="AAA"))  # invalid price: rejected
    matcher.close_session(0)
    events = matcher.take_events()
    for symbol in ("AAA", "BBB"):
        seqs = [event.seq for event in events if event.symbol == symbol]
        assert seqs == list(range(1, len(seqs) + 1))
        assert book(matcher, symbol).seq == len(seqs)
    kinds = {type(event) for event in events}
    assert {Rejected, CancelRejected, ReplaceRejected, Replaced, TradingStatus, Expired} <= kinds


# Market, IOC, FOK.


def test_market_order_stops_at_its_protection_price_and_cancels_the_rest() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, SELL, 2, 100), make(2, 1, SELL, 2, 101), make(3, 1, SELL, 2, 105))
    events = submit(matcher, make(4, 2, BUY, 10, 101, kind=MARKET, tif=DAY))
    assert [(trade.price, trade.qty) for trade in only(events, Trade)] == [(100, 2), (101, 2)]
    canceled = only(events, Canceled)
    assert [(c.order_id, c.qty, c.reason) for c in canceled] == [(4, 6, "market_remainder")]
    assert resting(matcher, SELL) == [(3, 105, 2)]
    assert resting(matcher, BUY) == []


def test_market_sell_stops_at_its_protection_price() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, BUY, 2, 100), make(2, 1, BUY, 2, 95))
    events = submit(matcher, make(3, 2, SELL, 5, 96, kind=MARKET, tif=GTC))
    assert [trade.price for trade in only(events, Trade)] == [100]
    assert [(c.qty, c.reason) for c in only(events, Canceled)] == [(3, "market_remainder")]
    assert resting(matcher, BUY) == [(2, 95, 2)]
    assert resting(matcher, SELL) == []


def test_market_order_on_an_empty_book_is_canceled_whole() -> None:
    matcher = new_matcher()
    events = submit(matcher, make(1, 1, BUY, 5, 120, kind=MARKET))
    assert [type(event) for event in events] == [Accepted, Canceled]
    assert only(events, Canceled)[0].reason == "market_remainder"
    assert only(events, Canceled)[0].qty == 5
    assert book(matcher).best_bid() is None


def test_ioc_remainder_is_canceled() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, SELL, 3, 100))
    events = submit(matcher, make(2, 2, BUY, 5, 100, tif=IOC))
    assert sum(trade.qty for trade in only(events, Trade)) == 3
    assert [(c.order_id, c.qty, c.reason) for c in only(events, Canceled)] == [
        (2, 2, "ioc_remainder")
    ]
    assert book(matcher).best_bid() is None
    assert book(matcher).get(2) is None


def test_fok_fills_from_liquidity_across_levels() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, SELL, 3, 100), make(2, 1, SELL, 3, 101))
    events = submit(matcher, make(3, 2, BUY, 5, 101, tif=FOK))
    assert [(trade.price, trade.qty) for trade in only(events, Trade)] == [(100, 3), (101, 2)]
    assert only(events, Canceled) == []
    assert resting(matcher, SELL) == [(2, 101, 1)]


@pytest.mark.parametrize(("qty", "limit"), [(7, 101), (5, 100), (1, 99)])
def test_fok_that_cannot_fill_leaves_the_book_untouched(qty: int, limit: int) -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, SELL, 3, 100), make(2, 1, SELL, 3, 101))
    before = matcher.export_state().books[0]
    events = submit(matcher, make(3, 2, BUY, qty, limit, tif=FOK))
    assert [type(event) for event in events] == [Accepted, Canceled]
    assert only(events, Canceled)[0].reason == "fok_unfilled"
    assert only(events, Canceled)[0].qty == qty
    after = matcher.export_state().books[0]
    assert (after.bids, after.asks, after.last_price) == (before.bids, before.asks, 0)


def test_fok_counts_own_orders_as_unavailable() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, SELL, 3, 100), make(2, 2, SELL, 3, 100))
    events = submit(matcher, make(3, 2, BUY, 5, 100, tif=FOK))  # needs account 2's own ask
    assert only(events, Trade) == []
    assert only(events, Canceled)[0].reason == "fok_unfilled"
    assert resting(matcher, SELL) == [(1, 100, 3), (2, 100, 3)]


# Post-only.


def test_post_only_is_rejected_when_it_would_take() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, SELL, 5, 100))
    events = submit(matcher, make(2, 2, BUY, 5, 100, post_only=True))
    assert [type(event) for event in events] == [Rejected]
    assert only(events, Rejected)[0].reason == "post_only_would_take"
    assert resting(matcher, SELL) == [(1, 100, 5)]
    assert resting(matcher, BUY) == []


def test_post_only_rests_when_it_would_not_take() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, SELL, 5, 100))
    events = submit(
        matcher, make(2, 2, BUY, 5, 99, post_only=True), make(3, 2, SELL, 5, 101, post_only=True)
    )
    assert [type(event) for event in events] == [Accepted, Accepted]
    assert book(matcher).best_bid() == 99
    assert resting(matcher, SELL) == [(1, 100, 5), (3, 101, 5)]


# Self-trade prevention.


def test_self_trade_cancel_newest_is_the_default() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 2, SELL, 2, 100), make(2, 1, SELL, 5, 100))
    events = submit(matcher, make(3, 1, BUY, 5, 100))
    assert [(trade.maker_order_id, trade.qty) for trade in only(events, Trade)] == [(1, 2)]
    assert [(c.order_id, c.qty, c.reason) for c in only(events, Canceled)] == [(3, 3, "self_trade")]
    assert resting(matcher, SELL) == [(2, 100, 5)]
    assert resting(matcher, BUY) == []


def test_self_trade_cancel_oldest() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, SELL, 5, 100), make(2, 2, SELL, 5, 100))
    events = submit(matcher, make(3, 1, BUY, 5, 100, stp=STP.CANCEL_OLDEST))
    assert [(c.order_id, c.qty, c.reason) for c in only(events, Canceled)] == [(1, 5, "self_trade")]
    assert [(t.maker_order_id, t.taker_order_id, t.qty) for t in only(events, Trade)] == [(2, 3, 5)]
    assert resting(matcher, SELL) == []
    assert book(matcher).get(1) is None


def test_self_trade_cancel_both() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, SELL, 5, 100), make(2, 2, SELL, 5, 100))
    events = submit(matcher, make(3, 1, BUY, 4, 100, stp=STP.CANCEL_BOTH))
    assert only(events, Trade) == []
    assert [(c.order_id, c.qty, c.reason) for c in only(events, Canceled)] == [
        (1, 5, "self_trade"),
        (3, 4, "self_trade"),
    ]
    assert resting(matcher, SELL) == [(2, 100, 5)]
    assert book(matcher).depth(SELL) == [(100, 5)]
    assert resting(matcher, BUY) == []


def test_self_trade_prevention_none_lets_an_account_trade_with_itself() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, SELL, 5, 100))
    events = submit(matcher, make(2, 1, BUY, 5, 100, stp=STP.NONE))
    trades = only(events, Trade)
    assert [(t.maker_account_id, t.taker_account_id, t.qty) for t in trades] == [(1, 1, 5)]
    assert only(events, Canceled) == []


def test_self_trade_cancel_of_a_level_does_not_move_the_last_price() -> None:
    matcher = new_matcher()
    submit(
        matcher,
        make(1, 10, SELL, 5, 100),
        make(2, 20, SELL, 5, 101),
        make(3, 30, BUY, 1, 120, kind=STOP, stop_price=101),
    )
    events = submit(matcher, make(4, 20, BUY, 10, 101, stp=STP.CANCEL_OLDEST))
    assert [trade.price for trade in only(events, Trade)] == [100]
    assert book(matcher).last_price == 100
    assert only(events, Triggered) == []


# Cancel.


def test_cancel_removes_the_order_by_id() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, BUY, 5, 100), make(2, 2, BUY, 5, 100), make(3, 3, BUY, 5, 100))
    matcher.cancel(SYM, 2, 2, 7)
    events = matcher.take_events()
    assert events == [Canceled(SYM, 4, 7, 2, 2, BUY, 5, "requested")]
    assert book(matcher).get(2) is None
    assert resting(matcher, BUY) == [(1, 100, 5), (3, 100, 5)]
    assert book(matcher).depth(BUY) == [(100, 10)]
    # The rest of the level still trades in order.
    assert makers(submit(matcher, make(4, 4, SELL, 10, 100))) == [1, 3]


def test_cancel_of_a_partially_filled_order_cancels_its_leaves() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, SELL, 10, 100), make(2, 2, BUY, 4, 100))
    matcher.cancel(SYM, 1, 1, 0)
    canceled = only(matcher.take_events(), Canceled)
    assert [(c.order_id, c.qty) for c in canceled] == [(1, 6)]
    assert book(matcher).best_ask() is None


def test_cancel_of_the_last_order_drops_its_level() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, SELL, 1, 100), make(2, 1, SELL, 1, 101))
    matcher.cancel(SYM, 1, 1, 0)
    assert book(matcher).best_ask() == 101
    assert book(matcher).depth(SELL) == [(101, 1)]


def test_cancel_of_an_unknown_order_is_rejected_and_changes_nothing() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, BUY, 5, 100))
    before = matcher.export_state().books[0]
    matcher.cancel(SYM, 99, 1, 0)
    events = matcher.take_events()
    assert [(e.order_id, e.reason) for e in only(events, CancelRejected)] == [(99, "unknown_order")]
    assert len(events) == 1
    after = matcher.export_state().books[0]
    assert (after.bids, after.asks) == (before.bids, before.asks)


def test_cancel_of_another_accounts_order_is_rejected_and_changes_nothing() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, BUY, 5, 100))
    matcher.cancel(SYM, 1, 2, 0)
    events = matcher.take_events()
    assert [(e.order_id, e.account_id, e.reason) for e in only(events, CancelRejected)] == [
        (1, 2, "not_owner")
    ]
    assert len(events) == 1
    assert resting(matcher, BUY) == [(1, 100, 5)]


def test_cancel_on_an_unknown_symbol_is_rejected() -> None:
    matcher = new_matcher()
    matcher.cancel("ZZZ", 1, 1, 0)
    assert matcher.take_events() == [CancelRejected("ZZZ", 0, 0, 1, 1, "unknown_symbol")]


def test_cancel_of_a_waiting_stop_order() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, BUY, 5, 120, kind=STOP, stop_price=110))
    matcher.cancel(SYM, 1, 1, 0)
    assert [(c.order_id, c.qty) for c in only(matcher.take_events(), Canceled)] == [(1, 5)]
    assert book(matcher).get(1) is None
    assert matcher.export_state().books[0].buy_stops == []


# Replace.


def test_replace_with_a_size_decrease_keeps_priority() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, BUY, 10, 100), make(2, 2, BUY, 10, 100))
    matcher.replace(SYM, 1, 1, 11, 5, 100, 0, 3)
    replaced = only(matcher.take_events(), Replaced)
    assert [(r.order_id, r.new_order_id, r.qty, r.kept_priority) for r in replaced] == [
        (1, 11, 5, True)
    ]
    assert resting(matcher, BUY) == [(11, 100, 5), (2, 100, 10)]
    assert book(matcher).depth(BUY) == [(100, 15)]
    assert book(matcher).get(1) is None
    events = submit(matcher, make(3, 3, SELL, 6, 100))
    assert [(t.maker_order_id, t.qty) for t in only(events, Trade)] == [(11, 5), (2, 1)]


def test_replace_of_a_partially_filled_order_keeps_priority_below_its_leaves() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, BUY, 10, 100), make(2, 2, BUY, 10, 100), make(3, 3, SELL, 4, 100))
    matcher.replace(SYM, 1, 1, 11, 6, 100, 0, 0)  # 6 == leaves: not an increase
    assert only(matcher.take_events(), Replaced)[0].kept_priority
    assert resting(matcher, BUY) == [(11, 100, 6), (2, 100, 10)]
    assert book(matcher).depth(BUY) == [(100, 16)]


def test_replace_with_a_price_change_loses_priority() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, BUY, 5, 99), make(2, 2, BUY, 5, 100))
    matcher.replace(SYM, 1, 1, 11, 5, 100, 0, 0)
    assert only(matcher.take_events(), Replaced)[0].kept_priority is False
    assert resting(matcher, BUY) == [(2, 100, 5), (11, 100, 5)]
    assert book(matcher).depth(BUY) == [(100, 10)]


def test_replace_with_a_size_increase_loses_priority() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, BUY, 5, 100), make(2, 2, BUY, 5, 100))
    matcher.replace(SYM, 1, 1, 11, 8, 100, 0, 0)
    assert only(matcher.take_events(), Replaced)[0].kept_priority is False
    assert resting(matcher, BUY) == [(2, 100, 5), (11, 100, 8)]


def test_replace_that_crosses_trades() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, SELL, 5, 101), make(2, 2, BUY, 5, 100))
    matcher.replace(SYM, 2, 2, 12, 3, 101, 0, 0)
    events = matcher.take_events()
    assert type(events[0]) is Replaced
    assert [(t.maker_order_id, t.taker_order_id, t.qty, t.price) for t in only(events, Trade)] == [
        (1, 12, 3, 101)
    ]
    assert [t.taker_leaves for t in only(events, Trade)] == [0]
    assert resting(matcher, SELL) == [(1, 101, 2)]
    assert resting(matcher, BUY) == []


@pytest.mark.parametrize(
    ("order_id", "account_id", "new_order_id", "qty", "price", "reason"),
    [
        (99, 1, 11, 5, 100, "unknown_order"),
        (1, 2, 11, 5, 100, "not_owner"),
        (1, 1, 11, 0, 100, "invalid_qty"),
        (1, 1, 11, 5, 0, "invalid_price"),
        (1, 1, 2, 5, 100, "duplicate_order_id"),
        (1, 1, 1, 5, 100, "duplicate_order_id"),
    ],
)
def test_replace_rejected(
    order_id: int, account_id: int, new_order_id: int, qty: int, price: int, reason: str
) -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, BUY, 5, 100), make(2, 1, BUY, 5, 99))
    before = matcher.export_state().books[0]
    matcher.replace(SYM, order_id, account_id, new_order_id, qty, price, 0, 0)
    events = matcher.take_events()
    assert len(events) == 1
    assert [(e.order_id, e.new_order_id, e.reason) for e in only(events, ReplaceRejected)] == [
        (order_id, new_order_id, reason)
    ]
    after = matcher.export_state().books[0]
    assert (after.bids, after.asks) == (before.bids, before.asks)


def test_replace_on_an_unknown_symbol_is_rejected() -> None:
    matcher = new_matcher()
    matcher.replace("ZZZ", 1, 1, 2, 5, 100, 0, 0)
    assert [e.reason for e in only(matcher.take_events(), ReplaceRejected)] == ["unknown_symbol"]


def test_replace_of_a_post_only_order_that_would_take_is_rejected() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, SELL, 5, 101), make(2, 2, BUY, 5, 100, post_only=True))
    matcher.replace(SYM, 2, 2, 12, 5, 101, 0, 0)
    events = matcher.take_events()
    assert [e.reason for e in only(events, ReplaceRejected)] == ["post_only_would_take"]
    assert resting(matcher, BUY) == [(2, 100, 5)]


# Sessions.


def test_close_session_expires_day_orders_and_keeps_gtc() -> None:
    matcher = new_matcher()
    submit(
        matcher,
        make(1, 1, BUY, 5, 100, tif=DAY),
        make(2, 2, BUY, 5, 100, tif=GTC),
        make(3, 3, SELL, 5, 105, tif=DAY),
        make(4, 4, SELL, 2, 100),  # fills 2 of order 1
        make(5, 5, BUY, 3, 120, kind=STOP, stop_price=110, tif=DAY),
        make(6, 6, SELL, 3, 80, kind=STOP_LIMIT, stop_price=90, tif=GTC),
    )
    matcher.close_session(50)
    events = matcher.take_events()
    assert all(type(event) is Expired for event in events)
    assert sorted((e.order_id, e.qty, e.ts) for e in only(events, Expired)) == [
        (1, 3, 50),
        (3, 5, 50),
        (5, 3, 50),
    ]
    assert resting(matcher, BUY) == [(2, 100, 5)]
    assert resting(matcher, SELL) == []
    assert book(matcher).get(6) is not None
    assert book(matcher).get(5) is None
    matcher.close_session(60)
    assert matcher.take_events() == []


# Stops.


def test_buy_stop_triggers_when_the_last_trade_is_at_or_above_it() -> None:
    matcher = new_matcher()
    submit(
        matcher,
        make(1, 1, SELL, 1, 100),
        make(2, 1, SELL, 1, 101),
        make(3, 1, SELL, 5, 102),
        make(10, 2, BUY, 2, 110, kind=STOP, stop_price=101),
    )
    events = submit(matcher, make(4, 3, BUY, 1, 100))  # trades at 100: below the stop
    assert only(events, Triggered) == []
    events = submit(matcher, make(5, 3, BUY, 1, 101))  # trades at 101: at the stop
    kinds = [type(event) for event in events]
    assert Triggered in kinds
    triggered = only(events, Triggered)[0]
    assert (triggered.order_id, triggered.last_price) == (10, 101)
    stop_trades = [t for t in only(events, Trade) if t.taker_order_id == 10]
    assert [(t.price, t.qty) for t in stop_trades] == [(102, 2)]
    assert kinds.index(Triggered) < events.index(stop_trades[0])
    assert resting(matcher, SELL) == [(3, 102, 3)]


def test_sell_stop_triggers_when_the_last_trade_is_at_or_below_it() -> None:
    matcher = new_matcher()
    submit(
        matcher,
        make(1, 1, BUY, 1, 100),
        make(2, 1, BUY, 1, 99),
        make(3, 1, BUY, 5, 98),
        make(10, 2, SELL, 2, 90, kind=STOP, stop_price=99),
    )
    assert only(submit(matcher, make(4, 3, SELL, 1, 100)), Triggered) == []
    events = submit(matcher, make(5, 3, SELL, 1, 99))
    assert [(t.order_id, t.last_price) for t in only(events, Triggered)] == [(10, 99)]
    stop_trades = [t for t in only(events, Trade) if t.taker_order_id == 10]
    assert [(t.price, t.qty) for t in stop_trades] == [(98, 2)]
    assert resting(matcher, BUY) == [(3, 98, 3)]


def test_stop_limit_trades_up_to_its_limit_then_rests() -> None:
    matcher = new_matcher()
    submit(
        matcher,
        make(1, 1, SELL, 1, 100),
        make(2, 1, SELL, 2, 101),
        make(3, 1, SELL, 5, 103),
        make(10, 2, BUY, 5, 101, kind=STOP_LIMIT, stop_price=100),
    )
    events = submit(matcher, make(4, 3, BUY, 1, 100))
    assert [t.order_id for t in only(events, Triggered)] == [10]
    assert [(t.price, t.qty) for t in only(events, Trade) if t.taker_order_id == 10] == [(101, 2)]
    assert only(events, Canceled) == []
    assert resting(matcher, BUY) == [(10, 101, 3)]


def test_stop_does_not_trigger_before_any_trade() -> None:
    matcher = new_matcher()
    events = submit(
        matcher,
        make(1, 1, BUY, 1, 120, kind=STOP, stop_price=1),
        make(2, 1, SELL, 1, 1, kind=STOP, stop_price=10_000),
        make(3, 2, BUY, 1, 100),
        make(4, 2, SELL, 1, 101),
    )
    assert [type(event) for event in events] == [Accepted] * 4
    assert book(matcher).last_price == 0
    assert book(matcher).get(1) is not None and book(matcher).get(2) is not None


def test_stop_with_a_trigger_already_reached_triggers_at_once() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, SELL, 1, 100), make(2, 2, BUY, 1, 100), make(3, 1, SELL, 5, 101))
    events = submit(matcher, make(4, 3, BUY, 2, 110, kind=STOP, stop_price=100))
    assert [type(event) for event in events][:2] == [Accepted, Triggered]
    assert [(t.price, t.qty) for t in only(events, Trade)] == [(101, 2)]


# Halts and rejections.


def test_halted_symbol_rejects_new_orders_but_allows_cancels() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, BUY, 5, 100))
    matcher.set_halted(SYM, True, 5)
    assert matcher.take_events() == [TradingStatus(SYM, 2, 5, True)]
    events = submit(matcher, make(2, 2, SELL, 5, 100), make(3, 2, SELL, 1, 1, kind=MARKET))
    assert [(type(e), e.reason) for e in only(events, Rejected)] == [
        (Rejected, "halted"),
        (Rejected, "halted"),
    ]
    assert len(events) == 2
    matcher.cancel(SYM, 1, 1, 6)
    assert [c.order_id for c in only(matcher.take_events(), Canceled)] == [1]
    matcher.set_halted(SYM, False, 7)
    events = submit(matcher, make(4, 2, BUY, 5, 100))
    assert [type(e) for e in events] == [TradingStatus, Accepted]
    assert resting(matcher, BUY) == [(4, 100, 5)]


def test_replace_during_a_halt_does_not_trade() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, SELL, 5, 100), make(2, 2, BUY, 5, 90))
    matcher.set_halted(SYM, True, 0)
    matcher.take_events()
    matcher.replace(SYM, 2, 2, 3, 5, 100, 0, 0)
    assert only(matcher.take_events(), Trade) == []
    assert resting(matcher, SELL) == [(1, 100, 5)]


def test_unknown_symbol_is_rejected() -> None:
    matcher = new_matcher()
    events = submit(matcher, make(1, 1, BUY, 5, 100, symbol="ZZZ", ts=9))
    assert events == [Rejected("ZZZ", 0, 9, 1, 1, "unknown_symbol")]
    assert "ZZZ" not in matcher.books


def test_duplicate_order_id_is_rejected() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, BUY, 5, 100), make(2, 1, BUY, 5, 120, kind=STOP, stop_price=110))
    events = submit(matcher, make(1, 2, SELL, 5, 200), make(2, 2, SELL, 5, 200))
    assert [(e.order_id, e.reason) for e in only(events, Rejected)] == [
        (1, "duplicate_order_id"),
        (2, "duplicate_order_id"),
    ]
    assert len(events) == 2
    assert resting(matcher, BUY) == [(1, 100, 5)]
    assert resting(matcher, SELL) == []


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        (make(1, 1, BUY, 0, 100), "invalid_qty"),
        (make(1, 1, SELL, -3, 100), "invalid_qty"),
        (make(1, 1, BUY, 5, 0), "invalid_price"),
        (make(1, 1, SELL, 5, -100), "invalid_price"),
        (make(1, 1, BUY, 5, 0, kind=MARKET), "invalid_price"),
        (make(1, 1, BUY, 5, 120, kind=STOP), "invalid_price"),  # a stop needs its trigger
        (make(1, 1, BUY, 5, 120, kind=STOP_LIMIT, stop_price=-1), "invalid_price"),
        (make(1, 1, BUY, 5, 100, stop_price=90), "invalid_price"),  # a limit has none
        (make(1, 1, BUY, 5, 100, kind=MARKET, post_only=True), "invalid_order"),
        (make(1, 1, BUY, 5, 100, tif=IOC, post_only=True), "invalid_order"),
        (make(1, 1, BUY, 5, 100, tif=FOK, post_only=True), "invalid_order"),
    ],
)
def test_invalid_orders_are_rejected(order: Order, reason: str) -> None:
    matcher = new_matcher()
    submit(matcher, make(9, 9, SELL, 5, 100), make(8, 9, BUY, 5, 90))
    events = submit(matcher, order)
    assert len(events) == 1
    assert [e.reason for e in only(events, Rejected)] == [reason]
    assert resting(matcher, SELL) == [(9, 100, 5)]
    assert resting(matcher, BUY) == [(8, 90, 5)]


# Snapshots.


def busy_matcher() -> Matcher:
    """Two symbols with bids, asks, partial fills, stops and a halt."""
    matcher = new_matcher("AAA", "BBB")
    submit(
        matcher,
        make(1, 1, SELL, 10, 101),
        make(2, 2, SELL, 5, 101, tif=DAY),
        make(3, 3, SELL, 5, 103),
        make(4, 1, BUY, 4, 99),
        make(5, 2, BUY, 6, 99),
        make(6, 4, BUY, 3, 101),  # partially fills order 1
        make(7, 5, BUY, 2, 130, kind=STOP, stop_price=102),
        make(8, 5, SELL, 2, 95, kind=STOP_LIMIT, stop_price=99, tif=DAY),
        make(9, 6, BUY, 1, 200, symbol="BBB"),
        make(10, 7, SELL, 1, 210, symbol="BBB"),
    )
    matcher.set_halted("BBB", True, 1)
    matcher.take_events()
    return matcher


def next_commands(matcher: Matcher) -> list[Event]:
    matcher.submit(make(20, 8, BUY, 14, 103, ts=2))  # sweeps, triggers the buy stop
    matcher.cancel("AAA", 5, 2, 3)
    matcher.replace("AAA", 4, 1, 21, 2, 99, 0, 4)
    matcher.submit(make(22, 9, SELL, 10, 97, ts=5))  # triggers the sell stop
    matcher.set_halted("BBB", False, 6)
    matcher.submit(make(23, 9, BUY, 1, 210, symbol="BBB", ts=7))
    matcher.close_session(8)
    return matcher.take_events()


def test_export_restore_round_trip() -> None:
    matcher = busy_matcher()
    state = matcher.export_state()
    restored = Matcher()
    restored.restore(state)
    assert restored.state_hash() == matcher.state_hash()

    # Through the wire too.
    wire = msgspec.json.decode(msgspec.json.encode(state), type=MatcherState)
    from_wire = Matcher()
    from_wire.restore(wire)
    assert from_wire.state_hash() == matcher.state_hash()

    expected = next_commands(matcher)
    assert len(only(expected, Triggered)) == 2
    assert next_commands(restored) == expected
    assert next_commands(from_wire) == expected
    assert restored.state_hash() == from_wire.state_hash() == matcher.state_hash()


def test_state_hash_tracks_the_state() -> None:
    one, two = busy_matcher(), busy_matcher()
    assert one.state_hash() == two.state_hash()
    one.cancel("AAA", 3, 3, 0)
    assert one.state_hash() != two.state_hash()
    assert Matcher().state_hash() == Matcher().state_hash()


def test_export_is_a_snapshot() -> None:
    matcher = busy_matcher()
    state = matcher.export_state()
    saved = matcher.state_hash()
    next_commands(matcher)
    assert matcher.state_hash() != saved
    restored = Matcher()
    restored.restore(state)
    assert restored.state_hash() == saved


# Queries.


def test_depth_and_best_prices() -> None:
    matcher = new_matcher()
    assert book(matcher).best_bid() is None
    assert book(matcher).best_ask() is None
    assert book(matcher).depth(BUY) == []
    submit(
        matcher,
        make(1, 1, BUY, 5, 99),
        make(2, 1, BUY, 7, 100),
        make(3, 2, BUY, 8, 100),
        make(4, 1, BUY, 1, 97),
        make(5, 2, SELL, 3, 101),
        make(6, 2, SELL, 4, 103),
        make(7, 2, SELL, 2, 102),
    )
    assert (book(matcher).best_bid(), book(matcher).best_ask()) == (100, 101)
    assert book(matcher).depth(BUY) == [(100, 15), (99, 5), (97, 1)]
    assert book(matcher).depth(SELL) == [(101, 3), (102, 2), (103, 4)]
    assert book(matcher).depth(BUY, 2) == [(100, 15), (99, 5)]
    assert book(matcher).depth(SELL, 1) == [(101, 3)]
    assert book(matcher).depth(SELL, 0) == [(101, 3), (102, 2), (103, 4)]
    submit(matcher, make(8, 3, SELL, 10, 100))  # takes 7 + 3 of the 100 level
    assert book(matcher).depth(BUY, 1) == [(100, 5)]
    matcher.cancel(SYM, 5, 2, 0)
    assert book(matcher).best_ask() == 102


# Compaction.


def test_canceling_behind_a_resting_order_does_not_grow_the_level() -> None:
    matcher = new_matcher()
    submit(matcher, make(1, 1, BUY, 1, 100))
    for order_id in range(2, 2002):
        matcher.submit(make(order_id, 2, BUY, 1, 100))
        matcher.cancel(SYM, order_id, 2, 0)
        assert len(book(matcher).bids[100]) <= 23  # live, head and lots, then 20 orders
    matcher.take_events()
    assert book(matcher).depth(BUY) == [(100, 1)]
    submit(matcher, make(5000, 3, BUY, 2, 100))
    events = submit(matcher, make(5001, 4, SELL, 3, 100))
    assert [(t.maker_order_id, t.qty) for t in only(events, Trade)] == [(1, 1), (5000, 2)]
    assert book(matcher).best_bid() is None
    assert book(matcher).bids == {}


def test_filling_one_by_one_does_not_grow_the_level() -> None:
    matcher = new_matcher()
    submit(matcher, *(make(order_id, 1, SELL, 1, 100) for order_id in range(1, 201)))
    for order_id in range(1000, 1150):
        events = submit(matcher, make(order_id, 2, BUY, 1, 100))
        assert makers(events) == [order_id - 999]
        live, head, lots, *orders = book(matcher).asks[-100]
        assert len(orders) - (head - 3) == live
        assert lots == sum(order.leaves for order in orders)
        assert head - 3 <= 2 * live + 17
    assert book(matcher).depth(SELL) == [(100, 50)]
    assert len(book(matcher).asks[-100]) < 203
    assert resting(matcher, SELL)[0] == (151, 100, 1)


# A batch in one call.


def test_apply_equals_calling_each_command_in_turn() -> None:
    copy = msgspec.structs.replace
    orders = [
        make(1, 1, SELL, 5, 101, tif=DAY),
        make(2, 2, BUY, 3, 101),
        make(3, 3, SELL, 4, 102, symbol="BBB"),
        make(4, 4, BUY, 2, 100, symbol="ZZZ"),  # no such book
        make(5, 5, BUY, 2, 99),
    ]
    commands: list[MatcherCommand] = [
        AddBook("BBB"),
        *(Submit(copy(order)) for order in orders),
        Cancel(SYM, 5, 5, 1),
        Cancel(SYM, 5, 5, 2),  # already gone
        Cancel("ZZZ", 9, 9, 3),
        Replace("BBB", 3, 3, 13, 4, 103, 0, 4),
        SetHalted("BBB", True, 5),
        Submit(make(6, 6, BUY, 1, 110, symbol="BBB")),  # halted
        CloseSession(6),
    ]
    batched = new_matcher()
    batched.apply(commands)

    one_by_one = new_matcher()
    one_by_one.add_symbol("BBB")
    for order in orders:
        one_by_one.submit(copy(order))
    one_by_one.cancel(SYM, 5, 5, 1)
    one_by_one.cancel(SYM, 5, 5, 2)
    one_by_one.cancel("ZZZ", 9, 9, 3)
    one_by_one.replace("BBB", 3, 3, 13, 4, 103, 0, 4)
    one_by_one.set_halted("BBB", True, 5)
    one_by_one.submit(make(6, 6, BUY, 1, 110, symbol="BBB"))
    one_by_one.close_session(6)

    events = batched.take_events()
    assert events == one_by_one.take_events()
    assert batched.state_hash() == one_by_one.state_hash()
    assert [type(event) for event in events] == [
        Accepted,
        Accepted,
        Trade,
        Accepted,
        Rejected,
        Accepted,
        Canceled,
        CancelRejected,
        CancelRejected,
        Replaced,
        TradingStatus,
        Rejected,
        Expired,
    ]


def _command(draw: st.DrawFn, order_id: int) -> MatcherCommand:
    """A submit or cancel on one of two books or an unknown symbol, at random."""
    symbol = draw(st.sampled_from((SYM, "BBB", "ZZZ")))
    account_id = draw(st.integers(1, 3))
    if draw(st.booleans()):
        return Cancel(symbol, draw(st.integers(1, order_id)), account_id, order_id)
    kind, tif = draw(st.sampled_from(((LIMIT, GTC), (LIMIT, IOC), (MARKET, IOC), (LIMIT, FOK))))
    side = draw(st.sampled_from((BUY, SELL)))
    qty = draw(st.integers(1, 5))
    price = draw(st.integers(98, 102)) if kind is LIMIT else (110 if side is BUY else 90)
    order = make(order_id, account_id, side, qty, price, kind=kind, tif=tif, symbol=symbol)
    return Submit(order)


@st.composite
def batches(draw: st.DrawFn) -> list[MatcherCommand]:
    return [_command(draw, order_id) for order_id in range(1, draw(st.integers(1, 40)))]


@given(batches())
def test_apply_of_interleaved_books_equals_one_by_one(commands: list[MatcherCommand]) -> None:
    copy = msgspec.structs.replace
    batched = new_matcher(SYM, "BBB")
    batched.apply([copy(c, order=copy(c.order)) if isinstance(c, Submit) else c for c in commands])
    one_by_one = new_matcher(SYM, "BBB")
    for command in commands:
        if isinstance(command, Submit):
            one_by_one.submit(copy(command.order))
        else:
            assert isinstance(command, Cancel)
            one_by_one.cancel(command.symbol, command.order_id, command.account_id, command.ts)
    assert batched.take_events() == one_by_one.take_events()
    assert batched.state_hash() == one_by_one.state_hash()
