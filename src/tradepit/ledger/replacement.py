"""The order that replaces an open one. Pure, no I/O.

Built here alone, because two places need it and must agree to the field: the ledger shard,
which reserves for it and records it, and the gateway, which answers the PATCH with its record
before the ledger's is readable.
"""

from __future__ import annotations

from tradepit.domain.orders import Order, TimeInForce
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
) -> Order:
    """`old`'s account, symbol, side, type and time in force, with what a replace changes: a
    new id, the lots it is for, its worst price and its trigger (ticks), the time it came, and
    its time in force if it changes one (None: `old`'s).

    This is the order as the ledger reserves for it and the API shows it. The book builds its
    own from the resting order, which also keeps `post_only` and self-trade prevention (an
    `OrderRecord` holds neither)."""
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
    )
