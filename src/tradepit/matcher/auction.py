"""The price of a call auction (the opening and closing crosses): one price for the whole book.

The auction's orders are collected without trading, then all cross at once at one price. At a
price `p` in ticks:

- demand(p) is the market buy lots plus the lots of every bid whose limit is `>= p`,
- supply(p) is the market sell lots plus the lots of every ask whose limit is `<= p`,
- `volume` = min(demand, supply) lots trade, and `imbalance` = demand - supply is what is left
  crossing on the long side (positive: buyers), unfilled.

The rule (Nasdaq Rules 4752(d)(2) and 4754(b)(2) for the Opening and Closing Cross; the same
first steps as Xetra's and Euronext's auctions, without their market-pressure step):

1. the price at which the most lots trade;
2. of those, the price that leaves the least absolute imbalance;
3. of those, the price nearest the reference price (the last trade or previous close).

Every tick from the lowest to the highest limit price in the auction (either side) is a
candidate, not only the limit prices themselves: the imbalance can be least strictly between
two limits, and the reference wins whenever it lies inside the tied prices though no order is
priced at it. No price outside the limits is a candidate: as on Xetra, a reference above the
highest limit gives that limit, and one below the lowest gives the lowest. Nothing is lost by
this in step 1 (below the lowest limit demand is no larger and supply no smaller than at it, and
symmetrically above the highest), but with market orders on both sides a price outside could
balance better in step 2, and the market orders would then set a price no limit order asked for.
With no limit orders at all, the only candidate is the reference price.

No fourth tie-break is needed, because the prices left after step 2 are always one unbroken run
of ticks, so exactly one of them is nearest the reference (it, clamped into the run). Demand
only falls and supply only rises as the price rises, so their minimum, the volume, rises and
then falls: the ticks with the most volume are one run. Across it the imbalance only falls, so
the ticks where it is nearest zero are one run too (a run of +m next to a run of -m).

A price with no volume is no auction: `uncross` returns None when nothing crosses.

Both sides trade `volume` lots. Eligible at `p` are the market orders and the limits at or
better than `p`; the short side fills completely, and the book rations the long side's
`volume` lots among its eligible orders by its own priority (market orders, then better
limits, then time at `p`).

O(n log n) in the orders: one sort of the distinct price levels, then prefix sums over them and
one pass over the levels and the gaps between them (between two neighbouring levels demand and
supply do not change).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import accumulate
from typing import NamedTuple

__all__ = ["Uncross", "uncross"]


class Uncross(NamedTuple):
    """Where an auction uncrosses: `volume` lots of each side trade at `price`."""

    price: int  # ticks
    volume: int  # lots
    imbalance: int  # demand - supply at `price`, lots: > 0 buyers left over, < 0 sellers


def uncross(
    bids: Sequence[tuple[int, int]],
    asks: Sequence[tuple[int, int]],
    reference: int,
    market_bids: int = 0,
    market_asks: int = 0,
) -> Uncross | None:
    """The auction's price by the module's rule, or None when nothing would trade.

    `bids` and `asks` are the limit orders as (limit price in ticks, lots), lots > 0, in any
    order; `market_bids` and `market_asks` are the lots of market orders on each side;
    `reference` is the reference price in ticks, > 0.
    """
    bid_lots: dict[int, int] = {}
    for price, lots in bids:
        bid_lots[price] = bid_lots.get(price, 0) + lots
    ask_lots: dict[int, int] = {}
    for price, lots in asks:
        ask_lots[price] = ask_lots.get(price, 0) + lots
    levels = sorted(bid_lots.keys() | ask_lots.keys())
    if not levels:
        # Market orders alone name no price: they cross at the reference.
        volume = min(market_bids, market_asks)
        return Uncross(reference, volume, market_bids - market_asks) if volume else None

    # demand[i]: the market buys and the bids at levels[i] or above; supply[j]: the market
    # sells and the asks below levels[j]. So at a tick p, demand is
    # demand[bisect_left(levels, p)] and supply supply[bisect_right(levels, p)].
    demand = list(accumulate((bid_lots.get(p, 0) for p in reversed(levels)), initial=market_bids))
    demand.reverse()
    supply = list(accumulate((ask_lots.get(p, 0) for p in levels), initial=market_asks))

    # Steps 1 and 2 in one ascending pass. The tied ticks are one run (module docstring), so a
    # tie extends the run's top and a better key starts a new run.
    best = (0, 0)  # (volume, -|imbalance|): larger is better
    low = high = 0
    last = len(levels) - 1
    for i, price in enumerate(levels):
        d, s = demand[i], supply[i + 1]
        key = (min(d, s), -abs(d - s))
        if key > best:
            best, low, high = key, price, price
        elif key == best:
            high = price
        if i < last and levels[i + 1] > price + 1:
            # The ticks strictly between this level and the next: the demand of the next level,
            # the supply of this one.
            d, s = demand[i + 1], supply[i + 1]
            key = (min(d, s), -abs(d - s))
            if key > best:
                best, low, high = key, price + 1, levels[i + 1] - 1
            elif key == best:
                high = levels[i + 1] - 1
    if not best[0]:
        return None
    price = min(max(reference, low), high)  # step 3
    d, s = demand[bisect_left(levels, price)], supply[bisect_right(levels, price)]
    return Uncross(price, min(d, s), d - s)
