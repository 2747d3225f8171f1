"""What travels in the streams: commands to ledgers and matchers, replies, and their codec.

A stream entry carries a batch: field `c` holds a JSON array of commands (msgspec, tagged
array-like structs), so that a client that has many commands to send pays one XADD for them.
An entry to a ledger may carry `r`, the Pub/Sub channel its replies go to. JSON rather than
MessagePack because ids are 128-bit integers, which MessagePack cannot hold.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradepit.domain.commands import (
    AddBook,
    AnyMatcherCommand,
    Cancel,
    CloseSession,
    MatcherCommand,
    Replace,
    SetHalted,
    SetSession,
    Submit,
    SubmitOco,
)
from tradepit.domain.events import (
    Accepted,
    Canceled,
    CancelRejected,
    Expired,
    Queued,
    Rejected,
    Replaced,
    ReplaceRejected,
    Resized,
    SessionChanged,
    Trade,
    TradingStatus,
    TrailMoved,
    Triggered,
)
from tradepit.domain.orders import Order, TimeInForce
from tradepit.domain.symbols import Symbol
from tradepit.ledger.history import OrderClass, OrderRecord
from tradepit.ledger.replacement import replacement_order

__all__ = [
    "COMMANDS",
    "REPLY_TO",
    "EVENTS",
    "DEPTH",
    "UPDATES",
    "SymbolSpec",
    "OpenAccount",
    "Transfer",
    "PlaceOrder",
    "CancelOrder",
    "ReplaceOrder",
    "AddSymbol",
    "SetMultiplier",
    "LedgerCommand",
    "Submit",
    "SubmitOco",
    "Cancel",
    "Replace",
    "AddBook",
    "SetHalted",
    "CloseSession",
    "SetSession",
    "MatcherCommand",
    "AnyEvent",
    "Reply",
    "encode",
    "decode_ledger_commands",
    "decode_matcher_commands",
    "decode_events",
    "decode_replies",
    "decode_record",
    "symbol_of",
    "spec_of",
]

COMMANDS = b"c"  # the field of an entry that holds its commands
REPLY_TO = b"r"  # the field that names the channel for the replies
EVENTS = b"e"  # the field of a matcher's outbox entry that holds its events
DEPTH = b"d"  # the field of a matcher's `events` entry that holds its `BookTop`s
UPDATES = b"u"  # the field of a ledger's `updates` entry that holds its `OrderUpdate`s


class SymbolSpec(msgspec.Struct, array_like=True, frozen=True):
    """A symbol as it travels and is stored: the arguments of `tradepit.domain.Symbol`, and
    the reference price (ticks; 0 if none) that bands its prices until it has traded, and
    whether it may be sold short."""

    name: str
    tick_size: str
    lot_size: str
    band_bps: int
    reference: int = 0
    shortable: bool = True


# Commands to a ledger shard. `request_id` names the reply (0: no reply wanted).


class LedgerCommand(msgspec.Struct, array_like=True, gc=False, tag=True):
    request_id: int


class OpenAccount(LedgerCommand, tag="open_account"):
    account_id: int


class Transfer(LedgerCommand, tag="transfer"):
    """Cash (`asset` "$", cents) or shares (a symbol, lots) in (`amount` > 0) or out (< 0)."""

    transfer_id: str
    account_id: int
    asset: str
    amount: int
    cost: int = 0  # cents: the cost basis of deposited shares


class PlaceOrder(LedgerCommand, tag="place_order"):
    """An order, or an order and its legs (`tradepit.matcher.oco`): for `oco`, `order` is the
    take-profit limit and `legs` its stop-loss; for `bracket` and `oto`, `order` is the entry
    and `legs` its exits (a bracket's a limit and a stop, each naming the other in `oco`)."""

    order: Order
    client_order_id: str
    # For the order's record only, as sent: the cents a notional order names (0: a qty order)
    # and its extended_hours.
    notional: int = 0
    extended_hours: bool = False
    order_class: OrderClass = OrderClass.SIMPLE
    legs: list[Order] = []
    # Ticks by symbol: the prices a margin account's positions are valued at for this order
    # (`Ledger.place_order`); none for a cash account.
    marks: dict[str, int] = {}


class CancelOrder(LedgerCommand, tag="cancel_order"):
    account_id: int
    order_id: int
    ts: int


class ReplaceOrder(LedgerCommand, tag="replace_order"):
    account_id: int
    order_id: int
    new_order_id: int
    qty: int
    price: int
    stop_price: int
    client_order_id: str
    ts: int
    time_in_force: TimeInForce | None = None  # None: the old order's
    trail: int = 0  # a trailing stop's new trail (ticks, or its rate); 0: the old one
    marks: dict[str, int] = {}  # as `PlaceOrder.marks`

    def replacement(self, old: OrderRecord) -> Order:
        """The order this command puts in `old`'s place (ledger/replacement.py): what the
        ledger reserves for and records, and what the gateway answers the PATCH with."""
        return replacement_order(
            old,
            self.new_order_id,
            self.qty,
            self.price,
            self.stop_price,
            self.ts,
            self.time_in_force,
            self.trail,
        )


class AddSymbol(LedgerCommand, tag="add_symbol"):
    symbol: SymbolSpec


class SetMultiplier(LedgerCommand, tag="set_multiplier"):
    """The operator makes an account a cash (1) or margin (2, 4) account."""

    account_id: int
    multiplier: int


AnyLedgerCommand = (
    OpenAccount | Transfer | PlaceOrder | CancelOrder | ReplaceOrder | AddSymbol | SetMultiplier
)

# Commands to a matcher shard are the matcher's own (`tradepit.domain.commands`), re-exported
# here with the rest of what travels.

AnyEvent = (
    Accepted
    | Rejected
    | Trade
    | Canceled
    | Expired
    | Replaced
    | ReplaceRejected
    | CancelRejected
    | Triggered
    | TradingStatus
    | TrailMoved
    | Resized
    | Queued
    | SessionChanged
)


class Reply(msgspec.Struct, array_like=True, gc=False):
    """A ledger's answer to one command: done, or refused with a stable `code`."""

    request_id: int
    ok: bool
    # A `Refusal`'s wire code, kept a str so that a code another version sends still decodes.
    code: str = ""
    message: str = ""


encode = msgspec.json.Encoder().encode
_ledger_decoder = msgspec.json.Decoder(list[AnyLedgerCommand])
_matcher_decoder = msgspec.json.Decoder(list[AnyMatcherCommand])
_events_decoder = msgspec.json.Decoder(list[AnyEvent])
_replies_decoder = msgspec.json.Decoder(list[Reply])
decode_record = msgspec.json.Decoder(OrderRecord).decode


def decode_ledger_commands(data: bytes) -> list[AnyLedgerCommand]:
    return _ledger_decoder.decode(data)


def decode_matcher_commands(data: bytes) -> list[AnyMatcherCommand]:
    return _matcher_decoder.decode(data)


def decode_events(data: bytes) -> list[AnyEvent]:
    return _events_decoder.decode(data)


def decode_replies(data: bytes) -> list[Reply]:
    return _replies_decoder.decode(data)


def symbol_of(spec: SymbolSpec) -> Symbol:
    """The `Symbol` a spec describes; raises SymbolError (a ValueError) if it cannot trade."""
    return Symbol(
        spec.name, Decimal(spec.tick_size), Decimal(spec.lot_size), spec.band_bps, spec.shortable
    )


def spec_of(symbol: Symbol) -> SymbolSpec:
    return SymbolSpec(
        symbol.name,
        str(symbol.tick_size),
        str(symbol.lot_size),
        symbol.band_bps,
        shortable=symbol.shortable,
    )
