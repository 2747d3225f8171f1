"""What the matcher emits. Every event carries its symbol, the symbol's sequence number (gapless,
one per event) and the timestamp of the command that caused it.

An execution is one `Trade` event. It carries what both orders' owners need as well as what the
tape needs: each side's id, account and the lots it still has open afterwards (0: filled). One
event per execution, not one per order, because building event objects is most of what a match
costs in CPython; a consumer that wants per-order reports reads the side it owns.
"""

from __future__ import annotations

import msgspec

from tradepit.domain.orders import Side

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
    "TradingStatus",
]


class RejectReason:
    UNKNOWN_SYMBOL = "unknown_symbol"
    HALTED = "halted"
    DUPLICATE_ORDER_ID = "duplicate_order_id"
    INVALID_QTY = "invalid_qty"
    INVALID_PRICE = "invalid_price"
    INVALID_ORDER = "invalid_order"
    POST_ONLY_WOULD_TAKE = "post_only_would_take"
    UNKNOWN_ORDER = "unknown_order"
    NOT_OWNER = "not_owner"


class CancelReason:
    REQUESTED = "requested"
    IOC_REMAINDER = "ioc_remainder"
    FOK_UNFILLED = "fok_unfilled"
    MARKET_REMAINDER = "market_remainder"
    SELF_TRADE = "self_trade"


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
    reason: str


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
    reason: str


class Expired(Event, tag="expired"):
    """A DAY order reached the session close with `qty` lots open; it is done."""

    order_id: int
    account_id: int
    side: Side
    qty: int


class Replaced(Event, tag="replaced"):
    """`order_id` is done; `new_order_id` carries on with `qty` lots at `price`.

    `kept_priority` says whether the new order kept the old one's place in the queue (a pure
    size decrease does; a price change or size increase goes to the back).
    """

    order_id: int
    account_id: int
    side: Side
    new_order_id: int
    price: int
    stop_price: int
    qty: int
    kept_priority: bool


class ReplaceRejected(Event, tag="replace_rejected"):
    order_id: int
    account_id: int
    new_order_id: int
    reason: str


class CancelRejected(Event, tag="cancel_rejected"):
    """A cancel that could not be done; the order, if it exists, is untouched."""

    order_id: int
    account_id: int
    reason: str


class Triggered(Event, tag="triggered"):
    """A stop or stop-limit order's trigger price was reached: it now trades."""

    order_id: int
    account_id: int
    last_price: int


class TradingStatus(Event, tag="status"):
    """The symbol was halted (no new orders; cancels still work) or resumed."""

    halted: bool
