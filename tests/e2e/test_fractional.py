"""Fractional shares through alpaca-py, as its stock-trading notebook trades them: `qty=0.01`,
`qty=5.5` and `notional=1.11` on a fractionable symbol, the position exact, closing it, and
`fractional_trading` in the account configurations turned off and on again."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, TimeInForce
from alpaca.trading.models import Order
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
)
from alpaca_clients import client
from live import Account, Venue, eventually

_names = count(1)


@pytest.fixture(params=["server", "cluster"])
def venue(request: pytest.FixtureRequest) -> Venue:
    shared: Venue = request.getfixturevalue(f"{request.param}_venue")
    return shared


@pytest.fixture
def market(venue: Venue) -> Iterator[tuple[str, Account, TradingClient]]:
    """A fractionable symbol near 100 (lots of a billionth of a share), and a dealer with
    shares and cash who quotes both sides."""
    symbol = f"FR{next(_names)}"
    venue.admin(
        "POST",
        "/admin/symbols",
        {"symbol": symbol, "reference_price": "100.00", "lot_size": "0.000000001"},
    )
    dealer = client(venue, venue.account("100000.00", **{symbol: "1000"}))
    for side, price in ((OrderSide.SELL, 100), (OrderSide.BUY, 99)):
        dealer.submit_order(
            LimitOrderRequest(
                symbol=symbol, qty=500, side=side, time_in_force=TimeInForce.GTC, limit_price=price
            )
        )
    yield symbol, venue.account("10000.00"), dealer


def filled(trading: TradingClient, order: object) -> Order:
    assert isinstance(order, Order)

    def done() -> Order | None:
        found = trading.get_order_by_id(str(order.id))
        assert isinstance(found, Order)
        return found if found.status == OrderStatus.FILLED else None

    result = eventually(done)
    assert result is not None, f"order {order.id} did not fill"
    return result


def test_fractional_and_notional_orders_fill_and_the_position_closes(
    venue: Venue, market: tuple[str, Account, TradingClient]
) -> None:
    symbol, account, _ = market
    trading = client(venue, account)
    assert trading.get_asset(symbol).fractionable  # type: ignore[union-attr]
    for qty in (0.01, 5.5):
        order = filled(
            trading,
            trading.submit_order(
                MarketOrderRequest(
                    symbol=symbol, qty=qty, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
                )
            ),
        )
        assert (order.filled_qty, order.filled_avg_price) == (str(qty), "100.00")
    notional = filled(
        trading,
        trading.submit_order(
            MarketOrderRequest(
                symbol=symbol, notional=1.11, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
            )
        ),
    )
    assert (notional.notional, notional.filled_qty) == ("1.11", "0.0111")
    position = trading.get_open_position(symbol)
    assert (position.qty, position.cost_basis) == ("5.5211", "552.11")  # type: ignore[union-attr]
    assert trading.get_account().cash == "9447.89"  # type: ignore[union-attr]

    closing = filled(trading, trading.close_position(symbol))
    assert (closing.filled_qty, closing.filled_avg_price) == ("5.5211", "99.00")
    with pytest.raises(APIError):
        trading.get_open_position(symbol)
    # Sold 5.5211 at 99.00: 546.5889, rounded down to the cent for the seller.
    assert trading.get_account().cash == "9994.47"  # type: ignore[union-attr]


def test_fractional_orders_follow_alpacas_rules_and_fractional_trading(
    venue: Venue, market: tuple[str, Account, TradingClient]
) -> None:
    symbol, account, _ = market
    trading = client(venue, account)
    with pytest.raises(APIError) as refused:
        trading.submit_order(
            MarketOrderRequest(
                symbol=symbol, qty=0.5, side=OrderSide.BUY, time_in_force=TimeInForce.GTC
            )
        )
    assert refused.value.status_code == 422 and "day orders" in str(refused.value)
    with pytest.raises(APIError) as refused:
        trading.submit_order(
            MarketOrderRequest(
                symbol=symbol, notional=0.5, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
            )
        )
    assert refused.value.status_code == 422 and "$1.00" in str(refused.value)
    with pytest.raises(APIError) as refused:
        trading.submit_order(
            MarketOrderRequest(
                symbol=symbol,
                qty=0.5,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                order_class=OrderClass.BRACKET,
                take_profit=TakeProfitRequest(limit_price=110),
                stop_loss=StopLossRequest(stop_price=90),
            )
        )
    assert refused.value.status_code == 422 and "whole shares" in str(refused.value)

    settings = trading.get_account_configurations()
    assert settings.fractional_trading  # type: ignore[union-attr]
    settings.fractional_trading = False  # type: ignore[union-attr]
    trading.set_account_configurations(settings)  # type: ignore[arg-type]
    assert not trading.get_account_configurations().fractional_trading  # type: ignore[union-attr]
    with pytest.raises(APIError) as refused:
        trading.submit_order(
            MarketOrderRequest(
                symbol=symbol, qty=0.5, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
            )
        )
    assert refused.value.status_code == 403 and "fractional_trading" in str(refused.value)
    whole = trading.submit_order(  # whole shares of a fractionable symbol still trade
        MarketOrderRequest(symbol=symbol, qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    assert filled(trading, whole).filled_qty == "2"
    settings.fractional_trading = True  # type: ignore[union-attr]
    trading.set_account_configurations(settings)  # type: ignore[arg-type]
    half = trading.submit_order(
        MarketOrderRequest(
            symbol=symbol, qty=0.5, side=OrderSide.SELL, time_in_force=TimeInForce.DAY
        )
    )
    assert filled(trading, half).filled_qty == "0.5"
    assert trading.get_open_position(symbol).qty == "1.5"  # type: ignore[union-attr]
