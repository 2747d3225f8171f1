"""The order that replaces an open one. Pure, no I/O.

Built here alone, because two places need it and must agree to the field: the ledger shard,
which reserves for it and records it, and the gateway, which answers the PATCH with its record
before the ledger's is readable.
"""

from __future__ import annotations

from tradepit.domain.orders import Order, OrderType, TimeInForce, trail_stop
from tradepit.ledger.history import OrderRecord

__all__ = ["replacement_order"]


def replacement_order(
    old: OrderRecord,
    new_order_id: int,
    qty: int,
    price: int,
    stop_price: int,
    ts: int,
    time_in_force: TimeInForce | None = None,
    trail: int = 0,
) -> Order:
    """`old`'s account, symbol, side, type and time in force, with what a replace changes: a
    new id, the lots it is for, its worst price and its trigger (ticks), the time it came, and
    its time in force if it changes one (None: `old`'s). A trailing stop keeps its mark and
    the kind of its trail, whose size is `trail` if it changes (0: `old`'s); the matcher
    says where its trigger then stands.

    This is the order as the ledger reserves for it and the API shows it. The book builds its
    own from the resting order, which also keeps `post_only` and self-trade prevention (an
    `OrderRecord` holds neither)."""
    trail_price, trail_rate = old.trail_price, old.trail_rate
    if trail and trail_price:
        trail_price = trail
    elif trail:
        trail_rate = trail
    if old.type is OrderType.TRAILING_STOP:
        # Where the new trail puts the trigger, from the mark as last recorded (the matcher
        # moves both on, from its own). The command to the book carries none.
        stop_price = trail_stop(old.side, old.hwm, trail_price, trail_rate)
    return Order(
        new_order_id,
        old.account_id,
        old.symbol,
        old.side,
        old.type,
        old.time_in_force if time_in_force is None else time_in_force,
        qty,
        price,
        stop_price,
        ts=ts,
        trail_price=trail_price,
        trail_rate=trail_rate,
        hwm=old.hwm,
    )
