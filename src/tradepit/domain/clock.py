"""The venue's clock: real time, or real time shifted to a chosen start and run faster (or
slower), so that a bot can be taken through an open and a close in minutes.

Only the edges read it (the gateway, which stamps every command with its time, and the session
driver, which says when the market opens and closes): time reaches the stages inside the
commands, so the cores stay deterministic whatever the clock does.
"""

from __future__ import annotations

import time
from datetime import datetime
from fractions import Fraction

import msgspec

__all__ = ["VenueClock", "REAL_TIME"]

_NS = 1_000_000_000


class VenueClock(msgspec.Struct, frozen=True):
    """Venue time `start` (ns UTC) at real time `anchor` (ns), then `speed` venue seconds per
    real second, as the exact fraction `speed_num / speed_den`. `start` 0: real time."""

    start: int = 0
    anchor: int = 0
    speed_num: int = 1
    speed_den: int = 1

    @classmethod
    def starting(cls, start: str, speed: float, anchor: int | None = None) -> VenueClock:
        """A clock that reads `start` (RFC 3339; "": now) at `anchor` (default: now) and runs
        `speed` times as fast as real time."""
        if speed <= 0:
            raise ValueError(f"the clock's speed must be above 0, got {speed}")
        ratio = Fraction(str(speed)).limit_denominator(1_000_000)
        real_now = time.time_ns() if anchor is None else anchor
        if start:
            moment = datetime.fromisoformat(start.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                raise ValueError(f"the clock's start needs a time zone (Z or ±hh:mm): {start!r}")
            venue_start = int(moment.timestamp()) * _NS + moment.microsecond * 1000
        elif ratio == 1:
            return REAL_TIME
        else:
            venue_start = real_now
        return cls(venue_start, real_now, ratio.numerator, ratio.denominator)

    @property
    def is_real_time(self) -> bool:
        return self.start == 0

    def now(self) -> int:
        """Venue time, in ns since the epoch."""
        real = time.time_ns()
        if not self.start:
            return real
        return self.start + (real - self.anchor) * self.speed_num // self.speed_den

    def real_seconds_until(self, venue_ns: int) -> float:
        """Real seconds until the venue clock reads `venue_ns` (0 if it has)."""
        left = venue_ns - self.now()
        return max(left, 0) * self.speed_den / self.speed_num / _NS


REAL_TIME = VenueClock()
