"""The ledger core's order path, cash accounts against margin accounts, in one run.

    python bench/ledger.py [--orders N] [--repeat R] [--quick]

Each step places a sell and a buy of 10 lots at 100.00 from two accounts and settles the trade
between them (the events a matcher would send), as the ledger stage applies them: per order,
`place_order`, and half a trade's settlement. Two account kinds, in alternating rounds so that
both meet the same moments of a noisy machine:

- `cash`: multiplier 1; the buying power is the free cash.
- `margin`: multiplier 2, each account holding 10 other symbols, so that every placement values
  11 positions at the marks its command carries (`tradepit.domain.margin`), as the gateway
  sends them for a margin account; the seller sells short half the time.

Only the ledger calls are timed; orders and events are built before the clock starts. The last
line is one JSON object: orders a second for each kind (medians) and their ratio.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

from tradepit.domain.events import Trade
from tradepit.domain.orders import Order, OrderType, Side, TimeInForce
from tradepit.domain.symbols import Symbol
from tradepit.ledger import Ledger

SYMBOL = "BENCH"
OTHERS = [f"S{index}" for index in range(10)]
PRICE = 10_000
LOTS = 10


def _ledger(margin: bool) -> Ledger:
    ledger = Ledger([Symbol(name) for name in (SYMBOL, *OTHERS)], 1, 2)
    for account in (1, 2):
        ledger.open_account(account)
        ledger.deposit_cash(f"cash{account}", account, 10**13)
        if not margin:
            ledger.deposit_shares(f"bench{account}", account, SYMBOL, 10**9)
        if margin:
            ledger.set_multiplier(account, 2)
            for name in OTHERS:
                ledger.deposit_shares(f"{name}{account}", account, name, 1_000, 1_000 * PRICE)
    return ledger


def run(margin: bool, steps: int) -> float:
    ledger = _ledger(margin)
    marks = {name: PRICE for name in (SYMBOL, *OTHERS)} if margin else None
    work = []
    for step in range(steps):
        # On margin the two take turns to sell: the first is short, then flat, in turn.
        seller, buyer = (2, 1) if margin and step % 2 else (1, 2)
        sell_id, buy_id = 2 * step + 10, 2 * step + 11
        sell = Order(
            sell_id, seller, SYMBOL, Side.SELL, OrderType.LIMIT, TimeInForce.GTC, LOTS, PRICE
        )
        buy = Order(buy_id, buyer, SYMBOL, Side.BUY, OrderType.LIMIT, TimeInForce.GTC, LOTS, PRICE)
        trade = Trade(
            SYMBOL, step, step, PRICE, LOTS, sell_id, seller, 0, buy_id, buyer, Side.BUY, 0
        )
        work.append((sell, buy, trade))
    place, apply = ledger.place_order, ledger.apply
    started = time.perf_counter()
    for sell, buy, trade in work:
        place(sell, None, marks)
        place(buy, None, marks)
        apply(trade)
    elapsed = time.perf_counter() - started
    problems = ledger.check_invariants()
    if problems:
        raise SystemExit(f"the ledger does not balance: {problems[:3]}")
    return 2 * steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=400_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="100k orders, 3 runs: under 30 s")
    args = parser.parse_args()
    orders, repeat = (100_000, 3) if args.quick else (args.orders, args.repeat)
    rates: dict[str, list[float]] = {"cash": [], "margin": []}
    for _ in range(repeat):
        for kind, found in rates.items():
            found.append(run(kind == "margin", orders // 2))
    summary = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": sys.version.split()[0],
        "orders": orders,
        "repeat": repeat,
        "cash_orders_per_s": round(statistics.median(rates["cash"])),
        "margin_orders_per_s": round(statistics.median(rates["margin"])),
    }
    summary["margin_to_cash"] = round(
        summary["margin_orders_per_s"] / summary["cash_orders_per_s"], 3
    )
    for kind, found in rates.items():
        print(f"{kind:>6}: {', '.join(f'{rate:,.0f}' for rate in found)} orders/s")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
