"""A bot on the legacy SDK (alpaca-trade-api 3.2), run by tests/e2e/test_legacy_sdk.py with
.venv-legacy's python: its REST calls and its trade updates stream, as such a bot makes them.

Usage: client.py '{"url", "key_id", "secret_key", "symbol", "ask", "timeout"}'. The symbol has a
resting sell (from another account) at `ask`, enough for the 5 shares this bot buys at market.
It prints one JSON object of what it saw, for the test to check; a step that fails is in it as
its error, and the bot goes on to the next. Every wait is bounded by `timeout` seconds.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from alpaca_trade_api.rest import REST, APIError
from alpaca_trade_api.stream import Stream

args = json.loads(sys.argv[1])
TIMEOUT = float(args["timeout"])
seen: dict[str, Any] = {}
updates: list[dict[str, Any]] = []  # (event, order id, status) of each trade update
trades: list[dict[str, Any]] = []  # the data stream's trades of the symbol


def step(name: str, action: Callable[[], Any]) -> None:
    try:
        seen[name] = action()
    except Exception as error:  # the test reports it, with the rest of what was seen
        seen[name] = {"error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()}


def until(check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


def order_view(order: Any) -> dict[str, Any]:
    return {
        name: getattr(order, name, None)
        for name in (
            "id",
            "status",
            "qty",
            "limit_price",
            "time_in_force",
            "type",
            "side",
            "notional",
            "extended_hours",
            "replaces",
        )
    }


api = REST(args["key_id"], args["secret_key"], base_url=args["url"], api_version="v2")
symbol = args["symbol"]

step("account", lambda: {"cash": api.get_account().cash, "status": api.get_account().status})
step("positions_before", lambda: [p.symbol for p in api.list_positions()])


def limit_lifecycle() -> dict[str, Any]:
    placed = api.submit_order(
        symbol, qty=2, side="buy", type="limit", time_in_force="day", limit_price="90.50"
    )
    found = api.get_order(placed.id)
    listed = [order.id for order in api.list_orders(status="open", symbols=[symbol])]
    until(lambda: api.get_order(placed.id).status == "new")
    replaced = api.replace_order(placed.id, qty="3", limit_price="91.25", time_in_force="gtc")
    old_status = until(lambda: api.get_order(placed.id).status == "replaced")
    live = until(lambda: api.get_order(replaced.id).status == "new")
    api.cancel_order(replaced.id)
    canceled = until(lambda: api.get_order(replaced.id).status == "canceled")
    return {
        "placed": order_view(placed),
        "found": order_view(found),
        "listed": placed.id in listed,
        "replaced": order_view(replaced),
        "old_replaced": bool(old_status),
        "replacement_live": bool(live),
        "canceled": bool(canceled),
    }


step("limit", limit_lifecycle)


def refused_replace() -> dict[str, Any]:
    try:
        api.replace_order("00000000-0000-4000-8000-000000000001", qty="1")
    except APIError as error:
        return {"status_code": error.status_code, "message": str(error)}
    return {"status_code": None}


step("replace_unknown", refused_replace)


def watchlist() -> dict[str, Any]:
    made = api.create_watchlist(f"legacy-{symbol}", [symbol])
    by_name = api.get_watchlist_by_name(f"legacy-{symbol}")
    try:
        api.get_watchlist_by_name("no-such-watchlist")
        missing = None
    except APIError as error:
        missing = error.status_code
    return {
        "same_id": by_name.id == made.id,
        "symbols": [asset["symbol"] for asset in by_name.assets],
        "missing": missing,
    }


step("watchlist", watchlist)

# The streams: the trade updates at {url}/stream/, the market data at {url}/v2/iex.
stream = Stream(
    args["key_id"], args["secret_key"], base_url=args["url"], data_stream_url=args["url"]
)


async def on_update(update: Any) -> None:
    order = update.order
    updates.append({"event": update.event, "order_id": order["id"], "status": order["status"]})


async def on_trade(trade: Any) -> None:
    trades.append({"symbol": trade.symbol, "price": trade.price, "size": trade.size})


stream.subscribe_trade_updates(on_update)
stream.subscribe_trades(on_trade, symbol)
threading.Thread(target=stream.run, daemon=True).start()  # the SDK's own loop, as bots run it
seen["stream_connected"] = bool(
    until(lambda: stream._trading_ws._running and stream._data_ws._running)
)
time.sleep(0.3)  # the listen and subscribe requests go out just after the connections are up


def market_buy() -> dict[str, Any]:
    bought = api.submit_order(symbol, qty=5, side="buy", type="market", time_in_force="day")
    filled = until(lambda: api.get_order(bought.id).status == "filled")
    events = until(
        lambda: (
            [u["event"] for u in updates if u["order_id"] == bought.id]
            if any(u["event"] == "fill" and u["order_id"] == bought.id for u in updates)
            else None
        )
    )
    return {"order": order_view(bought), "filled": bool(filled), "events": events or []}


step("market", market_buy)
step("trades", lambda: until(lambda: list(trades)) or [])
step(
    "positions_after",
    lambda: [{"symbol": p.symbol, "qty": p.qty} for p in api.list_positions()],
)


def notional_and_extended_hours() -> dict[str, Any]:
    notional = api.submit_order(
        symbol, notional=101, side="buy", type="market", time_in_force="day"
    )
    extended = api.submit_order(
        symbol,
        qty=1,
        side="buy",
        type="limit",
        time_in_force="day",
        limit_price="80.00",
        extended_hours=True,
    )
    api.cancel_order(extended.id)
    return {
        "notional": order_view(notional),
        "notional_found": order_view(api.get_order(notional.id)),
        "extended": order_view(extended),
    }


step("echo", notional_and_extended_hours)


def leg_views(legs: list[Any] | None) -> list[dict[str, Any]]:
    """The SDK's legs (Order entities) as the fields the test checks."""
    return [
        {name: getattr(leg, name) for name in ("id", "status", "type", "side", "qty")}
        for leg in legs or []
    ]


def legs_of(order_id: str) -> list[dict[str, Any]]:
    return leg_views(api.get_order(order_id).legs)


def order_classes() -> dict[str, Any]:
    bracket = api.submit_order(
        symbol,
        qty=2,
        side="buy",
        type="limit",
        time_in_force="gtc",
        limit_price="100.00",
        order_class="bracket",
        take_profit={"limit_price": "110.00"},
        stop_loss={"stop_price": "95.00", "limit_price": "94.50"},
    )
    filled = until(lambda: api.get_order(bracket.id).status == "filled")
    live = until(lambda: {leg["status"] for leg in legs_of(bracket.id)} == {"new"})
    take_profit = legs_of(bracket.id)[0]["id"]
    api.cancel_order(take_profit)  # one leg of the pair ends: so does the other
    both_canceled = until(lambda: {leg["status"] for leg in legs_of(bracket.id)} == {"canceled"})
    oco = api.submit_order(
        symbol,
        qty=1,
        side="sell",
        type="limit",
        time_in_force="gtc",
        order_class="oco",
        take_profit={"limit_price": "120.00"},
        stop_loss={"stop_price": "90.00"},
    )
    trailing = api.submit_order(
        symbol, qty=1, side="sell", type="trailing_stop", time_in_force="gtc", trail_percent="5"
    )
    api.cancel_order(oco.id)
    api.cancel_order(trailing.id)
    return {
        "bracket": {"order_class": bracket.order_class, "legs": leg_views(bracket.legs)},
        "filled": bool(filled),
        "legs_live": bool(live),
        "legs_canceled": bool(both_canceled),
        "legs": legs_of(bracket.id),
        "bracket_events": sorted({u["event"] for u in updates if u["order_id"] == take_profit}),
        "oco": {
            "order_class": oco.order_class,
            "limit_price": oco.limit_price,
            "legs": leg_views(oco.legs),
        },
        "trailing": {"type": trailing.type, "trail_percent": trailing.trail_percent},
    }


step("order_classes", order_classes)
seen["updates"] = updates
print(json.dumps(seen, default=str))
sys.stdout.flush()
