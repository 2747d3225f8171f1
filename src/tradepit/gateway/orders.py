"""Order requests as Alpaca's API takes them, checked and turned into tradepit's integers.

Bodies are decoded by msgspec straight into `Decimal`s from the JSON text, so `"qty": 1.1` is
exactly 1.1 and never the float nearest to it; anything off the symbol's grid is refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

import msgspec

from tradepit.domain.numbers import NumberError, format_units, parse_units, to_decimal
from tradepit.domain.orders import TRAIL_RATE_UNIT, Order, OrderType, Side, TimeInForce
from tradepit.domain.session import AlwaysOpen, Calendar, to_datetime
from tradepit.domain.symbols import CASH_UNIT, Symbol
from tradepit.gateway.decoding import TooDeep, decode_json
from tradepit.gateway.errors import ApiError
from tradepit.gateway.market import Listing
from tradepit.gateway.order_names import ORDER_TYPE_BY_NAME, SIDE_BY_NAME, TIME_IN_FORCE_BY_NAME
from tradepit.ledger.history import OrderClass

__all__ = [
    "OrderRequest",
    "TakeProfit",
    "StopLoss",
    "OrderPlan",
    "ReplaceRequest",
    "MAX_CLIENT_ORDER_ID",
    "build_order",
    "check_session",
    "is_fractional",
    "check_client_order_id",
    "decode_body",
    "trail_rate",
    "trail_percent_text",
]

MAX_CLIENT_ORDER_ID = 128
_MINUTE = 60 * 10**9
_OPG_CUTOFF = 2 * _MINUTE  # Alpaca takes opg orders until 09:28, and again from 19:00
_OPG_REOPENS = 3 * 60 * _MINUTE
_CLS_CUTOFF = 10 * _MINUTE  # and cls orders until 15:50
_MIN_FRACTIONAL_NOTIONAL = 100  # cents: Alpaca's smallest notional order
TRAIL_PERCENT_UNIT = Decimal("0.0001")  # a percentage's grid: `Order.trail_rate` counts these
Number = Decimal | None
T = TypeVar("T")
V = TypeVar("V")


class TakeProfit(msgspec.Struct, kw_only=True):
    limit_price: Number = None


class StopLoss(msgspec.Struct, kw_only=True):
    stop_price: Number = None
    limit_price: Number = None  # given: the stop-loss is a stop_limit


class OrderRequest(msgspec.Struct, kw_only=True):
    """POST /v2/orders. Unknown fields are ignored, as Alpaca's SDKs send a few we do not use."""

    symbol: str
    side: str
    type: str = ""
    order_type: str = ""  # some clients send this name instead of `type`
    time_in_force: str
    qty: Number = None
    notional: Number = None
    limit_price: Number = None
    stop_price: Number = None
    trail_price: Number = None
    trail_percent: Number = None
    extended_hours: bool | None = None
    client_order_id: str | None = None
    order_class: str | None = None
    take_profit: TakeProfit | None = None
    stop_loss: StopLoss | None = None
    legs: list[Any] | None = None
    position_intent: str | None = None
    post_only: bool = False  # tradepit's own: refuse to take liquidity


class ReplaceRequest(msgspec.Struct, kw_only=True):
    """PATCH /v2/orders/{id}: what changes; what is left out stays as it was."""

    qty: Number = None
    time_in_force: str | None = None
    limit_price: Number = None
    stop_price: Number = None
    trail: Number = None
    client_order_id: str | None = None


def decode_body(body: bytes, kind: type[T]) -> T:
    if not body.strip():
        raise ApiError(400, "request body is empty: send a JSON object")
    try:
        return decode_json(body, kind)
    except msgspec.ValidationError as error:
        raise ApiError.invalid(f"invalid request body: {error}") from None
    except TooDeep as error:
        raise ApiError.bad_request(f"request body is {error}") from None
    except msgspec.DecodeError as error:
        raise ApiError.bad_request(f"request body is not valid JSON: {error}") from None


def _choice(value: str, choices: dict[str, V], field: str) -> V:
    found = choices.get(value.lower()) if isinstance(value, str) else None
    if found is None:
        raise ApiError.invalid(f"{field} must be one of {', '.join(choices)}; got {value!r}")
    return found


def trail_rate(percent: Decimal | str, field: str = "trail_percent") -> int:
    """A `trail_percent` as `Order.trail_rate`, exactly: 0.0001% steps, below 100%."""
    rate = parse_units(percent, TRAIL_PERCENT_UNIT, field)
    if rate >= TRAIL_RATE_UNIT:
        raise NumberError(field, f"{percent} is not below 100")
    return rate


def trail_percent_text(rate: int) -> str:
    """A `trail_rate` as the percentage it was sent as, without trailing zeros ("1.5")."""
    return f"{Decimal(format_units(rate, TRAIL_PERCENT_UNIT)).normalize():f}"


def check_client_order_id(client_order_id: str | None) -> str:
    if client_order_id is None:
        return ""
    if not 0 < len(client_order_id) <= MAX_CLIENT_ORDER_ID:
        raise ApiError.invalid(f"client_order_id must be 1 to {MAX_CLIENT_ORDER_ID} characters")
    return client_order_id


class OrderPlan(NamedTuple):
    """What a request asks the ledger to place: an order, and the legs of its class."""

    order: Order
    client_order_id: str
    order_class: OrderClass = OrderClass.SIMPLE
    legs: tuple[Order, ...] = ()


def build_order(
    request: OrderRequest,
    listing: Listing,
    new_id: Callable[[], int],
    account_id: int,
    now: int,
) -> OrderPlan:
    """The order and its legs in integers, each with an id from `new_id`, or ApiError(422)
    saying what is wrong with the request."""
    order_class = _order_class(request)
    if order_class is OrderClass.OCO:
        request = _oco_parent(request)
    order, client_order_id = _order(request, listing, new_id(), account_id, now)
    if order_class is OrderClass.SIMPLE:
        return OrderPlan(order, client_order_id)
    legs = _exit_legs(request, listing, order, order_class, new_id)
    return OrderPlan(order, client_order_id, order_class, tuple(legs))


def _order_class(request: OrderRequest) -> OrderClass:
    name = request.order_class or "simple"
    if name.lower() == "mleg":
        raise ApiError.invalid("order_class mleg is for options: tradepit trades stocks only")
    order_class = _choice(name, {c.value: c for c in OrderClass}, "order_class")
    if request.legs:
        raise ApiError.invalid("legs are sent for mleg orders only: use take_profit and stop_loss")
    if order_class is OrderClass.SIMPLE and (request.take_profit or request.stop_loss):
        raise ApiError.invalid("take_profit and stop_loss apply to bracket, oco and oto orders")
    return order_class


def _oco_parent(request: OrderRequest) -> OrderRequest:
    """An OCO's request is its take-profit limit (the parent), whose limit_price may be left
    to `take_profit.limit_price`, as alpaca-py's examples do."""
    if (request.type or request.order_type).lower() != "limit":
        raise ApiError.invalid("an oco order is a limit order (its take-profit)")
    take_profit = request.take_profit.limit_price if request.take_profit else None
    if take_profit is None:
        raise ApiError.invalid("an oco order takes take_profit.limit_price and a stop_loss")
    if request.limit_price is not None and request.limit_price != take_profit:
        raise ApiError.invalid("an oco order's limit_price is its take_profit.limit_price")
    return msgspec.structs.replace(request, limit_price=take_profit)


def _exit_legs(
    request: OrderRequest,
    listing: Listing,
    order: Order,
    order_class: OrderClass,
    new_id: Callable[[], int],
) -> list[Order]:
    """A bracket's or OTO's exit legs, held until `order` (their entry) fills, or an OCO's
    stop-loss, which exits on `order`'s side as `order` (its take-profit) does. A bracket's
    two legs, as an OCO's, name each other in `oco`."""
    name = f"{'a' if order_class is OrderClass.BRACKET else 'an'} {order_class.value}"
    if order.time_in_force not in (TimeInForce.DAY, TimeInForce.GTC):
        raise ApiError.invalid(f"{name} order's time_in_force is day or gtc")
    if order.type is OrderType.TRAILING_STOP:
        raise ApiError.invalid(f"a trailing_stop order cannot be {name} order")
    if request.notional is not None:
        raise ApiError.invalid(f"{name} order takes qty, not notional")
    if is_fractional(listing.symbol, order.qty):
        raise ApiError.invalid(f"{name} order is for whole shares")
    if request.extended_hours:
        raise ApiError.invalid(f"{name} order trades in regular hours only")
    take_profit, stop_loss = request.take_profit, request.stop_loss
    if order_class is OrderClass.OTO:
        if (take_profit is None) == (stop_loss is None):
            raise ApiError.invalid("an oto order takes one of take_profit and stop_loss")
    elif take_profit is None or stop_loss is None:
        raise ApiError.invalid(f"{name} order takes take_profit and stop_loss")

    symbol = listing.symbol
    exits_buy = (order.side is Side.BUY) == (order_class is OrderClass.OCO)
    exit_side = Side.BUY if exits_buy else Side.SELL
    base = _base_price(order, listing.reference_price(), order_class)
    # Alpaca's rule: an exit at least a cent from the base price, on its own side of it.
    gap = max(1, math.ceil(CASH_UNIT / symbol.tick_size))
    legs = []

    def leg(order_type: OrderType, price: int, stop: int = 0) -> Order:
        return Order(
            new_id(),
            order.account_id,
            symbol.name,
            exit_side,
            order_type,
            order.time_in_force,
            order.qty,
            price,
            stop,
            ts=order.ts,
            band_bps=order.band_bps,
            reference=order.reference,
        )

    take_profit_ticks = 0
    if take_profit is not None:
        if take_profit.limit_price is None:
            raise ApiError.invalid("take_profit.limit_price is required")
        take_profit_ticks = symbol.price_to_ticks(
            take_profit.limit_price, "take_profit.limit_price"
        )
        # The take-profit is on the winning side: a sell's above the base, a buy's below it.
        _check_exit(take_profit_ticks, base, gap, not exits_buy, symbol, "take_profit.limit_price")
        if order_class is not OrderClass.OCO:
            legs.append(leg(OrderType.LIMIT, take_profit_ticks))
    if stop_loss is not None:
        if stop_loss.stop_price is None:
            raise ApiError.invalid("stop_loss.stop_price is required")
        stop = symbol.price_to_ticks(stop_loss.stop_price, "stop_loss.stop_price")
        # The stop is on the losing side: a sell's below the base, a buy's above it.
        _check_exit(stop, base, gap, exits_buy, symbol, "stop_loss.stop_price")
        wrong_side = stop <= take_profit_ticks if exits_buy else stop >= take_profit_ticks
        if take_profit_ticks and wrong_side:
            raise ApiError.invalid(
                "stop_loss.stop_price must be on the other side of take_profit.limit_price"
            )
        if stop_loss.limit_price is not None:
            limit = symbol.price_to_ticks(stop_loss.limit_price, "stop_loss.limit_price")
            legs.append(leg(OrderType.STOP_LIMIT, limit, stop))
        elif listing.reference_price():
            protection = symbol.protection_price(exits_buy, listing.reference_price())
            legs.append(leg(OrderType.STOP, protection, stop))
        else:
            raise ApiError.invalid(
                f"{symbol.name} has no reference price yet: give stop_loss a limit_price"
            )
    if order_class is OrderClass.OCO:
        order.oco, legs[0].oco = legs[0].order_id, order.order_id
    elif len(legs) == 2:
        legs[0].oco, legs[1].oco = legs[1].order_id, legs[0].order_id
    return legs


def _base_price(order: Order, reference: int, order_class: OrderClass) -> int:
    """The price an order's exits are measured from (0: none known): the entry's limit (or
    stop) price, else the market's, which is also an OCO's."""
    if order_class is OrderClass.OCO:
        return reference
    if order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        return order.price
    if order.type is OrderType.STOP:
        return order.stop_price
    return reference


def _check_exit(price: int, base: int, gap: int, above: bool, symbol: Symbol, field: str) -> None:
    """`price` at least `gap` ticks above `base` (or below it, unless `above`)."""
    if not base:
        return
    if above and price < base + gap:
        raise ApiError.invalid(
            f"{field} must be at least {symbol.ticks_to_price(gap)} above the base price "
            f"{symbol.ticks_to_price(base)}"
        )
    if not above and price > base - gap:
        raise ApiError.invalid(
            f"{field} must be at least {symbol.ticks_to_price(gap)} below the base price "
            f"{symbol.ticks_to_price(base)}"
        )


def _order(
    request: OrderRequest, listing: Listing, order_id: int, account_id: int, now: int
) -> tuple[Order, str]:
    """The request's order (its parent, for a class with legs) in integers."""
    symbol = listing.symbol
    side = _choice(request.side, SIDE_BY_NAME, "side")
    type_name = request.type or request.order_type
    order_type = _choice(type_name, ORDER_TYPE_BY_NAME, "type")
    time_in_force = _choice(request.time_in_force, TIME_IN_FORCE_BY_NAME, "time_in_force")
    trail_price = trail_rate_ = 0
    if order_type is OrderType.TRAILING_STOP:
        if (request.trail_price is None) == (request.trail_percent is None):
            raise ApiError.invalid("a trailing_stop order takes trail_price or trail_percent")
        if request.trail_price is not None:
            trail_price = symbol.price_to_ticks(request.trail_price, "trail_price")
        else:
            trail_rate_ = trail_rate(request.trail_percent or Decimal(0))
        if time_in_force not in (TimeInForce.DAY, TimeInForce.GTC):
            raise ApiError.invalid("a trailing_stop order's time_in_force is day or gtc")
    elif request.trail_price is not None or request.trail_percent is not None:
        raise ApiError.invalid("trail_price and trail_percent apply to trailing_stop orders only")
    client_order_id = check_client_order_id(request.client_order_id)

    reference = listing.reference_price()
    limit = stop = 0
    if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        if request.limit_price is None:
            raise ApiError.invalid(f"limit_price is required for {type_name} orders")
        # Any price on the grid: whether it may trade there is the matcher's to say, as only
        # it knows whether the order is marketable (its band travels in the order).
        limit = symbol.price_to_ticks(request.limit_price, "limit_price")
    elif request.limit_price is not None:
        raise ApiError.invalid(f"limit_price does not apply to {type_name} orders")
    if order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
        if request.stop_price is None:
            raise ApiError.invalid(f"stop_price is required for {type_name} orders")
        stop = symbol.price_to_ticks(request.stop_price, "stop_price")
    elif request.stop_price is not None:
        raise ApiError.invalid(f"stop_price does not apply to {type_name} orders")

    is_market_priced = order_type in (OrderType.MARKET, OrderType.STOP, OrderType.TRAILING_STOP)
    if is_market_priced:
        if not reference:
            raise ApiError.invalid(f"{symbol.name} has no reference price yet: send a limit order")
        price = symbol.protection_price(side is Side.BUY, reference)
    else:
        price = limit

    if request.notional is not None:
        if request.qty is not None:
            raise ApiError.invalid("send qty or notional, not both")
        if order_type is not OrderType.MARKET or side is not Side.BUY:
            raise ApiError.invalid("notional is supported on market buy orders only")
        qty, price = _notional_order(request.notional, listing, price)
    elif request.qty is None:
        raise ApiError.invalid("qty is required (or notional, for a market buy)")
    else:
        qty = symbol.qty_to_lots(request.qty, "qty")
    if is_fractional(symbol, qty) or (symbol.fractionable and request.notional is not None):
        # Alpaca's rules for a fraction of a share: a market or limit DAY order.
        if order_type not in (OrderType.MARKET, OrderType.LIMIT):
            raise ApiError.invalid("fractional orders are market or limit orders")
        if time_in_force is not TimeInForce.DAY:
            raise ApiError.invalid("fractional orders are day orders (time_in_force day)")
    if request.post_only and order_type is not OrderType.LIMIT:
        raise ApiError.invalid("post_only applies to limit orders only")
    if request.extended_hours and (
        order_type is not OrderType.LIMIT or time_in_force is not TimeInForce.DAY
    ):
        raise ApiError.invalid("extended_hours applies to limit orders with time_in_force day")
    if time_in_force in (TimeInForce.OPG, TimeInForce.CLS) and order_type not in (
        OrderType.MARKET,
        OrderType.LIMIT,
    ):
        raise ApiError.invalid("opg and cls orders are market or limit orders")
    order = Order(
        order_id,
        account_id,
        symbol.name,
        side,
        order_type,
        time_in_force,
        qty,
        price,
        stop,
        post_only=request.post_only,
        ts=now,
        band_bps=symbol.band_bps if reference else 0,
        reference=reference,
        trail_price=trail_price,
        trail_rate=trail_rate_,
        extended_hours=bool(request.extended_hours),
    )
    return order, client_order_id


def check_session(order: Order, calendar: Calendar, now: int) -> None:
    """Refuse, as Alpaca does, an auction order out of its hours: `opg` from 09:28 to 19:00
    US/Eastern (the opening auction is near or over), `cls` from 15:50 to 20:00; and both on
    a venue without auctions (24x7)."""
    time_in_force = order.time_in_force
    if time_in_force is not TimeInForce.OPG and time_in_force is not TimeInForce.CLS:
        return
    if isinstance(calendar, AlwaysOpen):
        raise ApiError.invalid(
            "opg and cls orders join the opening and closing auctions, and a 24x7 venue has "
            "none: run it with --calendar nyse"
        )
    today = to_datetime(now).date()
    for day in calendar.days(today - timedelta(days=1), today):
        if (
            time_in_force is TimeInForce.OPG
            and day.open - _OPG_CUTOFF <= now < day.close + _OPG_REOPENS
        ):
            raise ApiError.invalid("opg orders are not accepted from 09:28 to 19:00 ET")
        if time_in_force is TimeInForce.CLS and day.close - _CLS_CUTOFF <= now < day.post_close:
            raise ApiError.invalid("cls orders are not accepted from 10 minutes before the close")


def is_fractional(symbol: Symbol, lots: int) -> bool:
    """Whether `lots` are not a whole number of shares."""
    return symbol.fractionable and lots * symbol.lot_size % 1 != 0


def _notional_order(notional: Decimal, listing: Listing, protection: int) -> tuple[int, int]:
    """The lots that `notional` dollars buy at the reference price (whole shares, or a fraction
    of one on a fractionable symbol), and the worst price at which they still cost no more
    than `notional`: a notional order never overspends."""
    symbol = listing.symbol
    cents = to_decimal(notional, "notional") / CASH_UNIT
    if cents != cents.to_integral_value() or cents <= 0:
        raise NumberError("notional", f"{notional} is not a positive whole number of cents")
    if symbol.fractionable and cents < _MIN_FRACTIONAL_NOTIONAL:
        raise ApiError.invalid(f"notional {notional} is below the smallest, $1.00")
    lots = symbol.notional_to_lots(notional, listing.reference_price())
    if lots <= 0:
        raise ApiError.invalid(
            f"notional {notional} buys less than one lot of {symbol.name} at "
            f"{symbol.ticks_to_price(listing.reference_price())}"
        )
    worst = min(protection, symbol.price_within(int(cents), lots))
    return lots, worst
