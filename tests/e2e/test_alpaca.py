"""alpaca-py itself against a real `tradepit serve`: every Trading API call it makes, two
accounts trading with each other, their fills and cancels on the TradingStream, and cash and
positions exact to the cent afterwards."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    ClosePositionRequest,
    CreateWatchlistRequest,
    GetAssetsRequest,
    GetCalendarRequest,
    GetOrdersRequest,
    GetPortfolioHistoryRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    TrailingStopOrderRequest,
    UpdateWatchlistRequest,
)
from alpaca_clients import StreamListener, client
from live import Account, Venue, eventually


@pytest.fixture(params=["server", "cluster"])
def venue(request: pytest.FixtureRequest) -> Venue:
    """Each test twice: on the venue's own Valkey, and on a Valkey Cluster (`cluster_venue`)."""
    shared: Venue = request.getfixturevalue(f"{request.param}_venue")
    return shared


@pytest.fixture
def pair(venue: Venue) -> Iterator[tuple[str, Account, Account]]:
    """A fresh symbol, a buyer with cash and a seller with 100 shares and no cash."""
    symbol = venue.symbol("100.00")
    buyer = venue.account("10000.00")
    seller = venue.account("0", **{symbol: "100"})
    yield symbol, buyer, seller


def test_two_accounts_trade_and_the_stream_tells_both(
    venue: Venue, pair: tuple[str, Account, Account]
) -> None:
    symbol, buyer, seller = pair
    buying, selling = client(venue, buyer), client(venue, seller)
    with (
        StreamListener(venue, buyer) as buyer_stream,
        StreamListener(venue, seller) as seller_stream,
    ):
        ask = selling.submit_order(
            LimitOrderRequest(
                symbol=symbol,
                qty=10,
                side=OrderSide.SELL,
                time_in_force=TimeInForce.GTC,
                limit_price=101.25,
                client_order_id="ask-1",
            )
        )
        assert ask.status == OrderStatus.ACCEPTED
        assert ask.qty == "10" and ask.limit_price == "101.25"
        bid = buying.submit_order(
            LimitOrderRequest(
                symbol=symbol,
                qty=4,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                limit_price=102,
                extended_hours=True,
            )
        )
        assert bid.extended_hours is True and ask.extended_hours is False  # as sent
        assert eventually(lambda: buying.get_order_by_id(bid.id).status == OrderStatus.FILLED)
        assert buying.get_order_by_id(bid.id).extended_hours is True
        ask_now = selling.get_order_by_id(ask.id)
        assert ask_now.status == OrderStatus.PARTIALLY_FILLED
        assert ask_now.filled_qty == "4" and ask_now.filled_avg_price == "101.25"

        selling.cancel_order_by_id(ask.id)
        assert eventually(lambda: selling.get_order_by_id(ask.id).status == OrderStatus.CANCELED)
        assert eventually(lambda: "canceled" in seller_stream.events(ask.id))
        assert eventually(lambda: "fill" in buyer_stream.events(bid.id))

    assert buyer_stream.events(bid.id) == ["new", "fill"]
    assert seller_stream.events(ask.id) == ["new", "partial_fill", "pending_cancel", "canceled"]
    fill = next(update for update in buyer_stream.updates if update.event == "fill")
    assert (fill.price, fill.qty, fill.position_qty) == (101.25, 4, 4)
    assert fill.execution_id is not None
    assert fill.order.filled_avg_price == "101.25"
    assert fill.order.extended_hours is True
    assert not any(update.order.id == ask.id for update in buyer_stream.updates)

    # Exact to the cent: 4 x 101.25 = 405.00 moved, shares moved, reservations released.
    buyer_account, seller_account = buying.get_account(), selling.get_account()
    assert buyer_account.cash == "9595.00" and buyer_account.buying_power == "9595.00"
    assert seller_account.cash == "405.00"
    [position] = buying.get_all_positions()
    assert (position.symbol, position.qty, position.cost_basis) == (symbol, "4", "405.00")
    assert position.avg_entry_price == "101.25" and position.current_price == "101.25"
    assert position.market_value == "405.00" and position.unrealized_pl == "0.00"
    assert selling.get_open_position(symbol).qty == "96"
    assert buyer_account.equity == "10000.00"


def test_orders_listed_found_replaced_and_canceled(venue: Venue) -> None:
    symbol = venue.symbol("50.00")
    trader = client(venue, venue.account("100000.00"))
    placed = [
        trader.submit_order(
            LimitOrderRequest(
                symbol=symbol,
                qty=1 + index,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                limit_price=48 + index / 4,
                client_order_id=f"bid-{index}",
            )
        )
        for index in range(4)
    ]
    eventually(lambda: all(trader.get_order_by_id(o.id).status == "new" for o in placed))
    open_orders = trader.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))
    assert [order.id for order in open_orders] == [order.id for order in reversed(placed)]
    ascending = trader.get_orders(GetOrdersRequest(direction="asc", limit=2))
    assert [order.id for order in ascending] == [placed[0].id, placed[1].id]
    assert trader.get_orders(GetOrdersRequest(symbols=["NOPE"])) == []
    assert trader.get_orders(GetOrdersRequest(side=OrderSide.SELL)) == []
    assert trader.get_order_by_client_id("bid-2").id == placed[2].id

    replacement = trader.replace_order_by_id(
        placed[0].id, ReplaceOrderRequest(qty=5, limit_price=47.5, client_order_id="bid-0b")
    )
    assert replacement.replaces == placed[0].id
    assert (replacement.qty, replacement.limit_price) == ("5", "47.50")
    assert eventually(lambda: trader.get_order_by_id(placed[0].id).status == "replaced")
    old = trader.get_order_by_id(placed[0].id)
    assert old.replaced_by == replacement.id
    # As Alpaca allows: a replace may change the time in force (of those that rest).
    day = trader.replace_order_by_id(placed[1].id, ReplaceOrderRequest(time_in_force="day"))
    assert (day.time_in_force, day.qty, day.limit_price) == (TimeInForce.DAY, "2", "48.25")
    assert eventually(lambda: trader.get_order_by_id(day.id).status == "new")
    assert trader.get_order_by_id(day.id).time_in_force == TimeInForce.DAY
    with pytest.raises(APIError) as refused:
        trader.replace_order_by_id(day.id, ReplaceOrderRequest(time_in_force="ioc"))
    assert refused.value.status_code == 422

    responses = trader.cancel_orders()
    assert {response.status for response in responses} == {200}
    assert len(responses) == 4
    eventually(lambda: trader.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN)) == [])
    closed = trader.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED))
    assert {order.status for order in closed} == {OrderStatus.CANCELED, OrderStatus.REPLACED}
    assert len(trader.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))) == 6
    assert eventually(lambda: trader.get_account().buying_power == "100000.00")


def test_market_orders_notional_and_closing_positions(
    venue: Venue, pair: tuple[str, Account, Account]
) -> None:
    symbol, buyer, seller = pair
    buying, selling = client(venue, buyer), client(venue, seller)
    selling.submit_order(
        LimitOrderRequest(
            symbol=symbol,
            qty=50,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            limit_price=100,
        )
    )
    market = buying.submit_order(
        MarketOrderRequest(symbol=symbol, qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    assert eventually(lambda: buying.get_order_by_id(market.id).status == OrderStatus.FILLED)
    # $1,000 at 100.00 buys 10 shares, and never more than $1,000's worth.
    notional = buying.submit_order(
        MarketOrderRequest(
            symbol=symbol, notional=1000, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
        )
    )
    assert notional.qty == "10"
    # Echoed as sent, exactly, in the answer and in the record.
    assert notional.notional == "1000.00" and market.notional is None
    assert buying.get_order_by_id(notional.id).notional == "1000.00"
    assert buying.get_order_by_id(market.id).notional is None
    assert eventually(lambda: buying.get_open_position(symbol).qty == "13")
    assert eventually(lambda: buying.get_account().cash == "8700.00")

    # Close part of the position into a resting bid, then the rest.
    bid_account = venue.account("10000.00")
    bidding = client(venue, bid_account)
    bidding.submit_order(
        LimitOrderRequest(
            symbol=symbol,
            qty=20,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=99,
        )
    )
    closing = buying.close_position(symbol, ClosePositionRequest(qty="3"))
    assert (closing.side, closing.qty, closing.type) == (OrderSide.SELL, "3", "market")
    assert eventually(lambda: buying.get_open_position(symbol).qty == "10")
    half = buying.close_position(symbol, ClosePositionRequest(percentage="50"))
    assert half.qty == "5"
    assert eventually(lambda: buying.get_open_position(symbol).qty == "5")
    results = buying.close_all_positions(cancel_orders=True)
    assert [result.symbol for result in results] == [symbol]
    assert eventually(lambda: buying.get_all_positions() == [])
    # 13 bought at 100.00; 13 sold at 99.00.
    assert eventually(lambda: buying.get_account().cash == str(Decimal("10000.00") - 13))


def test_refusals_are_alpaca_errors(venue: Venue, pair: tuple[str, Account, Account]) -> None:
    symbol, buyer, seller = pair
    buying, selling = client(venue, buyer), client(venue, seller)
    with pytest.raises(APIError) as refused:
        buying.submit_order(
            LimitOrderRequest(
                symbol=symbol,
                qty=1000,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                limit_price=100,
            )
        )
    assert refused.value.status_code == 403
    assert refused.value.code == 40310000
    assert "insufficient buying power" in refused.value.message
    with pytest.raises(APIError) as refused:
        selling.submit_order(
            LimitOrderRequest(
                symbol=symbol,
                qty=101,
                side=OrderSide.SELL,
                time_in_force=TimeInForce.GTC,
                limit_price=100,
            )
        )
    assert refused.value.status_code == 403
    with pytest.raises(APIError) as refused:
        buying.submit_order(
            LimitOrderRequest(
                symbol=symbol,
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                limit_price=100.001,
            )
        )
    assert refused.value.status_code == 422 and "multiple of 0.01" in refused.value.message
    with pytest.raises(APIError) as refused:
        buying.submit_order(
            LimitOrderRequest(
                symbol="NOSUCH",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                limit_price=1,
            )
        )
    assert refused.value.status_code == 404
    with pytest.raises(APIError) as refused:
        buying.get_order_by_id("00000000-0000-4000-8000-000000000001")
    assert refused.value.status_code == 404
    bad = TradingClient(buyer.key_id, "wrong", paper=True, url_override=venue.url)
    with pytest.raises(APIError) as refused:
        bad.get_account()
    assert refused.value.status_code == 401 and refused.value.code == 40110000
    assert buying.get_account().cash == "10000.00"


def test_an_account_sees_only_its_own_orders(
    venue: Venue, pair: tuple[str, Account, Account]
) -> None:
    symbol, buyer, seller = pair
    buying, selling = client(venue, buyer), client(venue, seller)
    order = buying.submit_order(
        StopLimitOrderRequest(
            symbol=symbol,
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=105,
            stop_price=104,
        )
    )
    for call in (
        lambda: selling.get_order_by_id(order.id),
        lambda: selling.cancel_order_by_id(order.id),
        lambda: selling.replace_order_by_id(order.id, ReplaceOrderRequest(qty=2)),
    ):
        with pytest.raises(APIError) as refused:
            call()
        assert refused.value.status_code == 404
    assert selling.get_orders() == []
    assert selling.cancel_orders() == []
    assert eventually(lambda: buying.get_order_by_id(order.id).status == "new")


def test_reference_calls(venue: Venue, pair: tuple[str, Account, Account]) -> None:
    symbol, buyer, _seller = pair
    trader = client(venue, buyer)
    assets = trader.get_all_assets(GetAssetsRequest())
    mine = next(asset for asset in assets if asset.symbol == symbol)
    assert (
        mine.tradable
        and not mine.fractionable
        and str(mine.exchange) in ("OTC", "AssetExchange.OTC")
    )
    assert trader.get_asset(symbol).id == mine.id == trader.get_asset(str(mine.id)).id
    clock = trader.get_clock()
    assert clock.is_open and clock.next_close > clock.timestamp
    days = trader.get_calendar(GetCalendarRequest(start="2026-11-25", end="2026-11-27"))
    assert [day.date.isoformat() for day in days] == ["2026-11-25", "2026-11-26", "2026-11-27"]

    watchlist = trader.create_watchlist(CreateWatchlistRequest(name="mine", symbols=[symbol]))
    assert [asset.symbol for asset in watchlist.assets] == [symbol]
    trader.update_watchlist_by_id(watchlist.id, UpdateWatchlistRequest(name="renamed"))
    trader.add_asset_to_watchlist_by_id(watchlist.id, "ACME")
    trader.remove_asset_from_watchlist_by_id(watchlist.id, symbol)
    [found] = trader.get_watchlists()
    assert found.name == "renamed" and [asset.symbol for asset in found.assets] == ["ACME"]
    trader.delete_watchlist_by_id(watchlist.id)
    assert trader.get_watchlists() == []

    settings = trader.get_account_configurations()
    settings.suspend_trade = True
    trader.set_account_configurations(settings)
    assert trader.get_account_configurations().suspend_trade
    with pytest.raises(APIError) as refused:
        trader.submit_order(
            LimitOrderRequest(
                symbol=symbol,
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                limit_price=99,
            )
        )
    assert refused.value.status_code == 403

    history = trader.get_portfolio_history(GetPortfolioHistoryRequest(period="1W"))
    assert history.equity[-1] == 10000.0 and history.timeframe == "1D"


def test_activities_list_fills(venue: Venue, pair: tuple[str, Account, Account]) -> None:
    symbol, buyer, seller = pair
    client(venue, seller).submit_order(
        LimitOrderRequest(
            symbol=symbol,
            qty=5,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            limit_price=100,
        )
    )
    buying = client(venue, buyer)
    for _ in range(3):
        buying.submit_order(
            MarketOrderRequest(
                symbol=symbol, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
            )
        )

    def fills() -> list[dict[str, Any]]:
        response = httpx.get(
            venue.url + "/v2/account/activities/FILL", headers=buyer.headers, timeout=10
        )
        assert response.status_code == 200
        result: list[dict[str, Any]] = response.json()
        return result

    found = eventually(lambda: len(fills()) == 3 and fills())
    assert [(fill["side"], fill["qty"], fill["price"]) for fill in found] == [
        ("buy", "1", "100.00")
    ] * 3
    first_page = httpx.get(
        venue.url + "/v2/account/activities", params={"page_size": 2}, headers=buyer.headers
    ).json()
    rest = httpx.get(
        venue.url + "/v2/account/activities",
        params={"page_size": 2, "page_token": first_page[-1]["id"]},
        headers=buyer.headers,
    ).json()
    assert [fill["id"] for fill in first_page + rest] == [fill["id"] for fill in found]
    assert [(fill["type"], fill["cum_qty"], fill["leaves_qty"]) for fill in found] == [
        ("fill", "1", "0")
    ] * 3
    assert {fill["order_status"] for fill in found} == {"filled"}
    assert len({fill["order_id"] for fill in found}) == 3

    sold = httpx.get(
        venue.url + "/v2/account/activities/FILL", headers=seller.headers, timeout=10
    ).json()
    assert [
        (fill["type"], fill["side"], fill["cum_qty"], fill["leaves_qty"], fill["order_status"])
        for fill in sold
    ] == [  # newest first, Alpaca's default
        ("partial_fill", "sell", "3", "2", "partially_filled"),
        ("partial_fill", "sell", "2", "3", "partially_filled"),
        ("partial_fill", "sell", "1", "4", "partially_filled"),
    ]
    # The two sides of a trade are two executions.
    assert not {fill["id"] for fill in sold} & {fill["id"] for fill in found}


def test_an_unchanged_bot_trades_through_the_shim(venue: Venue) -> None:
    account = venue.account("1000.00")
    bot = (
        "from alpaca.trading.client import TradingClient\n"
        f"client = TradingClient({account.key_id!r}, {account.secret_key!r}, paper=True)\n"
        "print(client.get_account().cash)\n"
    )
    shim = subprocess.run(
        [sys.executable, "-m", "tradepit.cli", "shim"], capture_output=True, text=True, check=True
    ).stdout.strip()
    env = {**os.environ, "PYTHONPATH": shim, "TRADEPIT_URL": venue.url}
    done = subprocess.run(
        [sys.executable, "-c", bot],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.stdout.strip() == "1000.00", done.stderr


def test_streams_speak_msgpack_when_asked(venue: Venue) -> None:
    import msgspec  # noqa: PLC0415
    import websockets  # noqa: PLC0415

    account = venue.account("1000.00")

    async def talk() -> list[Any]:
        url = venue.url.replace("http", "ws") + "/stream"
        headers = {"Content-Type": "application/msgpack"}
        async with websockets.connect(url, additional_headers=headers) as socket:
            auth = {"action": "auth", "key": account.key_id, "secret": account.secret_key}
            await socket.send(msgspec.msgpack.encode(auth))
            first = msgspec.msgpack.decode(await socket.recv())
            listen = {"action": "listen", "data": {"streams": ["trade_updates"]}}
            await socket.send(msgspec.msgpack.encode(listen))
            second = msgspec.msgpack.decode(await socket.recv())
            return [first, second]

    first, second = asyncio.run(talk())
    assert first["data"]["status"] == "authorized"
    assert second == {"stream": "listening", "data": {"streams": ["trade_updates"]}}


def test_opening_shares_cost_what_they_are_worth(venue: Venue) -> None:
    symbol = venue.symbol("42.50")
    account = venue.account("0", **{symbol: "10"})
    position = client(venue, account).get_open_position(symbol)
    assert Decimal(position.avg_entry_price) == Decimal("42.50")
    assert Decimal(position.cost_basis) == Decimal("425.00")
    assert position.unrealized_pl is not None and Decimal(position.unrealized_pl) == 0


def test_a_passive_limit_far_outside_the_band_rests_and_a_marketable_one_is_refused(
    venue: Venue, pair: tuple[str, Account, Account]
) -> None:
    symbol, buyer, seller = pair  # trading near 100.00: a band of 90.00..110.00
    buying, selling = client(venue, buyer), client(venue, seller)
    with StreamListener(venue, buyer) as buyer_stream:
        patient = buying.submit_order(
            LimitOrderRequest(
                symbol=symbol,
                qty=5,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                limit_price=1,
            )
        )
        high_ask = selling.submit_order(
            LimitOrderRequest(
                symbol=symbol,
                qty=5,
                side=OrderSide.SELL,
                time_in_force=TimeInForce.GTC,
                limit_price=150,
            )
        )
        assert eventually(lambda: buying.get_order_by_id(patient.id).status == OrderStatus.NEW)
        assert eventually(lambda: selling.get_order_by_id(high_ask.id).status == OrderStatus.NEW)
        fat_finger = buying.submit_order(
            LimitOrderRequest(
                symbol=symbol,
                qty=5,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                limit_price=160,
            )
        )
        assert fat_finger.status == OrderStatus.ACCEPTED  # the book, not the gateway, refuses
        assert eventually(
            lambda: buying.get_order_by_id(fat_finger.id).status == OrderStatus.REJECTED
        )
        assert eventually(lambda: "rejected" in buyer_stream.events(fat_finger.id))
    assert selling.get_order_by_id(high_ask.id).filled_qty == "0"
    assert buying.get_order_by_id(patient.id).status == OrderStatus.NEW
    assert buying.get_account().buying_power == "9995.00"  # 5 x 1.00 held for the patient bid


def test_trailing_stops_follow_the_trades_trigger_and_fill(
    venue: Venue, pair: tuple[str, Account, Account]
) -> None:
    symbol, buyer, seller = pair  # listed at 100.00: the first mark before any trade
    buying, selling = client(venue, buyer), client(venue, seller)

    def trade(price: float, qty: int = 1) -> None:
        """The seller's ask at `price`, lifted by the buyer, both waited for."""
        ask = selling.submit_order(
            LimitOrderRequest(
                symbol=symbol,
                qty=qty,
                side=OrderSide.SELL,
                time_in_force=TimeInForce.GTC,
                limit_price=price,
            )
        )
        buying.submit_order(
            LimitOrderRequest(
                symbol=symbol,
                qty=qty,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                limit_price=price,
            )
        )
        assert eventually(lambda: selling.get_order_by_id(ask.id).status == OrderStatus.FILLED)

    with StreamListener(venue, seller) as seller_stream:
        stop = selling.submit_order(
            TrailingStopOrderRequest(
                symbol=symbol,
                qty=5,
                side=OrderSide.SELL,
                time_in_force=TimeInForce.GTC,
                trail_percent=5,
            )
        )
        assert stop.status == OrderStatus.ACCEPTED and stop.type == "trailing_stop"
        assert stop.trail_percent == "5" and stop.trail_price is None

        def seen(hwm: str, stop_price: str) -> bool:
            order = selling.get_order_by_id(stop.id)
            return (order.hwm, order.stop_price) == (hwm, stop_price)

        assert eventually(lambda: seen("100.00", "95.00"))
        trade(104)
        assert eventually(lambda: seen("104.00", "98.80"))
        trade(103)  # below the high: nothing moves
        assert selling.get_order_by_id(stop.id).hwm == "104.00"

        replaced = selling.replace_order_by_id(stop.id, ReplaceOrderRequest(trail=2))
        assert replaced.trail_percent == "2" and replaced.replaces == stop.id
        assert eventually(lambda: selling.get_order_by_id(replaced.id).stop_price == "101.92")
        assert selling.get_order_by_id(replaced.id).hwm == "104.00"

        bid = buying.submit_order(
            LimitOrderRequest(
                symbol=symbol,
                qty=10,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                limit_price=101,
            )
        )
        selling.submit_order(  # trades at 101, through the trigger
            LimitOrderRequest(
                symbol=symbol,
                qty=1,
                side=OrderSide.SELL,
                time_in_force=TimeInForce.GTC,
                limit_price=101,
            )
        )
        assert eventually(lambda: selling.get_order_by_id(replaced.id).status == OrderStatus.FILLED)
        filled = selling.get_order_by_id(replaced.id)
        assert (filled.filled_qty, filled.filled_avg_price) == ("5", "101.00")
        assert buying.get_order_by_id(bid.id).filled_qty == "6"
        assert eventually(lambda: "fill" in seller_stream.events(replaced.id))
    # No trade update per move of the mark: Alpaca sends none.
    assert seller_stream.events(stop.id) == ["new", "pending_replace", "replaced"]
    assert seller_stream.events(replaced.id) == ["new", "fill"]

    # A buy, by a price: it trails the low, and triggers a market buy.
    buying.cancel_order_by_id(bid.id)
    rise = buying.submit_order(
        TrailingStopOrderRequest(
            symbol=symbol,
            qty=2,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            trail_price=3,
        )
    )
    assert rise.trail_price == "3.00" and rise.trail_percent is None
    assert eventually(lambda: buying.get_order_by_id(rise.id).stop_price == "104.00")
    assert buying.get_order_by_id(rise.id).hwm == "101.00"
    trade(100)
    assert eventually(lambda: buying.get_order_by_id(rise.id).stop_price == "103.00")
    selling.submit_order(
        LimitOrderRequest(
            symbol=symbol,
            qty=3,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            limit_price=103,
        )
    )
    buying.submit_order(
        LimitOrderRequest(
            symbol=symbol, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=103
        )
    )
    assert eventually(lambda: buying.get_order_by_id(rise.id).status == OrderStatus.FILLED)
    assert buying.get_order_by_id(rise.id).filled_avg_price == "103.00"
    with pytest.raises(APIError) as refused:
        buying.submit_order(
            TrailingStopOrderRequest(
                symbol=symbol,
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.IOC,
                trail_price=3,
            )
        )
    assert refused.value.status_code == 422
