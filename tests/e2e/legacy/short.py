"""The legacy SDK's short sale and its cover, run by tests/e2e/test_legacy_sdk.py with
.venv-legacy's python on a margin account, on a symbol where another account bids and offers.

Usage: short.py '{"url", "key_id", "secret_key", "symbol", "timeout"}'. Prints one JSON object:
the account's margin fields as the SDK parses them, before and after; the short position; and
whether `close_position` bought it back.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from alpaca_trade_api.rest import REST

args = json.loads(sys.argv[1])
api = REST(args["key_id"], args["secret_key"], base_url=args["url"], api_version="v2")
symbol = args["symbol"]
deadline = time.monotonic() + float(args["timeout"])

_MARGIN_FIELDS = (
    "multiplier",
    "shorting_enabled",
    "buying_power",
    "regt_buying_power",
    "daytrading_buying_power",
    "non_marginable_buying_power",
    "initial_margin",
    "maintenance_margin",
    "long_market_value",
    "short_market_value",
    "equity",
    "cash",
)


def margin() -> dict[str, Any]:
    account = api.get_account()
    return {name: getattr(account, name) for name in _MARGIN_FIELDS}


def filled(order_id: str) -> bool:
    while time.monotonic() < deadline:
        if api.get_order(order_id).status == "filled":
            return True
        time.sleep(0.05)
    return False


seen: dict[str, Any] = {"before": margin()}
sale = api.submit_order(symbol=symbol, qty=10, side="sell", type="market", time_in_force="day")
seen["sold"] = filled(sale.id)
position = api.get_position(symbol)
seen["position"] = {
    name: getattr(position, name) for name in ("side", "qty", "market_value", "cost_basis")
}
seen["short"] = margin()
cover = api.close_position(symbol)
seen["cover_side"] = cover.side
seen["covered"] = filled(cover.id)
seen["positions_after"] = [p.symbol for p in api.list_positions()]
seen["after"] = margin()
print(json.dumps(seen))
