"""Alpaca's Trading API v2: orders, positions, the account and its activities.

Every route acts for the account of the key that calls it, and for no other: an order or a
position of another account answers 404, as if it did not exist.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from tradepit.domain.ids import id_to_uuid, new_id
from tradepit.domain.margin import Margin
from tradepit.domain.numbers import to_decimal
from tradepit.domain.orders import Order, OrderType, Side, TimeInForce
from tradepit.domain.session import to_datetime
from tradepit.domain.symbols import cash_to_cents, cents_to_cash
from tradepit.gateway.auth import Principal
from tradepit.gateway.docs import BODY_ERRORS, error_responses
from tradepit.gateway.errors import ApiError
from tradepit.gateway.market import Listing
from tradepit.gateway.order_names import SIDE_BY_NAME, TIME_IN_FORCE_BY_NAME
from tradepit.gateway.orders import (
    OrderRequest,
    ReplaceRequest,
    build_order,
    check_client_order_id,
    check_session,
    decode_body,
    is_fractional,
    trail_rate,
)
from tradepit.gateway.service import Gateway, ledger_error
from tradepit.gateway.shapes import (
    account_number,
    fill_activity_json,
    order_json,
    position_json,
    rfc3339,
)
from tradepit.gateway.web import (
    body_doc,
    gateway_of,
    json_response,
    parse_bool,
    parse_int,
    parse_order_id,
    parse_time,
    read_body,
    trader,
)
from tradepit.ledger import Account, account_margin
from tradepit.ledger.history import (
    TERMINAL_STATUSES,
    OrderClass,
    OrderRecord,
    OrderStatus,
    accepted_record,
    held_record,
)
from tradepit.stage.messages import CancelOrder, PlaceOrder, ReplaceOrder
from tradepit.store import ledger
from tradepit.store.portfolio import equity_samples
from tradepit.store.preferences import AccountSettings
from tradepit.store.prices import holding_value, prices

__all__ = [
    "router",
    "place_order",
    "request_cancel",
    "order_view",
    "replace_command",
    "replacement_record",
]

router = APIRouter(
    prefix="/v2", tags=["trading"], responses=error_responses(401, 403, 404, 422, 429)
)
_DAY_NS = 86_400 * 10**9

_ORDER_EXAMPLE = {
    "symbol": "ACME",
    "qty": "10",
    "side": "buy",
    "type": "limit",
    "time_in_force": "gtc",
    "limit_price": "100.00",
}


def _listing(gateway: Gateway, name: str) -> Listing:
    assert gateway.market is not None
    listing = gateway.market.get(name) if isinstance(name, str) else None
    if listing is None:
        raise ApiError.not_found(f"asset not found: {str(name)[:20]!r}")
    return listing


def order_view(
    gateway: Gateway, record: OrderRecord, legs: list[OrderRecord] | None = None
) -> dict[str, Any]:
    """An order's JSON, with its legs' nested in it when they are given."""
    listing = _listing(gateway, record.symbol)
    view = order_json(record, listing.symbol, listing.asset_id)
    if legs:
        view["legs"] = [order_json(leg, listing.symbol, listing.asset_id) for leg in legs]
    return view


async def legs_of(
    gateway: Gateway, account_id: int, parents: list[OrderRecord]
) -> dict[int, list[OrderRecord]]:
    """The records of the parents' legs as they stand now, by parent id: a leg that was
    replaced is the order that replaced it, the newest of the line. One read per step along
    the lines of replacements, for all of them at once."""
    found: dict[int, OrderRecord] = {}
    wanted = [leg_id for parent in parents for leg_id in parent.legs]
    while wanted:
        records = await gateway.order_records(account_id, wanted)
        found.update((record.order_id, record) for record in records)
        wanted = [r.replaced_by for r in records if r.replaced_by and r.replaced_by not in found]
    legs: dict[int, list[OrderRecord]] = {}
    for parent in parents:
        line_ends = []
        for leg_id in parent.legs:
            record = found.get(leg_id)
            while record is not None and record.replaced_by in found:
                record = found[record.replaced_by]
            if record is not None:
                line_ends.append(record)
        legs[parent.order_id] = line_ends
    return legs


async def place_order(
    gateway: Gateway, account_id: int, request: OrderRequest
) -> tuple[OrderRecord, list[OrderRecord]]:
    """Check, reserve and send an order; its record as accepted and its legs', or ApiError."""
    listing = _listing(gateway, request.symbol)
    if listing.halted:
        raise ApiError.forbidden(f"{listing.symbol.name} is halted")
    settings = await gateway.account_settings(account_id)
    if settings.suspend_trade:
        raise ApiError.forbidden("trading is suspended for this account (suspend_trade)")
    now = gateway.clock.now()
    order, client_order_id, order_class, legs = build_order(
        request, listing, new_id, account_id, now
    )
    check_session(order, gateway.calendar, now)
    if is_fractional(listing.symbol, order.qty) and not settings.fractional_trading:
        raise ApiError.forbidden("fractional trading is off for this account (fractional_trading)")
    # build_order has checked the notional (whole cents, more than zero); the record keeps it.
    notional = cash_to_cents(request.notional, "notional") if request.notional is not None else 0
    extended_hours = bool(request.extended_hours)
    marks: dict[str, int] = {}
    short_side = False
    if settings.max_margin_multiplier != "1":  # a margin account
        account = await gateway.account(account_id)
        if settings.no_shorting:
            _check_not_short(account, order)
        marks = await _margin_marks(gateway, account, order.symbol)
        short_side = _on_short_side(account, order)
    command = PlaceOrder(
        0, order, client_order_id, notional, extended_hours, order_class, list(legs), marks
    )
    reply = await gateway.client.request(account_id, command)
    if not reply.ok:
        raise ledger_error(reply)
    leg_ids = tuple(leg.order_id for leg in legs)
    record = accepted_record(
        order, client_order_id, 0, notional, extended_hours, order_class, leg_ids, 0, short_side
    )
    parent = order.order_id
    if order_class is OrderClass.OCO:  # its stop-loss goes live with it
        return record, [accepted_record(legs[0], "", order_class=order_class, parent=parent)]
    # A bracket's or OTO's legs wait for their entry to fill.
    return record, [held_record(leg, order_class, parent) for leg in legs]


def _on_short_side(account: Account, order: Order) -> bool:
    """Whether the ledger will place `order` as a short sale (no lot of it held) or a buy back
    of a short, as it splits orders (`Ledger.place_order`), for the answer's record; the
    stored record has the ledger's own word."""
    holding = account.holdings.get(order.symbol)
    if order.side is Side.SELL:
        return holding is None or holding.free <= 0
    return holding is not None and holding.free < 0 and -holding.lots > holding.covering


def _check_not_short(account: Account, order: Order) -> None:
    """Refuse a sale beyond what the account holds: the account turned shorting off."""
    holding = account.holdings.get(order.symbol)
    if order.side is Side.SELL and order.qty > (max(0, holding.free) if holding else 0):
        raise ApiError.forbidden("account is not allowed to short (no_shorting)")


async def _margin_marks(gateway: Gateway, account: Account, symbol: str) -> dict[str, int]:
    """The prices (ticks) a margin account's positions and an order's symbol are valued at
    for its buying power (`tradepit.store.prices`)."""
    names = {symbol, *(name for name, holding in account.holdings.items() if holding.lots)}
    now = await prices(gateway.redis, gateway.client.config, names)
    return {name: price.ticks for name, price in now.items() if price.ticks}


@router.post("/orders", openapi_extra=body_doc(_ORDER_EXAMPLE), responses=BODY_ERRORS)
async def submit_order(request: Request, principal: Principal = Depends(trader)) -> Response:
    """Place an order: market, limit, stop, stop_limit or trailing_stop (`trail_price` or
    `trail_percent`; day or gtc); day, gtc, ioc or fok. A limit may be at any price on the
    grid: one that would trade outside the price band is rejected by the book. `order_class`
    bracket, oco or oto, with `take_profit` and `stop_loss`: the answer nests the `legs`."""
    gateway = gateway_of(request)
    body = decode_body(await read_body(request), OrderRequest)
    record, legs = await place_order(gateway, principal.account_id, body)
    return json_response(order_view(gateway, record, legs))


@router.get("/orders")
async def list_orders(
    request: Request,
    status: str | None = Query(None, description="open (default), closed or all"),
    limit: str | None = Query(None, description="at most this many orders (default 50, max 500)"),
    after: str | None = Query(None, description="only orders submitted after this time"),
    until: str | None = Query(None, description="only orders submitted until this time"),
    direction: str | None = Query(None, description="desc (default) or asc"),
    nested: str | None = Query(None),
    symbols: str | None = Query(None, description="comma-separated symbols"),
    side: str | None = Query(None, description="buy or sell"),
    principal: Principal = Depends(trader),
) -> Response:
    gateway = gateway_of(request)
    wanted = (status or "open").lower()
    if wanted not in ("open", "closed", "all"):
        raise ApiError.invalid(f"status must be open, closed or all, got {status!r}")
    descending = _descending(direction)
    rolled_up = parse_bool(nested, "nested")
    symbol_set = {name.strip() for name in symbols.split(",") if name.strip()} if symbols else None
    side_wanted = _side_filter(side)

    def keep(record: OrderRecord) -> bool:
        if rolled_up and record.parent:
            return False  # it is listed in its parent's legs
        if wanted == "closed" and record.status not in TERMINAL_STATUSES:
            return False
        if symbol_set is not None and record.symbol not in symbol_set:
            return False
        return side_wanted is None or record.side is side_wanted

    records = await gateway.orders(
        principal.account_id,
        open_only=wanted == "open",
        after=parse_time(after, "after") or 0,
        until=parse_time(until, "until"),
        descending=descending,
        limit=parse_int(limit, "limit", 50, 1, 500),
        keep=keep,
    )
    if not rolled_up:
        return json_response([order_view(gateway, record) for record in records])
    legs = await legs_of(gateway, principal.account_id, records)
    return json_response([order_view(gateway, record, legs[record.order_id]) for record in records])


def _descending(direction: str | None) -> bool:
    if direction is None or direction == "" or direction.lower() == "desc":
        return True
    if direction.lower() == "asc":
        return False
    raise ApiError.invalid(f"direction must be asc or desc, got {direction!r}")


def _side_filter(side: str | None) -> Side | None:
    if side is None or side == "":
        return None
    found = SIDE_BY_NAME.get(side.lower())
    if found is None:
        raise ApiError.invalid(f"side must be buy or sell, got {side!r}")
    return found


@router.get("/orders:by_client_order_id")
async def get_order_by_client_id(
    request: Request,
    client_order_id: str = Query(..., max_length=128),
    principal: Principal = Depends(trader),
) -> Response:
    gateway = gateway_of(request)
    order_id = await gateway.order_id_by_client_id(principal.account_id, client_order_id)
    record = await gateway.order(principal.account_id, order_id)
    return json_response(order_view(gateway, record))


@router.get("/orders/{order_id}")
async def get_order(
    request: Request,
    order_id: str,
    nested: str | None = Query(None),
    principal: Principal = Depends(trader),
) -> Response:
    gateway = gateway_of(request)
    parse_bool(nested, "nested")  # an order's legs are always nested in it
    record = await gateway.order(principal.account_id, parse_order_id(order_id))
    legs = await legs_of(gateway, principal.account_id, [record])
    return json_response(order_view(gateway, record, legs[record.order_id]))


async def request_cancel(gateway: Gateway, account_id: int, order_id: int) -> None:
    """Send the cancel to the book (the order is pending_cancel); ApiError if it cannot be."""
    reply = await gateway.client.request(
        account_id, CancelOrder(0, account_id, order_id, gateway.clock.now())
    )
    if not reply.ok:
        record = await gateway.order(account_id, order_id)  # 404 if it is not the caller's
        if reply.code == "unknown_order" and record.status in TERMINAL_STATUSES:
            raise ApiError.invalid(f"order is {record.status} and can no longer be canceled")
        raise ledger_error(reply)


@router.delete("/orders/{order_id}", status_code=204)
async def cancel_order(
    request: Request, order_id: str, principal: Principal = Depends(trader)
) -> Response:
    """Cancel an open order: 204 once the book has the cancel; trade_updates says `canceled`."""
    gateway = gateway_of(request)
    await request_cancel(gateway, principal.account_id, parse_order_id(order_id))
    return Response(status_code=204)


@router.delete("/orders")
async def cancel_all_orders(request: Request, principal: Principal = Depends(trader)) -> Response:
    """Cancel every open order: 207 with a status per order."""
    gateway = gateway_of(request)
    results = await _cancel_all(gateway, principal.account_id)
    return json_response(results, status=207)


async def _cancel_all(gateway: Gateway, account_id: int) -> list[dict[str, Any]]:
    records = await gateway.orders(
        account_id,
        open_only=True,
        after=0,
        until=None,
        descending=False,
        limit=100_000,
        keep=lambda record: record.status not in TERMINAL_STATUSES,
    )
    outcomes = await asyncio.gather(
        *(request_cancel(gateway, account_id, record.order_id) for record in records),
        return_exceptions=True,
    )
    results = []
    for record, outcome in zip(records, outcomes, strict=True):
        entry: dict[str, Any] = {"id": id_to_uuid(record.order_id)}
        if isinstance(outcome, ApiError):
            entry["status"] = outcome.status
            entry["body"] = {"code": outcome.code, "message": outcome.message}
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            pending = msgspec.structs.replace(record, status=OrderStatus.PENDING_CANCEL)
            entry["status"] = 200
            entry["body"] = order_view(gateway, pending)
        results.append(entry)
    return results


@router.patch(
    "/orders/{order_id}",
    openapi_extra=body_doc({"qty": "5", "limit_price": "101.00"}),
    responses=BODY_ERRORS,
)
async def replace_order(
    request: Request, order_id: str, principal: Principal = Depends(trader)
) -> Response:
    """Replace an open order with a new one (new qty, limit or stop price, time in force: day
    or gtc). A price change or a size increase loses time priority; a size decrease keeps it."""
    gateway = gateway_of(request)
    account_id = principal.account_id
    body = decode_body(await read_body(request), ReplaceRequest)
    old = await gateway.order(account_id, parse_order_id(order_id))
    if old.status in TERMINAL_STATUSES:
        raise ApiError.invalid(f"order is {old.status} and can no longer be replaced")
    listing = _listing(gateway, old.symbol)
    command = replace_command(body, old, listing, new_id(), gateway.clock.now())
    if (await gateway.account_settings(account_id)).max_margin_multiplier != "1":
        account = await gateway.account(account_id)
        command.marks = await _margin_marks(gateway, account, old.symbol)
    reply = await gateway.client.request(account_id, command)
    if not reply.ok:
        raise ledger_error(reply)
    return json_response(order_view(gateway, replacement_record(old, command)))


def replace_command(
    request: ReplaceRequest, old: OrderRecord, listing: Listing, new_order_id: int, now: int
) -> ReplaceOrder:
    """The replace of `old` that `request` asks for, in integers, or ApiError(422) saying what
    is wrong with it. What the request leaves out stays as it was; the qty left out is what
    is still open."""
    symbol = listing.symbol
    trail = 0  # unchanged
    if request.trail is not None:
        if old.type is not OrderType.TRAILING_STOP:
            raise ApiError.invalid("trail applies to trailing_stop orders only")
        if old.trail_price:
            trail = symbol.price_to_ticks(request.trail, "trail")
        else:
            trail = trail_rate(request.trail, "trail")
    time_in_force = None  # unchanged: the command and its wire form stay as they were
    if request.time_in_force is not None:
        wanted = TIME_IN_FORCE_BY_NAME.get(request.time_in_force.lower())
        if wanted is not old.time_in_force:
            # A replacement rests in the book, as the order it replaces did.
            if wanted not in (TimeInForce.DAY, TimeInForce.GTC):
                raise ApiError.invalid(
                    f"a replacement's time_in_force is day or gtc; got {request.time_in_force!r}"
                )
            time_in_force = wanted
    if request.qty is not None:
        qty = symbol.qty_to_lots(request.qty, "qty")
    else:
        qty = old.qty - old.filled_qty
    limit = old.limit_price
    if request.limit_price is not None:
        if old.type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            raise ApiError.invalid("limit_price does not apply to this order's type")
        limit = symbol.price_to_ticks(request.limit_price, "limit_price")  # the matcher bands it
    # A trailing stop's trigger is the matcher's to move: the command carries none.
    stop = 0 if old.type is OrderType.TRAILING_STOP else old.stop_price
    if request.stop_price is not None:
        if old.type not in (OrderType.STOP, OrderType.STOP_LIMIT):
            raise ApiError.invalid("stop_price does not apply to this order's type")
        stop = symbol.price_to_ticks(request.stop_price, "stop_price")
    if old.type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        price = limit
    elif listing.reference_price():
        price = symbol.protection_price(old.side is Side.BUY, listing.reference_price())
    else:
        raise ApiError.invalid(f"{symbol.name} has no reference price to protect this order")
    client_order_id = check_client_order_id(request.client_order_id)
    return ReplaceOrder(
        0,
        old.account_id,
        old.order_id,
        new_order_id,
        qty,
        price,
        stop,
        client_order_id,
        now,
        time_in_force,
        trail,
    )


def replacement_record(old: OrderRecord, command: ReplaceOrder) -> OrderRecord:
    """The record of the order that replaces `old`, as the ledger accepted it for `command`."""
    return accepted_record(
        command.replacement(old),
        command.client_order_id,
        old.order_id,
        extended_hours=old.extended_hours,
        order_class=old.order_class,
        legs=old.legs,
        parent=old.parent,
        short_side=old.short_side,
    )


# Positions.


async def _priced_positions(gateway: Gateway, account: Account) -> tuple[list[dict[str, Any]], int]:
    """The account's open positions at their prices (`tradepit.store.prices`), and their market
    value in cents."""
    assert gateway.market is not None
    names = [name for name, holding in account.holdings.items() if holding.free + holding.reserved]
    now = await prices(gateway.redis, gateway.client.config, names)
    positions = []
    market_value = 0
    for name in sorted(names):
        listing = gateway.market.get(name)
        price = now.get(name)
        if listing is None or price is None:
            continue
        position = position_json(account, name, listing.symbol, listing.asset_id, price.ticks)
        if position is not None:
            positions.append(position)
            market_value += holding_value(account.holdings[name], *price)
    return positions, market_value


@router.get("/positions")
async def list_positions(request: Request, principal: Principal = Depends(trader)) -> Response:
    gateway = gateway_of(request)
    account = await gateway.account(principal.account_id)
    positions, _ = await _priced_positions(gateway, account)
    return json_response(positions)


async def _position(gateway: Gateway, account: Account, symbol_or_asset_id: str) -> dict[str, Any]:
    positions, _ = await _priced_positions(gateway, account)
    for position in positions:
        if symbol_or_asset_id in (position["symbol"], position["asset_id"]):
            return position
    raise ApiError.not_found("position does not exist")


@router.get("/positions/{symbol_or_asset_id}")
async def get_position(
    request: Request, symbol_or_asset_id: str, principal: Principal = Depends(trader)
) -> Response:
    gateway = gateway_of(request)
    account = await gateway.account(principal.account_id)
    return json_response(await _position(gateway, account, symbol_or_asset_id))


async def _close(
    gateway: Gateway, account: Account, name: str, qty: str | None, percentage: str | None
) -> OrderRecord:
    """Sell (part of) a position at market, or buy back (part of) a short one."""
    listing = _listing(gateway, name)
    symbol = listing.symbol
    holding = account.holdings.get(name)
    position = holding.lots if holding is not None else 0
    if not position or holding is None:
        raise ApiError.not_found("position does not exist")
    held = abs(position)
    # What no open order is already selling (a long) or buying back (a short).
    available = holding.free if position > 0 else held - holding.covering
    if qty is not None and percentage is not None:
        raise ApiError.invalid("send qty or percentage, not both")
    if qty is not None:
        lots = symbol.qty_to_lots(qty, "qty")
    elif percentage is not None:
        share = to_decimal(percentage, "percentage")
        if not 0 < share <= 100:
            raise ApiError.invalid("percentage must be within (0, 100]")
        lots = int(held * share / 100)
        if lots == 0:
            raise ApiError.invalid(f"{percentage}% of the position is less than one lot")
    else:
        lots = held
    if lots > available:
        raise ApiError.forbidden(
            f"insufficient qty available for order (requested: {symbol.lots_to_qty(lots)}, "
            f"available: {symbol.lots_to_qty(available)})"
        )
    request = OrderRequest(
        symbol=name,
        side="sell" if position > 0 else "buy",
        type="market",
        time_in_force="day",
        qty=Decimal(symbol.lots_to_qty(lots)),
    )
    record, _ = await place_order(gateway, account.account_id, request)  # a simple order
    return record


@router.delete("/positions/{symbol_or_asset_id}")
async def close_position(
    request: Request,
    symbol_or_asset_id: str,
    qty: str | None = Query(None, description="sell this many shares"),
    percentage: str | None = Query(None, description="or this percentage of the position"),
    principal: Principal = Depends(trader),
) -> Response:
    """Sell a position, or part of it, at market."""
    gateway = gateway_of(request)
    account = await gateway.account(principal.account_id)
    position = await _position(gateway, account, symbol_or_asset_id)
    record = await _close(gateway, account, position["symbol"], qty, percentage)
    return json_response(order_view(gateway, record))


@router.delete("/positions")
async def close_all_positions(
    request: Request,
    cancel_orders: str | None = Query(None, description="cancel open orders first"),
    principal: Principal = Depends(trader),
) -> Response:
    """Sell every position at market: 207 with a status per symbol."""
    gateway = gateway_of(request)
    account_id = principal.account_id
    if parse_bool(cancel_orders, "cancel_orders"):
        await _cancel_all(gateway, account_id)
        await _wait_until_no_open_orders(gateway, account_id)
    account = await gateway.account(account_id)
    results = []
    for name in sorted(account.holdings):
        holding = account.holdings[name]
        if not holding.lots:
            continue
        entry: dict[str, Any] = {"symbol": name}
        try:
            record = await _close(gateway, account, name, None, None)
        except ApiError as error:
            entry["status"] = error.status
            entry["body"] = {"code": error.code, "message": error.message}
        else:
            entry["status"] = 200
            entry["body"] = order_view(gateway, record)
        results.append(entry)
    return json_response(results, status=207)


async def _wait_until_no_open_orders(gateway: Gateway, account_id: int) -> None:
    """Cancels settle through the book: wait (a little) until their reservations are free."""
    for _ in range(50):
        if not await ledger.has_open_orders(gateway.redis, gateway.client.config, account_id):
            return
        await asyncio.sleep(0.02)


# The account.


@router.get("/account")
async def get_account(request: Request, principal: Principal = Depends(trader)) -> Response:
    gateway = gateway_of(request)
    account = await gateway.account(principal.account_id)
    margin = await margin_now(gateway, account)
    settings = await gateway.account_settings(principal.account_id)
    return json_response(await _account_json(gateway, account, margin, settings))


async def margin_now(gateway: Gateway, account: Account) -> Margin:
    """The account's margin with its positions at their prices now (`tradepit.store.prices`)."""
    names = [name for name, holding in account.holdings.items() if holding.lots]
    now = await prices(gateway.redis, gateway.client.config, names)
    marks = {name: price.ticks for name, price in now.items()}
    return account_margin(account, {name: price.symbol for name, price in now.items()}, marks)


async def _account_json(
    gateway: Gateway, account: Account, margin: Margin, settings: AccountSettings
) -> dict[str, Any]:
    suspended = settings.suspend_trade
    buying_power = cents_to_cash(margin.buying_power)
    created = await gateway.account_created_at(account.account_id)
    return {
        "id": id_to_uuid(account.account_id),
        "account_number": account_number(account.account_id),
        "status": "ACTIVE",
        "crypto_status": "INACTIVE",
        "currency": "USD",
        "buying_power": buying_power,
        "regt_buying_power": cents_to_cash(margin.regt_buying_power),
        "daytrading_buying_power": cents_to_cash(margin.daytrading_buying_power),
        "effective_buying_power": buying_power,
        "non_marginable_buying_power": cents_to_cash(margin.non_marginable_buying_power),
        "options_buying_power": "0",
        "bod_dtbp": "0",
        "cash": cents_to_cash(margin.cash),
        "accrued_fees": "0",
        "pending_transfer_in": "0",
        "pending_transfer_out": "0",
        "portfolio_value": cents_to_cash(margin.equity),
        "pattern_day_trader": False,
        "trading_blocked": suspended,
        "transfers_blocked": False,
        "account_blocked": False,
        "created_at": rfc3339(created),
        "trade_suspended_by_user": suspended,
        "multiplier": str(account.multiplier),
        "shorting_enabled": margin.margin_enabled and not settings.no_shorting,
        "equity": cents_to_cash(margin.equity),
        "last_equity": cents_to_cash(margin.equity),
        "long_market_value": cents_to_cash(margin.long_market_value),
        "short_market_value": cents_to_cash(margin.short_market_value),
        "position_market_value": cents_to_cash(
            margin.long_market_value + margin.short_market_value
        ),
        "initial_margin": cents_to_cash(margin.initial_margin),
        "maintenance_margin": cents_to_cash(margin.maintenance_margin),
        "last_maintenance_margin": cents_to_cash(margin.maintenance_margin),
        "sma": "0",
        "daytrade_count": 0,
        "balance_asof": to_datetime(gateway.clock.now()).date().isoformat(),  # the venue's day
        "options_approved_level": 0,
        "options_trading_level": 0,
        "intraday_adjustments": "0",
        "pending_reg_taf_fees": "0",
        # tradepit's own: what its fee account has collected from this one, cash held for
        # open orders (buys, and short sales' buying power), and whether its equity is below
        # its maintenance margin.
        "fees_paid": cents_to_cash(account.fees_paid),
        "cash_reserved": cents_to_cash(account.cash_reserved),
        "margin_call": margin.margin_call,
    }


@router.get("/account/activities")
async def list_activities(
    request: Request,
    activity_types: str | None = Query(None, description="comma-separated; FILL is recorded"),
    date: str | None = Query(None),
    until: str | None = Query(None),
    after: str | None = Query(None),
    direction: str | None = Query(None),
    page_size: str | None = Query(None),
    page_token: str | None = Query(None),
    principal: Principal = Depends(trader),
) -> Response:
    types = {kind.strip().upper() for kind in activity_types.split(",")} if activity_types else None
    return await _activities(
        request, principal, types, date, until, after, direction, page_size, page_token
    )


@router.get("/account/activities/{activity_type}")
async def list_activities_of_type(
    request: Request,
    activity_type: str,
    date: str | None = Query(None),
    until: str | None = Query(None),
    after: str | None = Query(None),
    direction: str | None = Query(None),
    page_size: str | None = Query(None),
    page_token: str | None = Query(None),
    principal: Principal = Depends(trader),
) -> Response:
    return await _activities(
        request,
        principal,
        {activity_type.upper()},
        date,
        until,
        after,
        direction,
        page_size,
        page_token,
    )


async def _activities(
    request: Request,
    principal: Principal,
    types: set[str] | None,
    date: str | None,
    until: str | None,
    after: str | None,
    direction: str | None,
    page_size: str | None,
    page_token: str | None,
) -> Response:
    """Fills are the activities a venue records; cash movements are the operator's."""
    gateway = gateway_of(request)
    descending = _descending(direction)
    size = parse_int(page_size, "page_size", 100, 1, 100)
    start = parse_time(after, "after") or 0
    end = parse_time(until, "until")
    if date:  # one UTC day
        day = parse_time(date, "date") or 0
        start, end = max(start, day - 1), day + _DAY_NS - 1
    if types is not None and "FILL" not in types:
        return json_response([])
    assert gateway.market is not None
    activities: list[dict[str, Any]] = []
    passed_token = page_token is None
    async for fills in gateway.fills(
        principal.account_id, after=start, until=end, descending=descending
    ):
        for fill in fills:
            listing = gateway.market.get(fill.symbol)
            if listing is None:
                continue
            activity = fill_activity_json(fill, listing.symbol)
            if not passed_token:
                passed_token = activity["id"] == page_token
                continue
            activities.append(activity)
            if len(activities) == size:
                return json_response(activities)
    return json_response(activities)


# Portfolio history.

_PERIOD_UNITS = {"D": 86_400, "W": 7 * 86_400, "M": 30 * 86_400, "A": 365 * 86_400}
_TIMEFRAMES = {"1Min": 60, "5Min": 300, "15Min": 900, "1H": 3_600, "1D": 86_400}
_numbers = msgspec.json.Encoder(decimal_format="number")


def _seconds_of_period(period: str) -> int:
    count, unit = period[:-1], period[-1:].upper()
    if not count.isdigit() or unit not in _PERIOD_UNITS or not 0 < int(count) <= 1_000:
        raise ApiError.invalid(
            f"period must be a number and D, W, M or A, such as 1M; got {period!r}"
        )
    return int(count) * _PERIOD_UNITS[unit]


@router.get("/account/portfolio/history")
async def get_portfolio_history(
    request: Request,
    period: str | None = Query(None, description="such as 1D, 1W, 1M (default), 1A"),
    timeframe: str | None = Query(None, description="1Min, 5Min, 15Min, 1H or 1D"),
    start: str | None = Query(None),
    end: str | None = Query(None),
    date_end: str | None = Query(None),
    extended_hours: str | None = Query(None),
    intraday_reporting: str | None = Query(None),
    pnl_reset: str | None = Query(None),
    principal: Principal = Depends(trader),
) -> Response:
    """Equity sampled each minute, the last sample of each `timeframe` bucket, and now."""
    gateway = gateway_of(request)
    parse_bool(extended_hours, "extended_hours")
    frame = timeframe or ("1D" if period is None or period[-1:].upper() != "D" else "15Min")
    if frame not in _TIMEFRAMES:
        raise ApiError.invalid(f"timeframe must be one of {', '.join(_TIMEFRAMES)}")
    now_ns = time.time_ns()
    end_ns = parse_time(end, "end") or parse_time(date_end, "date_end") or now_ns
    if start is not None:
        start_ns = parse_time(start, "start") or 0
    else:
        start_ns = end_ns - _seconds_of_period(period or "1M") * 10**9
    samples = await equity_samples(
        gateway.redis, principal.account_id, start_ns // 10**6, end_ns // 10**6, count=100_000
    )
    step = _TIMEFRAMES[frame]
    buckets: dict[int, int] = {}
    for ms, cents in samples:
        seconds = ms // 1000
        buckets[seconds - seconds % step] = cents
    if end_ns >= now_ns - 60 * 10**9:  # the window reaches now: end on the live value
        account = await gateway.account(principal.account_id)
        _, market_value = await _priced_positions(gateway, account)
        seconds = now_ns // 10**9
        buckets[seconds - seconds % step] = account.cash_free + account.cash_reserved + market_value
    times = sorted(buckets)
    equity = [buckets[moment] for moment in times]
    base = equity[0] if equity else 0
    body = {
        "timestamp": times,
        "equity": [Decimal(cents) / 100 for cents in equity],
        "profit_loss": [Decimal(cents - base) / 100 for cents in equity],
        "profit_loss_pct": [
            (Decimal(cents - base) / base).quantize(Decimal("1e-6")) if base else None
            for cents in equity
        ],
        "base_value": Decimal(base) / 100,
        "base_value_asof": time.strftime("%Y-%m-%d", time.gmtime(times[0])) if times else None,
        "timeframe": frame,
    }
    return Response(_numbers.encode(body), media_type="application/json")
