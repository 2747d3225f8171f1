"""`tradepit simulate`: the trading core alone, in this process, with no Redis.

Accounts trade random orders through the ledger and the matcher; the market prints as it goes
and the ledger's invariant is checked at the end.
"""

from __future__ import annotations

import random
import sys
import time

from tradepit.domain.events import Trade
from tradepit.domain.orders import Order, OrderType, Side, TimeInForce
from tradepit.domain.symbols import Symbol, cents_to_cash
from tradepit.ledger import Ledger, LedgerError
from tradepit.matcher import Matcher


def simulate(seconds: float, traders: int, seed: int) -> int:
    symbols = [Symbol("ACME"), Symbol("GLOBEX"), Symbol("INITECH")]
    matcher = Matcher()
    ledger = Ledger(symbols, maker_fee_bps=1, taker_fee_bps=3)
    rng = random.Random(seed)
    reference = {symbol.name: 10_000 for symbol in symbols}
    for account in range(1, traders + 1):
        ledger.open_account(account)
        ledger.deposit_cash(f"cash-{account}", account, 1_000_000_00)
        for symbol in symbols:
            matcher.add_symbol(symbol.name)
            ledger.deposit_shares(f"{symbol.name}-{account}", account, symbol.name, 5_000)
    order_id = trades = volume = refused = 0
    last: dict[str, int] = {}
    started = time.monotonic()
    next_report = started + 1
    while (now := time.monotonic()) - started < seconds:
        for _ in range(1_000):
            symbol = rng.choice(symbols)
            reference[symbol.name] += rng.choice((-1, 0, 1))
            side = rng.choice((Side.BUY, Side.SELL))
            market = rng.random() < 0.1
            low, high = symbol.band(reference[symbol.name])
            price = (
                (high if side is Side.BUY else low)
                if market
                else (reference[symbol.name] + rng.randint(-20, 20))
            )
            order_id += 1
            order = Order(
                order_id,
                rng.randint(1, traders),
                symbol.name,
                side,
                OrderType.MARKET if market else OrderType.LIMIT,
                TimeInForce.IOC if market else TimeInForce.GTC,
                rng.randint(1, 100),
                price,
                ts=time.time_ns(),
            )
            try:
                ledger.place_order(order)
            except LedgerError:
                refused += 1
                continue
            matcher.submit(order)
            for event in matcher.take_events():
                ledger.apply(event)
                if isinstance(event, Trade):
                    trades += 1
                    volume += event.qty
                    last[event.symbol] = event.price
        if now >= next_report:
            next_report += 1
            quotes = "  ".join(
                f"{name} {symbol.ticks_to_price(last[name])}"
                for symbol in symbols
                if (name := symbol.name) in last
            )
            print(f"{now - started:5.1f}s  orders {order_id:>9,}  trades {trades:>9,}  {quotes}")
    problems = ledger.check_invariants()
    fees = ledger.accounts[0].cash_free
    print(
        f"done: {order_id:,} orders ({refused:,} refused for buying power), {trades:,} trades, "
        f"{volume:,} lots; fees collected {cents_to_cash(fees)}; "
        f"ledger invariant {'holds' if not problems else 'BROKEN'}"
    )
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 1 if problems else 0
