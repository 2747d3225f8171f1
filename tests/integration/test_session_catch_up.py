"""A venue that was down across a change of the market's phase catches up when it starts: the
books get every change they missed, at the moment it was due, so that a DAY order that waited
through a session it never saw goes live at that session's open and expires at its close."""

from __future__ import annotations

import asyncio
import time
from datetime import date

from harness import running_venue

from tradepit import operations
from tradepit.domain.orders import Side, TimeInForce
from tradepit.domain.session import Phase, SessionDay, TradingCalendar
from tradepit.ledger.history import OrderStatus
from tradepit.venue import _changes_to_catch_up

HOUR = 3600 * 10**9
SYMBOL = "ACME"


def _calendar(start: int) -> TradingCalendar:
    """Two trading days from `start` (ns): pre-market, open, close, end of after-hours."""
    day = 24 * HOUR
    return TradingCalendar(
        "test",
        [
            SessionDay(date(2026, 12, 7), start, start + HOUR, start + 2 * HOUR, start + 3 * HOUR),
            SessionDay(
                date(2026, 12, 8),
                start + day,
                start + day + HOUR,
                start + day + 2 * HOUR,
                start + day + 3 * HOUR,
            ),
        ],
    )


def test_a_venue_down_through_a_session_plays_it_when_it_starts(redis_url: str) -> None:
    async def main() -> None:
        start = time.time_ns() - 24 * HOUR - HOUR // 2  # yesterday's session came and went
        calendar = _calendar(start)
        async with running_venue(redis_url, symbols=(SYMBOL,)) as venue:
            # The books were last told: closed, before yesterday's pre-market.
            await operations.set_session(venue.client, Phase.CLOSED, start - HOUR)
            await venue.settle()
            buyer = await venue.account("1000.00")
            order_id, reply = await venue.place(
                buyer, SYMBOL, Side.BUY, 1, 9_000, tif=TimeInForce.DAY
            )
            assert reply.ok
            await venue.settle()
            assert (await venue.record(buyer, order_id)).status == OrderStatus.ACCEPTED

            now = start + 24 * HOUR + HOUR // 2  # today, in today's pre-market
            changes = await _changes_to_catch_up(venue.url, calendar, now)
            assert [phase for _, phase in changes] == [
                Phase.PRE_MARKET,
                Phase.OPEN,
                Phase.AFTER_HOURS,
                Phase.CLOSED,
                Phase.PRE_MARKET,
            ]
            for moment, phase in changes:
                await operations.set_session(venue.client, phase, moment)
            await venue.settle()
            record = await venue.record(buyer, order_id)
            # Live at yesterday's open, expired at yesterday's close: not live today.
            assert record.status == OrderStatus.EXPIRED
            assert record.expired_at == start + 2 * HOUR
            assert await operations.last_session_change(venue.client) == (
                start + 24 * HOUR,
                Phase.PRE_MARKET,
            )
            # Up to date now: nothing to catch up, the phase in force is all.
            assert await _changes_to_catch_up(venue.url, calendar, now) == [(now, Phase.PRE_MARKET)]

    asyncio.run(main())
