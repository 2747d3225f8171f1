"""A plain lumibot strategy, as lumibot's documentation writes one: on its first iteration it
buys one share of a stock at market, and it says when lumibot tells it the order was placed and
filled. Nothing in it knows of tradepit.

    python strategy.py SYMBOL

Everything else comes from the environment, as lumibot reads it for a live run with no broker
given: ALPACA_API_KEY, ALPACA_API_SECRET and ALPACA_IS_PAPER pick lumibot's Alpaca broker (on
alpaca-py), MARKET sets its market calendar. The test points alpaca-py at the venue from outside,
with tradepit's shim on PYTHONPATH and TRADEPIT_URL.
"""

from __future__ import annotations

import sys
from typing import Any

from lumibot.strategies import Strategy


class BuyOneShare(Strategy):
    def initialize(self) -> None:
        self.sleeptime = "5S"

    def on_trading_iteration(self) -> None:
        if self.first_iteration:
            order = self.create_order(self.parameters["symbol"], 1, "buy")
            self.submit_order(order)
            print(f"BOT submitted {order.identifier}", flush=True)

    def on_new_order(self, order: Any) -> None:
        print(f"BOT new {order.identifier}", flush=True)

    def on_filled_order(
        self, position: Any, order: Any, price: float, quantity: float, multiplier: float
    ) -> None:
        print(f"BOT filled {order.identifier} {quantity} at {price}", flush=True)


if __name__ == "__main__":
    BuyOneShare(parameters={"symbol": sys.argv[1]}).run_live()
