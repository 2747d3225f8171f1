"""Exact conversion between the API's decimal strings and the integers tradepit computes with.

Prices travel as ticks, quantities as lots and cash as minor units (cents), all Python ints.
Text from the outside world is parsed with `decimal` at full precision and must land exactly on
the grid: an off-grid value is an error, never rounded.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from tradepit.errors import TradepitError

__all__ = [
    "NumberError",
    "parse_units",
    "format_units",
    "to_decimal",
]

# Digits beyond this are never a real price or quantity; refusing them early keeps `Decimal`
# from doing unbounded work on hostile input such as "1e999999999".
_MAX_TEXT_LENGTH = 40
_MAX_UNITS = 10**18
# What the API accepts: ASCII digits, one optional point and exponent; no "_", no other scripts'
# digits, which `Decimal` alone would take.
_DECIMAL_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)


class NumberError(TradepitError, ValueError):
    """A decimal value from outside that is malformed, off its grid, or out of range."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def to_decimal(text: str | int | Decimal, field: str) -> Decimal:
    """Parse a finite decimal from text (or an int or Decimal), rejecting floats and junk."""
    if isinstance(text, bool) or not isinstance(text, str | int | Decimal):
        raise NumberError(field, f"must be a decimal string, got {type(text).__name__}")
    if isinstance(text, str):
        stripped = text.strip()
        if len(stripped) > _MAX_TEXT_LENGTH or not _DECIMAL_TEXT.fullmatch(stripped):
            if stripped.lower().lstrip("+-") in ("nan", "inf", "infinity", "snan"):
                raise NumberError(field, f"must be finite, got {text!r}")
            raise NumberError(field, f"is not a decimal number: {text[:_MAX_TEXT_LENGTH]!r}")
        try:
            value = Decimal(stripped)
        except InvalidOperation:
            raise NumberError(field, f"is not a decimal number: {text!r}") from None
    else:
        value = Decimal(text)
    if not value.is_finite():
        raise NumberError(field, f"must be finite, got {text!r}")
    if value.adjusted() > 18:
        raise NumberError(field, f"is out of range: {text!r}")
    return value


def parse_units(
    text: str | int | Decimal,
    unit: Decimal,
    field: str,
    *,
    allow_zero: bool = False,
    allow_negative: bool = False,
) -> int:
    """The exact number of `unit`s in `text`; `NumberError` if it is not a whole number of them.

    >>> parse_units("101.25", Decimal("0.01"), "limit_price")
    10125
    """
    value = to_decimal(text, field)
    # No grid is this fine, and `divmod` would underflow such a value to a remainder of zero.
    if value and value.adjusted() < -18:
        raise NumberError(field, f"{value} is not a multiple of {unit}")
    units, remainder = divmod(value, unit)
    if remainder != 0:
        raise NumberError(field, f"{value} is not a multiple of {unit}")
    count = int(units)
    if count == 0 and not allow_zero:
        raise NumberError(field, "must not be zero")
    if count < 0 and not allow_negative:
        raise NumberError(field, f"must be positive, got {value}")
    if abs(count) > _MAX_UNITS:
        raise NumberError(field, f"is out of range: {value}")
    return count


def format_units(count: int, unit: Decimal) -> str:
    """`count` units of `unit` as a plain decimal string, with `unit`'s number of places.

    >>> format_units(10125, Decimal("0.01"))
    '101.25'
    """
    # In integers: every order and fill is formatted on its way out, and `Decimal` arithmetic
    # took most of the time of building an order's JSON.
    places, multiplier = _grid(unit)
    scaled = count * multiplier  # the value in units of 10**-places
    if not places:
        return str(scaled)
    whole, fraction = divmod(abs(scaled), 10**places)
    return f"{'-' if scaled < 0 else ''}{whole}.{fraction:0{places}d}"


@lru_cache(maxsize=256)
def _grid(unit: Decimal) -> tuple[int, int]:
    """`unit`'s number of decimal places, and `unit` in units of 10**-places (an integer)."""
    places = max(0, -unit.as_tuple().exponent)  # type: ignore[operator]
    return places, int(unit.scaleb(places))
