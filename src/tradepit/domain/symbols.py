"""Tradable symbols: their price and quantity grids, and the price band around a reference."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from tradepit.domain.numbers import NumberError, format_units, parse_units
from tradepit.errors import TradepitError

__all__ = [
    "CASH_UNIT",
    "FRACTIONAL_LOT",
    "Symbol",
    "SymbolError",
    "cash_to_cents",
    "cents_to_cash",
    "price_band",
]

# Cash is kept in cents: the minor unit of the venue's one currency.
CASH_UNIT = Decimal("0.01")
# The lot of a fractional symbol as Alpaca trades them: a billionth of a share (nine places).
FRACTIONAL_LOT = Decimal("0.000000001")

_SYMBOL_NAME = re.compile(r"[A-Z][A-Z0-9.]{0,9}")


class SymbolError(TradepitError, ValueError):
    """A symbol definition that cannot be traded exactly."""


@dataclass(frozen=True, slots=True)
class Symbol:
    """A tradable symbol and its grids.

    `tick_size` is the price step, `lot_size` the quantity step (both decimals), and `band_bps`
    how far (in basis points) a limit price may stray from the reference price. One tick of
    price on one lot of quantity is worth `cents_per_tick_lot`, an exact fraction of a cent
    (`value_num / value_den`): a whole number of cents for whole-share symbols, so that every
    notional is exact; a billionth of a cent a tick for a fractional one (lots of 1e-9 shares),
    whose fills' notionals are rounded down to the cent (`notional`) and whose reservations up
    (`notional_up`), so that a buy's reservation always covers its fills.
    """

    name: str
    tick_size: Decimal = Decimal("0.01")
    lot_size: Decimal = Decimal("1")
    band_bps: int = 1000
    # Whether it may be sold short (on margin): Alpaca's `shortable` and `easy_to_borrow`.
    shortable: bool = True
    value_num: int = field(init=False)
    value_den: int = field(init=False)
    # A lot in shares, and a tick in cents a share, as exact ratios (what margin is made of).
    lot_num: int = field(init=False)
    lot_den: int = field(init=False)
    tick_cents_num: int = field(init=False)
    tick_cents_den: int = field(init=False)

    def __post_init__(self) -> None:
        if not _SYMBOL_NAME.fullmatch(self.name):
            raise SymbolError(f"symbol name {self.name!r} must be 1-10 of A-Z, 0-9 and '.'")
        if self.tick_size <= 0 or self.lot_size <= 0:
            raise SymbolError(f"{self.name}: tick and lot sizes must be positive")
        if not 0 < self.band_bps < 10_000:
            raise SymbolError(f"{self.name}: band_bps must be within 1..9999")
        num, den = (self.tick_size * self.lot_size / CASH_UNIT).as_integer_ratio()
        if self.lot_size >= 1 and den != 1:
            raise SymbolError(
                f"{self.name}: one tick ({self.tick_size}) times one lot ({self.lot_size}) "
                f"must be a whole number of cents"
            )
        object.__setattr__(self, "value_num", num)
        object.__setattr__(self, "value_den", den)
        lot_num, lot_den = self.lot_size.as_integer_ratio()
        object.__setattr__(self, "lot_num", lot_num)
        object.__setattr__(self, "lot_den", lot_den)
        tick_num, tick_den = (self.tick_size / CASH_UNIT).as_integer_ratio()
        object.__setattr__(self, "tick_cents_num", tick_num)
        object.__setattr__(self, "tick_cents_den", tick_den)

    @property
    def fractionable(self) -> bool:
        """Whether a share trades in fractions: lots smaller than one share."""
        return self.lot_size < 1

    def whole_shares(self, lots: int) -> bool:
        """Whether `lots` is a whole number of shares (what a short sale must be)."""
        return (lots * self.lot_size) % 1 == 0

    # Conversions between the API's decimal strings and integers.

    def price_to_ticks(self, text: str | int | Decimal, field: str = "price") -> int:
        return parse_units(text, self.tick_size, field)

    def ticks_to_price(self, ticks: int) -> str:
        return format_units(ticks, self.tick_size)

    def qty_to_lots(self, text: str | int | Decimal, field: str = "qty") -> int:
        return parse_units(text, self.lot_size, field)

    def lots_to_qty(self, lots: int) -> str:
        """A quantity as Alpaca writes it: "5", "5.5" (a fraction without trailing zeros)."""
        text = format_units(lots, self.lot_size)
        return text.rstrip("0").rstrip(".") if "." in text else text

    def notional(self, ticks: int, lots: int) -> int:
        """The cash value, in cents, of `lots` at `ticks`: exact for whole shares; for a
        fraction, rounded down to the cent (a fill's cash, the same for both its sides)."""
        return ticks * lots * self.value_num // self.value_den

    def notional_up(self, ticks: int, lots: int) -> int:
        """`notional`, rounded up instead: what a buy reserves, which covers its fills."""
        return -(-ticks * lots * self.value_num // self.value_den)

    def notional_to_lots(self, cash_text: str | int | Decimal, ticks: int) -> int:
        """Lots that `cash_text` dollars buy at `ticks` (Alpaca's `notional` orders).

        Rounds down: a notional order never spends more than it names.
        """
        cents = parse_units(cash_text, CASH_UNIT, "notional")
        return cents * self.value_den // (ticks * self.value_num)

    def price_within(self, cents: int, lots: int) -> int:
        """The highest price, in ticks, at which `lots` cost no more than `cents`."""
        return cents * self.value_den // (lots * self.value_num)

    def ticks_of(self, cents: int, lots: int) -> int | None:
        """The price, in ticks, at which `lots` are worth exactly `cents`, if one is on the
        grid (None if not)."""
        ticks, remainder = divmod(cents * self.value_den, lots * self.value_num)
        return None if remainder else ticks

    # The price band.

    def band(self, reference_ticks: int) -> tuple[int, int]:
        """The lowest and highest limit price, in ticks, allowed around the reference.

        Rounded inward, so the band never admits a price further than `band_bps` away.
        """
        if reference_ticks <= 0:
            raise SymbolError(f"{self.name}: reference price must be positive")
        return price_band(reference_ticks, self.band_bps)

    def check_in_band(self, ticks: int, reference_ticks: int, field: str = "limit_price") -> None:
        low, high = self.band(reference_ticks)
        if not low <= ticks <= high:
            raise NumberError(
                field,
                f"{self.ticks_to_price(ticks)} is outside the band "
                f"{self.ticks_to_price(low)}..{self.ticks_to_price(high)}",
            )

    def protection_price(self, is_buy: bool, reference_ticks: int) -> int:
        """The worst price, in ticks, a market order may trade at: the edge of the band."""
        low, high = self.band(reference_ticks)
        return high if is_buy else low


def price_band(reference_ticks: int, band_bps: int) -> tuple[int, int]:
    """The lowest and highest price, in ticks, within `band_bps` of a positive reference,
    rounded inward (the matcher computes the same inline, on its hot path)."""
    low = -((-reference_ticks * (10_000 - band_bps)) // 10_000)
    high = (reference_ticks * (10_000 + band_bps)) // 10_000
    return max(low, 1), high


def cash_to_cents(text: str | int | Decimal, field: str = "amount") -> int:
    return parse_units(text, CASH_UNIT, field)


def cents_to_cash(cents: int) -> str:
    return format_units(cents, CASH_UNIT)
