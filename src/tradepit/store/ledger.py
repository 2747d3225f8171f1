"""The ledger shards' part of the schema: their keys, codecs, load function and readers.

A ledger shard `lN` keeps its tables in hashes keyed by id (`{lN}:accounts`, `{lN}:open`,
`{lN}:orders`, ...), per-account listings in lexicographic sorted sets (`index_member`), and
its changed order records in the stream `{lN}:updates`. The stage (`tradepit.stage.ledger`)
writes them; everything else reads them here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec

from tradepit.domain.ids import VENUE_ACCOUNT_ID
from tradepit.domain.orders import Order
from tradepit.ledger import Account, Ledger, LedgerState, OpenOrder
from tradepit.ledger.history import Fill, OrderHistory, OrderRecord, OrderUpdate
from tradepit.stage.messages import UPDATES, SymbolSpec, decode_record, symbol_of
from tradepit.store.connection import Client
from tradepit.store.keys import (
    ShardKeys,
    VenueConfig,
    account_range,
    index_payload,
    ledger_of,
)

__all__ = [
    "LedgerKeys",
    "keys_of_account",
    "update_streams",
    "decode_account",
    "decode_fill",
    "decode_updates",
    "load_ledger",
    "restore_ledger",
    "account",
    "all_accounts",
    "order_record",
    "order_id_by_client_id",
    "orders",
    "fills",
    "has_open_orders",
    "newest_update",
    "read_updates",
]

_SCAN_PAGE = 200  # index members read per round trip when listing an account's orders or fills

decode_account = msgspec.json.Decoder(Account).decode
_decode_open_order = msgspec.json.Decoder(OpenOrder).decode
_decode_transfer = msgspec.json.Decoder(tuple[int, str, int, int]).decode
_decode_totals = msgspec.json.Decoder(dict[str, int]).decode
_decode_specs = msgspec.json.Decoder(list[SymbolSpec]).decode
_decode_fill = msgspec.json.Decoder(Fill).decode
_decode_update = msgspec.json.Decoder(OrderUpdate).decode
decode_updates = msgspec.json.Decoder(list[OrderUpdate]).decode
_decode_legs = msgspec.json.Decoder(list[Order]).decode


class LedgerKeys(ShardKeys):
    """The keys of ledger shard `lN`."""

    def __init__(self, shard: str) -> None:
        super().__init__(shard)
        tag = "{" + shard + "}"
        self.updates = f"{tag}:updates"  # changed order records, for the trade-update streams
        # The stage's own tables, in hashes keyed by id.
        self.accounts = f"{tag}:accounts"
        self.open_orders = f"{tag}:open"
        # A bracket's or OTO's entry id -> its exit legs, held until it fills (`Ledger`).
        self.held_legs = f"{tag}:held"
        self.orders = f"{tag}:orders"
        self.transfers = f"{tag}:transfers"
        self.client_order_ids = f"{tag}:coids"  # "<account id>:<client order id>" -> order id
        # Per-account listings, as lexicographically sorted sets (see `index_member`).
        self.order_index = f"{tag}:orders_by_account"  # every order, by creation time
        self.open_index = f"{tag}:open_by_account"  # the orders still open
        self.fills = f"{tag}:fills"  # every fill (a `Fill`), by time

    def inboxes(self, config: VenueConfig) -> list[str]:
        """What the shard reads, in the order each batch applies them: the matchers' events
        first (settling fills frees buying power for the orders behind them), then commands."""
        return [self.link_from(name) for name in config.matcher_names()] + [self.inbox]


def keys_of_account(account_id: int, config: VenueConfig) -> LedgerKeys:
    """The keys of the ledger shard that owns `account_id`."""
    return LedgerKeys(ledger_of(account_id, config))


def update_streams(config: VenueConfig) -> list[str]:
    """Every ledger shard's stream of order updates."""
    return [LedgerKeys(name).updates for name in config.ledger_names()]


def decode_fill(raw: bytes) -> Fill:
    """A fill index entry: a `Fill`, or the whole `OrderUpdate` that venues before the compact
    index wrote (their data directories still hold those)."""
    try:
        return _decode_fill(raw)
    except msgspec.ValidationError:
        return Fill.of_update(_decode_update(raw))


# Loading a shard.


async def load_ledger(
    client: Client, keys: LedgerKeys, config: VenueConfig
) -> tuple[Ledger, OrderHistory]:
    """A shard's ledger and its live order records, as committed in Redis (one MULTI in the
    shard's own slot)."""
    async with client.pipeline(transaction=True) as tx:
        tx.hgetall(keys.state)
        tx.hvals(keys.accounts)
        tx.hvals(keys.open_orders)
        tx.hgetall(keys.transfers)
        tx.hgetall(keys.client_order_ids)
        tx.hgetall(keys.held_legs)
        state, accounts, open_orders, transfers, client_order_ids, held = await tx.execute()
    ledger = restore_ledger(config, state, accounts, open_orders, transfers, client_order_ids, held)
    history = OrderHistory(ledger.symbols)
    # The records of open orders, and of held legs (which no book has yet).
    live = [
        *ledger.open_orders,
        *(leg.order_id for legs in ledger.held_legs.values() for leg in legs),
    ]
    if live:
        raws: Any = await client.hmget(keys.orders, live)
        for raw in raws:
            if raw is not None:
                record = decode_record(raw)
                history.records[record.order_id] = record
    return ledger, history


def restore_ledger(
    config: VenueConfig,
    state: dict[bytes, bytes],
    accounts: list[bytes],
    open_orders: list[bytes],
    transfers: dict[bytes, bytes],
    client_order_ids: dict[bytes, bytes],
    held_legs: dict[bytes, bytes] | None = None,
) -> Ledger:
    """A ledger from its stored hashes: `state`, and the values of `accounts` and `open`, and
    all of `transfers`, `coids` and `held`."""
    coids: dict[int, dict[str, int]] = {}
    for key, order_id in client_order_ids.items():
        account_id, _, coid = key.decode().partition(":")
        coids.setdefault(int(account_id), {})[coid] = int(order_id)
    ledger_state = LedgerState(
        config.maker_fee_bps,
        config.taker_fee_bps,
        [decode_account(raw) for raw in accounts],
        [_decode_open_order(raw) for raw in open_orders],
        {key.decode(): _decode_transfer(raw) for key, raw in transfers.items()},
        coids,
        _decode_totals(state.get(b"net_deposits", b"{}")),
        _decode_totals(state.get(b"trade_flow", b"{}")),
        {int(entry): _decode_legs(raw) for entry, raw in (held_legs or {}).items()},
    )
    symbols = [symbol_of(spec) for spec in _decode_specs(state.get(b"symbols", b"[]"))]
    ledger = Ledger.restore(ledger_state, symbols)
    ledger.open_account(VENUE_ACCOUNT_ID)
    return ledger


# Accounts.


async def account(client: Client, config: VenueConfig, account_id: int) -> Account | None:
    """An account's balances as last committed; None until its ledger has opened it."""
    raw: Any = await client.hget(keys_of_account(account_id, config).accounts, str(account_id))
    return None if raw is None else decode_account(raw)


async def all_accounts(client: Client, config: VenueConfig) -> list[Account]:
    """Every account of every shard, the venue's own fee account included."""
    async with client.pipeline(transaction=False) as pipe:
        for name in config.ledger_names():
            pipe.hvals(LedgerKeys(name).accounts)
        shards: list[Any] = await pipe.execute()
    return [decode_account(raw) for raws in shards for raw in raws]


# Orders and fills.


async def order_record(
    client: Client, config: VenueConfig, account_id: int, order_id: int
) -> OrderRecord | None:
    """An order's record, if its account's shard holds one by that id (whoever's it is)."""
    raw: Any = await client.hget(keys_of_account(account_id, config).orders, str(order_id))
    return None if raw is None else decode_record(raw)


async def order_records(
    client: Client, config: VenueConfig, account_id: int, order_ids: list[int]
) -> list[OrderRecord | None]:
    """The records of `order_ids` in the account's shard (None for an id it has none of), in
    one HMGET."""
    if not order_ids:
        return []
    key = keys_of_account(account_id, config).orders
    raws: Any = await client.hmget(key, [str(order_id) for order_id in order_ids])
    return [None if raw is None else decode_record(raw) for raw in raws]


async def order_id_by_client_id(
    client: Client, config: VenueConfig, account_id: int, client_order_id: str
) -> int | None:
    keys = keys_of_account(account_id, config)
    raw: Any = await client.hget(keys.client_order_ids, f"{account_id}:{client_order_id}")
    return None if raw is None else int(raw)


async def orders(
    client: Client,
    config: VenueConfig,
    account_id: int,
    *,
    open_only: bool,
    after: int = 0,
    until: int | None = None,
    descending: bool = False,
) -> AsyncIterator[list[OrderRecord]]:
    """The account's orders created after `after` and until `until` (ns), in creation order
    (newest first if `descending`), a page at a time."""
    keys = keys_of_account(account_id, config)
    index = keys.open_index if open_only else keys.order_index
    async for members in _scan(client, index, account_id, after, until, descending):
        ids = [str(int(index_payload(member), 16)) for member in members]
        raws: Any = await client.hmget(keys.orders, ids)
        yield [decode_record(raw) for raw in raws if raw is not None]


async def fills(
    client: Client,
    config: VenueConfig,
    account_id: int,
    *,
    after: int = 0,
    until: int | None = None,
    descending: bool = False,
) -> AsyncIterator[list[Fill]]:
    """The account's fills in time order (newest first if `descending`), a page at a time."""
    key = keys_of_account(account_id, config).fills
    async for members in _scan(client, key, account_id, after, until, descending):
        yield [decode_fill(index_payload(member)) for member in members]


async def has_open_orders(client: Client, config: VenueConfig, account_id: int) -> bool:
    low, high = account_range(account_id)
    key = keys_of_account(account_id, config).open_index
    return bool(await client.zrangebylex(key, low, high, start=0, num=1))


async def _scan(
    client: Client, key: str, account_id: int, after: int, until: int | None, descending: bool
) -> AsyncIterator[list[bytes]]:
    low, high = account_range(account_id, after, until)
    offset = 0
    while True:
        page: Any
        if descending:
            page = await client.zrevrangebylex(key, high, low, start=offset, num=_SCAN_PAGE)
        else:
            page = await client.zrangebylex(key, low, high, start=offset, num=_SCAN_PAGE)
        if not page:
            return
        yield page
        if len(page) < _SCAN_PAGE:
            return
        offset += len(page)


# The order updates' streams.


async def newest_update(client: Client, stream: str) -> bytes:
    """The id of the newest entry of an update stream (`0-0` if it is empty)."""
    newest: Any = await client.xrevrange(stream, count=1)
    return bytes(newest[0][0]) if newest else b"0-0"


async def read_updates(
    client: Client, stream: str, after: bytes, *, count: int, block_ms: int
) -> list[tuple[bytes, bytes]]:
    """The entries of one update stream after `after`: (id, a JSON list of `OrderUpdate`s, for
    `decode_updates`), waiting up to `block_ms` for one to come."""
    response: Any = await client.xread({stream: after}, count=count, block=block_ms)
    return [
        (entry_id, fields.get(UPDATES, b"[]"))
        for _stream, entries in response or ()
        for entry_id, fields in entries
    ]
