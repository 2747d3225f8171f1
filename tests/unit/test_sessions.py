"""The matcher through a trading day (`Book.set_phase`): orders wait outside the regular
session, the opening and closing auctions uncross the book at the volume-maximising price,
extended-hours limits trade in the extended sessions, and DAY orders expire at the close."""

from __future__ import annotations

from datetime import date

import msgspec
from builders import make
from hypothesis import given, settings
from hypothesis import strategies as st

from tradepit.domain.events import (
    Accepted,
    Canceled,
    Event,
    Expired,
    Queued,
    Rejected,
    Replaced,
    SessionChanged,
    Trade,
    Triggered,
)
from tradepit.domain.orders import OrderType, Side, TimeInForce
from tradepit.domain.session import Phase, SessionDay, TradingCalendar
from tradepit.domain.symbols import Symbol
from tradepit.ledger.history import OrderHistory, OrderStatus
from tradepit.matcher import Matcher, MatcherState
from tradepit.matcher.book import Book

SYM = "AAA"
BUY, SELL = Side.BUY, Side.SELL
DAY, GTC, OPG, CLS = TimeInForce.DAY, TimeInForce.GTC, TimeInForce.OPG, TimeInForce.CLS


def closed_matcher(last: int = 0) -> Matcher:
    matcher = Matcher()
    matcher.add_symbol(SYM).last_price = last
    matcher.set_session(Phase.CLOSED, 1)
    matcher.take_events()
    return matcher


def of(events: list[Event], kind: type) -> list[Event]:
    return [event for event in events if type(event) is kind]


def trades(events: list[Event]) -> list[tuple[int, int, int, int]]:
    """(price, qty, maker, taker) of each trade."""
    return [
        (t.price, t.qty, t.maker_order_id, t.taker_order_id)  # type: ignore[attr-defined]
        for t in of(events, Trade)
    ]


def test_orders_wait_while_closed_and_the_open_uncrosses_them_at_one_price() -> None:
    matcher = closed_matcher(last=100)
    orders = [
        make(1, 1, BUY, 10, 102, tif=OPG, ts=10),  # for the auction only
        make(2, 2, BUY, 5, 100, tif=DAY, ts=11),
        make(3, 3, SELL, 8, 99, ts=12),
        make(4, 3, SELL, 6, 101, ts=13),
        make(5, 4, BUY, 3, 95, tif=OPG, ts=14),  # too low: it expires
    ]
    for order in orders:
        matcher.submit(order)
    waiting = matcher.take_events()
    assert [type(event) for event in waiting] == [Queued] * 5  # accepted, in no book
    assert matcher.books[SYM].best_bid() is None

    matcher.set_session(Phase.OPEN, 1_000)
    events = matcher.take_events()
    # Demand 10 and supply 14 from 101 to 102: the most volume; the least imbalance is the
    # same there, and 101 is nearest the last trade, 100.
    assert trades(events) == [(101, 8, 1, 3), (101, 2, 1, 4)]
    assert [e.order_id for e in of(events, Expired)] == [5]  # type: ignore[attr-defined]
    assert {e.order_id for e in of(events, Accepted)} == {1, 2, 3, 4, 5}  # type: ignore[attr-defined]
    book = matcher.books[SYM]
    assert (book.last_price, book.best_bid(), book.best_ask()) == (101, 100, 101)
    assert [(o.order_id, o.leaves) for o in book.resting_orders(SELL)] == [(4, 4)]
    assert all(event.ts == 1_000 for event in events)


def test_a_market_order_waits_for_the_open_and_trades_at_the_auction_price() -> None:
    matcher = closed_matcher(last=100)
    market = make(1, 1, BUY, 4, 110, kind=OrderType.MARKET, tif=DAY)  # protected at 110
    matcher.submit(market)
    matcher.submit(make(2, 2, SELL, 3, 98))
    matcher.submit(make(3, 2, SELL, 3, 105))
    matcher.take_events()
    matcher.set_session(Phase.OPEN, 5)
    events = matcher.take_events()
    # The market order counts at its protection price: 4 lots cross from 105 to 110, 3 below;
    # the ask at 98 gets 105 too.
    assert trades(events) == [(105, 3, 1, 2), (105, 1, 1, 3)]


def test_extended_hours_limits_trade_in_the_pre_market_and_others_wait() -> None:
    matcher = closed_matcher(last=100)
    matcher.set_session(Phase.PRE_MARKET, 2)
    extended_sell = make(1, 1, SELL, 2, 100, tif=DAY)
    extended_sell.extended_hours = True
    extended_buy = make(2, 2, BUY, 1, 100, tif=DAY)
    extended_buy.extended_hours = True
    regular_buy = make(3, 2, BUY, 1, 100, tif=DAY)
    for order in (extended_sell, extended_buy, regular_buy):
        matcher.submit(order)
    events = matcher.take_events()
    assert trades(events) == [(100, 1, 1, 2)]
    assert [e.order_id for e in of(events, Queued)] == [3]  # type: ignore[attr-defined]
    # Closed again: the extended sessions are over, and nothing trades, extended or not.
    matcher.set_session(Phase.CLOSED, 3)
    events = matcher.take_events()
    assert [e.order_id for e in of(events, Expired)] == [1]  # type: ignore[attr-defined]
    late = make(4, 1, SELL, 1, 100, tif=DAY)
    late.extended_hours = True
    matcher.submit(late)
    assert [type(e) for e in matcher.take_events()] == [Queued]


def test_the_close_runs_the_closing_auction_then_day_orders_expire() -> None:
    matcher = Matcher()
    matcher.add_symbol(SYM).last_price = 100
    extended = make(5, 5, BUY, 1, 90, tif=DAY)
    extended.extended_hours = True
    for order in (
        make(1, 1, BUY, 5, 0, kind=OrderType.MARKET, tif=CLS),  # no price: rejected
        make(2, 1, BUY, 5, 103, tif=CLS),
        make(3, 2, SELL, 3, 101, tif=DAY),  # rests, and joins the auction
        make(4, 3, SELL, 5, 102, tif=CLS),
        extended,
        make(6, 6, BUY, 1, 80, tif=GTC),
    ):
        matcher.submit(order)
    events = matcher.take_events()
    assert [e.order_id for e in of(events, Rejected)] == [1]  # type: ignore[attr-defined]
    assert [e.order_id for e in of(events, Queued)] == [2, 4]  # type: ignore[attr-defined]
    matcher.set_session(Phase.AFTER_HOURS, 50)
    events = matcher.take_events()
    # A cls buy of 5 at 103; sells of 3 at 101 (resting) and 5 at 102 (cls): at 102 and 103
    # five lots cross (at 101, three), with the same imbalance; 102 is nearer the last trade.
    assert trades(events) == [(102, 3, 2, 3), (102, 2, 2, 4)]
    expired = [e.order_id for e in of(events, Expired)]  # type: ignore[attr-defined]
    assert expired == [4]  # the cls remainder; the extended DAY bid lives on
    book = matcher.books[SYM]
    # The GTC bid is out of the book for the night: only extended-hours orders trade now.
    assert list(book.orders) == [5] and list(book.waiting) == [6]
    assert [e.order_id for e in of(events, Queued)] == [6]  # type: ignore[attr-defined]
    matcher.set_session(Phase.CLOSED, 60)
    events = matcher.take_events()
    assert [e.order_id for e in of(events, Expired)] == [5]  # type: ignore[attr-defined]
    matcher.set_session(Phase.OPEN, 70)
    assert 6 in book.orders  # back in at the open, in its auction


def test_an_opg_order_during_the_regular_session_is_rejected() -> None:
    matcher = Matcher()
    matcher.add_symbol(SYM)
    matcher.submit(make(1, 1, BUY, 1, 100, tif=OPG))
    assert [type(e) for e in matcher.take_events()] == [Rejected]


def test_a_waiting_order_is_canceled_and_replaced_in_place() -> None:
    matcher = closed_matcher(last=100)
    matcher.submit(make(1, 1, BUY, 5, 99))
    matcher.submit(make(2, 2, SELL, 5, 101))
    matcher.take_events()
    matcher.replace(SYM, 1, 1, 3, 4, 101, 0, 7)
    events = matcher.take_events()
    assert [type(e) for e in events] == [Replaced, Queued]
    matcher.cancel(SYM, 2, 9, 8)  # not the owner's
    matcher.cancel(SYM, 2, 2, 8)
    events = matcher.take_events()
    assert [type(e).__name__ for e in events] == ["CancelRejected", "Canceled"]
    book = matcher.books[SYM]
    assert list(book.waiting) == [3] and book.waiting[3].qty == 4


def test_stops_wait_for_the_regular_session() -> None:
    matcher = Matcher()
    matcher.add_symbol(SYM).last_price = 100
    matcher.submit(make(1, 1, SELL, 1, 1, kind=OrderType.STOP, stop_price=95))
    matcher.take_events()
    matcher.set_session(Phase.AFTER_HOURS, 2)
    for order_id, account, side in ((2, 2, BUY), (3, 3, SELL)):
        order = make(order_id, account, side, 1, 94, tif=DAY)
        order.extended_hours = True
        matcher.submit(order)
    events = matcher.take_events()
    assert trades(events) == [(94, 1, 2, 3)] and not of(events, Triggered)
    matcher.set_session(Phase.CLOSED, 3)
    matcher.set_session(Phase.PRE_MARKET, 4)
    matcher.set_session(Phase.OPEN, 5)
    assert of(matcher.take_events(), Triggered)  # the open: the last trade, 94, reaches it


def test_a_halted_book_opens_when_it_resumes() -> None:
    matcher = closed_matcher(last=100)
    matcher.submit(make(1, 1, BUY, 1, 100))
    matcher.submit(make(2, 2, SELL, 1, 100))
    matcher.set_halted(SYM, True, 2)
    matcher.set_session(Phase.OPEN, 3)
    assert not trades(matcher.take_events())
    matcher.set_halted(SYM, False, 4)
    assert trades(matcher.take_events()) == [(100, 1, 1, 2)]


def test_a_book_restored_mid_session_holds_its_waiting_orders() -> None:
    matcher = closed_matcher(last=100)
    matcher.submit(make(1, 1, BUY, 2, 100))
    matcher.submit(make(2, 2, SELL, 2, 100, tif=CLS))
    state = msgspec.json.decode(msgspec.json.encode(matcher.export_state()), type=MatcherState)
    restored = Matcher()
    restored.restore(state)
    book = restored.books[SYM]
    assert (book.phase, list(book.waiting), list(book.closing)) == (Phase.CLOSED, [1], [2])
    assert restored.state_hash() == matcher.state_hash()
    restored.add_symbol("BBB")
    assert restored.books["BBB"].phase is Phase.CLOSED


@settings(max_examples=200, deadline=None)
@given(
    orders=st.lists(
        st.tuples(st.sampled_from([BUY, SELL]), st.integers(1, 9), st.integers(95, 105)),
        min_size=1,
        max_size=25,
    )
)
def test_the_opening_auction_trades_every_order_within_its_limit_at_one_price(
    orders: list[tuple[Side, int, int]],
) -> None:
    matcher = closed_matcher(last=100)
    for index, (side, qty, price) in enumerate(orders, 1):
        matcher.submit(make(index, index, side, qty, price))
    matcher.take_events()
    matcher.set_session(Phase.OPEN, 9)
    events = matcher.take_events()
    auction = trades(events)
    assert len({price for price, _, _, _ in auction}) <= 1
    limits = {index: (side, price) for index, (side, _, price) in enumerate(orders, 1)}
    for price, _, maker, taker in auction:
        for order_id in (maker, taker):
            side, limit = limits[order_id]
            assert price <= limit if side is BUY else price >= limit
    book: Book = matcher.books[SYM]
    best_bid, best_ask = book.best_bid(), book.best_ask()
    assert best_bid is None or best_ask is None or best_bid < best_ask  # uncrossed
    assert of(events, SessionChanged) and not of(events, Canceled)


def test_a_calendar_lists_the_changes_between_two_moments() -> None:
    hour = 3600 * 10**9
    days = [
        SessionDay(date(2026, 12, 7), 9 * hour, 14 * hour, 21 * hour, 25 * hour),
        SessionDay(date(2026, 12, 8), 33 * hour, 38 * hour, 45 * hour, 49 * hour),
    ]
    calendar = TradingCalendar("test", days)
    assert calendar.changes_between(15 * hour, 34 * hour) == [
        (21 * hour, Phase.AFTER_HOURS),
        (25 * hour, Phase.CLOSED),
        (33 * hour, Phase.PRE_MARKET),
    ]
    assert calendar.changes_between(21 * hour, 21 * hour) == []
    assert calendar.phase_at(30 * hour) is Phase.CLOSED
    assert calendar.next_change(30 * hour) == (33 * hour, Phase.PRE_MARKET)
    assert (calendar.next_open(30 * hour), calendar.next_close(30 * hour)) == (38 * hour, 45 * hour)


def test_a_waiting_orders_replacement_waits_accepted_and_goes_new_at_the_open() -> None:
    matcher = closed_matcher(last=100)
    old = make(1, 1, BUY, 5, 99)
    history = OrderHistory({SYM: Symbol(SYM)})
    history.accepted(old, "")
    matcher.submit(old)
    matcher.take_events()
    replacement = make(2, 1, BUY, 4, 100)
    history.accepted(replacement, "", 1)
    matcher.replace(SYM, 1, 1, 2, 4, 100, 0, 7)
    changes = [change for event in matcher.take_events() for change in history.apply(event)]
    assert [(name, record.order_id) for name, record in changes] == [("replaced", 1)]
    assert history.records[2].status == OrderStatus.ACCEPTED
    matcher.set_session(Phase.OPEN, 9)
    opened = [change for event in matcher.take_events() for change in history.apply(event)]
    assert [(name, record.order_id) for name, record in opened] == [("new", 2)]
