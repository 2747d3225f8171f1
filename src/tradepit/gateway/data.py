"""Alpaca's Market Data API v2 for stocks: latest trades, quotes and bars, snapshots, and the
history of trades, quotes and bars, in the multi-symbol forms alpaca-py calls and the
single-symbol forms raw-HTTP bots use.

Everything is read from what the market data stage committed (`tradepit.stage.marketdata`).
History pages are ordered by symbol, then time; `next_page_token` names where the next page
starts, and the same query with `page_token` set reads it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from tradepit.domain.symbols import Symbol
from tradepit.gateway.auth import Principal
from tradepit.gateway.data_shapes import bar_json, quote_json, trade_json
from tradepit.gateway.docs import error_responses
from tradepit.gateway.errors import ApiError
from tradepit.gateway.web import gateway_of, parse_int, parse_time, trader
from tradepit.marketdata.bars import (
    DAY_NS,
    MINUTE_NS,
    Bar,
    TimeFrame,
    TimeFrameError,
    aggregate,
    parse_timeframe,
)
from tradepit.marketdata.feed import SymbolFeed
from tradepit.store import marketdata

__all__ = ["router", "data_response"]

router = APIRouter(
    prefix="/v2/stocks", tags=["market data"], responses=error_responses(401, 404, 422, 429)
)

_encode = msgspec.json.Encoder(decimal_format="number").encode
_MAX_SYMBOLS = 200
_MAX_LIMIT = 10_000
_DEFAULT_LIMIT = 1_000
# Minute bars read at most per request to aggregate from: the 30 days the feed keeps.
_MAX_MINUTE_BARS = 31 * 24 * 60
_POSITION = re.compile(r"(\d{1,20}(-\d{1,20})?)?")  # a bar's start, or a stream entry id


def data_response(content: Any) -> Response:
    return Response(_encode(content), media_type="application/json")


# Parameters.


def _symbols(request: Request, text: str | None) -> list[tuple[str, Symbol]]:
    """The listed symbols among `text`'s, in name order; unknown ones are left out, as
    Alpaca leaves out symbols it has no data for."""
    if not text or not text.strip():
        raise ApiError.invalid("symbols is required: a comma-separated list of symbols")
    names = sorted({name.strip().upper() for name in text.split(",") if name.strip()})
    if len(names) > _MAX_SYMBOLS:
        raise ApiError.invalid(f"at most {_MAX_SYMBOLS} symbols per request")
    market = gateway_of(request).market
    assert market is not None
    listed = []
    for name in names:
        listing = market.get(name)
        if listing is not None:
            listed.append((name, listing.symbol))
    return listed


def _one_symbol(request: Request, name: str) -> tuple[str, Symbol]:
    market = gateway_of(request).market
    assert market is not None
    listing = market.get(name.upper())
    if listing is None:
        raise ApiError.not_found(f"symbol {name[:20]!r} not found")
    return listing.symbol.name, listing.symbol


class _Range(msgspec.Struct):
    start: int
    end: int
    limit: int
    descending: bool
    after: tuple[str, str] | None  # (symbol, position) the previous page ended at


_SYMBOLS = Query(None, description="comma-separated symbols, e.g. ACME,GLOBEX")
_START = Query(None, description="RFC 3339 time or date; default: the start of today (UTC)")
_END = Query(None, description="RFC 3339 time or date; default: now")
_LIMIT = Query(None, description=f"1..{_MAX_LIMIT} items per page, over all symbols")
_SORT = Query(None, description="asc (default) or desc")
_TOKEN = Query(None, description="next_page_token of the previous page")


def _range(
    request: Request,
    start: str | None = _START,
    end: str | None = _END,
    limit: str | None = _LIMIT,
    sort: str | None = _SORT,
    page_token: str | None = _TOKEN,
) -> _Range:
    """The window and page a history route reads: its query parameters, checked."""
    now = gateway_of(request).clock.now()  # the trades' own clock
    start_ns = parse_time(start, "start")
    end_ns = parse_time(end, "end")
    # Alpaca's defaults: from the start of the current (UTC) day until now.
    start_ns = now - now % DAY_NS if start_ns is None else start_ns
    end_ns = now if end_ns is None else end_ns
    if end_ns < start_ns:
        raise ApiError.invalid("end must not be before start")
    order = (sort or "asc").lower()
    if order not in ("asc", "desc"):
        raise ApiError.invalid(f"sort must be asc or desc, got {order[:20]!r}")
    return _Range(
        start_ns,
        end_ns,
        parse_int(limit, "limit", _DEFAULT_LIMIT, 1, _MAX_LIMIT),
        order == "desc",
        _decode_token(page_token) if page_token else None,
    )


def _encode_token(symbol: str, position: str) -> str:
    return base64.urlsafe_b64encode(f"{symbol}|{position}".encode()).decode()


def _decode_token(token: str) -> tuple[str, str]:
    try:
        symbol, position = base64.urlsafe_b64decode(token.encode()).decode().split("|")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        symbol, position = "", "?"
    if not _POSITION.fullmatch(position):
        raise ApiError.invalid("page_token is not one this API gave out")
    return symbol, position


def _timeframe(text: str | None) -> TimeFrame:
    if not text:
        raise ApiError.invalid("timeframe is required, e.g. 1Min, 5Min, 1Hour, 1Day")
    try:
        return parse_timeframe(text)
    except TimeFrameError as error:
        raise ApiError.invalid(str(error)) from None


# Reading what the feed stored.


async def _feeds(request: Request, names: list[str]) -> dict[str, SymbolFeed]:
    if not names:
        return {}
    return await marketdata.feeds(gateway_of(request).redis, names)


# Pages of history. A reader returns up to `count` of one symbol's items after `after` (a
# position: a bar's start in ns, or a tape entry's stream id; "" for the symbol's first), each
# with its position.

Item = tuple[str, dict[str, Any]]
Reader = Callable[[Request, str, Symbol, _Range, str, int], Awaitable[list[Item]]]


async def _page(
    request: Request, symbols: list[tuple[str, Symbol]], window: _Range, read: Reader
) -> tuple[dict[str, list[dict[str, Any]]], str | None]:
    results: dict[str, list[dict[str, Any]]] = {}
    left = window.limit
    after_symbol, after_position = window.after or ("", "")
    names = [name for name, _ in symbols]
    for index, (name, symbol) in enumerate(symbols):
        if name < after_symbol:
            continue
        position = after_position if name == after_symbol else ""
        items = await read(request, name, symbol, window, position, left + 1)
        if len(items) > left:  # `left` is at least 1 here, so something fits
            results[name] = [item for _, item in items[:left]]
            return results, _encode_token(name, items[left - 1][0])
        if items:
            results[name] = [item for _, item in items]
        left -= len(items)
        if left == 0:
            later = names[index + 1 :]
            return results, _encode_token(later[0], "") if later else None
    return results, None


async def _read_tape(
    request: Request, name: str, quotes: bool, window: _Range, after: str, count: int
) -> list[tuple[str, Any]]:
    """Entries of a trade or quote stream within the window (to the millisecond)."""
    return await marketdata.tape(
        gateway_of(request).redis,
        name,
        quotes=quotes,
        start_ms=window.start // 1_000_000,
        end_ms=window.end // 1_000_000,
        after=after,
        count=count,
        descending=window.descending,
    )


async def _read_trades(
    request: Request, name: str, symbol: Symbol, window: _Range, after: str, count: int
) -> list[Item]:
    entries = await _read_tape(request, name, False, window, after, count)
    return [(position, trade_json(symbol, trade)) for position, trade in entries]


async def _read_quotes(
    request: Request, name: str, symbol: Symbol, window: _Range, after: str, count: int
) -> list[Item]:
    entries = await _read_tape(request, name, True, window, after, count)
    return [(position, quote_json(symbol, quote)) for position, quote in entries]


def _bar_reader(timeframe: TimeFrame) -> Reader:
    daily = timeframe.unit in ("Day", "Week", "Month")
    unit = DAY_NS if daily else MINUTE_NS
    # 1Min and 1Day are the bars stored: a page reads just its bars, in its order. Longer
    # timeframes aggregate whatever the window holds (at most the 30 days kept).
    stored_as_is = timeframe.amount == 1 and timeframe.unit in ("Min", "Day")

    async def read(
        request: Request, name: str, symbol: Symbol, window: _Range, after: str, count: int
    ) -> list[Item]:
        redis = gateway_of(request).redis
        descending = window.descending
        # A bar counts if its period starts within the window, and after the last page's.
        low = -(-window.start // unit) if stored_as_is else timeframe.bucket(window.start) // unit
        high = window.end // unit
        mark = _bar_mark(after)
        if mark is not None and descending:
            high = min(high, mark // unit - 1)
        elif mark is not None:
            low = max(low, mark // unit + 1)
        if low > high:
            return []
        stored = await marketdata.bars(
            redis,
            name,
            daily=daily,
            low=low,
            high=high,
            count=count if stored_as_is else _MAX_MINUTE_BARS,
            descending=stored_as_is and descending,
        )
        bars = aggregate((update.bar for update in stored), timeframe)
        if descending and not stored_as_is:
            bars.reverse()
        bars = [
            bar
            for bar in bars
            if window.start <= bar.start <= window.end
            and (mark is None or (bar.start < mark if descending else bar.start > mark))
        ]
        return [(str(bar.start), bar_json(symbol, bar)) for bar in bars[:count]]

    return read


def _bar_mark(after: str) -> int | None:
    """Where the last page of bars ended (a bar's start, ns), if it did."""
    if not after:
        return None
    if not after.isdigit():
        raise ApiError.invalid("page_token is not one this API gave out")
    return int(after)


# Routes: the multi-symbol forms alpaca-py calls.


@router.get("/bars", summary="Historical bars")
async def get_bars(
    request: Request,
    symbols: str | None = _SYMBOLS,
    timeframe: str | None = Query(None, description="1Min..59Min, 1Hour..23Hour, 1Day, 1Week"),
    _: Principal = Depends(trader),  # first: a caller without keys learns nothing else
    window: _Range = Depends(_range),
) -> Response:
    frame = _timeframe(timeframe)
    bars, token = await _page(request, _symbols(request, symbols), window, _bar_reader(frame))
    return data_response({"bars": bars, "next_page_token": token})


@router.get("/trades", summary="Historical trades")
async def get_trades(
    request: Request,
    symbols: str | None = _SYMBOLS,
    _: Principal = Depends(trader),  # first: a caller without keys learns nothing else
    window: _Range = Depends(_range),
) -> Response:
    trades, token = await _page(request, _symbols(request, symbols), window, _read_trades)
    return data_response({"trades": trades, "next_page_token": token})


@router.get("/quotes", summary="Historical quotes")
async def get_quotes(
    request: Request,
    symbols: str | None = _SYMBOLS,
    _: Principal = Depends(trader),  # first: a caller without keys learns nothing else
    window: _Range = Depends(_range),
) -> Response:
    quotes, token = await _page(request, _symbols(request, symbols), window, _read_quotes)
    return data_response({"quotes": quotes, "next_page_token": token})


async def _latest(request: Request, symbols: str | None) -> list[tuple[Symbol, SymbolFeed]]:
    listed = _symbols(request, symbols)
    feeds = await _feeds(request, [name for name, _ in listed])
    return [(symbol, feeds[name]) for name, symbol in listed if name in feeds]


@router.get("/trades/latest", summary="Latest trades")
async def get_latest_trades(
    request: Request, symbols: str | None = _SYMBOLS, _: Principal = Depends(trader)
) -> Response:
    found = await _latest(request, symbols)
    trades = {s.name: trade_json(s, feed.last) for s, feed in found if feed.last is not None}
    return data_response({"trades": trades})


@router.get("/quotes/latest", summary="Latest quotes")
async def get_latest_quotes(
    request: Request, symbols: str | None = _SYMBOLS, _: Principal = Depends(trader)
) -> Response:
    found = await _latest(request, symbols)
    quotes = {s.name: quote_json(s, feed.quote) for s, feed in found if feed.quote is not None}
    return data_response({"quotes": quotes})


@router.get("/bars/latest", summary="Latest minute bars")
async def get_latest_bars(
    request: Request, symbols: str | None = _SYMBOLS, _: Principal = Depends(trader)
) -> Response:
    bars = {}
    for symbol, feed in await _latest(request, symbols):
        bar = await _last_minute_bar(request, symbol.name, feed)
        if bar is not None:
            bars[symbol.name] = bar_json(symbol, bar)
    return data_response({"bars": bars})


async def _last_minute_bar(request: Request, name: str, feed: SymbolFeed) -> Bar | None:
    """The symbol's latest minute bar: the one in progress, else the last one stored."""
    if feed.minute is not None:
        return feed.minute
    newest = await marketdata.newest_bar(gateway_of(request).redis, name)
    return newest.bar if newest is not None else None


async def _snapshot(request: Request, symbol: Symbol, feed: SymbolFeed) -> dict[str, Any]:
    minute = await _last_minute_bar(request, symbol.name, feed)
    return {
        "latestTrade": trade_json(symbol, feed.last) if feed.last is not None else None,
        "latestQuote": quote_json(symbol, feed.quote) if feed.quote is not None else None,
        "minuteBar": bar_json(symbol, minute) if minute is not None else None,
        "dailyBar": bar_json(symbol, feed.day) if feed.day is not None else None,
        "prevDailyBar": bar_json(symbol, feed.prev_day) if feed.prev_day is not None else None,
    }


@router.get("/snapshots", summary="Snapshots: latest trade, quote, and bars")
async def get_snapshots(
    request: Request, symbols: str | None = _SYMBOLS, _: Principal = Depends(trader)
) -> Response:
    snapshots = {
        symbol.name: await _snapshot(request, symbol, feed)
        for symbol, feed in await _latest(request, symbols)
    }
    return data_response(snapshots)


# The single-symbol forms.


async def _one_feed(request: Request, name: str) -> tuple[Symbol, SymbolFeed]:
    found_name, symbol = _one_symbol(request, name)
    feeds = await _feeds(request, [found_name])
    return symbol, feeds.get(found_name) or SymbolFeed(found_name)


@router.get("/{symbol}/trades/latest", summary="Latest trade of one symbol")
async def get_latest_trade(
    request: Request, symbol: str, _: Principal = Depends(trader)
) -> Response:
    listed, feed = await _one_feed(request, symbol)
    if feed.last is None:
        raise ApiError.not_found(f"no trade of {listed.name} yet")
    return data_response({"symbol": listed.name, "trade": trade_json(listed, feed.last)})


@router.get("/{symbol}/quotes/latest", summary="Latest quote of one symbol")
async def get_latest_quote(
    request: Request, symbol: str, _: Principal = Depends(trader)
) -> Response:
    listed, feed = await _one_feed(request, symbol)
    if feed.quote is None:
        raise ApiError.not_found(f"no quote of {listed.name} yet")
    return data_response({"symbol": listed.name, "quote": quote_json(listed, feed.quote)})


@router.get("/{symbol}/bars/latest", summary="Latest minute bar of one symbol")
async def get_latest_bar(request: Request, symbol: str, _: Principal = Depends(trader)) -> Response:
    listed, feed = await _one_feed(request, symbol)
    bar = await _last_minute_bar(request, listed.name, feed)
    if bar is None:
        raise ApiError.not_found(f"no bar of {listed.name} yet")
    return data_response({"symbol": listed.name, "bar": bar_json(listed, bar)})


@router.get("/{symbol}/snapshot", summary="Snapshot of one symbol")
async def get_snapshot(request: Request, symbol: str, _: Principal = Depends(trader)) -> Response:
    listed, feed = await _one_feed(request, symbol)
    return data_response({"symbol": listed.name, **await _snapshot(request, listed, feed)})


async def _one_page(
    request: Request, symbol: str, window: _Range, read: Reader, key: str
) -> Response:
    name, listed = _one_symbol(request, symbol)
    items, token = await _page(request, [(name, listed)], window, read)
    return data_response({"symbol": name, key: items.get(name, []), "next_page_token": token})


@router.get("/{symbol}/bars", summary="Historical bars of one symbol")
async def get_symbol_bars(
    request: Request,
    symbol: str,
    timeframe: str | None = Query(None, description="1Min..59Min, 1Hour..23Hour, 1Day, 1Week"),
    _: Principal = Depends(trader),  # first: a caller without keys learns nothing else
    window: _Range = Depends(_range),
) -> Response:
    reader = _bar_reader(_timeframe(timeframe))
    return await _one_page(request, symbol, window, reader, "bars")


@router.get("/{symbol}/trades", summary="Historical trades of one symbol")
async def get_symbol_trades(
    request: Request,
    symbol: str,
    _: Principal = Depends(trader),  # first: a caller without keys learns nothing else
    window: _Range = Depends(_range),
) -> Response:
    return await _one_page(request, symbol, window, _read_trades, "trades")


@router.get("/{symbol}/quotes", summary="Historical quotes of one symbol")
async def get_symbol_quotes(
    request: Request,
    symbol: str,
    _: Principal = Depends(trader),  # first: a caller without keys learns nothing else
    window: _Range = Depends(_range),
) -> Response:
    return await _one_page(request, symbol, window, _read_quotes, "quotes")
