"""The auction's price: the most lots traded, then the least imbalance, then the price nearest
the reference, over every tick between the lowest and the highest limit; checked by hand and
against a brute force that tries every tick."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tradepit.matcher.auction import Uncross, uncross

Orders = list[tuple[int, int]]


def demand_supply(bids: Orders, asks: Orders, mb: int, ma: int, price: int) -> tuple[int, int]:
    demand = mb + sum(lots for limit, lots in bids if limit >= price)
    supply = ma + sum(lots for limit, lots in asks if limit <= price)
    return demand, supply


def finalists(bids: Orders, asks: Orders, reference: int, mb: int, ma: int) -> list[Uncross]:
    """Every candidate tick still tied after the three steps, tried one by one."""
    limits = [limit for limit, _ in bids + asks]
    ticks = range(min(limits), max(limits) + 1) if limits else [reference]
    rows = []
    for price in ticks:
        demand, supply = demand_supply(bids, asks, mb, ma, price)
        rows.append(Uncross(price, min(demand, supply), demand - supply))
    most = max(row.volume for row in rows)
    rows = [row for row in rows if row.volume == most]
    least = min(abs(row.imbalance) for row in rows)
    rows = [row for row in rows if abs(row.imbalance) == least]
    nearest = min(abs(row.price - reference) for row in rows)
    return [row for row in rows if abs(row.price - reference) == nearest]


def brute_force(
    bids: Orders, asks: Orders, reference: int, mb: int = 0, ma: int = 0
) -> Uncross | None:
    rows = finalists(bids, asks, reference, mb, ma)
    return rows[0] if rows[0].volume else None  # the lowest, should two ever tie


# Narrow prices make ties of every kind; wide ones leave gaps between the limits.
prices = st.integers(1, 12) | st.integers(1, 200)
orders = st.lists(st.tuples(prices, st.integers(1, 5)), max_size=8)
markets = st.integers(0, 8)
references = st.integers(1, 220)


# Hand-worked examples


def test_the_price_with_the_most_volume_wins() -> None:
    bids = [(103, 5), (102, 3), (101, 3), (100, 6), (101, 2)]
    asks = [(99, 4), (100, 3), (101, 5), (103, 6)]
    # p:       99  100  101  102  103
    # demand:  19   19   13    8    5
    # supply:   4    7   12   12   18
    # volume:   4    7   12    8    5
    assert uncross(bids, asks, reference=90) == Uncross(101, 12, 1)


def test_a_volume_tie_goes_to_the_least_imbalance_before_the_reference() -> None:
    bids = [(101, 6), (100, 4)]
    asks = [(100, 6), (101, 2)]
    # At 100: demand 10, supply 6; at 101: demand 6, supply 8. 6 lots at either.
    assert uncross(bids, asks, reference=100) == Uncross(101, 6, -2)


def test_the_reference_wins_inside_the_tied_range_though_no_order_is_at_it() -> None:
    assert uncross([(110, 5)], [(90, 5)], reference=100) == Uncross(100, 5, 0)


def test_a_reference_outside_the_tied_range_gives_its_nearest_edge() -> None:
    assert uncross([(110, 5)], [(90, 5)], reference=200) == Uncross(110, 5, 0)
    assert uncross([(110, 5)], [(90, 5)], reference=50) == Uncross(90, 5, 0)


def test_the_least_imbalance_can_lie_strictly_between_two_limits() -> None:
    bids = [(100, 5), (110, 5)]
    asks = [(90, 5), (105, 5)]
    # 5 lots trade at every tick from 90 to 110, but only 101 to 104 leave no imbalance: the
    # bid at 100 is out and the ask at 105 not yet in.
    assert uncross(bids, asks, reference=103) == Uncross(103, 5, 0)
    assert uncross(bids, asks, reference=120) == Uncross(104, 5, 0)
    assert uncross(bids, asks, reference=1) == Uncross(101, 5, 0)


def test_the_imbalance_is_the_one_at_the_price_chosen() -> None:
    bids = [(101, 5), (100, 1)]
    asks = [(99, 5), (101, 1)]
    # 5 lots at 99, 100 and 101; one lot left over at each: a buyer at 99 and 100, a seller at
    # 101.
    assert uncross(bids, asks, reference=105) == Uncross(101, 5, -1)
    assert uncross(bids, asks, reference=100) == Uncross(100, 5, 1)


def test_market_orders_alone_cross_at_the_reference() -> None:
    assert uncross([], [], reference=123, market_bids=7, market_asks=4) == Uncross(123, 4, 3)
    assert uncross([], [], reference=123, market_bids=4, market_asks=4) == Uncross(123, 4, 0)


def test_market_orders_on_one_side_trade_at_the_other_sides_limits() -> None:
    # Sellers at any price against bids at 100 and 90: at 90 both bids are in.
    assert uncross([(100, 5), (90, 5)], [], reference=95, market_asks=10) == Uncross(90, 10, 0)
    # Buyers at any price and an ask at 100: never above the highest limit, however high the
    # reference.
    assert uncross([], [(100, 5)], reference=150, market_bids=10) == Uncross(100, 5, 5)


def test_the_price_never_leaves_the_limits() -> None:
    # Above 50 the market orders would balance exactly, but no limit order is priced there.
    assert uncross([(50, 1)], [], reference=100, market_bids=10, market_asks=10) == Uncross(
        50, 10, 1
    )


def test_nothing_crosses() -> None:
    assert uncross([(99, 5)], [(100, 5)], reference=100) is None
    assert uncross([(99, 5), (98, 2)], [(100, 5), (101, 1)], reference=100) is None
    assert uncross([], [], reference=100) is None


def test_one_side_empty() -> None:
    assert uncross([(100, 5)], [], reference=100) is None
    assert uncross([], [(100, 5)], reference=100) is None
    assert uncross([(100, 5)], [], reference=100, market_bids=5) is None
    assert uncross([], [], reference=100, market_bids=5) is None
    assert uncross([], [], reference=100, market_asks=5) is None


# Properties


@settings(max_examples=300, deadline=None)
@given(orders, orders, references, markets, markets)
def test_agrees_with_trying_every_tick(
    bids: Orders, asks: Orders, reference: int, mb: int, ma: int
) -> None:
    assert uncross(bids, asks, reference, mb, ma) == brute_force(bids, asks, reference, mb, ma)


@settings(max_examples=200, deadline=None)
@given(orders, orders, references, markets, markets)
def test_one_price_is_nearest_the_reference(
    bids: Orders, asks: Orders, reference: int, mb: int, ma: int
) -> None:
    # The module needs no fourth tie-break: what is left after step 2 is one run of ticks.
    assert len(finalists(bids, asks, reference, mb, ma)) == 1


@settings(max_examples=200, deadline=None)
@given(orders, orders, references, markets, markets)
def test_the_volume_is_what_crosses_at_the_price_and_no_tick_crosses_more(
    bids: Orders, asks: Orders, reference: int, mb: int, ma: int
) -> None:
    result = uncross(bids, asks, reference, mb, ma)
    limits = [limit for limit, _ in bids + asks]
    ticks = [*range(1, max(limits, default=0) + 2), reference]
    most = max(min(demand_supply(bids, asks, mb, ma, p)) for p in ticks)
    if result is None:
        assert most == 0
        return
    demand, supply = demand_supply(bids, asks, mb, ma, result.price)
    assert result.volume == min(demand, supply) > 0
    assert result.imbalance == demand - supply
    assert result.volume == most


@settings(max_examples=200, deadline=None)
@given(orders, orders, references, markets, markets)
def test_the_price_lies_within_the_limits(
    bids: Orders, asks: Orders, reference: int, mb: int, ma: int
) -> None:
    result = uncross(bids, asks, reference, mb, ma)
    if result is None:
        return
    limits = [limit for limit, _ in bids + asks]
    if not limits:
        assert result.price == reference
        return
    assert min(limits) <= result.price <= max(limits)
    if not mb and not ma:
        # Limits alone trade only where someone bids at least and someone asks at most.
        assert min(limit for limit, _ in asks) <= result.price <= max(lim for lim, _ in bids)


@settings(max_examples=100, deadline=None)
@given(orders, orders, references, markets, markets, st.randoms(use_true_random=False))
def test_the_orders_arrangement_does_not_matter(
    bids: Orders, asks: Orders, reference: int, mb: int, ma: int, rng: random.Random
) -> None:
    # Shuffled, and each order split in two at its price: the same lots at the same prices.
    def rearranged(side: Orders) -> Orders:
        split = [part for p, q in side for part in ((p, 1), (p, q - 1)) if part[1]]
        rng.shuffle(split)
        return split

    expected = uncross(bids, asks, reference, mb, ma)
    assert uncross(rearranged(bids), rearranged(asks), reference, mb, ma) == expected


def test_a_book_of_a_hundred_thousand_orders() -> None:
    rng = random.Random(20)
    bids = [(rng.randint(9_000, 10_100), rng.randint(1, 50)) for _ in range(50_000)]
    asks = [(rng.randint(9_900, 11_000), rng.randint(1, 50)) for _ in range(50_000)]
    result = uncross(bids, asks, 10_000, market_bids=300, market_asks=200)
    assert result is not None
    demand, supply = demand_supply(bids, asks, 300, 200, result.price)
    assert result == Uncross(result.price, min(demand, supply), demand - supply)
    assert 9_900 <= result.price <= 10_100
