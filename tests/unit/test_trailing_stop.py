"""Trailing stops in the matcher: the mark follows the book's trades, the trigger follows the
mark on the tick grid, and the order triggers a market order."""

from __future__ import annotations

import itertools

import msgspec
from builders import make
from hypothesis import given, settings
from hypothesis import strategies as st

from tradepit.domain.commands import Cancel, MatcherCommand, Replace, Submit
from tradepit.domain.events import (
    Accepted,
    Canceled,
    Event,
    Rejected,
    RejectReason,
    Replaced,
    Trade,
    TrailMoved,
    Triggered,
)
from tradepit.domain.orders import Order, OrderType, Side, TimeInForce, trail_stop
from tradepit.matcher import Matcher

SYM = "AAA"
BUY = Side.BUY
SELL = Side.SELL
TRAILING = OrderType.TRAILING_STOP
ids = itertools.count(1000)


def trailing(
    order_id: int,
    side: Side,
    qty: int = 1,
    *,
    price: int = 0,
    rate: int = 0,
    account: int = 9,
    protection: int = 0,
    tif: TimeInForce = TimeInForce.GTC,
) -> Order:
    order = make(
        order_id,
        account,
        side,
        qty,
        protection or (1 if side is SELL else 10_000),
        kind=TRAILING,
        tif=tif,
    )
    order.trail_price, order.trail_rate = price, rate
    return order


def new_matcher() -> Matcher:
    matcher = Matcher()
    matcher.add_symbol(SYM)
    return matcher


def apply(matcher: Matcher, *commands: MatcherCommand | Order) -> list[Event]:
    matcher.apply([Submit(c) if isinstance(c, Order) else c for c in commands])
    return matcher.take_events()


def trade_at(matcher: Matcher, price: int, qty: int = 1) -> list[Event]:
    """Two other accounts trade `qty` at `price`: the ask rests, the bid takes it."""
    return apply(matcher, make(next(ids), 1, SELL, qty, price), make(next(ids), 2, BUY, qty, price))


def moves(events: list[Event]) -> list[tuple[int, int, int]]:
    return [(e.order_id, e.stop_price, e.hwm) for e in events if isinstance(e, TrailMoved)]


def test_a_sell_trails_the_high_by_a_price_and_triggers_a_market_sell() -> None:
    matcher = new_matcher()
    trade_at(matcher, 100)
    events = apply(matcher, trailing(1, SELL, 3, price=5))
    assert [type(e) for e in events] == [Accepted, TrailMoved]
    assert moves(events) == [(1, 95, 100)]
    assert moves(trade_at(matcher, 103)) == [(1, 98, 103)]
    assert moves(trade_at(matcher, 99)) == []  # below the high: the mark stays
    apply(matcher, make(50, 3, BUY, 5, 97))  # a bid for the triggered sell to take
    events = trade_at(matcher, 98)
    assert [e.order_id for e in events if isinstance(e, Triggered)] == [1]
    [fill] = [e for e in events if isinstance(e, Trade) and e.taker_order_id == 1]
    assert (fill.price, fill.qty, fill.taker_leaves) == (97, 3, 0)
    assert matcher.books[SYM].get(1) is None


def test_a_buy_trails_the_low_by_a_percentage() -> None:
    matcher = new_matcher()
    trade_at(matcher, 200)
    assert moves(apply(matcher, trailing(1, BUY, rate=25_000))) == [(1, 205, 200)]  # 2.5%
    assert moves(trade_at(matcher, 190)) == [(1, 195, 190)]  # 194.75, rounded up
    assert moves(trade_at(matcher, 194)) == []
    apply(matcher, make(50, 3, SELL, 1, 196))
    events = trade_at(matcher, 195)
    assert [e.order_id for e in events if isinstance(e, Triggered)] == [1]
    assert [e.price for e in events if isinstance(e, Trade) and e.taker_order_id == 1] == [196]


def test_a_percentage_stop_rounds_away_from_its_mark() -> None:
    assert trail_stop(SELL, 101, 0, 30_000) == 97  # 97.97: a sell's rounds down
    assert trail_stop(BUY, 101, 0, 30_000) == 105  # 104.03: a buy's rounds up
    assert trail_stop(SELL, 100, 0, 30_000) == 97  # exact stays exact
    assert trail_stop(BUY, 100, 0, 30_000) == 103
    assert trail_stop(SELL, 10, 20, 0) == 0  # a trail past zero: nothing triggers it
    assert trail_stop(SELL, 0, 5, 0) == 0  # no mark yet


def test_one_move_per_order_per_command_however_many_trades_moved_it() -> None:
    matcher = new_matcher()
    trade_at(matcher, 100)
    apply(matcher, trailing(1, SELL, price=5), trailing(2, SELL, rate=100_000))
    apply(
        matcher,
        make(10, 1, SELL, 1, 101),
        make(11, 1, SELL, 1, 102),
        make(12, 1, SELL, 1, 103),
    )
    events = apply(matcher, make(13, 2, BUY, 3, 103))
    assert [e.price for e in events if isinstance(e, Trade)] == [101, 102, 103]
    assert moves(events) == [(1, 98, 103), (2, 92, 103)]


def test_a_trade_that_reaches_the_stop_triggers_it_even_if_the_walk_goes_on_higher() -> None:
    matcher = new_matcher()
    trade_at(matcher, 110)
    apply(matcher, trailing(1, SELL, price=5))  # stop 105
    apply(matcher, make(10, 1, SELL, 1, 104), make(11, 1, SELL, 1, 112))
    events = apply(matcher, make(12, 2, BUY, 2, 112))
    assert [e.order_id for e in events if isinstance(e, Triggered)] == [1]


def test_without_a_price_the_mark_waits_for_the_first_trade() -> None:
    matcher = new_matcher()
    events = apply(matcher, trailing(1, SELL, price=5), trailing(2, BUY, price=5))
    assert moves(events) == []
    assert moves(trade_at(matcher, 50)) == [(1, 45, 50), (2, 55, 50)]


def test_the_gateways_reference_is_the_first_mark_before_any_trade() -> None:
    matcher = new_matcher()
    order = trailing(1, SELL, price=5)
    order.reference = 80
    assert moves(apply(matcher, order)) == [(1, 75, 80)]


def test_a_waiting_trailing_stop_is_canceled_whole() -> None:
    matcher = new_matcher()
    trade_at(matcher, 100)
    apply(matcher, trailing(1, SELL, 4, price=5))
    events = apply(matcher, Cancel(SYM, 1, 9, 1))
    assert [(type(e), getattr(e, "qty", 0)) for e in events] == [(Canceled, 4)]
    book = matcher.books[SYM]
    assert not book.stops and not book.trail_sells and not book.trail_marks
    trade_at(matcher, 90)  # nothing left to trigger


def test_replace_changes_the_trail_and_keeps_the_mark() -> None:
    matcher = new_matcher()
    trade_at(matcher, 100)
    apply(matcher, trailing(1, SELL, 2, price=5))
    trade_at(matcher, 110)
    events = apply(matcher, Replace(SYM, 1, 9, 2, 2, 1, 0, 1, None, 2))
    [replaced] = [e for e in events if isinstance(e, Replaced)]
    assert (replaced.new_order_id, replaced.stop_price) == (2, 108)
    assert moves(events) == [(2, 108, 110)]
    assert [e.order_id for e in trade_at(matcher, 108) if isinstance(e, Triggered)] == [2]


def test_two_trails_or_none_are_refused() -> None:
    matcher = new_matcher()
    events = apply(matcher, trailing(1, SELL, price=5, rate=10_000), trailing(2, SELL))
    assert [(type(e), getattr(e, "reason", "")) for e in events] == [
        (Rejected, RejectReason.INVALID_PRICE),
        (Rejected, RejectReason.INVALID_PRICE),
    ]


def test_a_day_trailing_stop_expires_at_the_close() -> None:
    matcher = new_matcher()
    trade_at(matcher, 100)
    apply(matcher, trailing(1, BUY, price=5, tif=TimeInForce.DAY))
    matcher.close_session(1)
    assert not matcher.books[SYM].trail_buys


def test_export_and_restore_keep_the_marks() -> None:
    matcher = new_matcher()
    trade_at(matcher, 100)
    apply(matcher, trailing(1, SELL, price=5), trailing(2, BUY, rate=50_000))
    trade_at(matcher, 104)  # the sell's mark: 104, its stop 99
    trade_at(matcher, 101)  # the buy's stays at 100: its stop 105
    copy = Matcher()
    state = matcher.export_state()
    copy.restore(msgspec.json.decode(msgspec.json.encode(state), type=type(state)))
    assert copy.state_hash() == matcher.state_hash()
    for each in (matcher, copy):
        events = trade_at(each, 106)
        assert moves(events) == [(1, 101, 106)]
        assert [e.order_id for e in events if isinstance(e, Triggered)] == [2]
    assert copy.state_hash() == matcher.state_hash()


# Any sequence: every waiting trailing stop's mark is the best trade since it arrived (from
# its first mark), its trigger follows from it, its indexes agree, and restore keeps it all.


@st.composite
def sequences(draw: st.DrawFn) -> list[MatcherCommand]:
    commands: list[MatcherCommand] = []
    for order_id in range(1, draw(st.integers(1, 50)) + 1):
        choice = draw(st.integers(0, 9))
        if choice == 0 and order_id > 1:
            target = draw(st.integers(1, order_id - 1))
            commands.append(Cancel(SYM, target, draw(st.sampled_from([1, 2, 9])), order_id))
        elif choice == 1 and order_id > 1:
            target = draw(st.integers(1, order_id - 1))
            trail = draw(st.integers(0, 20))
            new_id = 10_000 + order_id
            commands.append(
                Replace(SYM, target, 9, new_id, draw(st.integers(1, 5)), 1, 0, 0, None, trail)
            )
        elif choice <= 4:
            side = draw(st.sampled_from([BUY, SELL]))
            by_rate = draw(st.booleans())
            order = trailing(
                order_id,
                side,
                draw(st.integers(1, 5)),
                price=0 if by_rate else draw(st.integers(1, 20)),
                rate=draw(st.integers(1, 200_000)) if by_rate else 0,
            )
            commands.append(Submit(order))
        else:
            side = draw(st.sampled_from([BUY, SELL]))
            kind = draw(st.sampled_from([OrderType.LIMIT] * 3 + [OrderType.MARKET]))
            price = (
                draw(st.integers(80, 120))
                if kind is OrderType.LIMIT
                else (10_000 if side is BUY else 1)
            )
            commands.append(
                Submit(
                    make(
                        order_id,
                        draw(st.integers(1, 2)),
                        side,
                        draw(st.integers(1, 5)),
                        price,
                        kind=kind,
                    )
                )
            )
    return commands


@settings(max_examples=200, deadline=None)
@given(sequences())
def test_marks_follow_the_trades_and_survive_a_restore(commands: list[MatcherCommand]) -> None:
    matcher = new_matcher()
    book = matcher.books[SYM]
    marks: dict[int, int] = {}  # a waiting trailing stop's mark, as the events tell it
    sides: dict[int, Side] = {}
    last = 0
    for command in commands:
        matcher.apply([command])
        for event in matcher.take_events():
            if isinstance(event, Accepted) and isinstance(command, Submit):
                if command.order.type is TRAILING:
                    marks[event.order_id], sides[event.order_id] = last, event.side
            elif isinstance(event, Trade):
                last = event.price
                for order_id, mark in marks.items():
                    better = max if sides[order_id] is SELL else min
                    marks[order_id] = better(mark, last) if mark else last
            elif isinstance(event, Replaced) and event.order_id in marks:
                marks[event.new_order_id] = marks.pop(event.order_id)
                sides[event.new_order_id] = event.side
            elif isinstance(event, Triggered | Canceled):
                marks.pop(event.order_id, None)
        waiting = {
            order.order_id: order for order in book.stop_orders.values() if order.type is TRAILING
        }
        assert {order_id: order.hwm for order_id, order in waiting.items()} == marks
        for order in waiting.values():
            assert order.stop_price == trail_stop(
                order.side, order.hwm, order.trail_price, order.trail_rate
            )
            key = book.stops[order.order_id][0]
            assert key == (
                (order.stop_price or 1 << 62) if order.side is BUY else -order.stop_price
            )
        assert set(book.trail_marks) == set(waiting)
        assert len(book.trail_marks) == len(book.trail_sells) + len(book.trail_buys)
        copy = Matcher()
        copy.restore(matcher.export_state())
        assert copy.state_hash() == matcher.state_hash()
        assert copy.books[SYM].trail_marks == book.trail_marks


def test_a_trade_that_passes_no_mark_costs_the_waiting_trailing_stops_nothing() -> None:
    matcher = new_matcher()
    trade_at(matcher, 100)
    apply(matcher, *(trailing(order_id, SELL, price=50) for order_id in range(1, 501)))
    book = matcher.books[SYM]
    marks, stops = list(book.trail_sells), list(book.sell_stops)
    for price in (99, 97, 100, 98):  # at or below every mark: none moves
        assert moves(trade_at(matcher, price)) == []
    assert book.trail_sells == marks and book.sell_stops == stops
    apply(matcher, trailing(501, SELL, price=50))  # its mark: 98, the last trade
    events = trade_at(matcher, 99)  # moves that one alone
    assert moves(events) == [(501, 49, 99)]


def test_a_new_high_moves_many_trailing_stops_at_once_and_they_trigger_in_order() -> None:
    matcher = new_matcher()
    book = matcher.books[SYM]
    trade_at(matcher, 100)
    apply(matcher, *(trailing(i, SELL, price=1 + i % 7) for i in range(1, 201)))

    def consistent() -> None:
        for order in book.stop_orders.values():
            assert order.stop_price == trail_stop(
                order.side, order.hwm, order.trail_price, order.trail_rate
            )
        for keys in (book.sell_stops, book.buy_stops, book.trail_sells, book.trail_buys):
            assert keys == sorted(keys)

    assert len(moves(trade_at(matcher, 120))) == 200  # every mark rises to 120, at once
    consistent()
    events = trade_at(matcher, 116)  # reaches the stops of trails 1 to 4: 119 down to 116
    triggered = {e.order_id for e in events if isinstance(e, Triggered)}
    assert triggered == {i for i in range(1, 201) if i % 7 <= 3}
    consistent()
    apply(matcher, *(trailing(i, BUY, rate=10_000 * (1 + i % 5)) for i in range(201, 401)))
    assert len(moves(trade_at(matcher, 100))) == 200  # the buys' marks fall to 100 (the sells go)
    consistent()
    events = trade_at(matcher, 101)  # 1% above 100: the 1% buys trigger, the rest wait
    assert {e.order_id for e in events if isinstance(e, Triggered)} == {
        i for i in range(201, 401) if i % 5 == 0
    }
    consistent()
