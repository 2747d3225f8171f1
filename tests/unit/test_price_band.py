"""The matcher's price band: a passive order rests at any price, no trade prints outside the
band of the order that takes, and a marketable limit whose first trade would is refused."""

from __future__ import annotations

from builders import make
from hypothesis import given, settings
from hypothesis import strategies as st

from tradepit.domain.commands import Cancel, MatcherCommand, Replace, Submit
from tradepit.domain.events import (
    Accepted,
    Canceled,
    CancelReason,
    Event,
    Rejected,
    RejectReason,
    ReplaceRejected,
    Trade,
)
from tradepit.domain.orders import Order, OrderType, Side, TimeInForce
from tradepit.domain.symbols import price_band
from tradepit.matcher import Matcher

SYM = "AAA"
BUY = Side.BUY
SELL = Side.SELL
BAND = 1000  # bps: 10%
REFERENCE = 100  # ticks: the band is 90..110 before the first trade


def banded(
    order_id: int,
    account_id: int,
    side: Side,
    qty: int,
    price: int,
    kind: OrderType = OrderType.LIMIT,
    tif: TimeInForce = TimeInForce.GTC,
    stop_price: int = 0,
) -> Order:
    order = make(order_id, account_id, side, qty, price, kind=kind, tif=tif, stop_price=stop_price)
    order.band_bps = BAND
    order.reference = REFERENCE
    return order


def run(matcher: Matcher, *orders: Order) -> list[Event]:
    matcher.apply([Submit(order) for order in orders])
    return matcher.take_events()


def new_matcher() -> Matcher:
    matcher = Matcher()
    matcher.add_symbol(SYM)
    return matcher


def test_a_passive_limit_far_outside_the_band_rests() -> None:
    matcher = new_matcher()
    run(matcher, banded(1, 1, SELL, 5, 100))
    events = run(matcher, banded(2, 2, BUY, 5, 1), banded(3, 2, SELL, 5, 10_000))
    assert [type(event) for event in events] == [Accepted, Accepted]
    book = matcher.books[SYM]
    assert book.best_bid() == 1 and book.best_ask() == 100
    assert book.get(3) is not None


def test_a_marketable_limit_whose_first_trade_is_outside_the_band_is_refused() -> None:
    matcher = new_matcher()
    run(matcher, banded(1, 1, SELL, 5, 150))  # rests above the band: no bid to take
    events = run(matcher, banded(2, 2, BUY, 5, 200))
    assert [type(event) for event in events] == [Rejected]
    assert events[0].reason == RejectReason.OUTSIDE_BAND  # type: ignore[attr-defined]
    assert matcher.books[SYM].best_bid() is None


def test_a_limit_through_the_band_trades_to_its_edge_and_the_rest_is_canceled() -> None:
    matcher = new_matcher()
    run(matcher, banded(1, 1, SELL, 2, 105), banded(2, 1, SELL, 2, 110), banded(3, 1, SELL, 2, 120))
    events = run(matcher, banded(4, 2, BUY, 10, 130))
    trades = [event for event in events if isinstance(event, Trade)]
    assert [(trade.price, trade.qty) for trade in trades] == [(105, 2), (110, 2)]
    canceled = [event for event in events if isinstance(event, Canceled)]
    assert [(event.qty, event.reason) for event in canceled] == [(6, CancelReason.BAND_REMAINDER)]
    assert matcher.books[SYM].best_ask() == 120


def test_a_limit_through_the_band_rests_when_nothing_is_left_to_cross() -> None:
    matcher = new_matcher()
    run(matcher, banded(1, 1, SELL, 2, 105))
    events = run(matcher, banded(2, 2, BUY, 10, 130))
    assert [trade.price for trade in events if isinstance(trade, Trade)] == [105]
    assert matcher.books[SYM].best_bid() == 130


def test_a_maker_beyond_the_band_trades_at_its_edge() -> None:
    matcher = new_matcher()
    run(matcher, banded(1, 1, BUY, 5, 300))  # an empty book: it rests, far above the band
    events = run(matcher, banded(2, 2, SELL, 5, 95))
    trades = [event for event in events if isinstance(event, Trade)]
    assert [(trade.price, trade.qty) for trade in trades] == [(110, 5)]


def test_the_band_follows_the_last_trade() -> None:
    matcher = new_matcher()
    run(matcher, banded(1, 1, SELL, 1, 108), banded(2, 2, BUY, 1, 108))
    assert matcher.books[SYM].last_price == 108
    run(matcher, banded(3, 1, SELL, 1, 118))  # 90..110 refused it; 97..118 lets it trade
    events = run(matcher, banded(4, 2, BUY, 1, 118))
    assert [trade.price for trade in events if isinstance(trade, Trade)] == [118]


def test_a_market_order_is_capped_by_the_band_not_refused() -> None:
    matcher = new_matcher()
    run(matcher, banded(1, 1, SELL, 2, 105), banded(2, 1, SELL, 2, 115))
    events = run(matcher, banded(3, 2, BUY, 10, 1_000, kind=OrderType.MARKET))
    assert [trade.price for trade in events if isinstance(trade, Trade)] == [105]
    assert [event.reason for event in events if isinstance(event, Canceled)] == [
        CancelReason.MARKET_REMAINDER
    ]


def test_a_replace_that_would_trade_outside_the_band_is_refused() -> None:
    matcher = new_matcher()
    run(matcher, banded(1, 1, SELL, 2, 150), banded(2, 2, BUY, 2, 50))
    matcher.apply([Replace(SYM, 2, 2, 3, 2, 160, 0, 1)])
    events = matcher.take_events()
    assert [type(event) for event in events] == [ReplaceRejected]
    assert matcher.books[SYM].get(2) is not None


def test_an_unbanded_order_trades_as_before() -> None:
    matcher = new_matcher()
    run(matcher, make(1, 1, SELL, 2, 150))
    events = run(matcher, make(2, 2, BUY, 2, 200))
    assert [trade.price for trade in events if isinstance(trade, Trade)] == [150]


# Any sequence of banded orders: no trade prints outside the band of the order that takes, and
# the book is never left crossed.

KINDS = st.sampled_from(
    [OrderType.LIMIT] * 4 + [OrderType.MARKET, OrderType.STOP, OrderType.STOP_LIMIT]
)
TIFS = st.sampled_from(list(TimeInForce))


@st.composite
def commands(draw: st.DrawFn) -> list[MatcherCommand]:
    result: list[MatcherCommand] = []
    for order_id in range(1, draw(st.integers(1, 60)) + 1):
        choice = draw(st.integers(0, 9))
        if choice == 0 and order_id > 1:
            result.append(Cancel(SYM, draw(st.integers(1, order_id - 1)), 1, order_id))
            continue
        if choice == 1 and order_id > 1:
            old = draw(st.integers(1, order_id - 1))
            price = draw(st.integers(1, 400))
            result.append(
                Replace(SYM, old, 1, 10_000 + order_id, draw(st.integers(1, 9)), price, 0, 0)
            )
            continue
        kind = draw(KINDS)
        side = draw(st.sampled_from([BUY, SELL]))
        stop = draw(st.integers(50, 200)) if kind in (OrderType.STOP, OrderType.STOP_LIMIT) else 0
        price = draw(st.integers(1, 400))
        order = banded(
            order_id,
            draw(st.integers(1, 3)),
            side,
            draw(st.integers(1, 9)),
            price,
            kind=kind,
            tif=draw(TIFS),
            stop_price=stop,
        )
        result.append(Submit(order))
    return result


@settings(max_examples=300, deadline=None)
@given(commands())
def test_no_trade_prints_outside_the_band_and_the_book_never_crosses(
    batch: list[MatcherCommand],
) -> None:
    matcher = new_matcher()
    book = matcher.books[SYM]
    reference = REFERENCE  # the band's centre when a taker starts: the last trade before it
    last = 0
    taker = 0
    for command in batch:
        matcher.apply([command])
        for event in matcher.take_events():
            if not isinstance(event, Trade):
                continue
            if event.taker_order_id != taker:
                taker = event.taker_order_id
                reference = last or REFERENCE
            low, high = price_band(reference, BAND)
            assert low <= event.price <= high, (event, reference)
            last = event.price
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is None or ask is None or bid < ask
