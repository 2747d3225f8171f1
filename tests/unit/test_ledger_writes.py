"""What a ledger shard writes in a batch: what changed, and not again what Redis holds.

The shard is driven in memory (no Redis): its inbox entries are applied as the stage loop
applies them, and its commit is read back from the `CommandBuffer` it fills."""

from __future__ import annotations

from typing import Any

import hiredis
import msgspec
import pytest
from builders import make

from tradepit.domain.events import Accepted, Canceled, CancelRejected, Event, Triggered
from tradepit.domain.orders import Side
from tradepit.ledger import Ledger
from tradepit.stage.ledger import LedgerShard
from tradepit.stage.messages import (
    COMMANDS,
    EVENTS,
    AddSymbol,
    OpenAccount,
    PlaceOrder,
    SymbolSpec,
    Transfer,
    encode,
)
from tradepit.stage.resp import CommandBuffer
from tradepit.store.keys import VenueConfig
from tradepit.store.ledger import LedgerKeys

ACCOUNT = 7
KEYS = LedgerKeys("l0")
FROM_MATCHER = KEYS.link_from("m0")


def commit(shard: LedgerShard) -> dict[str, list[list[bytes]]]:
    """The batch's commands, by key."""
    tx = CommandBuffer()
    shard.write(tx)
    by_key: dict[str, list[list[bytes]]] = {}
    for packed in tx.packed:
        reader = hiredis.Reader()
        reader.feed(packed)
        command: Any = reader.gets()
        by_key.setdefault(command[1].decode(), []).append(command)
    return by_key


def a_shard_with_an_open_buy() -> LedgerShard:
    shard = LedgerShard(0, VenueConfig())
    setup = [
        AddSymbol(1, SymbolSpec("AAA", "0.01", "1", 1000)),
        OpenAccount(2, ACCOUNT),
        Transfer(3, "cash-in", ACCOUNT, "$", 1_000_000),
        PlaceOrder(4, make(1, ACCOUNT, Side.BUY, 10, 10_000, ts=5), ""),
    ]
    shard.apply(KEYS.inbox, {COMMANDS: encode(setup)})
    commit(shard)
    return shard


def events(*events: Event) -> dict[bytes, bytes]:
    return {EVENTS: encode(list(events))}


NO_MONEY_MOVED = [
    Accepted("AAA", 1, 6, 1, ACCOUNT, Side.BUY, 10_000, 10),
    Triggered("AAA", 1, 6, 1, ACCOUNT, 10_000),
    CancelRejected("AAA", 1, 6, 1, ACCOUNT, "no such order"),
]


@pytest.mark.parametrize("event", NO_MONEY_MOVED, ids=lambda event: type(event).__name__)
def test_events_that_move_no_money_leave_the_ledger_as_it_was(event: Event) -> None:
    """The shard writes no account and no open order for these: that holds only while
    `Ledger.apply` changes nothing for them."""
    shard = a_shard_with_an_open_buy()
    ledger = shard.ledger
    before = msgspec.json.encode((ledger.accounts, ledger.open_orders))
    Ledger.apply(ledger, event)
    assert msgspec.json.encode((ledger.accounts, ledger.open_orders)) == before


def test_an_acceptance_writes_the_record_and_not_the_account_or_open_order() -> None:
    shard = a_shard_with_an_open_buy()
    shard.apply(FROM_MATCHER, events(NO_MONEY_MOVED[0]))
    written = commit(shard)
    assert KEYS.orders in written  # the record: accepted -> new
    assert KEYS.accounts not in written
    assert KEYS.open_orders not in written


def test_a_cancel_writes_the_account_and_removes_the_open_order() -> None:
    shard = a_shard_with_an_open_buy()
    shard.apply(FROM_MATCHER, events(NO_MONEY_MOVED[0]))
    commit(shard)
    shard.apply(FROM_MATCHER, events(Canceled("AAA", 2, 7, 1, ACCOUNT, Side.BUY, 10, "user")))
    written = commit(shard)
    assert [command[0] for command in written[KEYS.open_orders]] == [b"HDEL"]
    assert 1 not in shard.ledger.open_orders
    (hset,) = written[KEYS.accounts]
    assert hset[2] == str(ACCOUNT).encode()
    assert shard.ledger.accounts[ACCOUNT].cash_reserved == 0
