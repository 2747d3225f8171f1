"""The rest of Alpaca's Trading API v2: assets, the clock and calendar, watchlists, account
configurations and portfolio history.

The clock and the calendar say the venue's calendar (`--calendar`): on a 24x7 venue the session
is the UTC day, closed at each UTC midnight (DAY orders expire) and opened again at once; on an
NYSE venue, the exchange's days and hours, in US/Eastern time. Both read the venue's clock.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import date, timedelta
from typing import Any

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from tradepit.calendars import EASTERN
from tradepit.domain.ids import id_to_uuid
from tradepit.domain.session import AlwaysOpen, Calendar, Phase, to_datetime
from tradepit.gateway.auth import Principal
from tradepit.gateway.docs import BODY_ERRORS, error_responses
from tradepit.gateway.errors import ApiError
from tradepit.gateway.orders import decode_body
from tradepit.gateway.service import Gateway
from tradepit.gateway.shapes import asset_json, rfc3339
from tradepit.gateway.web import gateway_of, json_response, read_body, trader
from tradepit.store import preferences
from tradepit.store.preferences import Watchlist

__all__ = ["router"]

router = APIRouter(prefix="/v2", tags=["reference"], responses=error_responses(401, 404, 422, 429))
_MAX_CALENDAR_DAYS = 1_000
_MAX_WATCHLISTS = 100
_MAX_WATCHLIST_SYMBOLS = 1_000


# Assets.


def _assets(gateway: Gateway) -> list[dict[str, Any]]:
    assert gateway.market is not None
    return [
        asset_json(listing.symbol, listing.asset_id, listing.halted)
        for _, listing in sorted(gateway.market.listings.items())
    ]


@router.get("/assets")
async def list_assets(
    request: Request,
    status: str | None = Query(None),
    asset_class: str | None = Query(None),
    exchange: str | None = Query(None),
    attributes: str | None = Query(None),
    _principal: Principal = Depends(trader),
) -> Response:
    assets = _assets(gateway_of(request))
    if status and status.lower() != "active":
        assets = []
    if asset_class and asset_class.lower() != "us_equity":
        assets = []
    if exchange:
        assets = [asset for asset in assets if asset["exchange"] == exchange.upper()]
    if attributes:
        assets = []  # no asset has any of Alpaca's attributes
    return json_response(assets)


@router.get("/assets/{symbol_or_asset_id}")
async def get_asset(
    request: Request, symbol_or_asset_id: str, _principal: Principal = Depends(trader)
) -> Response:
    for asset in _assets(gateway_of(request)):
        if symbol_or_asset_id in (asset["symbol"], asset["id"]):
            return json_response(asset)
    raise ApiError.not_found("asset not found")


# The clock and the calendar.


@router.get("/clock")
async def get_clock(request: Request, _principal: Principal = Depends(trader)) -> Response:
    """The venue's time and whether its market is open (its regular session), in the time zone
    of its calendar: UTC on a 24x7 venue, US/Eastern on an NYSE one."""
    gateway = gateway_of(request)
    calendar, now = gateway.calendar, gateway.clock.now()
    return json_response(
        {
            "timestamp": _local_time(calendar, now),
            "is_open": calendar.phase_at(now) is Phase.OPEN,
            "next_open": _local_time(calendar, calendar.next_open(now)),
            "next_close": _local_time(calendar, calendar.next_close(now)),
            # tradepit's own: the session (closed, pre_market, open, after_hours), and the
            # calendar, for the page and for bots that trade the extended hours.
            "phase": calendar.phase_at(now).value,
            "calendar": calendar.name,
        }
    )


def _local_time(calendar: Calendar, ns: int) -> str:
    moment = to_datetime(ns)
    if isinstance(calendar, AlwaysOpen):
        return moment.isoformat().replace("+00:00", "Z")
    return moment.astimezone(EASTERN).isoformat()


def _date(text: str | None, field: str, default: date) -> date:
    if not text:
        return default
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise ApiError.invalid(f"{field} must be a date (YYYY-MM-DD), got {text[:40]!r}") from None


@router.get("/calendar")
async def get_calendar(
    request: Request,
    start: str | None = Query(None, description="first day (default: today)"),
    end: str | None = Query(None, description="last day (default: 30 days on)"),
    _principal: Principal = Depends(trader),
) -> Response:
    """The market's days from `start` to `end`: each one's regular hours and extended hours,
    in the calendar's time zone, and its settlement date (the next trading day)."""
    gateway = gateway_of(request)
    calendar = gateway.calendar
    today = to_datetime(gateway.clock.now()).date()
    first = _date(start, "start", today)
    last = _date(end, "end", first + timedelta(days=30))
    if last < first:
        raise ApiError.invalid("end is before start")
    if (last - first).days >= _MAX_CALENDAR_DAYS:
        raise ApiError.invalid(f"ask for at most {_MAX_CALENDAR_DAYS} days at a time")
    if isinstance(calendar, AlwaysOpen):
        return json_response([_always_open_day(day.day) for day in calendar.days(first, last)])
    # One more day than asked for: the last one's settlement date.
    days = calendar.days(first, last + timedelta(days=10))
    answer = []
    for day, following in itertools.pairwise(days):
        if day.day > last:
            break
        pre_open, opens, closes, post_close = (
            to_datetime(moment).astimezone(EASTERN)
            for moment in (day.pre_open, day.open, day.close, day.post_close)
        )
        answer.append(
            {
                "date": day.day.isoformat(),
                "open": opens.strftime("%H:%M"),
                "close": closes.strftime("%H:%M"),
                "session_open": pre_open.strftime("%H%M"),
                "session_close": post_close.strftime("%H%M"),
                "settlement_date": following.day.isoformat(),
            }
        )
    return json_response(answer)


def _always_open_day(day: date) -> dict[str, str]:
    return {
        "date": day.isoformat(),
        "open": "00:00",
        "close": "23:59",
        "session_open": "0000",
        "session_close": "2359",
        "settlement_date": day.isoformat(),
    }


# Account configurations.


class SettingsPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    dtbp_check: str | None = None
    trade_confirm_email: str | None = None
    suspend_trade: bool | None = None
    no_shorting: bool | None = None
    fractional_trading: bool | None = None
    max_margin_multiplier: str | None = None
    max_options_trading_level: int | None = None
    pdt_check: str | None = None
    ptp_no_exception_entry: bool | None = None


@router.get("/account/configurations")
async def get_configurations(request: Request, principal: Principal = Depends(trader)) -> Response:
    settings = await gateway_of(request).account_settings(principal.account_id, fresh=True)
    return json_response(msgspec.to_builtins(settings))


@router.patch("/account/configurations", responses=BODY_ERRORS)
async def set_configurations(request: Request, principal: Principal = Depends(trader)) -> Response:
    """Change account configurations. tradepit acts on `suspend_trade` (no new orders),
    `fractional_trading` (fractions of a share, on fractionable symbols) and, on a margin
    account, `no_shorting`. `max_margin_multiplier` is the account's multiplier, which the
    venue's operator sets (`tradepit admin set-margin`); a cash account cannot short."""
    gateway = gateway_of(request)
    patch = decode_body(await read_body(request), SettingsPatch)
    settings = await gateway.account_settings(principal.account_id, fresh=True)
    changes = {key: value for key, value in msgspec.to_builtins(patch).items() if value is not None}
    multiplier = changes.get("max_margin_multiplier", settings.max_margin_multiplier)
    if multiplier != settings.max_margin_multiplier:
        raise ApiError.invalid(
            f"max_margin_multiplier is {settings.max_margin_multiplier}: the venue's operator "
            "sets it"
        )
    if settings.max_margin_multiplier == "1" and changes.get("no_shorting") is False:
        raise ApiError.invalid("no_shorting cannot change: this is a cash account")
    updated = msgspec.structs.replace(settings, **changes)
    await gateway.save_account_settings(principal.account_id, updated)
    return json_response(msgspec.to_builtins(updated))


# Watchlists.


class WatchlistBody(msgspec.Struct, kw_only=True):
    name: str | None = None
    symbols: list[str] | None = None


class WatchlistSymbol(msgspec.Struct, kw_only=True):
    symbol: str


def _watchlist_json(gateway: Gateway, account_id: int, watchlist: Watchlist) -> dict[str, Any]:
    assert gateway.market is not None
    assets = []
    for name in watchlist.symbols:
        listing = gateway.market.get(name)
        if listing is not None:
            assets.append(asset_json(listing.symbol, listing.asset_id, listing.halted))
    return {
        "id": watchlist.id,
        "account_id": id_to_uuid(account_id),
        "name": watchlist.name,
        "created_at": rfc3339(watchlist.created_at),
        "updated_at": rfc3339(watchlist.updated_at),
        "assets": assets,
    }


def _checked_symbols(gateway: Gateway, symbols: list[str]) -> list[str]:
    assert gateway.market is not None
    if len(symbols) > _MAX_WATCHLIST_SYMBOLS:
        raise ApiError.invalid(f"a watchlist holds at most {_MAX_WATCHLIST_SYMBOLS} symbols")
    for name in symbols:
        if gateway.market.get(name) is None:
            raise ApiError.not_found(f"asset not found: {name[:20]!r}")
    return list(dict.fromkeys(symbols))


def _checked_name(name: str | None) -> str:
    if not name or len(name) > 64:
        raise ApiError.invalid("name is required, 1 to 64 characters")
    return name


async def _load_watchlist(gateway: Gateway, account_id: int, watchlist_id: str) -> Watchlist:
    found = await preferences.watchlist(gateway.redis, account_id, watchlist_id[:64])
    if found is None:
        raise ApiError.not_found("watchlist not found")
    return found


async def _save_watchlist(gateway: Gateway, account_id: int, watchlist: Watchlist) -> Response:
    """Store the watchlist as it now is, and answer with it."""
    await preferences.save_watchlist(gateway.redis, account_id, watchlist)
    return json_response(_watchlist_json(gateway, account_id, watchlist))


@router.get("/watchlists")
async def list_watchlists(request: Request, principal: Principal = Depends(trader)) -> Response:
    gateway = gateway_of(request)
    watchlists = await preferences.watchlists(gateway.redis, principal.account_id)
    return json_response(
        [_watchlist_json(gateway, principal.account_id, watchlist) for watchlist in watchlists]
    )


@router.post("/watchlists", responses=BODY_ERRORS)
async def create_watchlist(request: Request, principal: Principal = Depends(trader)) -> Response:
    gateway = gateway_of(request)
    body = decode_body(await read_body(request), WatchlistBody)
    if await preferences.watchlist_count(gateway.redis, principal.account_id) >= _MAX_WATCHLISTS:
        raise ApiError.invalid(f"an account has at most {_MAX_WATCHLISTS} watchlists")
    for existing in await preferences.watchlists(gateway.redis, principal.account_id):
        if existing.name == body.name:
            raise ApiError.invalid("a watchlist with this name exists")
    now = gateway.clock.now()
    watchlist = Watchlist(
        id=str(uuid.uuid4()),
        name=_checked_name(body.name),
        created_at=now,
        updated_at=now,
        symbols=_checked_symbols(gateway, body.symbols or []),
    )
    return await _save_watchlist(gateway, principal.account_id, watchlist)


@router.get("/watchlists:by_name")
async def get_watchlist_by_name(
    request: Request,
    name: str = Query(..., max_length=64, description="the watchlist's name"),
    principal: Principal = Depends(trader),
) -> Response:
    """The watchlist of this name (the legacy SDK's `get_watchlist_by_name`): the oldest, should
    a rename have given two the same name."""
    gateway = gateway_of(request)
    for watchlist in await preferences.watchlists(gateway.redis, principal.account_id):
        if watchlist.name == name:
            return json_response(_watchlist_json(gateway, principal.account_id, watchlist))
    raise ApiError.not_found("watchlist not found")


@router.get("/watchlists/{watchlist_id}")
async def get_watchlist(
    request: Request, watchlist_id: str, principal: Principal = Depends(trader)
) -> Response:
    gateway = gateway_of(request)
    watchlist = await _load_watchlist(gateway, principal.account_id, watchlist_id)
    return json_response(_watchlist_json(gateway, principal.account_id, watchlist))


@router.put("/watchlists/{watchlist_id}", responses=BODY_ERRORS)
async def replace_watchlist(
    request: Request, watchlist_id: str, principal: Principal = Depends(trader)
) -> Response:
    gateway = gateway_of(request)
    body = decode_body(await read_body(request), WatchlistBody)
    watchlist = await _load_watchlist(gateway, principal.account_id, watchlist_id)
    if body.name is not None:
        watchlist.name = _checked_name(body.name)
    if body.symbols is not None:
        watchlist.symbols = _checked_symbols(gateway, body.symbols)
    watchlist.updated_at = gateway.clock.now()
    return await _save_watchlist(gateway, principal.account_id, watchlist)


@router.post("/watchlists/{watchlist_id}", responses=BODY_ERRORS)
async def add_to_watchlist(
    request: Request, watchlist_id: str, principal: Principal = Depends(trader)
) -> Response:
    gateway = gateway_of(request)
    body = decode_body(await read_body(request), WatchlistSymbol)
    watchlist = await _load_watchlist(gateway, principal.account_id, watchlist_id)
    watchlist.symbols = _checked_symbols(gateway, [*watchlist.symbols, body.symbol])
    watchlist.updated_at = gateway.clock.now()
    return await _save_watchlist(gateway, principal.account_id, watchlist)


@router.delete("/watchlists/{watchlist_id}/{symbol}")
async def remove_from_watchlist(
    request: Request, watchlist_id: str, symbol: str, principal: Principal = Depends(trader)
) -> Response:
    gateway = gateway_of(request)
    watchlist = await _load_watchlist(gateway, principal.account_id, watchlist_id)
    if symbol not in watchlist.symbols:
        raise ApiError.not_found(f"{symbol[:20]!r} is not in this watchlist")
    watchlist.symbols = [name for name in watchlist.symbols if name != symbol]
    watchlist.updated_at = gateway.clock.now()
    return await _save_watchlist(gateway, principal.account_id, watchlist)


@router.delete("/watchlists/{watchlist_id}", status_code=204)
async def delete_watchlist(
    request: Request, watchlist_id: str, principal: Principal = Depends(trader)
) -> Response:
    gateway = gateway_of(request)
    await _load_watchlist(gateway, principal.account_id, watchlist_id)
    await preferences.delete_watchlist(gateway.redis, principal.account_id, watchlist_id)
    return Response(status_code=204)
