"""Orders as the matcher and ledger see them: integers only, ids as 128-bit ints.

`Order` is a msgspec Struct: it constructs in ~40 ns (a plain class takes ~110 ns) and decodes
straight off the wire, which matters on a hot path budgeted at one microsecond per order.
"""

from __future__ import annotations

from enum import IntEnum

import msgspec

__all__ = [
    "Side",
    "OrderType",
    "TimeInForce",
    "SelfTradePrevention",
    "Order",
    "TRAIL_RATE_UNIT",
    "trail_stop",
]


class Side(IntEnum):
    BUY = 1
    SELL = 2


class OrderType(IntEnum):
    LIMIT = 1
    MARKET = 2
    STOP = 3
    STOP_LIMIT = 4
    TRAILING_STOP = 5


class TimeInForce(IntEnum):
    DAY = 1
    GTC = 2
    IOC = 3
    FOK = 4
    OPG = 5  # the opening auction only
    CLS = 6  # the closing auction only


class SelfTradePrevention(IntEnum):
    """What happens when an order would trade with a resting order of its own account."""

    CANCEL_NEWEST = 1  # the incoming order's remainder is canceled (the default)
    CANCEL_OLDEST = 2  # the resting order is canceled and matching goes on
    CANCEL_BOTH = 3
    NONE = 4  # the account may trade with itself


class Order(msgspec.Struct, array_like=True, gc=False):
    """An order in integers.

    `price` is the worst price the order may trade at, in ticks: the limit for limit and
    stop-limit orders, the protection price (the edge of the band, set upstream) for market and
    stop orders. `stop_price` is the trigger for stop and stop-limit orders, else 0.

    `band_bps` is the half-width of the price band its trades must print within (0: none),
    centred on the book's last trade, or on `reference` (ticks, the gateway's reference price)
    before the book's first: the matcher, which alone knows whether an order is marketable,
    enforces it when the order takes liquidity (`tradepit.matcher.book`).

    A trailing stop has one of `trail_price` (ticks) or `trail_rate` (its `trail_percent` in
    units of 0.0001%: 1% is 10_000, so the percentage is exact), and `hwm`, the best trade
    price the book has printed since it arrived (the high for a sell, the low for a buy; 0
    before any), which the matcher moves; its `stop_price` is the trigger that follows from
    them, on the tick grid (`trail_stop`).

    The matcher owns an Order once it is submitted and keeps `leaves` (lots still open) on it.
    While it is open, `qty - leaves` lots have traded: a resting order loses lots only to trades
    (a replace that keeps its place resets `qty`), and its cancel ends it.
    """

    order_id: int
    account_id: int
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    qty: int
    price: int
    stop_price: int = 0
    post_only: bool = False
    stp: SelfTradePrevention = SelfTradePrevention.CANCEL_NEWEST
    ts: int = 0
    leaves: int = 0
    band_bps: int = 0
    reference: int = 0
    trail_price: int = 0
    trail_rate: int = 0
    hwm: int = 0
    # The other leg of the OCO pair this order is one leg of (0: none): the matcher keeps the
    # two legs' `leaves` equal, so that together they never trade more than one leg's qty.
    oco: int = 0
    # A DAY limit order that may trade in the pre-market and after-hours sessions too (on a
    # calendar that has them); any other order outside the regular session waits for the open.
    extended_hours: bool = False


TRAIL_RATE_UNIT = 1_000_000  # a `trail_rate` of this is 100%


def trail_stop(side: Side, hwm: int, trail_price: int, trail_rate: int) -> int:
    """A trailing stop's trigger, in ticks, `trail_price` or `trail_rate` away from its mark
    `hwm`, rounded onto the grid on the safe side, away from the mark: a sell's down, a buy's
    up (a sell then never triggers above its trail, nor a buy below it). 0 when there is no
    mark yet, or a sell's trail reaches below zero: no price triggers it."""
    if not hwm:
        return 0
    if side is Side.SELL:
        if trail_price:
            return max(hwm - trail_price, 0)
        return hwm * (TRAIL_RATE_UNIT - trail_rate) // TRAIL_RATE_UNIT
    if trail_price:
        return hwm + trail_price
    return -((-hwm * (TRAIL_RATE_UNIT + trail_rate)) // TRAIL_RATE_UNIT)
