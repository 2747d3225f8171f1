"""The venue's calendar and clock through alpaca-py: a gateway run with `--calendar nyse` and a
venue clock set to a known moment answers `get_clock` and `get_calendar` as the NYSE's calendar
(exchange_calendars) has it, early closes, holidays and extended hours included; the default
24x7 calendar is always open."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import exchange_calendars
import pandas as pd
import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.models import Order
from alpaca.trading.requests import GetCalendarRequest, LimitOrderRequest
from alpaca_clients import client
from conftest import serving
from live import Venue, another_gateway, eventually


@pytest.fixture(scope="module")
def xnys() -> exchange_calendars.ExchangeCalendar:
    return exchange_calendars.get_calendar("XNYS", start="2026-01-01", end="2027-12-31")


def trading_at(venue: Venue, url: str) -> TradingClient:
    account = venue.account("1000.00")
    return TradingClient(account.key_id, account.secret_key, paper=True, url_override=url)


@pytest.mark.parametrize(
    "moment",
    [
        "2026-11-27T17:59:00Z",  # the day after Thanksgiving, a minute before its early close
        "2026-11-26T15:00:00Z",  # Thanksgiving: closed
        "2026-12-07T14:29:00Z",  # a Monday, a minute before the open
        "2026-12-05T12:00:00Z",  # a Saturday
    ],
)
def test_the_clock_follows_the_nyse_calendar(
    venue: Venue, xnys: exchange_calendars.ExchangeCalendar, moment: str
) -> None:
    flags = ("--calendar", "nyse", "--clock-start", moment, "--clock-speed", "1")
    with another_gateway(venue, *flags) as url:
        clock = trading_at(venue, url).get_clock()
    now = pd.Timestamp(moment)
    assert clock.is_open == xnys.is_open_on_minute(now)  # type: ignore[union-attr]
    assert clock.next_open == xnys.next_open(now).to_pydatetime()  # type: ignore[union-attr]
    assert clock.next_close == xnys.next_close(now).to_pydatetime()  # type: ignore[union-attr]
    seconds = (clock.timestamp - datetime.fromisoformat(moment)).total_seconds()  # type: ignore[union-attr]
    assert 0 <= seconds < 60  # the venue clock started at `moment` and runs at real speed
    assert clock.timestamp.utcoffset().total_seconds() == -5 * 3600  # type: ignore[union-attr]


def test_the_calendar_has_the_nyse_days_and_hours(
    venue: Venue, xnys: exchange_calendars.ExchangeCalendar
) -> None:
    flags = ("--calendar", "nyse", "--clock-start", "2026-11-20T12:00:00Z")
    with another_gateway(venue, *flags) as url:
        days = trading_at(venue, url).get_calendar(
            GetCalendarRequest(start=date(2026, 11, 20), end=date(2026, 12, 31))
        )
    sessions = xnys.sessions_in_range("2026-11-20", "2026-12-31")
    assert [day.date for day in days] == [session.date() for session in sessions]  # type: ignore[union-attr]
    by_date = {day.date: day for day in days}  # type: ignore[union-attr]
    early = by_date[date(2026, 11, 27)]
    assert (early.open.hour, early.open.minute, early.close.hour) == (9, 30, 13)
    assert by_date[date(2026, 12, 7)].close.hour == 16
    assert date(2026, 12, 25) not in by_date  # Christmas


def test_a_24x7_venue_is_always_open(venue: Venue) -> None:
    clock = client(venue, venue.account("1000.00")).get_clock()
    assert clock.is_open  # type: ignore[union-attr]
    midnight = datetime.combine(datetime.now(UTC).date(), datetime.min.time(), tzinfo=UTC)
    assert clock.next_close > midnight  # type: ignore[union-attr]


# A venue of its own on the NYSE's calendar, its clock started just before an open and run
# four times as fast: the test places its orders in the pre-market (opg ones before 09:28, as
# Alpaca takes them) and sees them through the opening auction, 45 s of real time on.
OPENS_AT = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)  # a Monday, 09:30 US/Eastern
CLOCK_START = "2026-12-07T14:27:00Z"


@pytest.fixture(scope="module")
def nyse_venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venue]:
    flags = ("--calendar", "nyse", "--clock-start", CLOCK_START, "--clock-speed", "4")
    with serving(tmp_path_factory.mktemp("nyse"), None, *flags) as venue:
        yield venue


def status_of(trading: TradingClient, order_id: object) -> OrderStatus:
    found = trading.get_order_by_id(str(order_id))
    assert isinstance(found, Order)
    return found.status


def order(trading: TradingClient, side: OrderSide, qty: int, price: float, **extra: Any) -> Order:
    placed = trading.submit_order(
        LimitOrderRequest(
            symbol=extra.pop("symbol"),
            qty=qty,
            side=side,
            time_in_force=extra.pop("time_in_force", TimeInForce.DAY),
            limit_price=price,
            **extra,
        )
    )
    assert isinstance(placed, Order)
    return placed


def test_opg_orders_fill_in_the_opening_auction_at_the_volume_maximising_price(
    nyse_venue: Venue,
) -> None:
    venue = nyse_venue
    symbol = venue.symbol("100.00")
    buyer, low_bidder, seller = (
        client(venue, venue.account("10000.00")),
        client(venue, venue.account("10000.00")),
        client(venue, venue.account("0", **{symbol: "100"})),
    )
    clock = buyer.get_clock()
    assert not clock.is_open and clock.next_open == OPENS_AT, (  # type: ignore[union-attr]
        "the venue took too long to start: the open went by"
    )
    opg = order(buyer, OrderSide.BUY, 10, 102, symbol=symbol, time_in_force=TimeInForce.OPG)
    too_low = order(buyer, OrderSide.BUY, 3, 95, symbol=symbol, time_in_force=TimeInForce.OPG)
    # Extended-hours limits trade in the pre-market at once; the rest wait for the open.
    early = order(seller, OrderSide.SELL, 1, 98, symbol=symbol, extended_hours=True)
    early_bid = order(low_bidder, OrderSide.BUY, 1, 98, symbol=symbol, extended_hours=True)
    assert eventually(lambda: status_of(low_bidder, early_bid.id) == OrderStatus.FILLED)
    day_bid = order(low_bidder, OrderSide.BUY, 5, 100, symbol=symbol)
    low_ask = order(seller, OrderSide.SELL, 8, 99, symbol=symbol)
    high_ask = order(seller, OrderSide.SELL, 6, 101, symbol=symbol)
    assert {status_of(buyer, o.id) for o in (opg, too_low)} == {OrderStatus.ACCEPTED}
    assert status_of(seller, low_ask.id) == OrderStatus.ACCEPTED
    assert status_of(seller, early.id) == OrderStatus.FILLED

    assert eventually(lambda: buyer.get_clock().is_open, 90)  # type: ignore[union-attr]
    assert eventually(lambda: status_of(buyer, opg.id) == OrderStatus.FILLED)
    # Demand 10 and supply 14 from 101 to 102 trade the most; 101 is nearer the last trade.
    filled = buyer.get_order_by_id(str(opg.id))
    assert (filled.filled_qty, filled.filled_avg_price) == ("10", "101.00")  # type: ignore[union-attr]
    assert status_of(buyer, too_low.id) == OrderStatus.EXPIRED
    assert status_of(seller, low_ask.id) == OrderStatus.FILLED
    assert seller.get_order_by_id(str(high_ask.id)).filled_qty == "2"  # type: ignore[union-attr]
    assert status_of(low_bidder, day_bid.id) == OrderStatus.NEW
    seller_cash = seller.get_account().cash  # type: ignore[union-attr]
    assert seller_cash == "1108.00"  # 1 at 98 before the open, 10 at 101 in the auction


def test_auction_orders_are_refused_on_a_24x7_venue(venue: Venue) -> None:
    symbol = venue.symbol("100.00")
    trading = client(venue, venue.account("1000.00"))
    with pytest.raises(APIError) as refused:
        order(trading, OrderSide.BUY, 1, 100, symbol=symbol, time_in_force=TimeInForce.OPG)
    assert refused.value.status_code == 422 and "24x7" in str(refused.value)
