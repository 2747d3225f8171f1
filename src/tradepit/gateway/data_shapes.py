"""Alpaca Market Data v2 shapes: trades, quotes and bars as the API and the streams send them.

Market data speaks plain numbers, as Alpaca's does: prices and sizes leave as exact decimals
(the JSON number is the decimal's own digits; MessagePack, which has no decimals, gets a
float), and times as RFC 3339 (JSON) or a MessagePack timestamp (the streams, where alpaca-py
requires one).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tradepit.domain.symbols import Symbol
from tradepit.gateway.shapes import rfc3339
from tradepit.marketdata.bars import Bar
from tradepit.marketdata.feed import Print, Quote

__all__ = ["VENUE_CODE", "price_of", "size_of", "trade_json", "quote_json", "bar_json"]

VENUE_CODE = "TP"  # the exchange code tradepit's prints and quotes carry
_VWAP_PLACES = Decimal("0.0001")


def price_of(symbol: Symbol, ticks: int) -> Decimal:
    return ticks * symbol.tick_size


def size_of(symbol: Symbol, lots: int) -> Decimal:
    return lots * symbol.lot_size


def trade_json(symbol: Symbol, trade: Print, time: Any = None) -> dict[str, Any]:
    return {
        "t": time if time is not None else rfc3339(trade.ts),
        "x": VENUE_CODE,
        "p": price_of(symbol, trade.price),
        "s": size_of(symbol, trade.qty),
        "c": ["@"],
        "i": trade.trade_id,
        "z": "C",
    }


def quote_json(symbol: Symbol, quote: Quote, time: Any = None) -> dict[str, Any]:
    return {
        "t": time if time is not None else rfc3339(quote.ts),
        "bx": VENUE_CODE,
        "bp": price_of(symbol, quote.bid),
        "bs": size_of(symbol, quote.bid_size),
        "ax": VENUE_CODE,
        "ap": price_of(symbol, quote.ask),
        "as": size_of(symbol, quote.ask_size),
        "c": ["R"],
        "z": "C",
    }


def bar_json(symbol: Symbol, bar: Bar, time: Any = None) -> dict[str, Any]:
    vwap = (
        (bar.notional * symbol.tick_size / bar.volume).quantize(_VWAP_PLACES)
        if bar.volume
        else None
    )
    return {
        "t": time if time is not None else rfc3339(bar.start),
        "o": price_of(symbol, bar.open),
        "h": price_of(symbol, bar.high),
        "l": price_of(symbol, bar.low),
        "c": price_of(symbol, bar.close),
        "v": size_of(symbol, bar.volume),
        "n": bar.trades,
        "vw": vwap,
    }
