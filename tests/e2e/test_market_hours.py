"""The venue's calendar and clock through alpaca-py: a gateway run with `--calendar nyse` and a
venue clock set to a known moment answers `get_clock` and `get_calendar` as the NYSE's calendar
(exchange_calendars) has it, early closes, holidays and extended hours included; the default
24x7 calendar is always open."""

from __future__ import annotations

from datetime import UTC, date, datetime

import exchange_calendars
import pandas as pd
import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import GetCalendarRequest
from alpaca_clients import client
from live import Venue, another_gateway


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
