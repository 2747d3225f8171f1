"""Unit tests for the domain layer: exact decimals, symbols and their band, ids."""

from __future__ import annotations

import uuid
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepit.domain import ids
from tradepit.domain.ids import VENUE_ACCOUNT_ID, IdError, id_to_uuid, new_id, uuid_to_id
from tradepit.domain.numbers import NumberError, format_units, parse_units, to_decimal
from tradepit.domain.symbols import (
    CASH_UNIT,
    FRACTIONAL_LOT,
    Symbol,
    SymbolError,
    cash_to_cents,
    cents_to_cash,
)

CENT = Decimal("0.01")
ONE = Decimal("1")


def parse(
    text: str | int | Decimal,
    unit: Decimal = CENT,
    field: str = "limit_price",
    *,
    allow_zero: bool = False,
    allow_negative: bool = False,
) -> int:
    return parse_units(text, unit, field, allow_zero=allow_zero, allow_negative=allow_negative)


def rejected(
    text: object,
    unit: Decimal = CENT,
    field: str = "limit_price",
    *,
    allow_zero: bool = False,
    allow_negative: bool = False,
) -> NumberError:
    """The NumberError that parsing `text` raises (the test fails if it parses)."""
    with pytest.raises(NumberError) as info:
        parse_units(
            text,  # type: ignore[arg-type]
            unit,
            field,
            allow_zero=allow_zero,
            allow_negative=allow_negative,
        )
    return info.value


# Parsing.


@pytest.mark.parametrize(
    ("text", "unit", "expected"),
    [
        ("101.25", CENT, 10125),
        ("101.250000", CENT, 10125),
        ("0.01", CENT, 1),
        ("1.25e2", CENT, 12500),
        ("  7.5 ", Decimal("0.5"), 15),
        ("100", Decimal("100"), 1),
        ("0.000001", Decimal("0.000001"), 1),
        ("123456789012345678", ONE, 123456789012345678),
        (3, CENT, 300),
        (Decimal("0.05"), CENT, 5),
    ],
)
def test_parse_units_is_exact(text: str | int | Decimal, unit: Decimal, expected: int) -> None:
    assert parse(text, unit) == expected


@pytest.mark.parametrize(
    "text",
    ["101.255", "0.001", "0.005", "0.015", "100.999999999", "1e-30", "-1.255", Decimal("1.001")],
)
def test_off_grid_is_rejected_never_rounded(text: str | Decimal) -> None:
    error = rejected(text, CENT, "limit_price", allow_negative=True)
    assert error.field == "limit_price"
    assert str(error).startswith("limit_price: ")
    assert "not a multiple of 0.01" in error.message


def test_off_grid_quantity_names_its_own_field() -> None:
    error = rejected("1.5", ONE, "qty")
    assert error.field == "qty"
    assert str(error).startswith("qty: ")


@pytest.mark.parametrize(
    "text",
    ["nan", "NaN", "-nan", "sNaN", "inf", "Infinity", "-inf", Decimal("NaN"), Decimal("-Infinity")],
)
def test_non_finite_is_rejected(text: str | Decimal) -> None:
    assert rejected(text).field == "limit_price"


@pytest.mark.parametrize(
    "text",
    ["", "   ", "abc", "1.2.3", "1,000", "0x10", "12abc", "1 000", "$5", "--1", "1e", "."],
)
def test_junk_text_is_rejected(text: str) -> None:
    error = rejected(text, field="notional")
    assert error.field == "notional"
    assert "not a decimal number" in error.message


@pytest.mark.parametrize("value", [1.5, 1.0, 0.1, True, False, None, [1], b"1", object()])
def test_floats_bools_and_other_types_are_rejected(value: object) -> None:
    error = rejected(value, field="qty")
    assert error.field == "qty"
    assert "must be a decimal string" in error.message
    with pytest.raises(NumberError):
        to_decimal(value, "qty")  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["1_000", "1_0.5", "\uff11\uff10\uff10", "\u0661\u0660"])
def test_underscores_and_non_ascii_digits_are_junk(text: str) -> None:
    rejected(text)


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("1e19", ONE),
        ("-1e19", ONE),
        ("1e999999999", ONE),
        ("99999999999999999999", ONE),
        ("999999999999999999.99", CENT),  # in Decimal range, but 10**20 cents
        (10**30, ONE),
        (10**18 + 1, ONE),
        ("9" * 41, ONE),  # longer than any real number
    ],
)
def test_huge_values_are_rejected(text: str | int, unit: Decimal) -> None:
    error = rejected(text, unit, "qty", allow_negative=True)
    assert error.field == "qty"


def test_largest_value_is_accepted() -> None:
    assert parse(10**18, ONE) == 10**18
    assert parse("1e18", ONE) == 10**18
    assert parse("10000000000000000.00", CENT) == 10**18


def test_zero_is_rejected_unless_allowed() -> None:
    for text in ("0", "0.00", "-0", "0e5"):
        error = rejected(text)
        assert error.field == "limit_price"
        assert "zero" in error.message
        assert parse(text, allow_zero=True) == 0


def test_negative_is_rejected_unless_allowed() -> None:
    error = rejected("-1.25")
    assert error.field == "limit_price"
    assert "positive" in error.message
    assert parse("-1.25", allow_negative=True) == -125
    assert parse("-0.01", allow_negative=True) == -1


def test_tiny_off_grid_value_is_not_rounded_to_zero() -> None:
    rejected("1e-1000030", allow_zero=True)


# Formatting.


@pytest.mark.parametrize(
    ("count", "unit", "text"),
    [
        (10125, CENT, "101.25"),
        (5, CENT, "0.05"),
        (0, CENT, "0.00"),
        (-5, CENT, "-0.05"),
        (100, CENT, "1.00"),
        (3, ONE, "3"),
        (15, Decimal("0.5"), "7.5"),
        (1, Decimal("0.0001"), "0.0001"),
        (2, Decimal("100"), "200"),
        (10**18, ONE, "1000000000000000000"),
        (10**18, CENT, "10000000000000000.00"),
    ],
)
def test_format_units(count: int, unit: Decimal, text: str) -> None:
    assert format_units(count, unit) == text


@given(
    count=st.integers(-(10**18), 10**18),
    unit=st.sampled_from(["0.01", "1", "0.5", "0.0001", "25", "1E+2", "0.10", "0.000001"]),
)
def test_format_units_is_decimal_arithmetic(count: int, unit: str) -> None:
    """Integer formatting gives what exact decimal arithmetic gives, to the unit's places."""
    grid = Decimal(unit)
    places = max(0, -grid.as_tuple().exponent)  # type: ignore[operator]
    expected = (Decimal(count) * grid).quantize(Decimal(1).scaleb(-places))
    assert format_units(count, grid) == f"{expected:f}"


@pytest.mark.parametrize("unit", [CENT, ONE, Decimal("0.5"), Decimal("0.0001"), Decimal("25")])
@pytest.mark.parametrize("count", [1, 2, 7, 99, 100, 101, 12345, 10**12 + 3, 10**16, -1, -12345])
def test_format_then_parse_round_trips(unit: Decimal, count: int) -> None:
    text = format_units(count, unit)
    assert "E" not in text and "e" not in text
    assert parse(text, unit, allow_negative=True) == count


def test_cash_helpers_round_trip() -> None:
    assert CASH_UNIT == CENT
    assert cash_to_cents("1234.56") == 123456
    assert cents_to_cash(123456) == "1234.56"
    assert cash_to_cents(cents_to_cash(7)) == 7
    with pytest.raises(NumberError) as info:
        cash_to_cents("1.001")
    assert info.value.field == "amount"
    with pytest.raises(NumberError) as info:
        cash_to_cents("1.001", "deposit")
    assert info.value.field == "deposit"


# Symbols.


def test_symbol_cents_per_tick_lot() -> None:
    for symbol, cents in (
        (Symbol("AAPL"), 1),
        (Symbol("BRK.A", Decimal("0.05"), Decimal("10")), 50),
        (Symbol("PENNY", Decimal("0.0001"), Decimal("100")), 1),
        (Symbol("BIG", Decimal("1"), Decimal("1")), 100),
    ):
        assert (symbol.value_num, symbol.value_den) == (cents, 1)
        assert symbol.notional(3, 7) == symbol.notional_up(3, 7) == 21 * cents
        assert not symbol.fractionable


def test_a_fractional_symbols_notionals_round_down_and_reservations_up() -> None:
    symbol = Symbol("FRAC", lot_size=FRACTIONAL_LOT)
    assert symbol.fractionable and (symbol.value_num, symbol.value_den) == (1, 10**9)
    share = 10**9
    assert symbol.qty_to_lots("0.01") == share // 100
    assert symbol.lots_to_qty(5 * share + share // 2) == "5.5"
    assert symbol.lots_to_qty(3 * share) == "3"
    assert symbol.notional(10_001, share // 100) == 100  # 100.01 cents, down
    assert symbol.notional_up(10_001, share // 100) == 101
    assert symbol.notional_to_lots("1.11", 10_000) == share * 111 // 10_000
    assert symbol.ticks_of(550, share // 2) == 1_100  # 5.50 for half a share: 11.00
    assert symbol.ticks_of(100, share // 3) is None  # 1.00 for a third: off the grid


@given(
    ticks=st.integers(1, 10**6),
    fills=st.lists(st.integers(1, 10**10), min_size=1, max_size=20),
    improvement=st.integers(0, 100),
)
def test_a_fractional_buys_reservation_covers_its_fills(
    ticks: int, fills: list[int], improvement: int
) -> None:
    """A buy reserves its notional rounded up; its fills, each rounded down and at its limit or
    better, never add up to more."""
    symbol = Symbol("FRAC", lot_size=FRACTIONAL_LOT)
    reserved = symbol.notional_up(ticks, sum(fills))
    paid = sum(symbol.notional(max(ticks - improvement, 1), lots) for lots in fills)
    assert paid <= reserved
    exact = Fraction(ticks * sum(fills), 10**9)  # cents
    assert reserved - exact < 1 and exact - symbol.notional(ticks, sum(fills)) < 1


@pytest.mark.parametrize(
    ("tick", "lot"),
    [("0.001", "1"), ("0.0001", "1"), ("0.005", "3"), ("0.001", "15")],
)
def test_symbol_tick_times_lot_must_be_whole_cents(tick: str, lot: str) -> None:
    with pytest.raises(SymbolError, match="whole number of cents"):
        Symbol("AAA", Decimal(tick), Decimal(lot))


@pytest.mark.parametrize(("tick", "lot"), [("0", "1"), ("-0.01", "1"), ("0.01", "0"), ("1", "-1")])
def test_symbol_tick_and_lot_must_be_positive(tick: str, lot: str) -> None:
    with pytest.raises(SymbolError, match="positive"):
        Symbol("AAA", Decimal(tick), Decimal(lot))


@pytest.mark.parametrize("name", ["A", "AAPL", "BRK.B", "A1", "ABCDEFGHIJ", "X.Y.Z"])
def test_symbol_good_names(name: str) -> None:
    assert Symbol(name).name == name


@pytest.mark.parametrize(
    "name",
    ["", "aapl", "Aapl", "1ABC", ".A", "ABCDEFGHIJK", "AB-C", "AB C", "$", " AAPL", "\u00c4BC"],
)
def test_symbol_bad_names(name: str) -> None:
    with pytest.raises(SymbolError, match="symbol name"):
        Symbol(name)


def test_symbol_name_with_trailing_newline_is_rejected() -> None:
    with pytest.raises(SymbolError):
        Symbol("AAPL\n")


@pytest.mark.parametrize("bps", [0, -1, 10_000, 20_000])
def test_symbol_band_bps_out_of_range(bps: int) -> None:
    with pytest.raises(SymbolError, match="band_bps"):
        Symbol("AAA", band_bps=bps)


@pytest.mark.parametrize("bps", [1, 1000, 9999])
def test_symbol_band_bps_in_range(bps: int) -> None:
    assert Symbol("AAA", band_bps=bps).band_bps == bps


def test_symbol_price_and_qty_conversions() -> None:
    symbol = Symbol("BRK.A", Decimal("0.05"), Decimal("10"))
    assert symbol.price_to_ticks("101.25") == 2025
    assert symbol.ticks_to_price(2025) == "101.25"
    assert symbol.qty_to_lots("30") == 3
    assert symbol.lots_to_qty(3) == "30"
    with pytest.raises(NumberError) as info:
        symbol.price_to_ticks("101.26")
    assert info.value.field == "price"
    with pytest.raises(NumberError) as info:
        symbol.price_to_ticks("101.26", "stop_price")
    assert info.value.field == "stop_price"
    with pytest.raises(NumberError) as info:
        symbol.qty_to_lots("15")
    assert info.value.field == "qty"


# The band.


def test_band_is_exact_when_it_can_be() -> None:
    assert Symbol("AAA", band_bps=1000).band(10_000) == (9_000, 11_000)
    assert Symbol("AAA", band_bps=500).band(2_000) == (1_900, 2_100)


def test_band_rounds_inward() -> None:
    symbol = Symbol("AAA", band_bps=1000)
    # 105 ticks +/- 10% is 94.5 .. 115.5: inward is 95 .. 115.
    assert symbol.band(105) == (95, 115)
    assert Symbol("AAA", band_bps=1).band(12_345) == (12_344, 12_346)  # 12343.77 .. 12346.23


@pytest.mark.parametrize("bps", [1, 7, 333, 1000, 2500, 9999])
def test_band_never_admits_a_price_further_than_band_bps(bps: int) -> None:
    symbol = Symbol("AAA", band_bps=bps)
    for reference in [1, 2, 3, 7, 99, 100, 101, 105, 999, 1001, 12_345, 10**9 + 7]:
        low, high = symbol.band(reference)
        assert 1 <= low <= reference <= high
        assert high * 10_000 <= reference * (10_000 + bps)
        assert (high + 1) * 10_000 > reference * (10_000 + bps)
        assert low == 1 or low * 10_000 >= reference * (10_000 - bps)
        assert low == 1 or (low - 1) * 10_000 < reference * (10_000 - bps)


def test_band_low_edge_is_at_least_one_tick() -> None:
    assert Symbol("AAA", band_bps=9999).band(1) == (1, 1)
    assert Symbol("AAA", band_bps=9999).band(3) == (1, 5)


@pytest.mark.parametrize("reference", [0, -1, -100])
def test_band_needs_a_positive_reference(reference: int) -> None:
    with pytest.raises(SymbolError, match="reference"):
        Symbol("AAA").band(reference)


def test_check_in_band() -> None:
    symbol = Symbol("AAA", band_bps=1000)
    for ticks in (95, 105, 115):
        symbol.check_in_band(ticks, 105)
    with pytest.raises(NumberError) as info:
        symbol.check_in_band(94, 105)
    assert info.value.field == "limit_price"
    assert "0.94 is outside the band 0.95..1.15" in info.value.message
    with pytest.raises(NumberError) as info:
        symbol.check_in_band(116, 105, "stop_price")
    assert info.value.field == "stop_price"
    assert "1.16" in info.value.message
    with pytest.raises(SymbolError):
        symbol.check_in_band(100, 0)


def test_protection_price_is_the_band_edge() -> None:
    symbol = Symbol("AAA", band_bps=1000)
    assert symbol.protection_price(True, 105) == 115
    assert symbol.protection_price(False, 105) == 95
    assert symbol.protection_price(True, 10_000) == 11_000
    assert symbol.protection_price(False, 10_000) == 9_000


# Notional.


def test_notional_is_exact() -> None:
    assert Symbol("AAA").notional(10125, 3) == 30375
    # 2 ticks of $0.05 on 3 lots of 10 shares: $0.10 x 30 = $3.00.
    assert Symbol("BRK.A", Decimal("0.05"), Decimal("10")).notional(2, 3) == 300
    assert Symbol("AAA").notional(10125, 0) == 0


def test_notional_to_lots_rounds_down() -> None:
    symbol = Symbol("AAA")
    assert symbol.notional_to_lots("1000", 10125) == 9  # $1000 / $101.25 = 9.87
    assert symbol.notional_to_lots("101.25", 10125) == 1
    assert symbol.notional_to_lots("101.24", 10125) == 0
    assert symbol.notional_to_lots("1012.50", 10125) == 10
    big_lots = Symbol("BRK.A", Decimal("0.05"), Decimal("10"))
    # One lot (10 shares) at $1.00 (20 ticks) costs $10.00.
    assert big_lots.notional_to_lots("29.99", 20) == 2
    assert big_lots.notional_to_lots("30", 20) == 3


@pytest.mark.parametrize("cash", ["10.005", "0", "-10", "nan", 1.5])
def test_notional_to_lots_rejects_bad_cash(cash: object) -> None:
    with pytest.raises(NumberError) as info:
        Symbol("AAA").notional_to_lots(cash, 100)  # type: ignore[arg-type]
    assert info.value.field == "notional"


# Ids.


def test_id_round_trip() -> None:
    text = "6f1c2f4e-3a5b-4c8d-9e0f-112233445566"
    assert id_to_uuid(uuid_to_id(text)) == text
    assert uuid_to_id(text) == uuid.UUID(text).int
    for _ in range(20):
        value = new_id()
        assert 0 < value < 2**128
        assert uuid_to_id(id_to_uuid(value)) == value
        assert uuid.UUID(id_to_uuid(value)).version == 4


def test_id_canonical_form() -> None:
    upper = "6F1C2F4E-3A5B-4C8D-9E0F-112233445566"
    assert id_to_uuid(uuid_to_id(upper)) == upper.lower()
    assert id_to_uuid(1) == "00000000-0000-0000-0000-000000000001"
    assert id_to_uuid(2**128 - 1) == "ffffffff-ffff-ffff-ffff-ffffffffffff"


@given(st.integers(0, 2**128 - 1))
def test_id_to_uuid_is_uuids_text(value: int) -> None:
    assert id_to_uuid(value) == str(uuid.UUID(int=value))


def test_id_to_uuid_refuses_what_is_not_128_bits() -> None:
    for value in (-1, 2**128):
        with pytest.raises(ValueError):
            id_to_uuid(value)


def test_venue_account_is_the_nil_uuid() -> None:
    assert VENUE_ACCOUNT_ID == 0
    assert id_to_uuid(VENUE_ACCOUNT_ID) == "00000000-0000-0000-0000-000000000000"
    assert new_id() != VENUE_ACCOUNT_ID


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not-a-uuid",
        "1234",
        "6f1c2f4e-3a5b-4c8d-9e0f-11223344556",
        "6f1c2f4e-3a5b-4c8d-9e0f-1122334455667",
        "g" * 32,
        None,
        123,
        b"6f1c2f4e3a5b4c8d9e0f112233445566",
    ],
)
def test_uuid_to_id_rejects_junk(text: object) -> None:
    with pytest.raises(IdError):
        uuid_to_id(text)  # type: ignore[arg-type]


@given(st.binary(min_size=16, max_size=16))
def test_new_id_sets_uuid4s_bits_as_uuid_does(random_bytes: bytes) -> None:
    made = uuid.UUID(bytes=random_bytes, version=4).int
    raw = int.from_bytes(random_bytes, "big")
    assert raw & ids._CLEARED | ids._VERSION_4 == made


@given(st.uuids())
def test_uuid_to_id_reads_every_form_uuid_reads(value: uuid.UUID) -> None:
    for text in (str(value), str(value).upper(), value.hex, f"{{{value}}}", value.urn):
        assert uuid_to_id(text) == value.int


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not-a-uuid",
        "6f1c2f4e-3a5b-4c8d-9e0f-11223344556",
        "6f1c2f4e_3a5b_4c8d_9e0f_112233445566",
    ],
)
def test_uuid_to_id_refuses_what_is_not_a_uuid(text: str) -> None:
    with pytest.raises(IdError):
        uuid_to_id(text)
