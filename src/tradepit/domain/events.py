"""What the matcher emits. Every event carries its symbol, the symbol's sequence number (gapless,
one per event) and the timestamp of the command that caused it.

An execution is one `Trade` event. It carries what both orders' owners need as well as what the
tape needs: each side's id, account and the lots it still has open afterwards (0: filled). One
event per execution, not one per order, because building event objects is most of what a match
costs in CPython; a consumer that wants per-order reports reads the side it owns.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from tradepit.domain.orders import Side
from tradepit.domain.refusals import Refusal

__all__ = [
    "RejectReason",
    "CancelReason",
    "Event",
    "Accepted",
    "Rejected",
    "Trade",
    "Canceled",
    "Expired",
    "Replaced",
    "ReplaceRejected",
    "CancelRejected",
    "Triggered",
    "TrailMoved",
    "Resized",
    "TradingStatus",
    "Queued",
    "SessionChanged",
]


class RejectReason(StrEnum):
    """Why the matcher refused an order, a cancel or a replace: the `Refusal`s it replies with,
    whose codes these are (ledger/history.py stores them as an order's `reason`).

    Events type their `reason` as a plain str, not as this enum or `CancelReason`, so that a
    reason this version does not know (a test's, another version's matcher's) still decodes:
    a ledger must settle every event it is sent.
    """

    UNKNOWN_SYMBOL = Refusal.UNKNOWN_SYMBOL.value
    HALTED = Refusal.HALTED.value
    DUPLICATE_ORDER_ID = Refusal.DUPLICATE_ORDER_ID.value
    INVALID_QTY = Refusal.INVALID_QTY.value
    INVALID_PRICE = Refusal.INVALID_PRICE.value
    INVALID_ORDER = Refusal.INVALID_ORDER.value
    POST_ONLY_WOULD_TAKE = Refusal.POST_ONLY_WOULD_TAKE.value
    UNKNOWN_ORDER = Refusal.UNKNOWN_ORDER.value
    NOT_OWNER = Refusal.NOT_OWNER.value
    OUTSIDE_BAND = Refusal.OUTSIDE_BAND.value


class CancelReason(StrEnum):
    """Why the matcher canceled an order, or what was left of it: not a refusal, as the order
    had been accepted."""

    REQUESTED = "requested"
    IOC_REMAINDER = "ioc_remainder"
    FOK_UNFILLED = "fok_unfilled"
    MARKET_REMAINDER = "market_remainder"
    SELF_TRADE = "self_trade"
    # What is left of an order that traded up to the edge of its price band and would cross
    # the book beyond it.
    BAND_REMAINDER = "band_remainder"
    # An OCO leg whose other leg filled, triggered or was canceled.
    OCO = "oco"
    # A bracket's or OTO's held leg, whose entry ended before it filled completely.
    PARENT = "parent"


class Event(msgspec.Struct, array_like=True, gc=False, tag=True):
    symbol: str
    seq: int
    ts: int


class Accepted(Event, tag="accepted"):
    """The order is live: resting, matching, or (stop orders) waiting for its trigger."""

    order_id: int
    account_id: int
    side: Side
    price: int
    qty: int


class Rejected(Event, tag="rejected"):
    order_id: int
    account_id: int
    reason: str  # a RejectReason


class Trade(Event, tag="trade"):
    """One execution between a resting maker and an incoming taker, at the maker's price.

    `seq` doubles as the trade's id within its symbol. `maker_leaves` and `taker_leaves` are the
    lots each order still has open after this trade: 0 means it is filled and done. The maker is
    on the other side from `taker_side`.
    """

    price: int
    qty: int
    maker_order_id: int
    maker_account_id: int
    maker_leaves: int
    taker_order_id: int
    taker_account_id: int
    taker_side: Side
    taker_leaves: int


class Canceled(Event, tag="canceled"):
    """`qty` lots of the order were canceled; it is done."""

    order_id: int
    account_id: int
    side: Side
    qty: int
    reason: str  # a CancelReason


class Expired(Event, tag="expired"):
    """A DAY order reached the session close with `qty` lots open; it is done."""

    order_id: int
    account_id: int
    side: Side
    qty: int


class Replaced(Event, tag="replaced"):
    """`order_id` is done; `new_order_id` carries on with `qty` lots at `price`.

    `kept_priority` says whether the new order kept the old one's place in the queue (a pure
    size decrease does; a price change or size increase goes to the back); `waits`, that the
    old one waited for the open or an auction, and the new one waits in its place (`Queued`).
    """

    order_id: int
    account_id: int
    side: Side
    new_order_id: int
    price: int
    stop_price: int
    qty: int
    kept_priority: bool
    waits: bool = False


class ReplaceRejected(Event, tag="replace_rejected"):
    order_id: int
    account_id: int
    new_order_id: int
    reason: str  # a RejectReason


class CancelRejected(Event, tag="cancel_rejected"):
    """A cancel that could not be done; the order, if it exists, is untouched."""

    order_id: int
    account_id: int
    reason: str  # a RejectReason


class Triggered(Event, tag="triggered"):
    """A stop or stop-limit order's trigger price was reached: it now trades."""

    order_id: int
    account_id: int
    last_price: int


class TrailMoved(Event, tag="trail_moved"):
    """A waiting trailing stop's mark (`hwm`) and so its trigger (`stop_price`) moved: one
    event per order per command, however many trades moved it, and no trade update."""

    order_id: int
    account_id: int
    stop_price: int
    hwm: int


class Resized(Event, tag="resized"):
    """`qty` lots were taken off a waiting OCO leg because its other leg traded them: it has
    `leaves` lots open now, as many as the other leg (never 0: a leg left with none is
    `Canceled` instead). Its `qty` shrinks with its leaves: none of its lots traded."""

    order_id: int
    account_id: int
    side: Side
    qty: int
    leaves: int


class Queued(Event, tag="queued"):
    """The order waits, in no book: for the open (it came outside the regular session, or it
    rested at the close and is not for the extended hours) or for its auction (`opg`, `cls`).
    `Accepted` follows when it goes (back) in."""

    order_id: int
    account_id: int
    side: Side
    price: int
    qty: int


class SessionChanged(Event, tag="session"):
    """The book's market moved to `phase` (a `tradepit.domain.session.Phase`)."""

    phase: str


class TradingStatus(Event, tag="status"):
    """The symbol was halted (no new orders; cancels still work) or resumed."""

    halted: bool
