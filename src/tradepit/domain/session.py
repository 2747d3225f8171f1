"""The trading session: the UTC day. DAY orders expire when it closes, at each UTC midnight."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["next_session_close"]


def next_session_close(now: datetime) -> datetime:
    """The session closes at the next UTC midnight after `now`."""
    return datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
