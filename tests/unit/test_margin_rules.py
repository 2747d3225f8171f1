"""Margin and short selling: the rules of `tradepit.domain.margin` against a reference written
from their text with exact fractions, and the ledger's margin accounts, short sales and covers
driven through a real matcher, the books checked after every step."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from fractions import Fraction
from functools import partial
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepit.domain.events import Event, Trade
from tradepit.domain.margin import (
    Margin,
    initial_requirement,
    maintenance_requirement,
    margin_of,
    position_value,
)
from tradepit.domain.orders import Order, OrderType, Side, TimeInForce
from tradepit.domain.refusals import Refusal
from tradepit.domain.symbols import Symbol
from tradepit.ledger import Ledger, LedgerError
from tradepit.matcher import Matcher

BUY = Side.BUY
SELL = Side.SELL

# The rules, as the module's docstring states them (cents, and cents a share).
MINIMUM_EQUITY = 2_000_00
INITIAL = Fraction(1, 2)
MAINTENANCE = Fraction(3, 10)
LONG_LOW_PRICE = 250
SHORT_LOW_PRICE = 500
SHORT_PER_SHARE = 500
SHORT_LOW_PER_SHARE = 250


# The rules of domain/margin.py, against a reference computed from their text.


def ceil(amount: Fraction) -> int:
    return math.ceil(amount)


def reference(
    tick_size: Decimal, lot_size: Decimal, lots: int, ticks: int, cost: int
) -> tuple[int, int, int]:
    """(value, initial, maintenance) of `lots` (negative: short) at `ticks` (0: at `cost`)."""
    shares = abs(lots) * Fraction(lot_size)
    if ticks:
        price = ticks * Fraction(tick_size) * 100  # cents a share
        # A long's value to the cent below, a short's liability to the cent above.
        value = math.floor(lots * Fraction(lot_size) * price)
    else:
        value = cost
        price = Fraction(abs(cost)) / shares
    amount = Fraction(abs(value))
    initial = ceil(amount * INITIAL)
    if lots > 0:
        maintenance = ceil(amount * (MAINTENANCE if price >= LONG_LOW_PRICE else 1))
    elif price >= SHORT_LOW_PRICE:
        maintenance = ceil(max(shares * SHORT_PER_SHARE, amount * MAINTENANCE))
    else:
        maintenance = ceil(max(shares * SHORT_LOW_PER_SHARE, amount))
    return value, initial, maintenance


GRIDS = st.sampled_from(
    [
        (Decimal("0.01"), Decimal("1")),
        (Decimal("0.05"), Decimal("1")),
        (Decimal("0.05"), Decimal("10")),
        (Decimal("1"), Decimal("1")),
        (Decimal("0.01"), Decimal("0.001")),
        (Decimal("0.01"), Decimal("0.000000001")),
        (Decimal("1"), Decimal("0.00001")),
        (Decimal("0.0001"), Decimal("100")),
    ]
)


@st.composite
def positions(draw: st.DrawFn) -> tuple[Symbol, int, int, int]:
    """A symbol and a position in it: (symbol, lots, ticks, cost), at its cost when ticks is 0
    (a long's cost >= 0, a short's, what the sale brought in negated, < 0)."""
    tick_size, lot_size = draw(GRIDS)
    symbol = Symbol("S", tick_size, lot_size)
    scale = int(1 / lot_size) if lot_size < 1 else 1
    lots = draw(st.integers(1, 5_000 * scale)) * draw(st.sampled_from([1, -1]))
    ticks = draw(st.one_of(st.just(0), st.integers(1, 50_000), st.integers(1, 10**7)))
    cost = draw(st.integers(0, 10**9))
    if lots < 0:
        cost = -cost - 1
    return symbol, lots, ticks, cost


@given(positions())
def test_a_positions_requirements_are_the_exact_ones_rounded_up(
    position: tuple[Symbol, int, int, int],
) -> None:
    symbol, lots, ticks, cost = position
    value, initial, maintenance = reference(symbol.tick_size, symbol.lot_size, lots, ticks, cost)
    priced = position_value(symbol, lots, ticks, cost)
    assert priced.value == value
    assert priced.shares == abs(lots) * Fraction(symbol.lot_size)
    assert initial_requirement(priced) == initial
    assert maintenance_requirement(priced) == maintenance


@pytest.mark.parametrize(
    ("lots", "ticks", "initial", "maintenance"),
    [
        (100, 250, 12_500, 7_500),  # a long at $2.50: 30%
        (100, 249, 12_450, 24_900),  # ... below: 100%
        (-100, 500, 25_000, 50_000),  # a short at $5.00: $5 a share beats 30%
        (-100, 2_000, 100_000, 60_000),  # at $20: 30% ($6 a share) beats $5
        (-100, 499, 24_950, 49_900),  # below $5: 100% beats $2.50 a share
        (-100, 100, 5_000, 25_000),  # at $1: $2.50 a share beats 100%
        (3, 333, 500, 300),  # 999 cents: 499.5 -> 500, 299.7 -> 300
    ],
)
def test_requirements_at_the_thresholds(
    lots: int, ticks: int, initial: int, maintenance: int
) -> None:
    priced = position_value(Symbol("AAA"), lots, ticks, 0)
    assert (initial_requirement(priced), maintenance_requirement(priced)) == (
        initial,
        maintenance,
    )


def reference_margin(
    multiplier: int,
    cash_free: int,
    cash_reserved: int,
    held: list[tuple[Symbol, int, int, int]],
) -> dict[str, Any]:
    values, initials, maintenances = [], [], []
    for symbol, lots, ticks, cost in held:
        value, initial, maintenance = reference(
            symbol.tick_size, symbol.lot_size, lots, ticks, cost
        )
        values.append(value)
        initials.append(initial)
        maintenances.append(maintenance)
    long_value = sum(v for v in values if v > 0)
    short_value = sum(v for v in values if v < 0)
    # A cash account pays for its positions in full.
    initial = sum(initials) if multiplier > 1 else long_value - short_value
    maintenance = sum(maintenances)
    equity = cash_free + cash_reserved + long_value + short_value
    enabled = multiplier > 1 and equity >= MINIMUM_EQUITY
    if multiplier == 1:
        non_marginable = max(0, cash_free)
    else:
        non_marginable = max(0, min(cash_free, equity - initial - cash_reserved))
    regt = max(0, 2 * (equity - initial) - cash_reserved) if enabled else non_marginable
    daytrading = (
        max(0, 4 * (equity - maintenance) - cash_reserved) if enabled and multiplier == 4 else 0
    )
    return {
        "long_market_value": long_value,
        "short_market_value": short_value,
        "initial_margin": initial,
        "maintenance_margin": maintenance,
        "equity": equity,
        "margin_enabled": enabled,
        "non_marginable_buying_power": non_marginable,
        "regt_buying_power": regt,
        "daytrading_buying_power": daytrading,
        "buying_power": daytrading if enabled and multiplier == 4 else regt,
        "margin_call": equity < maintenance,
    }


def fields(margin: Margin) -> dict[str, Any]:
    return {
        "long_market_value": margin.long_market_value,
        "short_market_value": margin.short_market_value,
        "initial_margin": margin.initial_margin,
        "maintenance_margin": margin.maintenance_margin,
        "equity": margin.equity,
        "margin_enabled": margin.margin_enabled,
        "non_marginable_buying_power": margin.non_marginable_buying_power,
        "regt_buying_power": margin.regt_buying_power,
        "daytrading_buying_power": margin.daytrading_buying_power,
        "buying_power": margin.buying_power,
        "margin_call": margin.margin_call,
    }


CASH_AMOUNTS = st.one_of(st.integers(-(10**8), 10**8), st.integers(195_000, 205_000))


@given(
    multiplier=st.sampled_from([1, 2, 4]),
    cash_free=CASH_AMOUNTS,
    cash_reserved=st.one_of(st.just(0), st.integers(0, 10**8)),
    held=st.lists(positions(), max_size=5),
)
def test_an_accounts_margin_and_buying_powers_follow_the_formulas(
    multiplier: int,
    cash_free: int,
    cash_reserved: int,
    held: list[tuple[Symbol, int, int, int]],
) -> None:
    priced = [position_value(*position) for position in held]
    margin = margin_of(multiplier, cash_free, cash_reserved, priced)
    assert (margin.multiplier, margin.cash_free, margin.cash_reserved) == (
        multiplier,
        cash_free,
        cash_reserved,
    )
    assert margin.cash == cash_free + cash_reserved
    assert margin.committed == cash_reserved
    assert fields(margin) == reference_margin(multiplier, cash_free, cash_reserved, held)
    for power in (
        margin.buying_power,
        margin.regt_buying_power,
        margin.daytrading_buying_power,
        margin.non_marginable_buying_power,
    ):
        assert power >= 0
    if multiplier == 1:
        # A cash account never borrows: it buys with its free cash and nothing else.
        assert not margin.margin_enabled
        assert margin.buying_power == margin.non_marginable_buying_power == max(0, cash_free)
        assert margin.daytrading_buying_power == 0
    elif margin.equity < MINIMUM_EQUITY:
        assert not margin.margin_enabled
        assert margin.buying_power <= max(0, cash_free)


@pytest.mark.parametrize("multiplier", [2, 4])
def test_margin_takes_two_thousand_dollars_of_equity(multiplier: int) -> None:
    at = margin_of(multiplier, MINIMUM_EQUITY, 0, [])
    below = margin_of(multiplier, MINIMUM_EQUITY - 1, 0, [])
    assert at.margin_enabled and at.buying_power == multiplier * MINIMUM_EQUITY
    assert not below.margin_enabled and below.buying_power == MINIMUM_EQUITY - 1
    assert not margin_of(1, 10**9, 0, []).margin_enabled


# The ledger: margin accounts, short sales and covers, through a real matcher.

AAA = Symbol("AAA")  # $0.01 ticks, whole shares: a tick on a share is a cent
HTB = Symbol("HTB", shortable=False)  # hard to borrow
FRC = Symbol("FRC", lot_size=Decimal("0.001"))  # fractional: a lot is a thousandth of a share
SYMBOLS = (AAA, HTB, FRC)
MAKER = 99  # a cash account that makes the markets the tests trade against
TRADER = 98  # another, that prints the trades that trigger stops
DOLLARS = 100  # cents, and AAA's ticks
MARKS = {"AAA": 100 * DOLLARS}


class Venue:
    """A ledger and its matcher, wired as the stages wire them; the ledger's books checked
    after every placement, transfer and matcher command."""

    def __init__(self, fee_bps: int = 0) -> None:
        self.ledger = Ledger(SYMBOLS, maker_fee_bps=fee_bps, taker_fee_bps=fee_bps)
        self.matcher = Matcher()
        for symbol in SYMBOLS:
            self.matcher.add_symbol(symbol.name)
        self.next_id = 0
        self.events: list[Event] = []
        self.dropped: list[tuple[int, str]] = []
        self.open(MAKER, 10**10, 1, AAA=10**6, HTB=10**6, FRC=10**9)
        self.open(TRADER, 10**10, 1, AAA=10**6)

    def check(self) -> None:
        assert self.ledger.check_invariants() == []

    def open(self, account: int, cents: int = 0, multiplier: int = 1, **lots: int) -> None:
        self.ledger.open_account(account)
        if cents:
            self.ledger.deposit_cash(f"cash-{account}", account, cents)
        for symbol, amount in lots.items():
            self.ledger.deposit_shares(f"{symbol}-{account}", account, symbol, amount)
        self.ledger.set_multiplier(account, multiplier)
        self.check()

    def order(
        self,
        account: int,
        side: Side,
        qty: int,
        price: int,
        symbol: str = "AAA",
        kind: OrderType = OrderType.LIMIT,
        stop_price: int = 0,
        oco: int = 0,
    ) -> Order:
        self.next_id += 1
        return Order(
            order_id=self.next_id,
            account_id=account,
            symbol=symbol,
            side=side,
            type=kind,
            time_in_force=TimeInForce.GTC,
            qty=qty,
            price=price,
            stop_price=stop_price,
            oco=oco,
            ts=self.next_id,
        )

    def pump(self) -> list[Event]:
        """Apply what the matcher did, as the ledger stage does: a command's events at once
        (an OCO leg that fills leaves its other leg holding nothing until that one's cancel,
        the next event)."""
        events: list[Event] = []
        while True:
            batch = self.matcher.take_events()
            for event in batch:
                self.ledger.apply(event)
            self.check()
            events += batch
            # The legs an entry's fill released go to the matcher, as the ledger stage sends them.
            released, dropped = self.ledger.take_legs()
            self.dropped += dropped
            if not released:
                break
            self.matcher.apply(released)
        self.events += events
        return events

    def place(self, order: Order, marks: Mapping[str, int] | None = None) -> list[Event]:
        self.ledger.place_order(order, marks=marks)
        self.check()
        self.matcher.submit(order)
        return self.pump()

    def submit(
        self,
        account: int,
        side: Side,
        qty: int,
        price: int,
        symbol: str = "AAA",
        marks: Mapping[str, int] | None = None,
    ) -> Order:
        order = self.order(account, side, qty, price, symbol)
        self.place(order, marks)
        return order

    def make_market(self, side: Side, qty: int, price: int, symbol: str = "AAA") -> Order:
        """The maker rests `qty` on `side` at `price`, for the tests' accounts to trade with."""
        return self.submit(MAKER, side, qty, price, symbol)

    def print_trade(self, price: int) -> None:
        """A trade of one share at `price` between the trader and the maker (a stop's trigger)."""
        self.submit(TRADER, SELL, 1, price)
        order = self.submit(MAKER, BUY, 1, price)
        assert [(trade.price, trade.qty) for trade in self.trades(order)] == [(price, 1)]

    def cancel(self, order: Order) -> list[Event]:
        self.matcher.cancel(order.symbol, order.order_id, order.account_id, 0)
        return self.pump()

    def refused(self, code: Refusal, attempt: Callable[[], object]) -> LedgerError:
        """`attempt` is refused with `code`, and changes nothing."""
        before = self.ledger.state_hash()
        with pytest.raises(LedgerError) as refusal:
            attempt()
        assert refusal.value.code is code, refusal.value.message
        assert self.ledger.state_hash() == before
        self.check()
        return refusal.value

    def cash(self, account: int) -> tuple[int, int]:
        state = self.ledger.accounts[account]
        return state.cash_free, state.cash_reserved

    def holding(self, account: int, symbol: str = "AAA") -> tuple[int, int, int, int, int]:
        """(free, reserved, covering, cost, realized_pnl)."""
        held = self.ledger.accounts[account].holdings[symbol]
        return held.free, held.reserved, held.covering, held.cost, held.realized_pnl

    def trades(self, order: Order) -> list[Trade]:
        return [
            event
            for event in self.events
            if isinstance(event, Trade)
            and order.order_id in (event.maker_order_id, event.taker_order_id)
        ]


def test_a_cash_accounts_oversell_is_refused_as_before() -> None:
    venue = Venue()
    venue.open(1, 10_000 * DOLLARS, AAA=10, HTB=10, FRC=500)
    venue.submit(1, SELL, 6, 200 * DOLLARS)  # rests: 6 of its 10 held
    for qty, symbol, message in [
        (5, "AAA", "needs 5 lots of AAA, has 4"),
        (1, "BBB", None),
        (11, "HTB", "needs 11 lots of HTB, has 10"),  # shortable or not: no shares, no sale
        (501, "FRC", "needs 501 lots of FRC, has 500"),
    ]:
        order = venue.order(1, SELL, qty, 100 * DOLLARS, symbol)
        if message is None:
            venue.refused(Refusal.UNKNOWN_SYMBOL, partial(venue.ledger.place_order, order))
            continue
        for marks in (None, MARKS):
            refusal = venue.refused(
                Refusal.INSUFFICIENT_SHARES, partial(venue.ledger.place_order, order, marks=marks)
            )
            assert refusal.message == message
    venue.open(2)
    order = venue.order(2, SELL, 1, 100 * DOLLARS)
    refusal = venue.refused(Refusal.INSUFFICIENT_SHARES, lambda: venue.ledger.place_order(order))
    assert refusal.message == "needs 1 lots of AAA, has 0"
    # Its buying power is its free cash, whatever the marks say.
    assert venue.ledger.margin(1, MARKS).buying_power == 10_000 * DOLLARS


def largest_price(buying_power: int, bps: int) -> int:
    """The highest price (ticks, one AAA share) whose notional and largest fee fit."""
    price = buying_power * 10_000 // (10_000 + bps)
    while price + 1 + math.ceil(Fraction((price + 1) * bps, 10_000)) <= buying_power:
        price += 1
    while price + math.ceil(Fraction(price * bps, 10_000)) > buying_power:
        price -= 1
    return price


@pytest.mark.parametrize("bps", [0, 10, 25])
@pytest.mark.parametrize("multiplier", [2, 4])
def test_a_margin_account_buys_its_buying_power_and_not_a_cent_more(
    multiplier: int, bps: int
) -> None:
    venue = Venue(bps)
    venue.open(1, 10_000 * DOLLARS, multiplier)
    power = multiplier * 10_000 * DOLLARS
    assert venue.ledger.margin(1).buying_power == power
    if not bps:
        # $20,000 (or $40,000) of shares at $100, and not one more.
        venue.refused(
            Refusal.INSUFFICIENT_BUYING_POWER,
            lambda: venue.ledger.place_order(
                venue.order(1, BUY, power // (100 * DOLLARS) + 1, 100 * DOLLARS), marks=MARKS
            ),
        )
    price = largest_price(power, bps)
    fee = math.ceil(Fraction(price * bps, 10_000))
    assert price + fee <= power < price + 1 + math.ceil(Fraction((price + 1) * bps, 10_000))
    venue.refused(
        Refusal.INSUFFICIENT_BUYING_POWER,
        lambda: venue.ledger.place_order(venue.order(1, BUY, 1, price + 1), marks=MARKS),
    )
    venue.make_market(SELL, 1, price)
    order = venue.submit(1, BUY, 1, price, marks=MARKS)
    assert [trade.qty for trade in venue.trades(order)] == [1]
    assert venue.cash(1) == (10_000 * DOLLARS - price - fee, 0)
    assert venue.holding(1) == (1, 0, 0, price, 0)
    # Borrowing, it stays on margin; its buying power at the price it paid is what is left.
    venue.refused(Refusal.MARGIN_IN_USE, lambda: venue.ledger.set_multiplier(1, 1))
    margin = venue.ledger.margin(1, {"AAA": price})
    assert margin.equity == 10_000 * DOLLARS - fee
    assert margin.buying_power == 0


def test_buying_power_values_the_positions_at_the_marks() -> None:
    venue = Venue()
    venue.open(1, 10_000 * DOLLARS, 2)
    venue.ledger.deposit_shares("cheap", 1, "AAA", 100, 100 * 50 * DOLLARS)  # cost $50 a share
    # At $100 a share: equity $20,000, initial margin $5,000: $30,000 of buying power.
    assert venue.ledger.margin(1, MARKS).buying_power == 30_000 * DOLLARS
    # At cost: equity $15,000, initial margin $2,500: $25,000.
    assert venue.ledger.margin(1).buying_power == 25_000 * DOLLARS
    for marks, shares in ((None, 250), (MARKS, 300)):
        too_many = venue.order(1, BUY, shares + 1, 100 * DOLLARS)
        venue.refused(
            Refusal.INSUFFICIENT_BUYING_POWER,
            partial(venue.ledger.place_order, too_many, marks=marks),
        )
    order = venue.submit(1, BUY, 300, 100 * DOLLARS, marks=MARKS)
    assert venue.ledger.open_orders[order.order_id].reserved == 30_000 * DOLLARS
    assert venue.cash(1) == (-20_000 * DOLLARS, 30_000 * DOLLARS)
    assert venue.ledger.margin(1, MARKS).buying_power == 0
    venue.cancel(order)
    assert venue.cash(1) == (10_000 * DOLLARS, 0)


def test_a_short_sale_within_buying_power_and_beyond_it() -> None:
    venue = Venue()
    venue.open(1, 10_000 * DOLLARS, 2)
    # $20,000 of buying power: 200 shares short at $100, not 201.
    venue.refused(
        Refusal.INSUFFICIENT_BUYING_POWER,
        lambda: venue.ledger.place_order(venue.order(1, SELL, 201, 100 * DOLLARS), marks=MARKS),
    )
    # A sale priced below the mark holds the mark's value: the price it may well trade at.
    venue.refused(
        Refusal.INSUFFICIENT_BUYING_POWER,
        lambda: venue.ledger.place_order(venue.order(1, SELL, 201, 90 * DOLLARS), marks=MARKS),
    )
    order = venue.submit(1, SELL, 200, 90 * DOLLARS, marks=MARKS)
    held = venue.ledger.open_orders[order.order_id]
    assert (held.reserved, held.short, held.short_cash) == (0, 200, 20_000 * DOLLARS)
    assert venue.cash(1) == (-10_000 * DOLLARS, 20_000 * DOLLARS)
    assert venue.ledger.margin(1, MARKS).buying_power == 0
    # Nothing left for a buy either, or another short.
    venue.refused(
        Refusal.INSUFFICIENT_BUYING_POWER,
        lambda: venue.ledger.place_order(venue.order(1, BUY, 1, 1), marks=MARKS),
    )
    venue.refused(Refusal.MARGIN_IN_USE, lambda: venue.ledger.set_multiplier(1, 1))
    # A bid comes: the short sale, resting, trades at its own price, and releases what it held.
    venue.make_market(BUY, 200, 100 * DOLLARS)
    assert [(trade.price, trade.qty) for trade in venue.trades(order)] == [(90 * DOLLARS, 200)]
    assert order.order_id not in venue.ledger.open_orders
    assert venue.cash(1) == (28_000 * DOLLARS, 0)
    assert venue.holding(1) == (-200, 0, 0, -18_000 * DOLLARS, 0)


def test_a_short_sale_trades_and_releases_the_buying_power_it_held() -> None:
    venue = Venue()
    venue.open(1, 10_000 * DOLLARS, 2)
    venue.make_market(BUY, 200, 100 * DOLLARS)
    order = venue.submit(1, SELL, 200, 100 * DOLLARS, marks=MARKS)
    assert [trade.qty for trade in venue.trades(order)] == [200]
    assert order.order_id not in venue.ledger.open_orders
    assert venue.cash(1) == (30_000 * DOLLARS, 0)
    assert venue.holding(1) == (-200, 0, 0, -20_000 * DOLLARS, 0)
    margin = venue.ledger.margin(1, MARKS)
    assert (margin.short_market_value, margin.equity) == (-20_000 * DOLLARS, 10_000 * DOLLARS)
    assert (margin.initial_margin, margin.maintenance_margin) == (10_000 * DOLLARS, 6_000 * DOLLARS)
    assert margin.buying_power == 0 and not margin.margin_call
    assert venue.ledger.position(1, "AAA").qty == -200


def test_a_short_sale_rests_then_trades_in_parts() -> None:
    venue = Venue()
    venue.open(1, 10_000 * DOLLARS, 2)
    order = venue.submit(1, SELL, 30, 100 * DOLLARS, marks={"AAA": 101 * DOLLARS})
    short_cash = 30 * 101 * DOLLARS
    assert venue.cash(1) == (10_000 * DOLLARS - short_cash, short_cash)
    for qty, left in ((7, 23), (11, 12)):
        venue.submit(MAKER, BUY, qty, 100 * DOLLARS)
        held = venue.ledger.open_orders[order.order_id]
        assert (held.leaves, held.short) == (left, left)
        # The part that traded released its share of the buying power, rounded down.
        assert held.short_cash == short_cash - short_cash * (30 - left) // 30
    venue.submit(MAKER, BUY, 12, 100 * DOLLARS)
    assert order.order_id not in venue.ledger.open_orders
    assert venue.cash(1) == (10_000 * DOLLARS + 30 * 100 * DOLLARS, 0)
    assert venue.holding(1) == (-30, 0, 0, -30 * 100 * DOLLARS, 0)


def test_short_refusals_hard_to_borrow_fractional_and_small_accounts() -> None:
    venue = Venue()
    venue.open(1, 10_000 * DOLLARS, 2, FRC=500)
    venue.refused(
        Refusal.NOT_SHORTABLE,
        lambda: venue.ledger.place_order(venue.order(1, SELL, 1, 100 * DOLLARS, "HTB")),
    )
    # Holding half a share, a sale of 1.999, 1.25 or 1 share would sell a fraction short, and
    # one of 1.5 is a fractional order that goes short (Alpaca has no fractional shorts).
    for lots in (1_999, 1_250, 1_000, 1_500):
        venue.refused(
            Refusal.FRACTIONAL_SHORT,
            partial(venue.ledger.place_order, venue.order(1, SELL, lots, 100 * DOLLARS, "FRC")),
        )
    venue.submit(1, SELL, 500, 100 * DOLLARS, "FRC")  # the half it holds
    # A whole share of a fractionable symbol may be sold short.
    venue.open(5, 10_000 * DOLLARS, 2)
    venue.submit(5, SELL, 1_000, 100 * DOLLARS, "FRC", marks={"FRC": 100 * DOLLARS})
    assert venue.ledger.open_orders[venue.next_id].short == 1_000
    # A sale within what it holds needs nothing of margin.
    venue.open(2, 1_000 * DOLLARS, 2, HTB=10)
    venue.submit(2, SELL, 10, 100 * DOLLARS, "HTB")
    # Under $2,000 of equity, no short sale; at $2,000 exactly, one.
    venue.open(3, MINIMUM_EQUITY - 1, 4)
    short = venue.order(3, SELL, 1, 10 * DOLLARS)
    venue.refused(Refusal.SHORT_NOT_ALLOWED, lambda: venue.ledger.place_order(short, marks=MARKS))
    venue.ledger.deposit_cash("one-more-cent", 3, 1)
    venue.place(short, MARKS)
    assert venue.ledger.open_orders[short.order_id].short_cash == 100 * DOLLARS  # at the mark
    # Equity under $2,000 at the marks: a long whose price fell.
    venue.open(4, 1_500 * DOLLARS, 2)
    venue.ledger.deposit_shares("long", 4, "HTB", 10, 1_000 * DOLLARS)
    short = venue.order(4, SELL, 1, 10 * DOLLARS)
    venue.place(short, {"HTB": 100 * DOLLARS})  # equity $2,500
    venue.cancel(short)
    venue.refused(
        Refusal.SHORT_NOT_ALLOWED,
        lambda: venue.ledger.place_order(short, marks={"HTB": 40 * DOLLARS}),  # $1,900
    )
    # Below $2,000 a margin account pays in cash, up to its equity beyond the initial margin.
    margin = venue.ledger.margin(4, {"HTB": 40 * DOLLARS})
    assert not margin.margin_enabled
    assert margin.buying_power == min(1_500 * DOLLARS, 1_900 * DOLLARS - 200 * DOLLARS)
    venue.refused(
        Refusal.INSUFFICIENT_BUYING_POWER,
        lambda: venue.ledger.place_order(
            venue.order(4, BUY, 1, 1_500 * DOLLARS + 1), marks={"HTB": 40 * DOLLARS}
        ),
    )
    venue.ledger.place_order(venue.order(4, BUY, 1, 1_500 * DOLLARS), marks={"HTB": 40 * DOLLARS})
    venue.check()


def test_a_sale_partly_held_partly_short_and_its_cover() -> None:
    venue = Venue()
    venue.open(1, 10_000 * DOLLARS, 2)
    venue.ledger.deposit_shares("ten", 1, "AAA", 10, 10 * 90 * DOLLARS)  # $90 a share
    order = venue.submit(1, SELL, 25, 100 * DOLLARS, marks=MARKS)
    held = venue.ledger.open_orders[order.order_id]
    assert (held.reserved, held.short, held.short_cash) == (10, 15, 15 * 100 * DOLLARS)
    assert venue.holding(1) == (0, 10, 0, 900 * DOLLARS, 0)
    # The held lots go first: 6 of them...
    venue.submit(MAKER, BUY, 6, 100 * DOLLARS)
    assert venue.holding(1) == (0, 4, 0, 360 * DOLLARS, 60 * DOLLARS)
    held = venue.ledger.open_orders[order.order_id]
    assert (held.reserved, held.short, held.short_cash) == (4, 15, 1_500 * DOLLARS)
    # ... then the last 4 and 5 short...
    venue.submit(MAKER, BUY, 9, 100 * DOLLARS)
    assert venue.holding(1) == (-5, 0, 0, -500 * DOLLARS, 100 * DOLLARS)
    held = venue.ledger.open_orders[order.order_id]
    assert (held.reserved, held.short, held.short_cash) == (0, 10, 1_000 * DOLLARS)
    # ... then the other 10 short.
    venue.submit(MAKER, BUY, 10, 100 * DOLLARS)
    assert order.order_id not in venue.ledger.open_orders
    assert venue.holding(1) == (-15, 0, 0, -1_500 * DOLLARS, 100 * DOLLARS)
    assert venue.cash(1) == (12_500 * DOLLARS, 0)
    # Covering at $90 realizes exactly $10 a share, and needs no buying power.
    venue.make_market(SELL, 15, 90 * DOLLARS)
    cover = venue.order(1, BUY, 15, 90 * DOLLARS)
    venue.ledger.place_order(cover, marks={"AAA": 90 * DOLLARS})
    assert venue.ledger.open_orders[cover.order_id].cover == 15
    assert venue.holding(1)[2] == 15
    venue.matcher.submit(cover)
    venue.pump()
    assert venue.holding(1) == (0, 0, 0, 0, 100 * DOLLARS + 15 * 10 * DOLLARS)
    assert venue.cash(1) == (12_500 * DOLLARS - 1_350 * DOLLARS, 0)
    venue.ledger.set_multiplier(1, 1)  # nothing borrowed any more
    venue.check()


def test_a_buy_across_zero_covers_then_goes_long() -> None:
    venue = Venue()
    venue.open(1, 10_000 * DOLLARS, 2)
    venue.make_market(BUY, 10, 100 * DOLLARS)
    venue.submit(1, SELL, 10, 100 * DOLLARS, marks=MARKS)
    assert venue.holding(1) == (-10, 0, 0, -1_000 * DOLLARS, 0)
    venue.make_market(SELL, 15, 90 * DOLLARS)
    buy = venue.order(1, BUY, 15, 90 * DOLLARS)
    venue.ledger.place_order(buy, marks={"AAA": 90 * DOLLARS})
    held = venue.ledger.open_orders[buy.order_id]
    assert (held.cover, held.reserved) == (10, 15 * 90 * DOLLARS)
    venue.matcher.submit(buy)
    venue.pump()
    # 10 bought back at $90 (+$100), 5 long at $90.
    assert venue.holding(1) == (5, 0, 0, 5 * 90 * DOLLARS, 100 * DOLLARS)
    assert venue.cash(1) == (10_000 * DOLLARS + 1_000 * DOLLARS - 1_350 * DOLLARS, 0)


def test_a_buy_across_zero_pays_for_its_long_part_only() -> None:
    venue = Venue()
    venue.open(1, 2_000 * DOLLARS, 2)
    venue.make_market(BUY, 10, 100 * DOLLARS)
    venue.submit(1, SELL, 10, 100 * DOLLARS, marks=MARKS)
    # Equity $2,000, short $1,000 at $100 (initial margin $500): $3,000 of buying power, and
    # the 10 shares that buy the short back need none of it.
    assert venue.ledger.margin(1, MARKS).buying_power == 3_000 * DOLLARS
    venue.refused(
        Refusal.INSUFFICIENT_BUYING_POWER,
        lambda: venue.ledger.place_order(venue.order(1, BUY, 41, 100 * DOLLARS), marks=MARKS),
    )
    buy = venue.order(1, BUY, 40, 100 * DOLLARS)
    venue.ledger.place_order(buy, marks=MARKS)
    assert venue.ledger.open_orders[buy.order_id].cover == 10
    venue.check()


def test_covering_is_allowed_in_a_margin_call() -> None:
    venue = Venue()
    venue.open(1, 10_000 * DOLLARS, 2)
    venue.make_market(BUY, 100, 100 * DOLLARS)
    venue.submit(1, SELL, 100, 100 * DOLLARS, marks=MARKS)
    # At $160: equity $4,000, maintenance 30% of $16,000 = $4,800.
    high = {"AAA": 160 * DOLLARS}
    margin = venue.ledger.margin(1, high)
    assert (margin.equity, margin.maintenance_margin) == (4_000 * DOLLARS, 4_800 * DOLLARS)
    assert margin.margin_call and margin.buying_power == 0
    venue.refused(
        Refusal.INSUFFICIENT_BUYING_POWER,
        lambda: venue.ledger.place_order(venue.order(1, BUY, 101, 160 * DOLLARS), marks=high),
    )
    venue.refused(
        Refusal.INSUFFICIENT_BUYING_POWER,
        lambda: venue.ledger.place_order(venue.order(1, SELL, 1, 160 * DOLLARS), marks=high),
    )
    # Two buys of 60 and 40 buy it all back; a third would go long: refused.
    venue.make_market(SELL, 100, 160 * DOLLARS)
    first = venue.order(1, BUY, 60, 160 * DOLLARS)
    second = venue.order(1, BUY, 40, 160 * DOLLARS)
    for order in (first, second):
        venue.ledger.place_order(order, marks=high)
        venue.check()
    assert venue.holding(1)[2] == 100
    venue.refused(
        Refusal.INSUFFICIENT_BUYING_POWER,
        lambda: venue.ledger.place_order(venue.order(1, BUY, 1, 160 * DOLLARS), marks=high),
    )
    for order in (first, second):
        venue.matcher.submit(order)
        venue.pump()
    assert venue.holding(1) == (0, 0, 0, 0, -6_000 * DOLLARS)
    assert venue.cash(1) == (4_000 * DOLLARS, 0)
    venue.ledger.set_multiplier(1, 1)


def test_the_multiplier_goes_back_to_one_only_once_nothing_is_borrowed() -> None:
    venue = Venue()
    venue.open(1, 10_000 * DOLLARS, 4)
    venue.refused(Refusal.INVALID_REQUEST, lambda: venue.ledger.set_multiplier(1, 3))
    venue.ledger.set_multiplier(1, 2)
    venue.ledger.set_multiplier(1, 1)
    venue.ledger.set_multiplier(1, 2)
    # A short sale open.
    short = venue.submit(1, SELL, 10, 100 * DOLLARS, marks=MARKS)
    venue.refused(Refusal.MARGIN_IN_USE, lambda: venue.ledger.set_multiplier(1, 1))
    venue.ledger.set_multiplier(1, 4)  # between margin multipliers, always
    venue.ledger.set_multiplier(1, 2)
    # A short position.
    venue.submit(MAKER, BUY, 10, 100 * DOLLARS)
    assert short.order_id not in venue.ledger.open_orders
    venue.refused(Refusal.MARGIN_IN_USE, lambda: venue.ledger.set_multiplier(1, 1))
    # A cover open, then done.
    venue.make_market(SELL, 10, 100 * DOLLARS)
    venue.submit(1, BUY, 10, 100 * DOLLARS, marks=MARKS)
    assert venue.holding(1)[:3] == (0, 0, 0)
    venue.ledger.set_multiplier(1, 1)
    venue.ledger.set_multiplier(1, 2)
    # Debt: a buy beyond the cash.
    venue.make_market(SELL, 150, 100 * DOLLARS)
    venue.submit(1, BUY, 150, 100 * DOLLARS, marks=MARKS)
    assert venue.cash(1) == (-5_000 * DOLLARS, 0)
    venue.refused(Refusal.MARGIN_IN_USE, lambda: venue.ledger.set_multiplier(1, 1))
    venue.ledger.deposit_cash("pay-back", 1, 5_000 * DOLLARS)
    venue.ledger.set_multiplier(1, 1)
    venue.check()


def test_withdrawals_on_margin_are_bounded_by_the_excess_equity() -> None:
    venue = Venue()
    # Bought $5,000 with $10,000: equity $10,000, initial margin $2,500; $5,000 free in cash.
    venue.open(1, 10_000 * DOLLARS, 2)
    venue.make_market(SELL, 50, 100 * DOLLARS)
    venue.submit(1, BUY, 50, 100 * DOLLARS, marks=MARKS)
    venue.refused(
        Refusal.INSUFFICIENT_FUNDS,
        lambda: venue.ledger.withdraw_cash("too-much", 1, 5_000 * DOLLARS + 1),
    )
    venue.ledger.withdraw_cash("out", 1, 5_000 * DOLLARS)
    venue.check()
    venue.refused(Refusal.INSUFFICIENT_FUNDS, lambda: venue.ledger.withdraw_cash("more", 1, 1))
    # Short $10,000 with $10,000: $20,000 of cash, but only $5,000 beyond the margin.
    venue.open(2, 10_000 * DOLLARS, 2)
    venue.make_market(BUY, 100, 100 * DOLLARS)
    venue.submit(2, SELL, 100, 100 * DOLLARS, marks=MARKS)
    assert venue.cash(2) == (20_000 * DOLLARS, 0)
    venue.refused(
        Refusal.INSUFFICIENT_FUNDS,
        lambda: venue.ledger.withdraw_cash("short-out", 2, 5_000 * DOLLARS + 1),
    )
    # An open order's commitment stays too.
    buy = venue.submit(2, BUY, 10, 100 * DOLLARS, marks=MARKS)
    venue.refused(
        Refusal.INSUFFICIENT_FUNDS,
        lambda: venue.ledger.withdraw_cash("short-out", 2, 4_000 * DOLLARS + 1),
    )
    venue.cancel(buy)
    venue.ledger.withdraw_cash("short-out", 2, 5_000 * DOLLARS)
    venue.check()
    # A cash account withdraws its free cash, as ever.
    venue.open(3, 100 * DOLLARS)
    venue.refused(Refusal.INSUFFICIENT_FUNDS, lambda: venue.ledger.withdraw_cash("c", 3, 10_001))
    venue.ledger.withdraw_cash("c", 3, 10_000)


def test_shares_bought_on_margin_stay_until_the_debt_is_paid() -> None:
    venue = Venue()
    # $20,000 of shares bought with $10,000 and $10,000 of debt.
    venue.open(1, 10_000 * DOLLARS, 2)
    venue.make_market(SELL, 200, 100 * DOLLARS)
    venue.submit(1, BUY, 200, 100 * DOLLARS, marks=MARKS)
    assert venue.cash(1) == (-10_000 * DOLLARS, 0)
    for lots in (200, 1):
        venue.refused(
            Refusal.INSUFFICIENT_FUNDS,
            partial(venue.ledger.withdraw_shares, f"w{lots}", 1, "AAA", lots),
        )
    # Paid for in part: what is paid for in full (at cost, half of the rest) may go.
    venue.ledger.deposit_cash("pay", 1, 5_000 * DOLLARS)
    venue.refused(
        Refusal.INSUFFICIENT_FUNDS, lambda: venue.ledger.withdraw_shares("w", 1, "AAA", 101)
    )
    venue.ledger.withdraw_shares("w", 1, "AAA", 100)
    venue.check()
    margin = venue.ledger.margin(1)
    assert margin.equity - margin.initial_margin == 0
    # Without debt, shares go as from a cash account.
    venue.open(2, 10_000 * DOLLARS, 2, AAA=10)
    venue.ledger.withdraw_shares("all", 2, "AAA", 10)
    venue.check()


def test_shares_delivered_into_a_short_buy_it_back() -> None:
    venue = Venue()
    venue.open(1, 10_000 * DOLLARS, 2)
    venue.make_market(BUY, 10, 100 * DOLLARS)
    venue.submit(1, SELL, 10, 100 * DOLLARS, marks=MARKS)
    venue.ledger.deposit_shares("deliver", 1, "AAA", 15, 15 * 90 * DOLLARS)  # $90 a share
    venue.check()
    # 10 close the short (+$10 a share), 5 are long at their $90.
    assert venue.holding(1) == (5, 0, 0, 5 * 90 * DOLLARS, 100 * DOLLARS)
    venue.ledger.set_multiplier(1, 1)


def oco_sale(venue: Venue, account: int) -> tuple[Order, Order]:
    """A sale of 25 as an OCO pair: take profit at $110, stop at $95 (a market below)."""
    limit = venue.order(account, SELL, 25, 110 * DOLLARS, oco=venue.next_id + 2)
    stop = venue.order(
        account, SELL, 25, 90 * DOLLARS, kind=OrderType.STOP, stop_price=95 * DOLLARS
    )
    stop = msgspec.structs.replace(stop, oco=limit.order_id)
    return limit, stop


@pytest.mark.parametrize("which", ["limit", "stop"])
def test_an_oco_sale_with_a_short_part(which: str) -> None:
    venue = Venue()
    venue.open(1, 10_000 * DOLLARS, 2, AAA=10)
    limit, stop = oco_sale(venue, 1)
    submit = venue.ledger.place_oco(limit, stop, marks=MARKS)
    venue.check()
    holder = venue.ledger.open_orders[limit.order_id]
    # Held and short at the higher of its prices (and the mark): $110.
    assert (holder.reserved, holder.short, holder.short_cash) == (10, 15, 15 * 110 * DOLLARS)
    assert venue.ledger.open_orders[stop.order_id].short_cash == 0
    venue.matcher.apply([submit])
    venue.pump()
    if which == "limit":
        venue.submit(MAKER, BUY, 25, 110 * DOLLARS)
        proceeds = 25 * 110 * DOLLARS
    else:
        # A trade at $95 triggers the stop, which sells into the bid at $94.
        venue.make_market(BUY, 25, 94 * DOLLARS)
        venue.print_trade(95 * DOLLARS)
        proceeds = 25 * 94 * DOLLARS
    assert not {limit.order_id, stop.order_id} & set(venue.ledger.open_orders)
    assert venue.cash(1) == (10_000 * DOLLARS + proceeds, 0)
    assert venue.ledger.position(1, "AAA").qty == -15


def test_an_oco_sale_with_a_short_part_trades_in_parts_then_cancels() -> None:
    venue = Venue()
    venue.open(1, 10_000 * DOLLARS, 2, AAA=10)
    limit, stop = oco_sale(venue, 1)
    venue.matcher.apply([venue.ledger.place_oco(limit, stop, marks=MARKS)])
    venue.pump()
    venue.submit(MAKER, BUY, 12, 110 * DOLLARS)  # 10 held and 2 short
    holder = venue.ledger.open_orders[limit.order_id]
    assert (holder.reserved, holder.short, holder.leaves) == (0, 13, 13)
    assert holder.short_cash == 15 * 110 * DOLLARS - 15 * 110 * DOLLARS * 2 // 15
    venue.cancel(stop)  # the pair ends together
    assert not {limit.order_id, stop.order_id} & set(venue.ledger.open_orders)
    assert venue.cash(1) == (10_000 * DOLLARS + 12 * 110 * DOLLARS, 0)
    assert venue.holding(1)[:3] == (-2, 0, 0)


def test_an_oco_buy_covers_a_short() -> None:
    venue = Venue()
    venue.open(1, 10_000 * DOLLARS, 2)
    venue.make_market(BUY, 20, 100 * DOLLARS)
    venue.submit(1, SELL, 20, 100 * DOLLARS, marks=MARKS)
    limit = venue.order(1, BUY, 20, 90 * DOLLARS, oco=venue.next_id + 2)
    stop = venue.order(1, BUY, 20, 120 * DOLLARS, kind=OrderType.STOP, stop_price=110 * DOLLARS)
    stop = msgspec.structs.replace(stop, oco=limit.order_id)
    venue.matcher.apply([venue.ledger.place_oco(limit, stop, marks=MARKS)])
    venue.pump()
    assert venue.ledger.open_orders[limit.order_id].cover == 20
    # A trade at $110 triggers the stop, which buys the offer at $111.
    venue.make_market(SELL, 20, 111 * DOLLARS)
    venue.print_trade(110 * DOLLARS)
    assert not {limit.order_id, stop.order_id} & set(venue.ledger.open_orders)
    assert venue.holding(1) == (0, 0, 0, 0, -20 * 11 * DOLLARS)


def test_an_oco_sale_with_a_short_part_replaced_leg_by_leg() -> None:
    venue = Venue()
    venue.open(1, 10_000 * DOLLARS, 2, AAA=10)
    limit, stop = oco_sale(venue, 1)
    venue.matcher.apply([venue.ledger.place_oco(limit, stop, marks=MARKS)])
    venue.pump()
    ledger = venue.ledger
    # The stop leg first (it holds nothing), then the limit leg (it holds all).
    ledger.reserve_replacement(stop.order_id, 1, 501, 25, 91 * DOLLARS, marks=MARKS)
    venue.check()
    venue.matcher.replace("AAA", stop.order_id, 1, 501, 25, 91 * DOLLARS, 96 * DOLLARS, 0)
    venue.pump()
    ledger.reserve_replacement(limit.order_id, 1, 502, 25, 108 * DOLLARS, marks=MARKS)
    venue.check()
    venue.matcher.replace("AAA", limit.order_id, 1, 502, 25, 108 * DOLLARS, 0, 0)
    venue.pump()
    assert set(ledger.open_orders) >= {501, 502}
    assert not {limit.order_id, stop.order_id} & set(ledger.open_orders)
    holder = ledger.open_orders[502]
    assert (holder.reserved, holder.short, holder.short_cash, holder.pair) == (
        10,
        15,
        15 * 110 * DOLLARS,
        501,
    )
    venue.submit(MAKER, BUY, 25, 108 * DOLLARS)
    assert not {501, 502} & set(ledger.open_orders)
    assert venue.cash(1) == (10_000 * DOLLARS + 25 * 108 * DOLLARS, 0)
    assert venue.holding(1)[:3] == (-15, 0, 0)


def test_a_bracket_that_sells_short_exits_by_buying_back() -> None:
    venue = Venue()
    venue.open(1, 10_000 * DOLLARS, 2)
    entry = venue.order(1, SELL, 10, 100 * DOLLARS)
    take = venue.order(1, BUY, 10, 90 * DOLLARS, oco=venue.next_id + 2)
    loss = venue.order(1, BUY, 10, 120 * DOLLARS, kind=OrderType.STOP, stop_price=110 * DOLLARS)
    loss = msgspec.structs.replace(loss, oco=take.order_id)
    venue.ledger.place_with_legs(entry, [take, loss], marks=MARKS)
    venue.check()
    venue.matcher.submit(entry)
    venue.pump()
    assert venue.ledger.open_orders[entry.order_id].short == 10
    venue.submit(MAKER, BUY, 10, 100 * DOLLARS)  # the entry fills: its exits go
    assert venue.dropped == []
    held = venue.ledger.open_orders[take.order_id]
    assert (held.cover, held.reserved) == (10, 10 * 120 * DOLLARS)
    assert venue.holding(1)[:3] == (-10, 0, 10)
    venue.make_market(SELL, 10, 111 * DOLLARS)
    venue.print_trade(110 * DOLLARS)  # the stop loss
    assert not {take.order_id, loss.order_id} & set(venue.ledger.open_orders)
    assert venue.holding(1) == (0, 0, 0, 0, -10 * 11 * DOLLARS)
    assert venue.cash(1) == (10_000 * DOLLARS - 10 * 11 * DOLLARS, 0)


def test_a_deposit_into_an_account_in_debt_always_goes_in() -> None:
    venue = Venue()
    venue.open(1, 10_000 * DOLLARS, 2)
    venue.make_market(SELL, 200, 100 * DOLLARS)
    venue.submit(1, BUY, 200, 100 * DOLLARS, marks=MARKS)
    # At $60 the account is in a margin call: its $10,000 of debt against $12,000 of shares.
    low = {"AAA": 60 * DOLLARS}
    assert venue.ledger.margin(1, low).margin_call
    venue.ledger.deposit_cash("a-little", 1, 1)
    venue.ledger.deposit_cash("some", 1, 2_000 * DOLLARS)
    venue.check()
    assert venue.cash(1) == (-8_000 * DOLLARS + 1, 0)
    assert not venue.ledger.margin(1, low).margin_call
    venue.refused(Refusal.INSUFFICIENT_FUNDS, lambda: venue.ledger.withdraw_cash("out", 1, 1))


def test_a_buy_back_replaced_in_a_margin_call() -> None:
    """The replacement counts on the cover lots of the order it replaces: no buying power."""
    venue = Venue()
    venue.open(1, 10_000 * DOLLARS, 2)
    venue.make_market(BUY, 100, 100 * DOLLARS)
    venue.submit(1, SELL, 100, 100 * DOLLARS, marks=MARKS)
    high = {"AAA": 160 * DOLLARS}
    cover = venue.submit(1, BUY, 100, 150 * DOLLARS, marks=high)
    ledger = venue.ledger
    assert ledger.margin(1, high).margin_call and ledger.margin(1, high).buying_power == 0
    ledger.reserve_replacement(cover.order_id, 1, 500, 100, 155 * DOLLARS, marks=high)
    venue.check()
    assert ledger.open_orders[500].cover == 100
    venue.matcher.replace("AAA", cover.order_id, 1, 500, 100, 155 * DOLLARS, 0, 0)
    venue.pump()
    assert cover.order_id not in ledger.open_orders
    assert venue.holding(1)[:3] == (-100, 0, 100)  # free, reserved, covering
    venue.submit(MAKER, SELL, 100, 155 * DOLLARS)
    assert 500 not in ledger.open_orders
    assert venue.holding(1)[:3] == (0, 0, 0)
    # Beyond the short, a replacement needs buying power like any buy.
    venue.refused(
        Refusal.INSUFFICIENT_BUYING_POWER,
        lambda: venue.submit(1, BUY, 1_000, 155 * DOLLARS, marks=high),
    )


def test_a_cancel_releases_a_short_sales_buying_power() -> None:
    venue = Venue()
    venue.open(1, 10_000 * DOLLARS, 4)
    order = venue.submit(1, SELL, 100, 105 * DOLLARS, marks=MARKS)
    assert venue.cash(1) == (-500 * DOLLARS, 10_500 * DOLLARS)
    assert venue.ledger.margin(1, MARKS).buying_power == 29_500 * DOLLARS
    venue.submit(MAKER, BUY, 30, 105 * DOLLARS)
    venue.cancel(order)
    assert order.order_id not in venue.ledger.open_orders
    assert venue.cash(1) == (10_000 * DOLLARS + 30 * 105 * DOLLARS, 0)
    assert venue.holding(1)[:3] == (-30, 0, 0)


def test_a_short_sale_replaced() -> None:
    venue = Venue()
    venue.open(1, 10_000 * DOLLARS, 2)
    old = venue.submit(1, SELL, 50, 105 * DOLLARS, marks=MARKS)
    ledger = venue.ledger
    ledger.reserve_replacement(old.order_id, 1, 500, 60, 104 * DOLLARS, marks=MARKS)
    venue.check()
    # Reserved beside the old order until the matcher decides.
    both = 50 * 105 * DOLLARS + 60 * 104 * DOLLARS
    assert venue.cash(1) == (10_000 * DOLLARS - both, both)
    venue.matcher.replace("AAA", old.order_id, 1, 500, 60, 104 * DOLLARS, 0, 0)
    venue.pump()
    new = ledger.open_orders[500]
    assert (new.reserved, new.short, new.short_cash) == (0, 60, 60 * 104 * DOLLARS)
    assert venue.cash(1) == (10_000 * DOLLARS - 60 * 104 * DOLLARS, 60 * 104 * DOLLARS)
    venue.submit(MAKER, BUY, 60, 104 * DOLLARS)
    assert 500 not in ledger.open_orders
    assert venue.holding(1) == (-60, 0, 0, -60 * 104 * DOLLARS, 0)
    # Beyond buying power, a replacement is refused.
    assert venue.cash(1) == (16_240 * DOLLARS, 0)
    old = venue.submit(1, SELL, 10, 200 * DOLLARS, marks=MARKS)
    venue.refused(
        Refusal.INSUFFICIENT_BUYING_POWER,
        lambda: ledger.reserve_replacement(old.order_id, 1, 501, 1_000, 200 * DOLLARS, None, MARKS),
    )
    # The old order fills before the matcher sees the replace, which it rejects: the
    # replacement's reservation is released.
    ledger.reserve_replacement(old.order_id, 1, 502, 10, 199 * DOLLARS, marks=MARKS)
    venue.check()
    venue.submit(MAKER, BUY, 10, 200 * DOLLARS)
    venue.matcher.replace("AAA", old.order_id, 1, 502, 10, 199 * DOLLARS, 0, 0)
    venue.pump()
    assert 502 not in ledger.open_orders
    assert venue.cash(1) == (16_240 * DOLLARS + 2_000 * DOLLARS, 0)
    assert venue.holding(1)[:3] == (-70, 0, 0)


def test_a_snapshot_with_shorts_restores_the_same_state() -> None:
    venue = Venue(7)
    venue.open(1, 10_000 * DOLLARS, 2, AAA=10)
    venue.open(2, 10_000 * DOLLARS, 4)
    venue.make_market(BUY, 5, 100 * DOLLARS)
    venue.submit(2, SELL, 5, 100 * DOLLARS, marks=MARKS)  # short 5
    venue.submit(2, BUY, 3, 95 * DOLLARS, marks=MARKS)  # a cover resting
    venue.make_market(BUY, 12, 100 * DOLLARS)
    venue.submit(1, SELL, 25, 100 * DOLLARS, marks=MARKS)  # 10 held and 2 short traded; 13 open
    limit, stop = oco_sale(venue, 2)
    venue.matcher.apply([venue.ledger.place_oco(limit, stop, marks=MARKS)])
    venue.pump()
    assert venue.holding(2)[:3] == (-5, 0, 3)
    assert venue.holding(1)[:3] == (-2, 0, 0)
    restored = Ledger.restore(venue.ledger.export_state(), SYMBOLS)
    assert restored.check_invariants() == []
    assert restored.state_hash() == venue.ledger.state_hash()
    assert restored.accounts[2].multiplier == 4
    for account in (1, 2):
        assert restored.margin(account, MARKS) == venue.ledger.margin(account, MARKS)
    # Both go on the same way.
    bid = venue.order(MAKER, BUY, 13, 100 * DOLLARS)
    restored.place_order(bid)
    for event in venue.place(bid):
        restored.apply(event)
        assert restored.check_invariants() == []
    assert venue.holding(1)[:3] == (-15, 0, 0)
    assert restored.state_hash() == venue.ledger.state_hash()


def test_a_trade_event_built_by_hand_settles_a_short_sale() -> None:
    """The ledger settles the events it is given, whoever built them: a short sale against
    another ledger shard's account."""
    ledger = Ledger(SYMBOLS)
    ledger.open_account(1)
    ledger.deposit_cash("c", 1, 10_000 * DOLLARS)
    ledger.set_multiplier(1, 2)
    order = Order(
        order_id=1,
        account_id=1,
        symbol="AAA",
        side=SELL,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        qty=10,
        price=100 * DOLLARS,
        ts=0,
    )
    ledger.place_order(order, marks=MARKS)
    ledger.apply(
        Trade("AAA", 1, 1, 100 * DOLLARS, 4, 1, 1, 6, 77, 7, BUY, 0)  # the taker elsewhere
    )
    # The cash and shares that crossed to the other shard are its trade flow.
    assert ledger.check_invariants() == []
    assert ledger.position(1, "AAA").qty == -4
    assert ledger.open_orders[1].short_cash == 6 * 100 * DOLLARS
    assert ledger.accounts[1].cash_free == 10_000 * DOLLARS - 600 * DOLLARS + 400 * DOLLARS
