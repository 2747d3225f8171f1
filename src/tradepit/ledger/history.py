"""Every order an account placed, as its owner sees it: status, fills, timestamps. Pure, no I/O.

The ledger's `OpenOrder` holds what an order reserves and only while it is open; an
`OrderRecord` holds what the API shows about it (Alpaca's order object, in integers) and
outlives it. Statuses are Alpaca's, lower case.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

import msgspec

from tradepit.domain.events import (
    Accepted,
    Canceled,
    CancelReason,
    CancelRejected,
    Event,
    Expired,
    Rejected,
    Replaced,
    ReplaceRejected,
    Resized,
    Trade,
    TrailMoved,
)
from tradepit.domain.orders import Order, OrderType, Side, TimeInForce
from tradepit.domain.symbols import Symbol

__all__ = [
    "OrderClass",
    "OrderStatus",
    "TradeEvent",
    "OrderRecord",
    "OrderUpdate",
    "Fill",
    "OrderHistory",
    "accepted_record",
    "TERMINAL_STATUSES",
]


class OrderStatus(StrEnum):
    """An order's status, Alpaca's name for it, as its record stores it."""

    ACCEPTED = "accepted"  # reserved by the ledger, on its way to the book
    NEW = "new"  # live in the book (resting, or a stop waiting for its trigger)
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REPLACED = "replaced"
    REJECTED = "rejected"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    # A bracket's or OTO's exit leg, waiting in the ledger for its entry to fill completely:
    # nothing is reserved for it and no book has it yet.
    HELD = "held"


class OrderClass(StrEnum):
    """Alpaca's `order_class`: a simple order, or one of an order and its legs
    (`tradepit.matcher.oco` says how each works)."""

    SIMPLE = "simple"
    BRACKET = "bracket"  # an entry, then a take-profit and a stop-loss as an OCO pair
    OCO = "oco"  # a take-profit limit (the parent) and a stop-loss (its leg), one cancels the other
    OTO = "oto"  # an entry, then one exit leg


class TradeEvent(StrEnum):
    """Alpaca's names for what happened to an order, as its trade_updates stream tells it."""

    NEW = "new"
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REPLACED = "replaced"
    REJECTED = "rejected"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    CANCEL_REJECTED = "order_cancel_rejected"
    REPLACE_REJECTED = "order_replace_rejected"


TERMINAL_STATUSES = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.EXPIRED,
        OrderStatus.REPLACED,
        OrderStatus.REJECTED,
    }
)

# The members every order's life reads, bound once as matcher/book.py binds its enums: in
# Python 3.11 a member read through its class runs EnumType.__getattr__'s hook (gone in 3.12),
# which read here cost 3% more instructions per order through a ledger shard and its matcher in
# memory (237k against 230k).
_ACCEPTED = OrderStatus.ACCEPTED
_HELD = OrderStatus.HELD
_NEW = OrderStatus.NEW
_PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED
_FILLED = OrderStatus.FILLED
_CANCELED = OrderStatus.CANCELED
_PENDING = (OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE)
_ON_NEW = TradeEvent.NEW
_ON_PARTIAL_FILL = TradeEvent.PARTIAL_FILL
_ON_FILL = TradeEvent.FILL
_ON_CANCELED = TradeEvent.CANCELED


class OrderRecord(msgspec.Struct, array_like=True, gc=False):
    """An order in integers: prices in ticks, quantities in lots, cash in cents, times in ns.

    `limit_price` is 0 for market and stop orders (their protection price is internal).
    """

    order_id: int
    account_id: int
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    qty: int
    limit_price: int
    stop_price: int
    status: OrderStatus
    created_at: int
    updated_at: int
    filled_qty: int = 0
    filled_notional: int = 0
    filled_at: int = 0
    canceled_at: int = 0
    expired_at: int = 0
    replaced_at: int = 0
    replaced_by: int = 0
    replaces: int = 0
    # A `RejectReason` or a `CancelReason` ("" for neither): a str, as msgspec decodes no union
    # of two string enums.
    reason: str = ""
    # What the order was sent with, echoed as sent: the cents a notional order names (0: it
    # named a qty), and `extended_hours` (tradepit trades around the clock: it changes nothing).
    notional: int = 0
    extended_hours: bool = False
    # A trailing stop's trail (ticks, or its rate: `Order.trail_rate`) and its mark (ticks),
    # which the matcher moves (`TrailMoved`) with `stop_price`.
    trail_price: int = 0
    trail_rate: int = 0
    hwm: int = 0
    # An order of a class other than simple: its own legs (the parent's), or the order it is a
    # leg of (a leg's). A replaced leg's parent still names it; its `replaced_by` leads on.
    order_class: OrderClass = OrderClass.SIMPLE
    legs: tuple[int, ...] = ()
    parent: int = 0
    # Ticks x lots of its fills: what its average price is, exactly (`filled_notional` is
    # their cash, each fill's rounded down to the cent on a fractional symbol).
    filled_value: int = 0
    # It sells short or buys back a short (Alpaca's `position_intent` sell_to_open or
    # buy_to_close), as the ledger split it when it was placed.
    short_side: bool = False


def accepted_record(
    order: Order,
    client_order_id: str,
    replaces: int = 0,
    notional: int = 0,
    extended_hours: bool = False,
    order_class: OrderClass = OrderClass.SIMPLE,
    legs: tuple[int, ...] = (),
    parent: int = 0,
    short_side: bool = False,
) -> OrderRecord:
    """The record of an order the ledger has just accepted (and reserved for), or, given a
    `parent` whose legs wait in the ledger, of a leg it holds."""
    limit = order.price if order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else 0
    return OrderRecord(
        order.order_id,
        order.account_id,
        client_order_id,
        order.symbol,
        order.side,
        order.type,
        order.time_in_force,
        order.qty,
        limit,
        order.stop_price,
        _ACCEPTED,
        order.ts,
        order.ts,
        replaces=replaces,
        notional=notional,
        extended_hours=extended_hours,
        trail_price=order.trail_price,
        trail_rate=order.trail_rate,
        hwm=order.hwm,
        order_class=order_class,
        legs=legs,
        parent=parent,
        short_side=short_side,
    )


def held_record(leg: Order, order_class: OrderClass, parent: int) -> OrderRecord:
    """The record of a bracket's or OTO's exit leg, held until its entry `parent` fills."""
    record = accepted_record(leg, "", order_class=order_class, parent=parent)
    record.status = _HELD
    return record


class OrderUpdate(msgspec.Struct, array_like=True, gc=False):
    """One change to one order: Alpaca's event name and the order as it stood just after.

    Fills also carry the price (ticks) and lots traded, the account's lots of the symbol after
    the fill, and the trade's sequence number in its symbol (which names the execution).
    """

    event: TradeEvent
    ts: int
    order: OrderRecord
    price: int = 0
    qty: int = 0
    position_qty: int = 0
    trade_seq: int = 0


class Fill(msgspec.Struct, array_like=True, gc=False):
    """One fill of one order, as the account's activities list it: the trade, and the order's
    quantity, filled quantity and status just after it.

    The per-account fill index keeps these rather than whole `OrderUpdate`s: about half the
    bytes (165 against 302 per index entry in bench/pipeline.py's market), in a structure that
    only grows, and less of Valkey's time per fill."""

    event: TradeEvent  # FILL or PARTIAL_FILL
    ts: int
    order_id: int
    symbol: str
    side: Side
    order_qty: int
    filled_qty: int
    status: OrderStatus
    price: int
    qty: int
    trade_seq: int

    @classmethod
    def of_update(cls, update: OrderUpdate) -> Fill:
        record = update.order
        return cls(
            update.event,
            update.ts,
            record.order_id,
            record.symbol,
            record.side,
            record.qty,
            record.filled_qty,
            record.status,
            update.price,
            update.qty,
            update.trade_seq,
        )


Change = tuple[TradeEvent, OrderRecord]  # an event name and the record it changed


class OrderHistory:
    """Order records by id; `apply` follows the matcher's events for the orders it holds.

    Each method returns what it changed, with the event's Alpaca name, so that a caller can
    write through only what changed and tell the owner what happened.
    """

    def __init__(self, symbols: Mapping[str, Symbol]) -> None:
        self.symbols = symbols
        self.records: dict[int, OrderRecord] = {}

    def accepted(
        self,
        order: Order,
        client_order_id: str,
        replaces: int = 0,
        notional: int = 0,
        extended_hours: bool = False,
        order_class: OrderClass = OrderClass.SIMPLE,
        legs: tuple[int, ...] = (),
        parent: int = 0,
        short_side: bool = False,
    ) -> OrderRecord:
        record = self.records[order.order_id] = accepted_record(
            order,
            client_order_id,
            replaces,
            notional,
            extended_hours,
            order_class,
            legs,
            parent,
            short_side,
        )
        return record

    def held(self, leg: Order, order_class: OrderClass, parent: int) -> OrderRecord:
        record = self.records[leg.order_id] = held_record(leg, order_class, parent)
        return record

    def legs_released(self, legs: list[Order], ts: int) -> list[OrderRecord]:
        """Held legs whose entry filled: reserved for now, and on their way to the book."""
        released = []
        for leg in legs:
            record = self.records.get(leg.order_id)
            if record is not None and record.status == _HELD:
                record.status = _ACCEPTED
                record.updated_at = ts
                released.append(record)
        return released

    def leg_dropped(self, leg_id: int, why: str, ts: int) -> Change | None:
        """A held leg ended unsent: canceled with its entry ("canceled"), or refused when it
        was to go (`why` is the `Refusal` code)."""
        record = self.records.get(leg_id)
        if record is None or record.status != _HELD:
            return None
        record.updated_at = ts
        if why == "canceled":
            record.status = _CANCELED
            record.canceled_at = ts
            record.reason = CancelReason.PARENT
            return (_ON_CANCELED, record)
        record.status = OrderStatus.REJECTED
        record.reason = why
        return (TradeEvent.REJECTED, record)

    def legs_resized(self, legs: list[Order], parent: int, ts: int) -> list[OrderRecord]:
        """Held legs whose entry was replaced: they follow the replacement and its size."""
        resized = []
        for leg in legs:
            record = self.records.get(leg.order_id)
            if record is not None:
                record.qty, record.parent, record.updated_at = leg.qty, parent, ts
                resized.append(record)
        return resized

    def resized(self, event: Resized) -> OrderRecord | None:
        """A waiting OCO leg lost `event.qty` lots to its other leg's trades: its record shows
        the size it has left (no lot of its own traded), without a trade update, as Alpaca
        sends none when a take-profit's partial fill resizes its stop-loss."""
        record = self.records.get(event.order_id)
        if record is None or record.status in TERMINAL_STATUSES:
            return None
        record.qty = record.filled_qty + event.leaves
        record.updated_at = event.ts
        return record

    def mark_pending(self, order_id: int, status: OrderStatus, ts: int) -> OrderRecord | None:
        """A cancel or replace was sent to the book for a live order."""
        record = self.records.get(order_id)
        if record is None or record.status in TERMINAL_STATUSES:
            return None
        record.status = status
        record.updated_at = ts
        return record

    def apply(self, event: Event) -> list[Change]:
        changed: list[Change] = []
        if isinstance(event, Trade):  # the most common event first
            maker = self.records.get(event.maker_order_id)
            if maker is not None:
                changed.append(self._filled(maker, event, event.maker_leaves))
            taker = self.records.get(event.taker_order_id)
            if taker is not None:
                changed.append(self._filled(taker, event, event.taker_leaves))
            return changed
        if isinstance(event, ReplaceRejected):
            new = self.records.get(event.new_order_id)
            if new is not None:
                new.status = OrderStatus.REJECTED
                new.reason = event.reason
                new.updated_at = event.ts
                changed.append((TradeEvent.REJECTED, new))
            old = self._live_again(event.order_id, event.ts)
            if old is not None:
                changed.append((TradeEvent.REPLACE_REJECTED, old))
            return changed
        if isinstance(event, CancelRejected):
            old = self._live_again(event.order_id, event.ts)
            return [(TradeEvent.CANCEL_REJECTED, old)] if old is not None else changed
        order_id = getattr(event, "order_id", None)
        record = self.records.get(order_id) if order_id is not None else None
        if record is None:
            return changed
        if isinstance(event, Accepted):
            if record.status != _ACCEPTED:
                return changed  # a stop order triggered, or a replacement already live
            record.status = _NEW
            name = _ON_NEW
        elif isinstance(event, Canceled):
            record.status = _CANCELED
            record.canceled_at = event.ts
            record.reason = event.reason
            name = _ON_CANCELED
        elif isinstance(event, Expired):
            record.status = OrderStatus.EXPIRED
            record.expired_at = event.ts
            name = TradeEvent.EXPIRED
        elif isinstance(event, Rejected):
            record.status = OrderStatus.REJECTED
            record.reason = event.reason
            name = TradeEvent.REJECTED
        elif isinstance(event, Replaced):
            record.status = OrderStatus.REPLACED
            record.replaced_at = event.ts
            record.replaced_by = event.new_order_id
            name = TradeEvent.REPLACED
            new = self.records.get(event.new_order_id)
            if new is not None and not event.waits:  # one that waits stays accepted, till it goes
                new.status = OrderStatus.NEW
                new.updated_at = event.ts
                changed.append((TradeEvent.NEW, new))
        else:
            return changed
        record.updated_at = event.ts
        changed.insert(0, (name, record))
        return changed

    def trail_moved(self, event: TrailMoved) -> OrderRecord | None:
        """A waiting trailing stop's mark and trigger moved: its record shows them (as Alpaca's
        order does), but its owner is not told, as Alpaca sends no trade update for it."""
        record = self.records.get(event.order_id)
        if record is None or record.status in TERMINAL_STATUSES:
            return None
        record.stop_price = event.stop_price
        record.hwm = event.hwm
        return record

    def _filled(self, record: OrderRecord, trade: Trade, leaves: int) -> Change:
        """`record`'s order took part in `trade`, and has `leaves` lots open after it."""
        record.updated_at = trade.ts
        record.filled_qty += trade.qty
        record.filled_notional += self.symbols[record.symbol].notional(trade.price, trade.qty)
        record.filled_value += trade.price * trade.qty
        if not leaves:
            record.status = _FILLED
            record.filled_at = trade.ts
            return (_ON_FILL, record)
        if record.status not in _PENDING:
            record.status = _PARTIALLY_FILLED
        return (_ON_PARTIAL_FILL, record)

    def _live_again(self, order_id: int, ts: int) -> OrderRecord | None:
        """A pending cancel or replace was refused: the order is as it was before."""
        record = self.records.get(order_id)
        if record is None or record.status not in _PENDING:
            return None
        record.status = _PARTIALLY_FILLED if record.filled_qty else _NEW
        record.updated_at = ts
        return record
