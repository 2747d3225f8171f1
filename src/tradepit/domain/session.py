"""Trading sessions: when the venue is open, as a calendar of days, in integers (ns UTC).

Two calendars (`serve --calendar`):

- `24x7`, the default: the venue never closes; its session is the UTC day, and DAY orders
  expire at each UTC midnight, when the next session opens at once.
- `nyse`: the New York Stock Exchange's days, hours, holidays and early closes, from the
  `exchange_calendars` library (`tradepit.calendars` loads them), with Alpaca's extended hours
  around them: the pre-market from 04:00 US/Eastern to the open, after-hours from the close
  for four hours (to 20:00, or 17:00 after an early close).

Pure: a `TradingCalendar` is a sorted list of `SessionDay`s and bisection over it, so the
clock, the calendar endpoint and the session's driver all answer from the same numbers.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

__all__ = [
    "Phase",
    "SessionDay",
    "Calendar",
    "AlwaysOpen",
    "TradingCalendar",
    "next_session_close",
    "to_datetime",
]

_NS = 1_000_000_000


class Phase(StrEnum):
    """Where the market stands: Alpaca's sessions."""

    CLOSED = "closed"
    PRE_MARKET = "pre_market"
    OPEN = "open"  # the regular session, 09:30 to 16:00 on the NYSE
    AFTER_HOURS = "after_hours"


class SessionDay(NamedTuple):
    """One trading day: its date (in the exchange's time zone) and its four moments, in ns UTC:
    the pre-market's start, the open, the close, and the end of after-hours."""

    day: date
    pre_open: int
    open: int
    close: int
    post_close: int


class Calendar:
    """What every calendar answers, for a moment `now` in ns UTC."""

    name = ""

    def phase_at(self, now: int) -> Phase:
        raise NotImplementedError

    def next_change(self, now: int) -> tuple[int, Phase]:
        """The next moment after `now` at which the phase changes, and the phase from then."""
        raise NotImplementedError

    def next_open(self, now: int) -> int:
        raise NotImplementedError

    def next_close(self, now: int) -> int:
        raise NotImplementedError

    def days(self, first: date, last: date) -> list[SessionDay]:
        """The trading days from `first` to `last`, both included."""
        raise NotImplementedError


def next_session_close(now: datetime) -> datetime:
    """The 24x7 session closes at the next UTC midnight after `now`."""
    return datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


def to_datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // _NS, UTC) + timedelta(microseconds=ns % _NS // 1000)


def _midnight_ns(day: date) -> int:
    return int(datetime.combine(day, datetime.min.time(), tzinfo=UTC).timestamp()) * _NS


class AlwaysOpen(Calendar):
    """The 24x7 venue: always open, a session a UTC day."""

    name = "24x7"

    def phase_at(self, now: int) -> Phase:
        return Phase.OPEN

    def next_change(self, now: int) -> tuple[int, Phase]:
        return self.next_close(now), Phase.OPEN  # closes and opens again at once

    def next_open(self, now: int) -> int:
        return self.next_close(now)

    def next_close(self, now: int) -> int:
        return _midnight_ns(to_datetime(now).date() + timedelta(days=1))

    def days(self, first: date, last: date) -> list[SessionDay]:
        found = []
        day = first
        while day <= last:
            start = _midnight_ns(day)
            end = start + 86_400 * _NS
            found.append(SessionDay(day, start, start, end, end))
            day += timedelta(days=1)
        return found


class TradingCalendar(Calendar):
    """An exchange's calendar, from its days (ascending, none overlapping)."""

    def __init__(self, name: str, days: list[SessionDay]) -> None:
        if not days:
            raise ValueError(f"calendar {name} has no days")
        self.name = name
        self._days = days
        self._dates = [day.day for day in days]
        # Every moment the phase changes, ascending, and the phase from then.
        self._moments: list[int] = []
        self._phases: list[Phase] = []
        for day in days:
            for moment, phase in (
                (day.pre_open, Phase.PRE_MARKET),
                (day.open, Phase.OPEN),
                (day.close, Phase.AFTER_HOURS),
                (day.post_close, Phase.CLOSED),
            ):
                self._moments.append(moment)
                self._phases.append(phase)
        self.first, self.last = days[0].day, days[-1].day

    def phase_at(self, now: int) -> Phase:
        index = bisect_right(self._moments, now) - 1
        return Phase.CLOSED if index < 0 else self._phases[index]

    def next_change(self, now: int) -> tuple[int, Phase]:
        index = bisect_right(self._moments, now)
        if index == len(self._moments):
            raise ValueError(f"calendar {self.name} ends on {self.last}")
        return self._moments[index], self._phases[index]

    def changes_between(self, after: int, until: int) -> list[tuple[int, Phase]]:
        """Every change of phase after `after` and until `until`, in order."""
        start = bisect_right(self._moments, after)
        end = bisect_right(self._moments, until)
        return list(zip(self._moments[start:end], self._phases[start:end], strict=True))

    def next_open(self, now: int) -> int:
        return self._next(now, lambda day: day.open)

    def next_close(self, now: int) -> int:
        return self._next(now, lambda day: day.close)

    def _next(self, now: int, moment_of: Callable[[SessionDay], int]) -> int:
        # The first day whose moment is after `now`: today's or a later day's.
        index = max(bisect_right(self._dates, to_datetime(now).date()) - 2, 0)
        for day in self._days[index:]:
            moment = moment_of(day)
            if moment > now:
                return moment
        raise ValueError(f"calendar {self.name} ends on {self.last}")

    def days(self, first: date, last: date) -> list[SessionDay]:
        start = bisect_right(self._dates, first - timedelta(days=1))
        end = bisect_right(self._dates, last)
        return self._days[start:end]
