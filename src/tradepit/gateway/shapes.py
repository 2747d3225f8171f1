"""Alpaca's JSON shapes, built from tradepit's integers.

Money and quantities go out as decimal strings, ids as UUIDs, enums in Alpaca's case and times
in RFC 3339 with nanoseconds. Every field Alpaca defines is present, null where tradepit has no
value, because older alpaca-py versions require more of them than the current one.
"""

from __future__ import annotations

import time
from decimal import Decimal
from functools import lru_cache
from typing import Any

from tradepit.domain.ids import id_to_uuid
from tradepit.domain.orders import Side
from tradepit.domain.symbols import Symbol, cents_to_cash
from tradepit.gateway.order_names import ORDER_TYPE_NAMES, SIDE_NAMES, TIME_IN_FORCE_NAMES
from tradepit.gateway.orders import trail_percent_text
from tradepit.ledger import Account
from tradepit.ledger.history import Fill, OrderRecord, OrderUpdate
from tradepit.store.prices import holding_value

__all__ = [
    "EXCHANGE",
    "rfc3339",
    "account_number",
    "ratio",
    "average_price",
    "order_json",
    "position_json",
    "asset_json",
    "fill_activity_json",
    "trade_update_json",
    "execution_id",
]

# tradepit is its own market; of Alpaca's exchange names, over-the-counter is the honest one.
EXCHANGE = "OTC"

_RATIO_PLACES = Decimal("1e-6")
_PRICE_PLACES = Decimal("1e-8")


def rfc3339(ns: int | None) -> str | None:
    if not ns:
        return None
    seconds, fraction = divmod(ns, 1_000_000_000)
    return f"{_utc_second(seconds)}.{fraction:09d}Z"


@lru_cache(maxsize=4096)
def _utc_second(seconds: int) -> str:
    # Most times formatted are recent ones, of a few distinct seconds.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def account_number(account_id: int) -> str:
    return f"TP{account_id % 10**10:010d}"


def ratio(numerator: int, denominator: int) -> str | None:
    """`numerator / denominator` as a decimal string to six places, None if undefined."""
    if denominator == 0:
        return None
    return str((Decimal(numerator) / Decimal(denominator)).quantize(_RATIO_PLACES))


def average_price(cents: int, lots: int, symbol: Symbol) -> str | None:
    """The average price of `lots` that cost `cents`: exact on the tick grid when it lands on
    it, else to eight places."""
    if lots == 0:
        return None
    ticks = symbol.ticks_of(cents, lots)
    if ticks is not None:
        return symbol.ticks_to_price(ticks)
    price = Decimal(cents) / 100 / (Decimal(lots) * symbol.lot_size)
    return f"{price.quantize(_PRICE_PLACES).normalize():f}"


def average_fill_price(record: OrderRecord, symbol: Symbol) -> str | None:
    """An order's average fill price: exact, from its fills' ticks x lots (a record from
    before it kept them: from their cash)."""
    lots, value = record.filled_qty, record.filled_value
    if not value:
        return average_price(record.filled_notional, lots, symbol)
    ticks, remainder = divmod(value, lots)
    if not remainder:
        return symbol.ticks_to_price(ticks)
    price = Decimal(value) * symbol.tick_size / lots
    return f"{price.quantize(_PRICE_PLACES).normalize():f}"


def order_json(record: OrderRecord, symbol: Symbol, asset_id: str) -> dict[str, Any]:
    order_type = ORDER_TYPE_NAMES[record.type]
    order_id = id_to_uuid(record.order_id)
    created_at = rfc3339(record.created_at)
    return {
        "id": order_id,
        "client_order_id": record.client_order_id or order_id,
        "created_at": created_at,
        "updated_at": rfc3339(record.updated_at),
        "submitted_at": created_at,
        "filled_at": rfc3339(record.filled_at),
        "expired_at": rfc3339(record.expired_at),
        "canceled_at": rfc3339(record.canceled_at),
        "failed_at": rfc3339(record.updated_at) if record.status == "rejected" else None,
        "replaced_at": rfc3339(record.replaced_at),
        "replaced_by": id_to_uuid(record.replaced_by) if record.replaced_by else None,
        "replaces": id_to_uuid(record.replaces) if record.replaces else None,
        "asset_id": asset_id,
        "symbol": record.symbol,
        "asset_class": "us_equity",
        "notional": cents_to_cash(record.notional) if record.notional else None,
        "qty": symbol.lots_to_qty(record.qty),
        "filled_qty": symbol.lots_to_qty(record.filled_qty),
        "filled_avg_price": average_fill_price(record, symbol),
        "order_class": record.order_class.value,
        "order_type": order_type,
        "type": order_type,
        "side": SIDE_NAMES[record.side],
        "position_intent": _POSITION_INTENTS[record.side, record.short_side],
        "time_in_force": TIME_IN_FORCE_NAMES[record.time_in_force],
        "limit_price": symbol.ticks_to_price(record.limit_price) if record.limit_price else None,
        "stop_price": symbol.ticks_to_price(record.stop_price) if record.stop_price else None,
        "status": record.status,
        "extended_hours": record.extended_hours,
        "legs": None,  # the caller nests them, where it has them
        "trail_percent": trail_percent_text(record.trail_rate) if record.trail_rate else None,
        "trail_price": symbol.ticks_to_price(record.trail_price) if record.trail_price else None,
        "hwm": symbol.ticks_to_price(record.hwm) if record.hwm else None,
        "subtag": None,
        "source": None,
        "expires_at": None,
    }


# Alpaca's position_intent, by side and whether the order is on a short position's side.
_POSITION_INTENTS = {
    (Side.BUY, False): "buy_to_open",
    (Side.BUY, True): "buy_to_close",
    (Side.SELL, False): "sell_to_close",
    (Side.SELL, True): "sell_to_open",
}


def position_json(
    account: Account, name: str, symbol: Symbol, asset_id: str, price: int
) -> dict[str, Any] | None:
    """An open position valued at `price` (ticks; 0 values it at its cost), or None if flat.
    A short has a negative qty, market value and cost basis, as Alpaca writes them."""
    holding = account.holdings.get(name)
    if holding is None or holding.lots == 0:
        return None
    lots = holding.lots
    market_value = holding_value(holding, price, symbol)
    unrealized = market_value - holding.cost
    # What is not already being sold (long) or bought back (short).
    available = holding.free if lots > 0 else lots + holding.covering
    return {
        "asset_id": asset_id,
        "symbol": name,
        "exchange": EXCHANGE,
        "asset_class": "us_equity",
        "asset_marginable": True,
        "qty": symbol.lots_to_qty(lots),
        "qty_available": symbol.lots_to_qty(available),
        "avg_entry_price": average_price(holding.cost, lots, symbol) or "0",
        "side": "long" if lots > 0 else "short",
        "market_value": cents_to_cash(market_value),
        "cost_basis": cents_to_cash(holding.cost),
        "unrealized_pl": cents_to_cash(unrealized),
        "unrealized_plpc": ratio(unrealized, abs(holding.cost)),
        "unrealized_intraday_pl": None,
        "unrealized_intraday_plpc": None,
        "current_price": symbol.ticks_to_price(price) if price else None,
        "lastday_price": None,
        "change_today": None,
        "swap_rate": None,
        "avg_entry_swap_rate": None,
        "usd": None,
    }


def asset_json(symbol: Symbol, asset_id: str, halted: bool) -> dict[str, Any]:
    return {
        "id": asset_id,
        "class": "us_equity",
        "exchange": EXCHANGE,
        "symbol": symbol.name,
        "name": symbol.name,
        "status": "active",
        "tradable": not halted,
        "marginable": True,
        "shortable": symbol.shortable,
        "easy_to_borrow": symbol.shortable,
        "fractionable": symbol.fractionable,
        # At $2.50 a share and up (a long), $5.00 (a short): `tradepit.domain.margin`.
        "maintenance_margin_requirement": 30,
        "margin_requirement_long": "30",
        "margin_requirement_short": "30",
        "min_order_size": str(symbol.lot_size),
        "min_trade_increment": str(symbol.lot_size),
        "price_increment": str(symbol.tick_size),
        "attributes": [],
    }


def execution_id(symbol: str, trade_seq: int, order_id: int) -> str:
    """A fill's id: the same for every reader, distinct for the two sides of one trade."""
    mixed = (hash_symbol(symbol) << 64 | trade_seq) ^ order_id
    return id_to_uuid(mixed & (2**128 - 1))


def hash_symbol(name: str) -> int:
    value = 0xCBF29CE484222325  # FNV-1a, 64 bits: stable across processes, unlike hash()
    for byte in name.encode():
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def fill_activity_json(fill: Fill, symbol: Symbol) -> dict[str, Any]:
    return {
        "id": f"{fill.ts:020d}::{execution_id(fill.symbol, fill.trade_seq, fill.order_id)}",
        "activity_type": "FILL",
        "transaction_time": rfc3339(fill.ts),
        "type": fill.event,
        "price": symbol.ticks_to_price(fill.price),
        "qty": symbol.lots_to_qty(fill.qty),
        "side": SIDE_NAMES[fill.side],
        "symbol": fill.symbol,
        "leaves_qty": symbol.lots_to_qty(fill.order_qty - fill.filled_qty),
        "order_id": id_to_uuid(fill.order_id),
        "cum_qty": symbol.lots_to_qty(fill.filled_qty),
        "order_status": fill.status,
    }


def trade_update_json(update: OrderUpdate, symbol: Symbol, asset_id: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "event": update.event,
        "timestamp": rfc3339(update.ts),
        "order": order_json(update.order, symbol, asset_id),
    }
    if update.qty:
        data["execution_id"] = execution_id(
            update.order.symbol, update.trade_seq, update.order.order_id
        )
        data["price"] = symbol.ticks_to_price(update.price)
        data["qty"] = symbol.lots_to_qty(update.qty)
        data["position_qty"] = symbol.lots_to_qty(update.position_qty)
    return {"stream": "trade_updates", "data": data}
