"""OHLCV bars: built from trades a minute at a time, and aggregated to longer timeframes.

A bar holds integers only: prices in ticks, volume in lots, and `notional`, the sum of price x
qty in tick-lots, from which the edge derives the VWAP. Bars are keyed by the start of their
period in nanoseconds since the epoch (UTC).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import msgspec

from tradepit.errors import TradepitError

__all__ = [
    "MINUTE_NS",
    "DAY_NS",
    "Bar",
    "TimeFrame",
    "TimeFrameError",
    "parse_timeframe",
    "minute_of",
    "day_of",
    "add_trade",
    "aggregate",
    "timestamp_of",
]

MINUTE_NS = 60 * 1_000_000_000
HOUR_NS = 60 * MINUTE_NS
DAY_NS = 24 * HOUR_NS
WEEK_NS = 7 * DAY_NS
# 1970-01-01 was a Thursday: weeks start on Mondays, such as 1970-01-05, four days later.
_FIRST_MONDAY_NS = 4 * DAY_NS


class Bar(msgspec.Struct, array_like=True, gc=False):
    start: int  # ns since the epoch: the start of the bar's period
    open: int
    high: int
    low: int
    close: int
    volume: int  # lots
    trades: int
    notional: int  # sum of price x qty, in tick-lots

    def vwap_ticks(self) -> tuple[int, int]:
        """The VWAP as an exact fraction of ticks: (numerator, denominator)."""
        return self.notional, self.volume


def minute_of(ts: int) -> int:
    return ts - ts % MINUTE_NS


def day_of(ts: int) -> int:
    return ts - ts % DAY_NS


def add_trade(bar: Bar | None, start: int, price: int, qty: int) -> Bar:
    """`bar` (of the period starting at `start`, or None to open one) with one more trade."""
    if bar is None:
        return Bar(start, price, price, price, price, qty, 1, price * qty)
    bar.high = max(bar.high, price)
    bar.low = min(bar.low, price)
    bar.close = price
    bar.volume += qty
    bar.trades += 1
    bar.notional += price * qty
    return bar


class TimeFrameError(TradepitError, ValueError):
    """A timeframe Alpaca's API does not define."""


class TimeFrame(msgspec.Struct, frozen=True):
    """One of Alpaca's bar timeframes: [1-59]Min, [1-23]Hour, 1Day, 1Week, [1,2,3,4,6,12]Month."""

    amount: int
    unit: str  # "Min", "Hour", "Day", "Week", "Month"

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    def bucket(self, ts: int) -> int:
        """The start (ns) of the period that holds `ts`."""
        if self.unit == "Min":
            size = self.amount * MINUTE_NS
            return ts - ts % size
        if self.unit == "Hour":
            size = self.amount * HOUR_NS
            return ts - ts % size
        if self.unit == "Day":
            return ts - ts % DAY_NS
        if self.unit == "Week":
            return ts - (ts - _FIRST_MONDAY_NS) % WEEK_NS
        moment = datetime.fromtimestamp(ts // 1_000_000_000, UTC)
        month = (moment.month - 1) // self.amount * self.amount + 1
        start = datetime(moment.year, month, 1, tzinfo=UTC)
        return int(start.timestamp()) * 1_000_000_000

    def span_ns(self) -> int:
        """An upper bound on one period's length, for sizing reads of minute bars."""
        if self.unit == "Month":
            return self.amount * 31 * DAY_NS
        return {"Min": MINUTE_NS, "Hour": HOUR_NS, "Day": DAY_NS, "Week": WEEK_NS}[
            self.unit
        ] * self.amount


# Alpaca's spellings, case-sensitive as Alpaca's are ("5M" is five months, not minutes).
_TIMEFRAME = re.compile(r"(\d{1,2})(Min|T|Hour|H|Day|D|Week|W|Month|M)")
_UNITS = {
    "Min": "Min",
    "T": "Min",
    "Hour": "Hour",
    "H": "Hour",
    "Day": "Day",
    "D": "Day",
    "Week": "Week",
    "W": "Week",
    "Month": "Month",
    "M": "Month",
}
_LIMITS = {"Min": range(1, 60), "Hour": range(1, 24), "Day": range(1, 2), "Week": range(1, 2)}


def parse_timeframe(text: str) -> TimeFrame:
    found = _TIMEFRAME.fullmatch(text.strip())
    if found is None:
        raise TimeFrameError(f"invalid timeframe {text[:20]!r}: use e.g. 1Min, 15Min, 1Hour, 1Day")
    amount, unit = int(found[1]), _UNITS[found[2]]
    allowed = _LIMITS.get(unit, (1, 2, 3, 4, 6, 12))
    if amount not in allowed:
        raise TimeFrameError(f"invalid timeframe {text[:20]!r}: {unit} takes {_describe(allowed)}")
    return TimeFrame(amount, unit)


def _describe(allowed: range | tuple[int, ...]) -> str:
    if isinstance(allowed, range):
        return f"{allowed.start}-{allowed.stop - 1}"
    return ", ".join(map(str, allowed))


def aggregate(minutes: Iterable[Bar], timeframe: TimeFrame) -> list[Bar]:
    """Bars of `timeframe` from minute (or daily) bars in time order."""
    result: list[Bar] = []
    current: Bar | None = None
    for bar in minutes:
        start = timeframe.bucket(bar.start)
        if current is None or current.start != start:
            current = Bar(start, bar.open, bar.high, bar.low, bar.close, 0, 0, 0)
            result.append(current)
        current.high = max(current.high, bar.high)
        current.low = min(current.low, bar.low)
        current.close = bar.close
        current.volume += bar.volume
        current.trades += bar.trades
        current.notional += bar.notional
    return result


def timestamp_of(start: int) -> datetime:
    """A bar's or trade's time (ns) as an aware datetime, to the microsecond."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=start // 1000)
