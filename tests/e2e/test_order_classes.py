"""alpaca-py's order classes against a real `tradepit serve`: brackets, OCO and OTO orders as
its examples send them, their legs held until the entry fills and then live as one OCO pair,
in the order JSON, in `nested` listings and on the TradingStream, and the shares the two exits
of a bracket sell reserved once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.models import Order
from alpaca.trading.requests import (
    GetOrderByIdRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    ReplaceOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)
from alpaca_clients import StreamListener, client
from live import Account, Venue, eventually


@pytest.fixture(params=["server", "cluster"])
def venue(request: pytest.FixtureRequest) -> Venue:
    """Each test twice: on the venue's own Valkey, and on a Valkey Cluster (`cluster_venue`)."""
    shared: Venue = request.getfixturevalue(f"{request.param}_venue")
    return shared


@pytest.fixture
def market(venue: Venue) -> Iterator[tuple[str, Account, Account]]:
    """A fresh symbol trading near 100, a trader with cash and a dealer with shares and cash
    on both sides of the trader's orders."""
    symbol = venue.symbol("100.00")
    trader = venue.account("10000.00")
    dealer = venue.account("100000.00", **{symbol: "1000"})
    yield symbol, trader, dealer


def limit(trading: TradingClient, symbol: str, side: OrderSide, qty: int, price: float) -> Order:
    order = trading.submit_order(
        LimitOrderRequest(
            symbol=symbol, qty=qty, side=side, time_in_force=TimeInForce.GTC, limit_price=price
        )
    )
    assert isinstance(order, Order)
    return order


def trade_at(venue: Venue, dealing: TradingClient, symbol: str, price: float) -> None:
    """One share trades at `price`: the dealer's ask, taken by another account."""
    limit(dealing, symbol, OrderSide.SELL, 1, price)
    taker = client(venue, venue.account("1000.00"))
    bid = limit(taker, symbol, OrderSide.BUY, 1, price)
    assert eventually(lambda: status_of(taker, bid.id) == OrderStatus.FILLED)


def status_of(trading: TradingClient, order_id: object) -> OrderStatus:
    order = trading.get_order_by_id(str(order_id))
    assert isinstance(order, Order)
    return order.status


def available(trading: TradingClient, symbol: str) -> str:
    position = trading.get_open_position(symbol)
    return str(position.qty_available)


def test_a_bracket_holds_its_legs_until_the_entry_fills_then_they_are_one_oco_pair(
    venue: Venue, market: tuple[str, Account, Account]
) -> None:
    symbol, trader, dealer = market
    trading, dealing = client(venue, trader), client(venue, dealer)
    with StreamListener(venue, trader) as stream:
        # A limit entry that rests first: its legs wait for it.
        bracket = trading.submit_order(
            LimitOrderRequest(
                symbol=symbol,
                qty=10,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                limit_price=100,
                order_class=OrderClass.BRACKET,
                take_profit=TakeProfitRequest(limit_price=104),
                stop_loss=StopLossRequest(stop_price=97),
            )
        )
        assert isinstance(bracket, Order)
        assert bracket.order_class == OrderClass.BRACKET and bracket.legs is not None
        take_profit, stop_loss = bracket.legs
        assert (take_profit.type, take_profit.limit_price, take_profit.side) == (
            "limit",
            "104.00",
            OrderSide.SELL,
        )
        assert (stop_loss.type, stop_loss.stop_price, stop_loss.qty) == ("stop", "97.00", "10")
        assert {take_profit.status, stop_loss.status} == {OrderStatus.HELD}
        assert eventually(lambda: status_of(trading, bracket.id) == OrderStatus.NEW)
        assert status_of(trading, take_profit.id) == OrderStatus.HELD

        limit(dealing, symbol, OrderSide.SELL, 10, 100)
        assert eventually(lambda: status_of(trading, bracket.id) == OrderStatus.FILLED)
        assert eventually(lambda: status_of(trading, stop_loss.id) == OrderStatus.NEW)
        assert status_of(trading, take_profit.id) == OrderStatus.NEW
        parent = trading.get_order_by_id(str(bracket.id))
        assert isinstance(parent, Order) and parent.legs is not None
        assert [leg.status for leg in parent.legs] == [OrderStatus.NEW, OrderStatus.NEW]

        # The two exits sell the same ten shares, reserved once: none are left to sell.
        assert available(trading, symbol) == "0"
        with pytest.raises(APIError) as refused:
            limit(trading, symbol, OrderSide.SELL, 1, 120)
        assert refused.value.status_code == 403

        # The take-profit fills partly: the stop-loss is resized to what it has left.
        limit(dealing, symbol, OrderSide.BUY, 4, 104)
        assert eventually(
            lambda: status_of(trading, take_profit.id) == OrderStatus.PARTIALLY_FILLED
        )
        assert eventually(lambda: trading.get_order_by_id(str(stop_loss.id)).qty == "6")
        assert trading.get_open_position(symbol).qty == "6"  # type: ignore[union-attr]

        # A trade at the stop triggers it: the take-profit is canceled, the stop sells at market.
        limit(dealing, symbol, OrderSide.BUY, 20, 96)
        trade_at(venue, dealing, symbol, 97)
        assert eventually(lambda: status_of(trading, stop_loss.id) == OrderStatus.FILLED)
        assert status_of(trading, take_profit.id) == OrderStatus.CANCELED
        with pytest.raises(APIError):
            trading.get_open_position(symbol)  # flat
        assert eventually(lambda: "fill" in stream.events(stop_loss.id))
    assert stream.events(bracket.id) == ["new", "fill"]
    assert stream.events(take_profit.id) == ["new", "partial_fill", "canceled"]
    assert stream.events(stop_loss.id)[0] == "new" and stream.events(stop_loss.id)[-1] == "fill"
    account = trading.get_account()
    # Bought 10 at 100, sold 4 at 104 and 6 at 96 (the best bid when the stop went off).
    assert account.cash == "9992.00"  # type: ignore[union-attr]


def test_cancelling_a_bracket_cancels_its_held_legs_and_nested_lists_them_under_it(
    venue: Venue, market: tuple[str, Account, Account]
) -> None:
    symbol, trader, _ = market
    trading = client(venue, trader)
    with StreamListener(venue, trader) as stream:
        bracket = trading.submit_order(
            LimitOrderRequest(
                symbol=symbol,
                qty=5,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                limit_price=95,
                order_class=OrderClass.BRACKET,
                take_profit=TakeProfitRequest(limit_price=105),
                stop_loss=StopLossRequest(stop_price=90, limit_price=89.5),
            )
        )
        assert isinstance(bracket, Order) and bracket.legs is not None
        leg_ids = {leg.id for leg in bracket.legs}
        assert [leg.type for leg in bracket.legs] == ["limit", "stop_limit"]

        nested = trading.get_orders(GetOrdersRequest(nested=True, symbols=[symbol]))
        assert [order.id for order in nested] == [bracket.id]  # type: ignore[union-attr]
        assert {leg.id for leg in nested[0].legs} == leg_ids  # type: ignore[union-attr]
        flat = trading.get_orders(GetOrdersRequest(symbols=[symbol]))
        assert {order.id for order in flat} == {bracket.id} | leg_ids  # type: ignore[union-attr]

        # A held leg is its entry's to cancel, or to change.
        with pytest.raises(APIError) as refused:
            trading.cancel_order_by_id(str(bracket.legs[0].id))
        assert refused.value.status_code == 422

        trading.cancel_order_by_id(str(bracket.id))
        assert eventually(lambda: status_of(trading, bracket.id) == OrderStatus.CANCELED)
        assert eventually(
            lambda: all(status_of(trading, leg) == OrderStatus.CANCELED for leg in leg_ids)
        )
        assert eventually(lambda: all("canceled" in stream.events(leg) for leg in leg_ids))
        closed = trading.get_orders(
            GetOrdersRequest(status=QueryOrderStatus.CLOSED, nested=True, symbols=[symbol])
        )
        assert [order.id for order in closed] == [bracket.id]  # type: ignore[union-attr]
        shown = trading.get_order_by_id(str(bracket.id), GetOrderByIdRequest(nested=True))
        assert {leg.status for leg in shown.legs} == {OrderStatus.CANCELED}  # type: ignore[union-attr]
    assert trading.get_account().cash == "10000.00"  # type: ignore[union-attr]


def test_an_oco_exits_once_whichever_leg_goes(
    venue: Venue, market: tuple[str, Account, Account]
) -> None:
    symbol, _, dealer = market
    holder = venue.account("0", **{symbol: "10"})
    holding, dealing = client(venue, holder), client(venue, dealer)
    oco = holding.submit_order(
        LimitOrderRequest(
            symbol=symbol,
            qty=10,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            order_class=OrderClass.OCO,
            take_profit=TakeProfitRequest(limit_price=105),
            stop_loss=StopLossRequest(stop_price=95),
        )
    )
    assert isinstance(oco, Order) and oco.legs is not None
    assert (oco.order_class, oco.type, oco.limit_price) == (OrderClass.OCO, "limit", "105.00")
    (stop_loss,) = oco.legs
    assert (stop_loss.type, stop_loss.stop_price, stop_loss.side) == ("stop", "95.00", "sell")
    assert eventually(lambda: status_of(holding, stop_loss.id) == OrderStatus.NEW)
    assert available(holding, symbol) == "0"

    # A trade at 95 triggers the stop: the take-profit is canceled first, in the same step.
    limit(dealing, symbol, OrderSide.BUY, 10, 94)
    trade_at(venue, dealing, symbol, 95)
    assert eventually(lambda: status_of(holding, stop_loss.id) == OrderStatus.FILLED)
    assert status_of(holding, oco.id) == OrderStatus.CANCELED
    assert holding.get_account().cash == "940.00"  # type: ignore[union-attr]


def test_an_oto_sends_its_one_exit_when_the_entry_fills(
    venue: Venue, market: tuple[str, Account, Account]
) -> None:
    symbol, trader, dealer = market
    trading, dealing = client(venue, trader), client(venue, dealer)
    limit(dealing, symbol, OrderSide.SELL, 3, 100)
    oto = trading.submit_order(
        LimitOrderRequest(
            symbol=symbol,
            qty=3,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=100,
            order_class=OrderClass.OTO,
            stop_loss=StopLossRequest(stop_price=97),
        )
    )
    assert isinstance(oto, Order) and oto.legs is not None and len(oto.legs) == 1
    (stop_loss,) = oto.legs
    assert eventually(lambda: status_of(trading, oto.id) == OrderStatus.FILLED)
    assert eventually(lambda: status_of(trading, stop_loss.id) == OrderStatus.NEW)
    assert available(trading, symbol) == "0"
    trading.cancel_order_by_id(str(stop_loss.id))  # live now: its own to cancel
    assert eventually(lambda: status_of(trading, stop_loss.id) == OrderStatus.CANCELED)
    assert available(trading, symbol) == "3"


def test_a_live_leg_replaced_is_listed_as_its_parents_leg(
    venue: Venue, market: tuple[str, Account, Account]
) -> None:
    symbol, _, dealer = market
    # Shares of its own beside the ones it buys: a replacement is reserved for beside the
    # order it replaces until the book has replaced it.
    trading = client(venue, venue.account("10000.00", **{symbol: "3"}))
    limit(client(venue, dealer), symbol, OrderSide.SELL, 3, 100)
    oto = trading.submit_order(
        LimitOrderRequest(
            symbol=symbol,
            qty=3,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=100,
            order_class=OrderClass.OTO,
            stop_loss=StopLossRequest(stop_price=97),
        )
    )
    assert isinstance(oto, Order) and oto.legs is not None
    (stop_loss,) = oto.legs
    assert eventually(lambda: status_of(trading, stop_loss.id) == OrderStatus.NEW)
    moved = trading.replace_order_by_id(str(stop_loss.id), ReplaceOrderRequest(stop_price=96))
    assert isinstance(moved, Order)
    assert eventually(lambda: status_of(trading, moved.id) == OrderStatus.NEW)
    parent = trading.get_order_by_id(str(oto.id))
    assert [leg.id for leg in parent.legs or []] == [moved.id]  # type: ignore[union-attr]
    listed = trading.get_orders(
        GetOrdersRequest(status=QueryOrderStatus.ALL, nested=True, symbols=[symbol])
    )
    assert [order.id for order in listed] == [oto.id]  # type: ignore[union-attr]
    assert [leg.id for leg in listed[0].legs or []] == [moved.id]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"take_profit": TakeProfitRequest(limit_price=99)}, "take_profit.limit_price"),
        ({"stop_loss": StopLossRequest(stop_price=100.5)}, "stop_loss.stop_price"),
        ({"time_in_force": TimeInForce.IOC}, "day or gtc"),
        ({"extended_hours": True, "time_in_force": TimeInForce.DAY}, "regular hours"),
    ],
)
def test_a_bracket_out_of_alpacas_rules_is_refused_with_why(
    venue: Venue, market: tuple[str, Account, Account], fields: dict[str, object], message: str
) -> None:
    symbol, trader, _ = market
    trading = client(venue, trader)
    request: dict[str, object] = {
        "symbol": symbol,
        "qty": 1,
        "side": OrderSide.BUY,
        "time_in_force": TimeInForce.GTC,
        "limit_price": 100,
        "order_class": OrderClass.BRACKET,
        "take_profit": TakeProfitRequest(limit_price=110),
        "stop_loss": StopLossRequest(stop_price=90),
    }
    with pytest.raises(APIError) as refused:
        trading.submit_order(LimitOrderRequest(**{**request, **fields}))  # type: ignore[arg-type]
    assert refused.value.status_code == 422 and message in str(refused.value)
    with pytest.raises(APIError) as refused:
        trading.submit_order(
            TrailingStopOrderRequest(
                symbol=symbol,
                qty=1,
                side=OrderSide.SELL,
                time_in_force=TimeInForce.GTC,
                trail_percent=1,
                order_class=OrderClass.OTO,
                take_profit=TakeProfitRequest(limit_price=90),
            )
        )
    assert refused.value.status_code == 422 and "trailing_stop" in str(refused.value)
    assert trading.get_orders(GetOrdersRequest(symbols=[symbol])) == []
