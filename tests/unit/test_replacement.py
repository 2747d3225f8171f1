"""A replace as the gateway answers it and as the ledger shard records it: the same order.

The gateway answers a PATCH with the replacement's record before the ledger's is readable, so
the two must agree to the field. The shard is driven in memory, as the stage loop drives it."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from builders import make

from tradepit.domain.orders import Order, OrderType, Side
from tradepit.gateway.market import Listing
from tradepit.gateway.orders import ReplaceRequest
from tradepit.gateway.trading import replace_command, replacement_record
from tradepit.stage.ledger import LedgerShard
from tradepit.stage.messages import (
    COMMANDS,
    AddSymbol,
    OpenAccount,
    PlaceOrder,
    Replace,
    SymbolSpec,
    Transfer,
    encode,
    symbol_of,
)
from tradepit.store.keys import VenueConfig
from tradepit.store.ledger import LedgerKeys

ACCOUNT = 7
KEYS = LedgerKeys("l0")
SPEC = SymbolSpec("AAA", "0.01", "1", 1000)
LISTING = Listing(symbol_of(SPEC), "asset-AAA", reference=10_000)
NEW_ORDER_ID = 99

CASES = {
    "limit, smaller and dearer": (
        make(1, ACCOUNT, Side.BUY, 10, 10_000, ts=5),
        ReplaceRequest(qty=Decimal("5"), limit_price=Decimal("101.00"), client_order_id="r1"),
    ),
    "limit, nothing said": (make(1, ACCOUNT, Side.BUY, 10, 10_000, ts=5), ReplaceRequest()),
    "stop limit, a new trigger": (
        make(1, ACCOUNT, Side.BUY, 10, 10_300, kind=OrderType.STOP_LIMIT, stop_price=10_200),
        ReplaceRequest(stop_price=Decimal("102.50")),
    ),
    "stop, at the protection price": (
        make(1, ACCOUNT, Side.BUY, 10, 11_000, kind=OrderType.STOP, stop_price=10_200),
        ReplaceRequest(qty=Decimal("3"), time_in_force="GTC"),
    ),
}


def a_shard_with(order: Order) -> LedgerShard:
    shard = LedgerShard(0, VenueConfig())
    setup = [
        AddSymbol(1, SPEC),
        OpenAccount(2, ACCOUNT),
        Transfer(3, "cash-in", ACCOUNT, "$", 1_000_000),
        PlaceOrder(4, order, ""),
    ]
    shard.apply(KEYS.inbox, {COMMANDS: encode(setup)})
    return shard


@pytest.mark.parametrize(("order", "request_"), CASES.values(), ids=CASES.keys())
def test_the_gateway_answers_with_the_order_the_ledger_records(
    order: Order, request_: ReplaceRequest
) -> None:
    shard = a_shard_with(order)
    # What the gateway reads from Redis: a copy, which the shard's own record is not.
    old = msgspec.structs.replace(shard.history.records[order.order_id])
    command = replace_command(request_, old, LISTING, NEW_ORDER_ID, 20)

    shard.apply(KEYS.inbox, {COMMANDS: encode([command])})

    assert shard.history.records[NEW_ORDER_ID] == replacement_record(old, command)
    sent = [c for commands in shard.to_matchers.values() for c in commands]
    assert sent[-1] == Replace(
        "AAA",
        order.order_id,
        ACCOUNT,
        NEW_ORDER_ID,
        command.qty,
        command.price,
        command.stop_price,
        20,
    )
