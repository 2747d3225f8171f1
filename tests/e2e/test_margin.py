"""Margin and short selling through alpaca-py against a real server: a cash account's short
sale refused, the operator's multiplier, the margin fields exact (and parsed by alpaca-py's
`TradeAccount`), a short sale and its cover with the position's P&L exact, a margin call as the
price rises that the account and the operator see, and covering in the call."""

from __future__ import annotations

from decimal import Decimal
from itertools import count

import httpx
import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    OrderSide,
    OrderStatus,
    PositionIntent,
    PositionSide,
    TimeInForce,
)
from alpaca.trading.models import Order, Position, TradeAccount
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest
from alpaca_clients import client
from live import Account, Venue, eventually

_names = count(1)


@pytest.fixture(params=["server", "cluster"])
def venue(request: pytest.FixtureRequest) -> Venue:
    shared: Venue = request.getfixturevalue(f"{request.param}_venue")
    return shared


def _symbol(venue: Venue, shortable: bool = True) -> str:
    name = f"MG{next(_names)}"
    venue.admin(
        "POST",
        "/admin/symbols",
        {"symbol": name, "reference_price": "100.00", "shortable": shortable},
    )
    return name


def _margin(venue: Venue, account: Account, multiplier: int) -> None:
    assert _set_margin(venue, account, multiplier).status_code == 200


def _limit(trading: TradingClient, symbol: str, side: OrderSide, qty: int, price: str) -> Order:
    order = trading.submit_order(
        LimitOrderRequest(
            symbol=symbol, qty=qty, side=side, time_in_force=TimeInForce.GTC, limit_price=price
        )
    )
    assert isinstance(order, Order)
    return order


def _market(trading: TradingClient, symbol: str, side: OrderSide, qty: int) -> Order:
    order = trading.submit_order(
        MarketOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force=TimeInForce.DAY)
    )
    assert isinstance(order, Order)

    def done() -> Order | None:
        found = trading.get_order_by_id(str(order.id))
        assert isinstance(found, Order)
        return found if found.status == OrderStatus.FILLED else None

    filled = eventually(done)
    assert filled is not None, f"order {order.id} did not fill"
    return filled


def _account(trading: TradingClient) -> TradeAccount:
    account = trading.get_account()
    assert isinstance(account, TradeAccount)
    return account


def _trade_at(venue: Venue, symbol: str, price: str) -> None:
    """Two dealers trade one share at `price`: the symbol's last trade, its price."""
    seller = client(venue, venue.account("0", **{symbol: "10"}))
    buyer = client(venue, venue.account("10000.00"))
    _limit(seller, symbol, OrderSide.SELL, 1, price)
    bought = _limit(buyer, symbol, OrderSide.BUY, 1, price)
    eventually(lambda: buyer.get_order_by_id(str(bought.id)).status == OrderStatus.FILLED)  # type: ignore[union-attr]


def test_a_cash_account_cannot_sell_short(venue: Venue) -> None:
    symbol = _symbol(venue)
    trading = client(venue, venue.account("10000.00"))
    account = _account(trading)
    assert account.multiplier == "1" and not account.shorting_enabled
    with pytest.raises(APIError) as refused:
        trading.submit_order(
            MarketOrderRequest(
                symbol=symbol, qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY
            )
        )
    assert refused.value.status_code == 403
    assert "insufficient qty" in str(refused.value)


def test_a_short_sale_and_its_cover(venue: Venue) -> None:
    symbol = _symbol(venue)
    asset = client(venue, venue.account()).get_asset(symbol)
    assert asset.shortable and asset.easy_to_borrow  # type: ignore[union-attr]
    dealer = client(venue, venue.account("100000.00", **{symbol: "1000"}))
    _limit(dealer, symbol, OrderSide.BUY, 100, "99.00")
    _limit(dealer, symbol, OrderSide.SELL, 100, "100.00")
    owner = venue.account("10000.00")
    _margin(venue, owner, 2)
    trading = client(venue, owner)
    account = _account(trading)
    assert account.multiplier == "2" and account.shorting_enabled
    assert Decimal(account.buying_power or 0) == Decimal("20000")
    assert Decimal(account.regt_buying_power or 0) == Decimal("20000")

    sold = _market(trading, symbol, OrderSide.SELL, 10)
    assert sold.position_intent == PositionIntent.SELL_TO_OPEN
    position = trading.get_open_position(symbol)
    assert isinstance(position, Position)
    assert position.side == PositionSide.SHORT
    assert Decimal(position.qty) == -10
    assert Decimal(position.market_value or 0) == Decimal("-990")
    assert Decimal(position.cost_basis) == Decimal("-990")
    assert Decimal(position.avg_entry_price) == Decimal("99")
    account = _account(trading)
    assert Decimal(account.cash or 0) == Decimal("10990")
    assert Decimal(account.short_market_value or 0) == Decimal("-990")
    assert Decimal(account.equity or 0) == Decimal("10000")
    assert Decimal(account.initial_margin or 0) == Decimal("495")
    assert Decimal(account.maintenance_margin or 0) == Decimal("297")  # 30% over $5 a share
    assert Decimal(account.regt_buying_power or 0) == Decimal("19010")  # 2 x (10000 - 495)

    closed = trading.close_position(symbol)  # buys the 10 back, at the dealer's 100.00
    assert isinstance(closed, Order) and closed.side == OrderSide.BUY
    assert closed.position_intent == PositionIntent.BUY_TO_CLOSE
    eventually(lambda: not trading.get_all_positions())
    cover = trading.get_order_by_id(str(closed.id))
    assert cover.position_intent == PositionIntent.BUY_TO_CLOSE  # type: ignore[union-attr]
    account = _account(trading)
    assert Decimal(account.cash or 0) == Decimal("9990")  # the short lost $1 a share
    assert Decimal(account.short_market_value or 0) == 0
    assert Decimal(account.buying_power or 0) == Decimal("19980")


def test_refused_short_sales_say_why(server_venue: Venue) -> None:
    venue = server_venue
    locked = _symbol(venue, shortable=False)
    owner = venue.account("10000.00")
    _margin(venue, owner, 2)
    trading = client(venue, owner)
    assert not trading.get_asset(locked).shortable  # type: ignore[union-attr]
    with pytest.raises(APIError) as refused:
        _limit(trading, locked, OrderSide.SELL, 1, "100.00")
    assert refused.value.status_code == 403 and "not shortable" in str(refused.value)
    symbol = _symbol(venue)
    with pytest.raises(APIError) as refused:
        _limit(trading, symbol, OrderSide.SELL, 201, "100.00")  # $20,100 of $20,000
    assert refused.value.status_code == 403 and "buying power" in str(refused.value)
    _limit(trading, symbol, OrderSide.SELL, 200, "100.00")  # exactly the buying power
    assert Decimal(_account(trading).buying_power or 0) == 0
    small = venue.account("1999.99")
    _margin(venue, small, 2)
    with pytest.raises(APIError) as refused:
        _limit(client(venue, small), symbol, OrderSide.SELL, 1, "100.00")
    assert refused.value.status_code == 403 and "not allowed to short" in str(refused.value)
    # The owner may turn shorting off; the operator, not the owner, sets the multiplier.
    headers = owner.headers
    turned_off = httpx.patch(
        venue.url + "/v2/account/configurations", json={"no_shorting": True}, headers=headers
    )
    assert turned_off.status_code == 200 and turned_off.json()["no_shorting"] is True
    with pytest.raises(APIError) as refused:
        _limit(trading, symbol, OrderSide.SELL, 1, "100.00")
    assert "no_shorting" in str(refused.value)
    raised = httpx.patch(
        venue.url + "/v2/account/configurations",
        json={"max_margin_multiplier": "4"},
        headers=headers,
    )
    assert raised.status_code == 422 and "operator" in raised.json()["message"]


def test_a_margin_call_as_the_price_rises_and_covering_in_it(server_venue: Venue) -> None:
    venue = server_venue
    symbol = _symbol(venue)
    dealer = client(venue, venue.account("100000.00", **{symbol: "1000"}))
    _limit(dealer, symbol, OrderSide.BUY, 100, "99.00")
    owner = venue.account("2500.00")
    _margin(venue, owner, 2)
    trading = client(venue, owner)
    _market(trading, symbol, OrderSide.SELL, 50)  # $4,950 of $5,000 of buying power
    body = httpx.get(venue.url + "/v2/account", headers=owner.headers).json()
    assert Decimal(body["equity"]) == Decimal("2500") and body["margin_call"] is False

    _trade_at(venue, symbol, "108.00")
    _trade_at(venue, symbol, "118.00")
    body = httpx.get(venue.url + "/v2/account", headers=owner.headers).json()
    # Cash 7,450 less the short's 5,900: equity 1,550, below 30% of 5,900 (1,770).
    assert Decimal(body["equity"]) == Decimal("1550")
    assert Decimal(body["maintenance_margin"]) == Decimal("1770")
    assert body["margin_call"] is True
    assert Decimal(body["buying_power"]) == 0
    listed = {entry["id"]: entry for entry in venue.admin("GET", "/admin/accounts")}
    assert listed[owner.id]["margin_call"] is True and listed[owner.id]["multiplier"] == 2

    # No buying power, but buying back a short needs none.
    _limit(dealer, symbol, OrderSide.SELL, 50, "118.00")
    cover = _limit(trading, symbol, OrderSide.BUY, 50, "118.00")
    eventually(lambda: trading.get_order_by_id(str(cover.id)).status == OrderStatus.FILLED)  # type: ignore[union-attr]
    body = httpx.get(venue.url + "/v2/account", headers=owner.headers).json()
    assert Decimal(body["cash"]) == Decimal("1550") and body["margin_call"] is False
    assert _set_margin(venue, owner, 1).status_code == 200
    assert _account(trading).multiplier == "1"


def _set_margin(venue: Venue, account: Account, multiplier: int) -> httpx.Response:
    return httpx.post(
        f"{venue.url}/admin/accounts/{account.id}/margin",
        json={"multiplier": multiplier},
        headers=venue.admin_headers,
    )


def test_a_cash_account_again_only_once_nothing_is_borrowed(server_venue: Venue) -> None:
    venue = server_venue
    symbol = _symbol(venue)
    dealer = client(venue, venue.account("100000.00", **{symbol: "1000"}))
    _limit(dealer, symbol, OrderSide.BUY, 100, "99.00")
    owner = venue.account("10000.00")
    _margin(venue, owner, 4)
    trading = client(venue, owner)
    account = _account(trading)
    assert Decimal(account.daytrading_buying_power or 0) == Decimal("40000")
    assert Decimal(account.buying_power or 0) == Decimal("40000")
    _market(trading, symbol, OrderSide.SELL, 5)
    refused = _set_margin(venue, owner, 1)
    assert refused.status_code == 422 and "margin_in_use" in refused.text
