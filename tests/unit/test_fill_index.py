"""The per-account fill index's entries: compact `Fill`s, and the whole `OrderUpdate`s that
venues wrote before (a data directory keeps them), read back as the same fills."""

from __future__ import annotations

from builders import make

from tradepit.domain.orders import Side
from tradepit.ledger.history import Fill, OrderStatus, OrderUpdate, TradeEvent, accepted_record
from tradepit.stage.messages import encode
from tradepit.store.ledger import decode_fill


def partial_fill() -> OrderUpdate:
    record = accepted_record(make(2**126 + 7, 2**100 + 3, Side.SELL, 5, 10_000), "coid-1")
    record.status = OrderStatus.PARTIALLY_FILLED
    record.filled_qty = 3
    record.updated_at = 1_764_300_000_000_000_000
    return OrderUpdate(TradeEvent.PARTIAL_FILL, record.updated_at, record, 10_000, 2, 95, 41)


def test_a_fill_is_the_trade_and_its_order_just_after() -> None:
    update = partial_fill()
    fill = Fill.of_update(update)
    assert fill == Fill(
        "partial_fill",
        update.ts,
        2**126 + 7,
        update.order.symbol,
        Side.SELL,
        5,
        3,
        "partially_filled",
        10_000,
        2,
        41,
    )
    assert len(encode(fill)) < len(encode(update))


def test_the_index_reads_fills_and_the_updates_older_venues_wrote_alike() -> None:
    update = partial_fill()
    fill = Fill.of_update(update)
    assert decode_fill(encode(fill)) == fill
    assert decode_fill(encode(update)) == fill
