"""Matcher throughput against engines from PyPI, on the same seeded orders, in one run.

    python bench/matcher.py [--workload cross|deep] [--orders N] [--repeat R] [--quick]

Workloads (one symbol, qty 1-100, a mid that random-walks one tick with probability 0.1):
- `cross`: 70% limit orders at mid +/- U[0,50] ticks, 10% market orders, 20% cancels of orders
  resting at that moment. Most limits cross: the book stays thin and busy.
- `deep`: buys at mid - U[-5,50], sells at mid + U[-5,50]; limits only until ~30k orders rest
  (N/5 for shorter runs), then the same mix, with cancels stepped up while it holds more.

The command stream is generated once (a pass through our matcher tells which orders rest when a
cancel is drawn) and fed, untouched, to our `Matcher` (`apply` on batches of 1,000 commands,
events on, taken and freed after each batch as a stage does) and to each peer. Both must produce
the same number of trades and traded volume. Only the engine calls are timed; orders are built
before the clock starts, for every engine.
Each engine runs `--repeat` times, in rounds that run every engine once, so that all meet the
same moments of a noisy machine; each one's median is reported. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tradepit.domain.commands import Cancel, MatcherCommand, Submit
from tradepit.domain.events import Trade
from tradepit.domain.orders import Order, OrderType, SelfTradePrevention, Side, TimeInForce
from tradepit.matcher import Matcher

SYMBOL = "BENCH"
START_MID = 10_000
PROTECTION_TICKS = 1_000  # the band edge a market order may not trade past
BATCH = 1_000


@dataclass(frozen=True, slots=True)
class Command:
    kind: str  # "limit", "market" or "cancel"
    order_id: int
    account_id: int
    is_buy: bool
    price: int  # limit, or protection price for a market order
    qty: int


def generate(workload: str, n: int, seed: int) -> list[Command]:
    rng = random.Random(seed)
    matcher = Matcher()
    book = matcher.add_symbol(SYMBOL)
    mid = START_MID
    # `--quick` runs are too short to fill 30k orders and still trade: they fill a fifth of N.
    deep_target = min(30_000, n // 5) if workload == "deep" else 0
    commands: list[Command] = []
    cancel_candidates: list[int] = []
    next_id = 0
    owners: dict[int, int] = {}
    while len(commands) < n:
        if rng.random() < 0.1:
            mid += rng.choice((-1, 1))
        filling = len(book.orders) < deep_target and len(commands) < deep_target * 2
        cancel_share = 0.2 if len(book.orders) <= deep_target or not deep_target else 0.6
        draw = rng.random()
        if not filling and draw < cancel_share and cancel_candidates:
            while cancel_candidates:
                index = rng.randrange(len(cancel_candidates))
                order_id = cancel_candidates[index]
                if order_id in book.orders:
                    break
                cancel_candidates[index] = cancel_candidates[-1]
                cancel_candidates.pop()
            else:
                continue
            command = Command("cancel", order_id, owners[order_id], False, 0, 0)
            matcher.cancel(SYMBOL, order_id, owners[order_id], len(commands))
        else:
            next_id += 1
            is_buy = rng.random() < 0.5
            qty = rng.randint(1, 100)
            if not filling and draw < cancel_share + 0.1:
                price = mid + PROTECTION_TICKS if is_buy else mid - PROTECTION_TICKS
                command = Command("market", next_id, next_id % 64, is_buy, price, qty)
            else:
                if workload == "deep":
                    offset = rng.randint(-5, 50)
                    price = mid - offset if is_buy else mid + offset
                else:
                    price = mid + rng.randint(-50, 50)
                command = Command("limit", next_id, next_id % 64, is_buy, price, qty)
            owners[next_id] = command.account_id
            matcher.submit(to_order(command, len(commands)))
            if next_id in book.orders:
                cancel_candidates.append(next_id)
        commands.append(command)
        matcher.events.clear()
    return commands


def to_order(command: Command, ts: int) -> Order:
    return Order(
        command.order_id,
        command.account_id,
        SYMBOL,
        Side.BUY if command.is_buy else Side.SELL,
        OrderType.MARKET if command.kind == "market" else OrderType.LIMIT,
        TimeInForce.IOC if command.kind == "market" else TimeInForce.GTC,
        command.qty,
        command.price,
        stp=SelfTradePrevention.NONE,  # the peers have no self-trade prevention
        ts=ts,
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    seconds: float
    trades: int
    volume: int


def run_tradepit(commands: list[Command]) -> Outcome:
    """Our matcher, as a stage runs it: `Matcher.apply` on a batch of commands, then the batch's
    events are taken, used (here: the trades tallied, with the clock stopped) and freed.
    Freeing is timed; keeping every event of the run alive to the end would not be, in a stage,
    and would charge the kernel's page faults for ~70 MB of new memory to the matcher."""
    matcher = Matcher()
    matcher.add_symbol(SYMBOL)
    ops: list[MatcherCommand] = [
        Submit(to_order(c, ts))
        if c.kind != "cancel"
        else Cancel(SYMBOL, c.order_id, c.account_id, ts)
        for ts, c in enumerate(commands)
    ]
    batches = [ops[i : i + BATCH] for i in range(0, len(ops), BATCH)]
    apply = matcher.apply
    clock = time.perf_counter
    seconds = 0.0
    trades = volume = 0
    for batch in batches:
        start = clock()
        apply(batch)
        events = matcher.take_events()
        seconds += clock() - start
        for event in events:
            if event.__class__ is Trade:
                trades += 1
                volume += event.qty  # type: ignore[attr-defined]
        start = clock()
        del events
        seconds += clock() - start
    return Outcome(seconds, trades, volume)


def run_lightmatchingengine(commands: list[Command]) -> Outcome:
    from lightmatchingengine.lightmatchingengine import LightMatchingEngine
    from lightmatchingengine.lightmatchingengine import Side as LmeSide

    engine = LightMatchingEngine()
    add_order = engine.add_order
    cancel_order = engine.cancel_order
    buy, sell = LmeSide.BUY, LmeSide.SELL
    engine_ids: dict[int, int] = {}
    results = []
    start = time.perf_counter()
    for c in commands:
        if c.kind == "cancel":
            cancel_order(engine_ids.pop(c.order_id), SYMBOL)
            continue
        # Price 0 is its market order, with no protection price; the workload's liquidity is
        # always inside the protection band, so the trades are the same.
        price = c.price if c.kind == "limit" else 0
        order, trades = add_order(SYMBOL, price, c.qty, buy if c.is_buy else sell)
        if c.kind == "market":
            if order.leaves_qty > 0:
                cancel_order(order.order_id, SYMBOL)  # else the remainder would rest at 0
        else:
            engine_ids[c.order_id] = order.order_id
        results.append((order.order_id, trades))
    seconds = time.perf_counter() - start
    # Per level it reports one aggregate trade for the taker, then one per maker: count makers.
    fills = [t for taker, trades in results for t in trades if t.order_id != taker]
    return Outcome(seconds, len(fills), sum(int(t.trade_qty) for t in fills))


def _run_akhil4n(commands: list[Command], compiled: bool) -> Outcome:
    if compiled:
        from cython_orderbook.orderbook import Order, OrderBook, OrderSide

        def make_limit(side: Any, price: int, qty: int) -> Any:
            return Order(side, qty, price)

        def make_market(side: Any, qty: int) -> Any:
            return Order(side, qty)  # an order without a price is its market order
    else:
        from orderbook import MarketOrder, Order, OrderBook, OrderSide

        def make_limit(side: Any, price: int, qty: int) -> Any:
            return Order(side, price, qty)

        def make_market(side: Any, qty: int) -> Any:
            return MarketOrder(side, qty)

    book = OrderBook()
    bid, ask = OrderSide.BID, OrderSide.ASK
    add_limit, add_market, cancel = book.add_limit_order, book.add_market_order, book.cancel_order
    engine_ids: dict[int, int] = {}
    limits = {
        c.order_id: make_limit(bid if c.is_buy else ask, c.price, c.qty)
        for c in commands
        if c.kind == "limit"
    }
    markets = {
        c.order_id: make_market(bid if c.is_buy else ask, c.qty)
        for c in commands
        if c.kind == "market"
    }
    start = time.perf_counter()
    for c in commands:
        if c.kind == "limit":
            order = limits[c.order_id]
            add_limit(order)
            engine_ids[c.order_id] = order.order_id
        elif c.kind == "market":
            add_market(markets[c.order_id])
        else:
            cancel(engine_ids.pop(c.order_id))
    seconds = time.perf_counter() - start
    log = book.trade_log
    return Outcome(seconds, len(log), sum(int(t.quantity_filled) for t in log))


def run_akhil4n_orderbook(commands: list[Command]) -> Outcome:
    return _run_akhil4n(commands, compiled=False)


def run_cython_orderbook(commands: list[Command]) -> Outcome:
    return _run_akhil4n(commands, compiled=True)


PEERS: dict[str, Callable[[list[Command]], Outcome]] = {
    "lightmatchingengine": run_lightmatchingengine,
    "akhil4n-orderbook": run_akhil4n_orderbook,
    "cython-orderbook": run_cython_orderbook,
}


def measure(
    engines: dict[str, Callable[[list[Command]], Outcome]], commands: list[Command], repeat: int
) -> dict[str, dict[str, Any]]:
    """Run every engine `repeat` times, in rounds (each engine once per round), so that all of
    them meet the same moments of a noisy machine; each engine's median run is its figure."""
    outcomes: dict[str, list[Outcome]] = {name: [] for name in engines}
    for _ in range(repeat):
        for name, run in engines.items():
            gc.collect()
            outcomes[name].append(run(commands))
    results = {}
    for name, runs in outcomes.items():
        rates = [len(commands) / outcome.seconds for outcome in runs]
        results[name] = {
            "orders_per_s": round(statistics.median(rates)),
            "runs": [round(rate) for rate in rates],
            "trades": runs[0].trades,
            "volume": runs[0].volume,
        }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("cross", "deep"), default="cross")
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated peer names")
    parser.add_argument("--quick", action="store_true", help="50k orders, 3 runs: under 30 s")
    args = parser.parse_args()
    if args.quick:
        args.orders, args.repeat = 50_000, 3

    commands = generate(args.workload, args.orders, args.seed)
    kinds = {kind: sum(c.kind == kind for c in commands) for kind in ("limit", "market", "cancel")}
    print(f"workload {args.workload}: {len(commands):,} commands {kinds}, seed {args.seed}")
    print(f"python {platform.python_version()} on {platform.machine()}, {args.repeat} runs each")

    names = [name for name in args.peers.split(",") if name]
    results = measure(
        {"tradepit": run_tradepit, **{name: PEERS[name] for name in names}}, commands, args.repeat
    )
    ours = results.pop("tradepit")
    peers = {}
    for name, result in [("tradepit", ours), *results.items()]:
        same = (result["trades"], result["volume"]) == (ours["trades"], ours["volume"])
        print(
            f"  {name:<19} {result['orders_per_s']:>10,} orders/s  "
            f"{result['trades']:,} trades, volume {result['volume']:,}  "
            f"runs {', '.join(f'{rate:,}' for rate in result['runs'])}"
            f"{'' if same else '  MISMATCH: excluded'}"
        )
        if same and name != "tradepit":
            peers[name] = result
    if not peers:
        print("no correct peer ran", file=sys.stderr)
        return 1
    fastest = max(peers, key=lambda name: peers[name]["orders_per_s"])
    summary = {
        "bench": "matcher",
        "workload": args.workload,
        "orders": len(commands),
        "orders_per_s": ours["orders_per_s"],
        "trades": ours["trades"],
        "volume": ours["volume"],
        "peer": fastest,
        "peer_orders_per_s": peers[fastest]["orders_per_s"],
        "ratio": round(ours["orders_per_s"] / peers[fastest]["orders_per_s"], 2),
        "peers": {name: result["orders_per_s"] for name, result in peers.items()},
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
