"""Margin as Alpaca applies it (Reg T and FINRA 4210): what an account's positions require and
what it may still buy or sell short. Pure: positions and prices in, cents out.

- Margin (a `multiplier` of 2 or 4) and short selling need $2,000 of equity; below that a margin
  account may only pay in cash, up to its equity in excess of its initial margin.
- Initial margin (Reg T): 50% of every position's market value, long or short.
- Maintenance margin: longs 30% of their value at $2.50 a share and up, 100% below; shorts the
  greater of $5.00 a share or 30% at $5.00 and up, the greater of $2.50 a share or 100% below.
- `regt_buying_power` is twice the equity in excess of the initial margin; at a multiplier of 4,
  `daytrading_buying_power` is four times the excess over the maintenance margin. Open orders
  hold what they may spend (`committed`): a buy its cash, a short sale its proceeds' value.
- An account whose equity is below its maintenance margin is in a margin call.

Every requirement is rounded up to the cent, and every buying power down: the venue's side.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from tradepit.domain.symbols import Symbol

__all__ = [
    "MULTIPLIERS",
    "MARGIN_MINIMUM_EQUITY",
    "PositionValue",
    "Margin",
    "position_value",
    "initial_requirement",
    "maintenance_requirement",
    "margin_of",
]

MULTIPLIERS = (1, 2, 4)
MARGIN_MINIMUM_EQUITY = 200_000  # cents: $2,000
_LONG_LOW_PRICE = 250  # cents a share: below it a long needs 100%
_SHORT_LOW_PRICE = 500  # ... and below this a short needs 100% or $2.50 a share
_SHORT_PER_SHARE = 500
_SHORT_LOW_PER_SHARE = 250


@dataclass(frozen=True, slots=True)
class PositionValue:
    """One position at its price: `value` cents (negative for a short); its shares (unsigned)
    and share price (cents a share) as exact ratios of integers, since margin is decided on
    every margin account's order and Fractions would cost 10x."""

    value: int
    shares_num: int
    shares_den: int
    price_num: int
    price_den: int

    @property
    def shares(self) -> Fraction:
        return Fraction(self.shares_num, self.shares_den)

    @property
    def share_price(self) -> Fraction:
        return Fraction(self.price_num, self.price_den) if self.price_den else Fraction(0)

    def price_at_least(self, cents: int) -> bool:
        return self.price_num >= cents * self.price_den


def position_value(symbol: Symbol, lots: int, ticks: int, cost: int) -> PositionValue:
    """`lots` (negative: short) at `ticks`; at their cost (`cost`, signed) with no price (0).

    A value is rounded down (`Symbol.notional`): a long's to the cent below, a short's liability
    to the cent above."""
    shares_num, shares_den = abs(lots) * symbol.lot_num, symbol.lot_den
    if ticks:
        value = symbol.notional(ticks, lots)
        price_num, price_den = ticks * symbol.tick_cents_num, symbol.tick_cents_den
    else:
        value = cost
        price_num, price_den = abs(cost) * shares_den, shares_num
    return PositionValue(value, shares_num, shares_den, price_num, price_den)


def initial_requirement(position: PositionValue) -> int:
    return -(-abs(position.value) // 2)


def maintenance_requirement(position: PositionValue) -> int:
    value = abs(position.value)
    if position.value >= 0:
        return _thirty_percent(value) if position.price_at_least(_LONG_LOW_PRICE) else value
    if position.price_at_least(_SHORT_LOW_PRICE):
        return max(_per_share(position, _SHORT_PER_SHARE), _thirty_percent(value))
    return max(_per_share(position, _SHORT_LOW_PER_SHARE), value)


def _thirty_percent(cents: int) -> int:
    return -(-cents * 3 // 10)


def _per_share(position: PositionValue, cents: int) -> int:
    return -(-cents * position.shares_num // position.shares_den)


@dataclass(frozen=True, slots=True)
class Margin:
    """An account's margin at a set of prices, in cents."""

    multiplier: int
    cash_free: int  # may be negative: margin debt, or cash held for orders beyond the cash
    cash_reserved: int  # held for open orders: `committed`
    long_market_value: int
    short_market_value: int  # <= 0, as Alpaca writes it
    initial_margin: int
    maintenance_margin: int

    @property
    def cash(self) -> int:
        return self.cash_free + self.cash_reserved

    @property
    def committed(self) -> int:
        return self.cash_reserved

    @property
    def equity(self) -> int:
        return self.cash + self.long_market_value + self.short_market_value

    @property
    def margin_enabled(self) -> bool:
        """Whether the account may borrow and sell short now."""
        return self.multiplier > 1 and self.equity >= MARGIN_MINIMUM_EQUITY

    @property
    def regt_buying_power(self) -> int:
        if not self.margin_enabled:
            return self.non_marginable_buying_power
        return max(0, 2 * (self.equity - self.initial_margin) - self.committed)

    @property
    def daytrading_buying_power(self) -> int:
        if not self.margin_enabled or self.multiplier < 4:
            return 0
        return max(0, 4 * (self.equity - self.maintenance_margin) - self.committed)

    @property
    def buying_power(self) -> int:
        """What a new order may commit: cash alone on a cash account, else the multiplier's."""
        if self.multiplier >= 4 and self.margin_enabled:
            return self.daytrading_buying_power
        return self.regt_buying_power

    @property
    def non_marginable_buying_power(self) -> int:
        """What may be paid in cash: a cash account's free cash; a margin account's no more
        than its equity in excess of the initial margin and its open orders (a short sale's
        proceeds are not free to spend)."""
        if self.multiplier == 1:
            return max(0, self.cash_free)
        excess = self.equity - self.initial_margin - self.committed
        return max(0, min(self.cash_free, excess))

    @property
    def margin_call(self) -> bool:
        return self.equity < self.maintenance_margin


def margin_of(
    multiplier: int, cash_free: int, cash_reserved: int, positions: list[PositionValue]
) -> Margin:
    """The margin of an account with this cash and these positions at their prices."""
    long_value = sum(p.value for p in positions if p.value > 0)
    short_value = sum(p.value for p in positions if p.value < 0)
    initial = sum(initial_requirement(p) for p in positions)
    if multiplier == 1:
        initial = long_value - short_value  # a cash account pays in full
    maintenance = sum(maintenance_requirement(p) for p in positions)
    return Margin(
        multiplier, cash_free, cash_reserved, long_value, short_value, initial, maintenance
    )
