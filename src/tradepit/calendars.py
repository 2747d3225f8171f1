"""The calendars `serve --calendar` names, made into `tradepit.domain.session` calendars.

`nyse` comes from `exchange_calendars` (its XNYS: hours, holidays, early closes), imported
only when asked for: it brings pandas, half a second to load, which a 24x7 venue never needs.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tradepit.domain.session import AlwaysOpen, Calendar, SessionDay, TradingCalendar

__all__ = ["CALENDARS", "load_calendar"]

CALENDARS = ("24x7", "nyse")
EASTERN = ZoneInfo("America/New_York")
_NS = 1_000_000_000
_PRE_MARKET_OPENS = time(4, 0)  # Alpaca's pre-market, US/Eastern
_AFTER_HOURS = timedelta(hours=4)  # after the close: to 20:00, or 17:00 after an early close
_YEARS_BACK = 2
_YEARS_AHEAD = 1  # exchange_calendars knows about a year of future holidays


def load_calendar(name: str, today: date | None = None) -> Calendar:
    """The calendar `name` (one of CALENDARS), around `today` (default: the real date)."""
    if name == "24x7":
        return AlwaysOpen()
    if name == "nyse":
        return nyse(today or date.today())
    raise ValueError(f"unknown calendar {name!r}: one of {', '.join(CALENDARS)}")


def nyse(today: date) -> TradingCalendar:
    import exchange_calendars  # noqa: PLC0415 (a heavy import, for this calendar only)

    first = date(today.year - _YEARS_BACK, 1, 1)
    last = date(today.year + _YEARS_AHEAD, 12, 31)
    xnys = exchange_calendars.get_calendar("XNYS", start=first.isoformat(), end=last.isoformat())
    days = []
    for session, opens, closes in zip(xnys.sessions, xnys.opens, xnys.closes, strict=True):
        day = session.date()
        pre_open = datetime.combine(day, _PRE_MARKET_OPENS, tzinfo=EASTERN)
        open_ns, close_ns = int(opens.value), int(closes.value)
        days.append(
            SessionDay(
                day,
                int(pre_open.timestamp()) * _NS,
                open_ns,
                close_ns,
                close_ns + int(_AFTER_HOURS.total_seconds()) * _NS,
            )
        )
    return TradingCalendar("nyse", days)
