"""A replace as the gateway answers it and as the ledger shard records it: the same order.

The gateway answers a PATCH with the replacement's record before the ledger's is readable, so
the two must agree to the field. The shard is driven in memory, as the stage loop drives it."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from builders import make

from tradepit.domain.events import Expired, Replaced
from tradepit.domain.orders import Order, OrderType, Side, TimeInForce
from tradepit.gateway.errors import ApiError
from tradepit.gateway.market import Listing
from tradepit.gateway.order_names import TIME_IN_FORCE_BY_NAME
from tradepit.gateway.orders import ReplaceRequest
from tradepit.gateway.trading import replace_command, replacement_record
from tradepit.matcher import Matcher
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
    "limit, day to gtc": (
        make(1, ACCOUNT, Side.BUY, 10, 10_000, tif=TimeInForce.DAY),
        ReplaceRequest(time_in_force="gtc"),
    ),
    "stop limit, gtc to day and a new trigger": (
        make(1, ACCOUNT, Side.BUY, 10, 10_300, kind=OrderType.STOP_LIMIT, stop_price=10_200),
        ReplaceRequest(stop_price=Decimal("102.50"), time_in_force="day"),
    ),
}


def a_shard_with(order: Order, extended_hours: bool = False) -> LedgerShard:
    shard = LedgerShard(0, VenueConfig())
    setup = [
        AddSymbol(1, SPEC),
        OpenAccount(2, ACCOUNT),
        Transfer(3, "cash-in", ACCOUNT, "$", 1_000_000),
        PlaceOrder(4, order, "", extended_hours=extended_hours),
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
        command.time_in_force,
    )
    asked = request_.time_in_force
    wanted = TIME_IN_FORCE_BY_NAME[asked.lower()] if asked else order.time_in_force
    assert shard.history.records[NEW_ORDER_ID].time_in_force is wanted


def test_a_replace_that_keeps_the_time_in_force_says_none_of_it() -> None:
    # So that the command, and the Replace it becomes, are what they were before replace could
    # change the time in force.
    order = make(1, ACCOUNT, Side.BUY, 10, 10_000, tif=TimeInForce.DAY)
    old = a_shard_with(order).history.records[order.order_id]
    command = replace_command(ReplaceRequest(time_in_force="DAY"), old, LISTING, NEW_ORDER_ID, 20)
    assert command.time_in_force is None


@pytest.mark.parametrize("time_in_force", ["ioc", "fok", "opg", "never"])
def test_a_replacement_rests_so_its_time_in_force_is_day_or_gtc(time_in_force: str) -> None:
    order = make(1, ACCOUNT, Side.BUY, 10, 10_000)
    old = a_shard_with(order).history.records[order.order_id]
    with pytest.raises(ApiError) as refused:
        replace_command(ReplaceRequest(time_in_force=time_in_force), old, LISTING, 99, 20)
    assert refused.value.status == 422 and "day or gtc" in refused.value.message


def test_a_replacement_keeps_extended_hours() -> None:
    shard = a_shard_with(make(1, ACCOUNT, Side.BUY, 10, 10_000, ts=5), extended_hours=True)
    old = msgspec.structs.replace(shard.history.records[1])
    assert old.extended_hours
    command = replace_command(ReplaceRequest(qty=Decimal("4")), old, LISTING, NEW_ORDER_ID, 20)
    shard.apply(KEYS.inbox, {COMMANDS: encode([command])})
    assert shard.history.records[NEW_ORDER_ID] == replacement_record(old, command)
    assert shard.history.records[NEW_ORDER_ID].extended_hours


@pytest.mark.parametrize("keeps_priority", [True, False], ids=["smaller", "dearer"])
@pytest.mark.parametrize(
    ("before", "after"),
    [(TimeInForce.DAY, TimeInForce.GTC), (TimeInForce.GTC, TimeInForce.DAY)],
    ids=["day to gtc", "gtc to day"],
)
def test_the_book_holds_the_replacement_to_its_new_time_in_force(
    keeps_priority: bool, before: TimeInForce, after: TimeInForce
) -> None:
    matcher = Matcher()
    matcher.add_symbol("AAA")
    matcher.submit(make(1, ACCOUNT, Side.BUY, 10, 10_000, tif=before))
    price = 10_000 if keeps_priority else 10_001
    matcher.replace("AAA", 1, ACCOUNT, NEW_ORDER_ID, 5, price, 0, 3, after)
    (replaced,) = [e for e in matcher.take_events() if isinstance(e, Replaced)]
    assert replaced.kept_priority is keeps_priority
    assert matcher.books["AAA"].get(NEW_ORDER_ID).time_in_force is after  # type: ignore[union-attr]
    matcher.close_session(50)
    expired = [e.order_id for e in matcher.take_events() if isinstance(e, Expired)]
    assert expired == ([NEW_ORDER_ID] if after is TimeInForce.DAY else [])
