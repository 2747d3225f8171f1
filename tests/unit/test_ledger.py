"""Unit tests for the ledger, fed by a real matcher where that is natural."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import msgspec
import pytest
from builders import make

from tradepit.domain.events import (
    Accepted,
    Canceled,
    Event,
    Expired,
    Rejected,
    Replaced,
    ReplaceRejected,
    Trade,
)
from tradepit.domain.ids import VENUE_ACCOUNT_ID
from tradepit.domain.orders import Order, OrderType, SelfTradePrevention, Side, TimeInForce
from tradepit.domain.symbols import Symbol
from tradepit.ledger import CASH, Ledger, LedgerError, LedgerState, Position
from tradepit.matcher import Matcher

AAA = Symbol("AAA")  # $0.01 ticks, 1-share lots: one tick on one lot is one cent
BBB = Symbol("BBB", Decimal("0.05"), Decimal("10"))  # one tick on one lot is 50 cents
SYMBOLS = (AAA, BBB)
BUY = Side.BUY
SELL = Side.SELL


@dataclass
class Venue:
    ledger: Ledger
    matcher: Matcher = field(default_factory=Matcher)
    events: list[Event] = field(default_factory=list)


def new_venue(maker_bps: int = 0, taker_bps: int = 0) -> Venue:
    venue = Venue(Ledger(SYMBOLS, maker_bps, taker_bps))
    for symbol in SYMBOLS:
        venue.matcher.add_symbol(symbol.name)
    return venue


def fund(venue: Venue, account_id: int, cents: int = 0, lots: int = 0, cost: int = 0) -> None:
    """Open `account_id` and deposit cash and AAA shares into it."""
    ledger = venue.ledger
    ledger.open_account(account_id)
    if cents:
        ledger.deposit_cash(f"cash-{account_id}-{cents}", account_id, cents)
    if lots:
        ledger.deposit_shares(f"AAA-{account_id}-{lots}", account_id, "AAA", lots, cost)


def pump(venue: Venue) -> list[Event]:
    """Feed the matcher's events to the ledger, checking its invariants after each one."""
    events = venue.matcher.take_events()
    for event in events:
        venue.ledger.apply(event)
        assert venue.ledger.check_invariants() == []
    venue.events.extend(events)
    return events


def place(venue: Venue, order: Order, client_order_id: str | None = None) -> list[Event]:
    """Reserve for `order` in the ledger, submit it, and settle what happened."""
    venue.ledger.place_order(order, client_order_id)
    assert venue.ledger.check_invariants() == []
    venue.matcher.submit(order)
    return pump(venue)


def cancel(venue: Venue, order_id: int, account_id: int, symbol: str = "AAA") -> list[Event]:
    venue.matcher.cancel(symbol, order_id, account_id, 0)
    return pump(venue)


def cash(venue: Venue, account_id: int) -> tuple[int, int]:
    account = venue.ledger.accounts[account_id]
    return account.cash_free, account.cash_reserved


def shares(venue: Venue, account_id: int, symbol: str = "AAA") -> tuple[int, int]:
    holding = venue.ledger.accounts[account_id].holdings.get(symbol)
    return (holding.free, holding.reserved) if holding else (0, 0)


# Reservations.


def test_buy_reserves_notional_plus_ceil_fee_at_the_larger_rate() -> None:
    venue = new_venue(maker_bps=10, taker_bps=25)
    fund(venue, 1, cents=100_000)
    # 3 lots of BBB at 41 ticks: 3 x 41 x 50 = 6150 cents; 25 bps of that is 15.375 -> 16.
    venue.ledger.place_order(make(1, 1, BUY, 3, 41, symbol="BBB"))
    assert venue.ledger.buy_reservation(BBB, 41, 3) == 6166
    assert cash(venue, 1) == (100_000 - 6166, 6166)
    assert venue.ledger.open_orders[1].reserved == 6166
    assert venue.ledger.check_invariants() == []


def test_buy_reservation_uses_the_maker_rate_when_it_is_larger() -> None:
    venue = new_venue(maker_bps=30, taker_bps=10)
    fund(venue, 1, cents=100_000)
    venue.ledger.place_order(make(1, 1, BUY, 7, 1001))  # 7007 cents; 30 bps = 21.021 -> 22
    assert cash(venue, 1) == (100_000 - 7029, 7029)


def test_buy_reservation_without_fees_is_the_notional() -> None:
    venue = new_venue()
    fund(venue, 1, cents=1000)
    venue.ledger.place_order(make(1, 1, BUY, 10, 100))
    assert cash(venue, 1) == (0, 1000)


def test_sell_reserves_shares() -> None:
    venue = new_venue(maker_bps=10, taker_bps=25)
    fund(venue, 1, lots=10)
    venue.ledger.place_order(make(1, 1, SELL, 4, 100))
    assert shares(venue, 1) == (6, 4)
    assert cash(venue, 1) == (0, 0)
    assert venue.ledger.open_orders[1].reserved == 4
    assert venue.ledger.check_invariants() == []


def test_no_short_selling() -> None:
    venue = new_venue()
    fund(venue, 1, cents=10_000)
    fund(venue, 2, lots=10)
    place(venue, make(1, 2, SELL, 6, 200))
    before = venue.ledger.state_hash()
    for order in (
        make(2, 1, SELL, 1, 100),  # holds no AAA at all
        make(3, 2, SELL, 5, 100),  # holds 10, 6 already reserved
        make(4, 2, SELL, 1, 100, symbol="BBB"),
    ):
        with pytest.raises(LedgerError) as info:
            venue.ledger.place_order(order)
        assert info.value.code == "insufficient_shares"
        assert venue.ledger.state_hash() == before
    place(venue, make(5, 2, SELL, 4, 100))  # exactly what is free
    assert shares(venue, 2) == (0, 10)


def test_insufficient_buying_power_changes_nothing() -> None:
    venue = new_venue(maker_bps=10, taker_bps=10)
    fund(venue, 1, cents=10_010)
    before = venue.ledger.state_hash()
    with pytest.raises(LedgerError) as info:
        venue.ledger.place_order(make(1, 1, BUY, 101, 100), "coid")  # 10100 + 11
    assert info.value.code == "insufficient_buying_power"
    assert venue.ledger.state_hash() == before
    assert "coid" not in venue.ledger.client_order_ids.get(1, {})
    venue.ledger.place_order(make(1, 1, BUY, 100, 100), "coid")  # 10000 + 10: exactly enough
    assert cash(venue, 1) == (0, 10_010)


@pytest.mark.parametrize(
    ("order", "code"),
    [
        (make(1, 99, BUY, 1, 100), "unknown_account"),
        (make(1, 1, BUY, 1, 100, symbol="ZZZ"), "unknown_symbol"),
        (make(1, 1, BUY, 0, 100), "invalid_order"),
        (make(1, 1, BUY, 1, 0), "invalid_order"),
        (make(1, 1, SELL, -1, 100), "invalid_order"),
        (make(7, 1, BUY, 1, 100), "duplicate_order_id"),
    ],
)
def test_place_order_refusals_change_nothing(order: Order, code: str) -> None:
    venue = new_venue()
    fund(venue, 1, cents=10_000, lots=10)
    venue.ledger.place_order(make(7, 1, BUY, 1, 100))
    before = venue.ledger.state_hash()
    with pytest.raises(LedgerError) as info:
        venue.ledger.place_order(order)
    assert info.value.code == code
    assert venue.ledger.state_hash() == before


# Releases.


def test_cancel_releases_the_reservation() -> None:
    venue = new_venue(maker_bps=5, taker_bps=20)
    fund(venue, 1, cents=50_000, lots=10)
    place(venue, make(1, 1, BUY, 10, 1000))
    place(venue, make(2, 1, SELL, 10, 2000))
    assert cash(venue, 1)[1] > 0 and shares(venue, 1) == (0, 10)
    events = cancel(venue, 1, 1) + cancel(venue, 2, 1)
    assert [type(event) for event in events] == [Canceled, Canceled]
    assert cash(venue, 1) == (50_000, 0)
    assert shares(venue, 1) == (10, 0)
    assert venue.ledger.open_orders == {}


def test_expired_releases_the_reservation() -> None:
    venue = new_venue()
    fund(venue, 1, cents=5_000, lots=10)
    place(venue, make(1, 1, BUY, 10, 100, tif=TimeInForce.DAY))
    place(venue, make(2, 1, SELL, 3, 200, tif=TimeInForce.DAY))
    place(venue, make(3, 1, BUY, 10, 100, tif=TimeInForce.GTC))
    venue.matcher.close_session(1)
    assert [type(event) for event in pump(venue)] == [Expired, Expired]
    assert cash(venue, 1) == (4_000, 1_000)
    assert shares(venue, 1) == (10, 0)
    assert set(venue.ledger.open_orders) == {3}


def test_rejected_releases_the_reservation() -> None:
    venue = new_venue()
    fund(venue, 1, cents=5_000)
    fund(venue, 2, lots=10)
    place(venue, make(1, 2, SELL, 5, 100))
    events = place(venue, make(2, 1, BUY, 5, 100, post_only=True))
    assert [e.reason for e in events if isinstance(e, Rejected)] == ["post_only_would_take"]
    assert cash(venue, 1) == (5_000, 0)
    venue.matcher.set_halted("AAA", True, 0)
    pump(venue)
    events = place(venue, make(3, 2, SELL, 5, 90))
    assert [e.reason for e in events if isinstance(e, Rejected)] == ["halted"]
    assert shares(venue, 2) == (5, 5)
    assert set(venue.ledger.open_orders) == {1}


def test_remainder_of_ioc_and_market_orders_is_released() -> None:
    venue = new_venue()
    fund(venue, 1, cents=10_000)
    fund(venue, 2, lots=10)
    place(venue, make(1, 2, SELL, 3, 100))
    place(venue, make(2, 1, BUY, 5, 100, tif=TimeInForce.IOC))
    assert cash(venue, 1) == (10_000 - 300, 0)
    place(venue, make(3, 2, SELL, 2, 100))
    place(venue, make(4, 1, BUY, 5, 110, kind=OrderType.MARKET))
    assert cash(venue, 1) == (10_000 - 500, 0)
    assert shares(venue, 1) == (5, 0)
    assert venue.ledger.open_orders == {}


def test_self_trade_cancel_releases_the_resting_order() -> None:
    venue = new_venue()
    fund(venue, 1, cents=10_000, lots=5)
    place(venue, make(1, 1, SELL, 5, 100))
    place(venue, make(2, 1, BUY, 5, 100, stp=SelfTradePrevention.CANCEL_BOTH))
    assert cash(venue, 1) == (10_000, 0)
    assert shares(venue, 1) == (5, 0)
    assert venue.ledger.open_orders == {}


def test_price_improvement_is_released() -> None:
    venue = new_venue()
    fund(venue, 1, cents=10_000)
    fund(venue, 2, lots=20)
    place(venue, make(1, 2, SELL, 10, 100))
    place(venue, make(2, 1, BUY, 10, 105))  # reserves 1050, pays 1000
    assert cash(venue, 1) == (9_000, 0)
    place(venue, make(3, 2, SELL, 4, 100))
    place(venue, make(4, 1, BUY, 10, 105))  # 4 at 100; 6 rest at 105
    assert cash(venue, 1) == (9_000 - 400 - 630, 630)
    assert venue.ledger.open_orders[4].reserved == 630


def test_price_improvement_and_fee_difference_are_released() -> None:
    venue = new_venue(maker_bps=10, taker_bps=20)
    fund(venue, 1, cents=10_000)
    fund(venue, 2, lots=20)
    place(venue, make(1, 2, SELL, 4, 100))
    place(venue, make(2, 1, BUY, 10, 105))
    # Reserved 1050 + 3. Took 4 at 100 (400, taker fee 0.8 -> 1); 6 rest at 105, needing
    # 630 + a fee cap of ceil(0.8 + 1.26) = 3 less the 1 already paid.
    assert cash(venue, 1) == (10_000 - 1053 + 20, 632)
    place(venue, make(3, 2, SELL, 6, 105))  # the buy is now the maker: 630 at 10 bps
    # Fees on the whole order: ceil((400 x 20 + 630 x 10) / 10000) = ceil(1.43) = 2.
    assert cash(venue, 1) == (10_000 - 400 - 630 - 2, 0)
    assert venue.ledger.accounts[1].fees_paid == 2


# Settlement and fees.


def test_settlement_of_both_sides_with_fees_rounded_up_for_the_venue() -> None:
    venue = new_venue(maker_bps=10, taker_bps=25)
    fund(venue, 1, cents=5_000)
    fund(venue, 2, lots=3, cost=2_400)
    place(venue, make(1, 2, SELL, 1, 1001))  # maker
    events = place(venue, make(2, 1, BUY, 1, 1001))  # taker
    assert [type(event) for event in events][1:] == [Trade]
    # Maker fee: 1001 x 10 bps = 1.001 -> 2. Taker fee: 1001 x 25 bps = 2.5025 -> 3.
    assert venue.ledger.accounts[2].fees_paid == 2
    assert venue.ledger.accounts[1].fees_paid == 3
    assert cash(venue, 2) == (1001 - 2, 0)
    assert cash(venue, 1) == (5_000 - 1001 - 3, 0)
    assert cash(venue, VENUE_ACCOUNT_ID) == (5, 0)
    assert shares(venue, 1) == (1, 0)
    assert shares(venue, 2) == (2, 0)
    assert venue.ledger.open_orders == {}


def test_buyer_as_maker_pays_the_maker_fee_and_gets_the_rest_back() -> None:
    venue = new_venue(maker_bps=10, taker_bps=30)
    fund(venue, 1, cents=20_000)
    fund(venue, 2, lots=10)
    place(venue, make(1, 1, BUY, 10, 1000))  # 10000 + 30 bps
    assert cash(venue, 1) == (20_000 - 10_030, 10_030)
    place(venue, make(2, 2, SELL, 10, 1000))
    assert venue.ledger.accounts[1].fees_paid == 10  # the maker rate: the other 20 come back
    assert venue.ledger.accounts[2].fees_paid == 30
    assert cash(venue, 1) == (20_000 - 10_010, 0)
    assert cash(venue, 2) == (10_000 - 30, 0)
    assert cash(venue, VENUE_ACCOUNT_ID) == (40, 0)


def test_fees_over_many_small_fills_never_exceed_the_reserved_fee() -> None:
    venue = new_venue(maker_bps=10, taker_bps=10)
    reserved = venue.ledger.buy_reservation(AAA, 101, 100)
    assert reserved == 10_100 + 11  # 10.1 cents of fee -> 11
    fund(venue, 1, cents=reserved)
    fund(venue, 2, lots=100)
    place(venue, make(1, 1, BUY, 100, 101))
    for order_id in range(2, 102):
        events = place(venue, make(order_id, 2, SELL, 1, 101))
        assert sum(trade.qty for trade in events if isinstance(trade, Trade)) == 1
    # Rounding each fill's 0.101-cent fee up on its own would have charged 100 cents.
    assert venue.ledger.accounts[1].fees_paid == 11
    assert cash(venue, 1) == (0, 0)
    assert shares(venue, 1) == (100, 0)
    # Each sell is its own order, so each pays its own rounding.
    assert venue.ledger.accounts[2].fees_paid == 100
    assert cash(venue, VENUE_ACCOUNT_ID) == (111, 0)


def test_a_trade_between_two_ledgers_settles_each_side_in_its_own() -> None:
    # Two ledger shards: the seller's account in one, the buyer's in the other. The matcher
    # sends the trade to both; each settles the side it holds, and the cash and shares that
    # crossed between them show as trade flow, which sums to zero over the two.
    sellers, buyers = new_venue(maker_bps=10, taker_bps=25), new_venue(maker_bps=10, taker_bps=25)
    fund(sellers, 2, lots=3, cost=2_400)
    fund(buyers, 1, cents=5_000)
    book = Matcher()
    book.add_symbol("AAA")
    sell, buy = make(1, 2, SELL, 1, 1001), make(2, 1, BUY, 1, 1001)
    sellers.ledger.place_order(sell, None)
    buyers.ledger.place_order(buy, None)
    book.submit(sell)
    book.submit(buy)
    events = book.take_events()
    assert [type(event) for event in events] == [Accepted, Accepted, Trade]
    for event in events:
        sellers.ledger.apply(event)
        buyers.ledger.apply(event)
    assert cash(sellers, 2) == (1001 - 2, 0) and shares(sellers, 2) == (2, 0)
    assert cash(buyers, 1) == (5_000 - 1001 - 3, 0) and shares(buyers, 1) == (1, 0)
    assert cash(sellers, VENUE_ACCOUNT_ID) == (2, 0) and cash(buyers, VENUE_ACCOUNT_ID) == (3, 0)
    assert sellers.ledger.open_orders == {} and buyers.ledger.open_orders == {}
    for asset in (CASH, "AAA"):
        flows = sellers.ledger.trade_flow[asset], buyers.ledger.trade_flow[asset]
        assert flows[0] == -flows[1] != 0
    assert sellers.ledger.check_invariants() == [] and buyers.ledger.check_invariants() == []


def test_fees_over_many_fills_of_one_taker() -> None:
    venue = new_venue(maker_bps=0, taker_bps=10)
    fund(venue, 1, cents=venue.ledger.buy_reservation(AAA, 101, 100))
    fund(venue, 2, lots=100)
    for order_id in range(1, 101):
        place(venue, make(order_id, 2, SELL, 1, 101))
    events = place(venue, make(1000, 1, BUY, 100, 101))
    trades = [e for e in events if isinstance(e, Trade) and e.taker_order_id == 1000]
    assert [trade.taker_leaves for trade in trades] == list(range(99, -1, -1))
    assert venue.ledger.accounts[1].fees_paid == 11
    assert venue.ledger.accounts[2].fees_paid == 0
    assert cash(venue, 1) == (0, 0)


# Positions.


def test_position_cost_basis_average_entry_and_realized_pnl() -> None:
    venue = new_venue()
    fund(venue, 1, cents=100_000)
    fund(venue, 2, cents=100_000, lots=100)
    place(venue, make(1, 2, SELL, 10, 100))
    place(venue, make(2, 1, BUY, 10, 100))
    place(venue, make(3, 2, SELL, 10, 110))
    place(venue, make(4, 1, BUY, 10, 110))
    position = venue.ledger.position(1, "AAA")
    assert position == Position("AAA", 20, 2_100, 0)
    assert position.cost / position.qty == 105  # the average entry, in cents a share

    place(venue, make(5, 2, BUY, 5, 120))
    place(venue, make(6, 1, SELL, 5, 120))  # sells a quarter: cost 525, proceeds 600
    assert venue.ledger.position(1, "AAA") == Position("AAA", 15, 1_575, 75)
    assert venue.ledger.position(1, "AAA").cost / 15 == 105

    place(venue, make(7, 2, BUY, 15, 90))
    place(venue, make(8, 1, SELL, 15, 90))  # the rest at a loss: 1350 - 1575
    assert venue.ledger.position(1, "AAA") == Position("AAA", 0, 0, -150)


def test_position_counts_reserved_lots_and_partial_sells() -> None:
    venue = new_venue()
    fund(venue, 1, lots=10, cost=1_000)
    fund(venue, 2, cents=100_000)
    place(venue, make(1, 1, SELL, 6, 150))
    assert venue.ledger.position(1, "AAA") == Position("AAA", 10, 1_000, 0)
    place(venue, make(2, 2, BUY, 2, 150))  # a partial fill of the sell
    assert venue.ledger.position(1, "AAA") == Position("AAA", 8, 800, 100)
    assert shares(venue, 1) == (4, 4)
    assert venue.ledger.position(2, "AAA") == Position("AAA", 2, 300, 0)
    assert venue.ledger.position(2, "BBB") == Position("BBB", 0, 0, 0)


def test_share_deposits_and_withdrawals_move_the_cost_basis() -> None:
    venue = new_venue()
    fund(venue, 1)
    venue.ledger.deposit_shares("d1", 1, "AAA", 10, 1_000)
    venue.ledger.deposit_shares("d2", 1, "AAA", 10, 3_000)
    assert venue.ledger.position(1, "AAA") == Position("AAA", 20, 4_000, 0)
    venue.ledger.withdraw_shares("w1", 1, "AAA", 5)
    assert venue.ledger.position(1, "AAA") == Position("AAA", 15, 3_000, 0)
    assert venue.ledger.check_invariants() == []


# Transfers.


def test_cash_transfers_are_idempotent_by_transfer_id() -> None:
    venue = new_venue()
    fund(venue, 1)
    ledger = venue.ledger
    ledger.deposit_cash("t1", 1, 500)
    ledger.deposit_cash("t1", 1, 500)
    assert cash(venue, 1) == (500, 0)
    ledger.withdraw_cash("t2", 1, 200)
    ledger.withdraw_cash("t2", 1, 200)
    assert cash(venue, 1) == (300, 0)
    assert ledger.net_deposits[CASH] == 300
    assert ledger.check_invariants() == []


def test_share_transfers_are_idempotent_by_transfer_id() -> None:
    venue = new_venue()
    fund(venue, 1)
    ledger = venue.ledger
    ledger.deposit_shares("s1", 1, "AAA", 10, 900)
    ledger.deposit_shares("s1", 1, "AAA", 10, 900)
    ledger.withdraw_shares("s2", 1, "AAA", 4)
    ledger.withdraw_shares("s2", 1, "AAA", 4)
    assert venue.ledger.position(1, "AAA") == Position("AAA", 6, 540, 0)
    assert ledger.check_invariants() == []


def test_transfer_id_reused_with_other_params_is_a_conflict() -> None:
    venue = new_venue()
    fund(venue, 1)
    fund(venue, 2)
    ledger = venue.ledger
    ledger.deposit_cash("t1", 1, 500)
    ledger.deposit_shares("s1", 1, "AAA", 10, 900)
    before = ledger.state_hash()
    for attempt in (
        lambda: ledger.deposit_cash("t1", 1, 501),
        lambda: ledger.deposit_cash("t1", 2, 500),
        lambda: ledger.withdraw_cash("t1", 1, 500),
        lambda: ledger.deposit_shares("t1", 1, "AAA", 500),
        lambda: ledger.deposit_shares("s1", 1, "AAA", 10, 901),
        lambda: ledger.deposit_shares("s1", 1, "BBB", 10, 900),
        lambda: ledger.withdraw_shares("s1", 1, "AAA", 10),
    ):
        with pytest.raises(LedgerError) as info:
            attempt()
        assert info.value.code == "transfer_conflict"
        assert ledger.state_hash() == before


@pytest.mark.parametrize(
    ("account_id", "asset", "amount", "code"),
    [
        (99, CASH, 100, "unknown_account"),
        (1, "ZZZ", 100, "unknown_symbol"),
        (1, CASH, 0, "invalid_amount"),
        (1, "AAA", 0, "invalid_amount"),
    ],
)
def test_bad_deposits_are_refused(account_id: int, asset: str, amount: int, code: str) -> None:
    venue = new_venue()
    fund(venue, 1)
    before = venue.ledger.state_hash()
    with pytest.raises(LedgerError) as info:
        if asset == CASH:
            venue.ledger.deposit_cash("t", account_id, amount)
        else:
            venue.ledger.deposit_shares("t", account_id, asset, amount)
    assert info.value.code == code
    assert venue.ledger.state_hash() == before
    assert "t" not in venue.ledger.transfers


def test_withdrawal_beyond_free_is_refused_and_changes_nothing() -> None:
    venue = new_venue()
    fund(venue, 1, cents=1_000, lots=10)
    place(venue, make(1, 1, BUY, 6, 100))  # 600 of the cash reserved
    place(venue, make(2, 1, SELL, 7, 200))  # 7 of the lots reserved
    before = venue.ledger.state_hash()
    with pytest.raises(LedgerError) as info:
        venue.ledger.withdraw_cash("w1", 1, 401)
    assert info.value.code == "insufficient_funds"
    with pytest.raises(LedgerError) as info:
        venue.ledger.withdraw_shares("w2", 1, "AAA", 4)
    assert info.value.code == "insufficient_shares"
    assert venue.ledger.state_hash() == before
    venue.ledger.withdraw_cash("w1", 1, 400)  # a refused id is free to use again
    venue.ledger.withdraw_shares("w2", 1, "AAA", 3)
    assert cash(venue, 1) == (0, 600)
    assert shares(venue, 1) == (0, 7)
    assert venue.ledger.check_invariants() == []


def test_refused_share_withdrawal_without_a_holding_changes_nothing() -> None:
    venue = new_venue()
    fund(venue, 1, cents=1_000)
    before = venue.ledger.state_hash()
    with pytest.raises(LedgerError) as info:
        venue.ledger.withdraw_shares("w", 1, "AAA", 1)
    assert info.value.code == "insufficient_shares"
    assert venue.ledger.state_hash() == before


def test_negative_transfer_amounts_are_refused() -> None:
    venue = new_venue()
    fund(venue, 1, cents=1_000, lots=10)
    before = venue.ledger.state_hash()
    for attempt in (
        lambda: venue.ledger.withdraw_cash("n1", 1, -1_000_000),
        lambda: venue.ledger.deposit_cash("n2", 1, -500),
        lambda: venue.ledger.withdraw_shares("n3", 1, "AAA", -5),
        lambda: venue.ledger.deposit_shares("n4", 1, "AAA", -5),
    ):
        with pytest.raises(LedgerError) as info:
            attempt()
        assert info.value.code == "invalid_amount"
    assert venue.ledger.state_hash() == before


# Client order ids.


def test_client_order_ids_are_unique_per_account() -> None:
    venue = new_venue()
    fund(venue, 1, cents=10_000)
    fund(venue, 2, cents=10_000)
    place(venue, make(1, 1, BUY, 1, 100), "mine")
    before = venue.ledger.state_hash()
    with pytest.raises(LedgerError) as info:
        venue.ledger.place_order(make(2, 1, BUY, 1, 100), "mine")
    assert info.value.code == "duplicate_client_order_id"
    assert venue.ledger.state_hash() == before
    place(venue, make(3, 2, BUY, 1, 100), "mine")  # another account may use it
    cancel(venue, 1, 1)
    with pytest.raises(LedgerError) as info:  # still taken once the order is done
        venue.ledger.place_order(make(4, 1, BUY, 1, 100), "mine")
    assert info.value.code == "duplicate_client_order_id"
    assert venue.ledger.client_order_ids.get(1, {}) == {"mine": 1}
    assert venue.ledger.client_order_ids.get(2, {}) == {"mine": 3}


# Replacement.


def test_replaced_releases_the_old_orders_remainder() -> None:
    venue = new_venue()
    fund(venue, 1, cents=2_000)
    fund(venue, 2, lots=10)
    place(venue, make(1, 1, BUY, 10, 100))
    place(venue, make(2, 2, SELL, 3, 100))  # 3 of the 10 fill
    assert cash(venue, 1) == (1_000, 700)
    venue.ledger.reserve_replacement(1, 1, 11, 5, 100, "new-coid")
    assert cash(venue, 1) == (500, 1_200)
    venue.matcher.replace("AAA", 1, 1, 11, 5, 100, 0, 0)
    events = pump(venue)
    assert [(type(e), e.kept_priority) for e in events if isinstance(e, Replaced)] == [
        (Replaced, True)
    ]
    assert cash(venue, 1) == (1_200, 500)
    assert set(venue.ledger.open_orders) == {11}
    assert venue.ledger.open_orders[11].replaces == 0
    assert venue.ledger.client_order_ids.get(1, {}) == {"new-coid": 11}


def test_replacement_that_trades_settles_the_new_order() -> None:
    venue = new_venue()
    fund(venue, 1, cents=2_000)
    fund(venue, 2, lots=10)
    place(venue, make(1, 2, SELL, 10, 105))
    place(venue, make(2, 1, BUY, 10, 100))
    venue.ledger.reserve_replacement(2, 1, 12, 4, 105)
    venue.matcher.replace("AAA", 2, 1, 12, 4, 105, 0, 0)
    pump(venue)
    assert cash(venue, 1) == (2_000 - 420, 0)
    assert shares(venue, 1) == (4, 0)
    assert venue.ledger.open_orders.keys() == {1}


def test_replace_rejected_releases_the_new_order() -> None:
    venue = new_venue()
    fund(venue, 1, cents=2_000)
    fund(venue, 2, lots=10)
    place(venue, make(1, 2, SELL, 5, 101))
    place(venue, make(2, 1, BUY, 5, 100, post_only=True))
    venue.ledger.reserve_replacement(2, 1, 12, 5, 101)
    assert cash(venue, 1) == (2_000 - 1_005, 1_005)
    venue.matcher.replace("AAA", 2, 1, 12, 5, 101, 0, 0)
    events = pump(venue)
    assert [e.reason for e in events if isinstance(e, ReplaceRejected)] == ["post_only_would_take"]
    assert cash(venue, 1) == (1_500, 500)
    assert set(venue.ledger.open_orders) == {1, 2}


def test_replace_rejected_after_the_old_order_ended() -> None:
    venue = new_venue()
    fund(venue, 1, lots=10)
    fund(venue, 2, cents=10_000)
    place(venue, make(1, 1, SELL, 4, 100))
    venue.ledger.reserve_replacement(1, 1, 11, 6, 100)
    assert shares(venue, 1) == (0, 10)
    place(venue, make(2, 2, BUY, 4, 100))  # the old order fills before the replace arrives
    venue.matcher.replace("AAA", 1, 1, 11, 6, 100, 0, 0)
    events = pump(venue)
    assert [e.reason for e in events if isinstance(e, ReplaceRejected)] == ["unknown_order"]
    assert shares(venue, 1) == (6, 0)
    assert venue.ledger.open_orders == {}


def test_reserve_replacement_refusals_change_nothing() -> None:
    venue = new_venue()
    fund(venue, 1, cents=1_500)
    fund(venue, 2, cents=1_000)
    place(venue, make(1, 1, BUY, 10, 100), "a")
    place(venue, make(2, 2, BUY, 1, 100))
    before = venue.ledger.state_hash()
    for args, code in (
        ((99, 1, 11, 5, 100, None), "unknown_order"),
        ((2, 1, 11, 5, 100, None), "unknown_order"),  # another account's order
        ((1, 1, 11, 0, 100, None), "invalid_order"),
        ((1, 1, 11, 5, 0, None), "invalid_order"),
        ((1, 1, 2, 5, 100, None), "duplicate_order_id"),
        ((1, 1, 11, 5, 100, "a"), "duplicate_client_order_id"),
        ((1, 1, 11, 6, 100, None), "insufficient_buying_power"),
    ):
        with pytest.raises(LedgerError) as info:
            venue.ledger.reserve_replacement(*args)  # type: ignore[arg-type]
        assert info.value.code == code
        assert venue.ledger.state_hash() == before


# Robustness and invariants.


def test_events_for_unknown_orders_are_ignored() -> None:
    venue = new_venue()
    fund(venue, 1, cents=1_000, lots=5)
    place(venue, make(1, 1, BUY, 5, 100))
    before = venue.ledger.state_hash()
    for event in (
        Canceled("AAA", 1, 0, 77, 1, BUY, 5, "requested"),
        Expired("AAA", 1, 0, 77, 1, SELL, 5),
        Rejected("AAA", 1, 0, 77, 1, "halted"),
        Replaced("AAA", 1, 0, 77, 1, BUY, 78, 100, 0, 5, False),
        ReplaceRejected("AAA", 1, 0, 77, 1, 78, "unknown_order"),
        ReplaceRejected("AAA", 1, 0, 77, 1, 1, "unknown_order"),  # 1 replaces nothing
        Trade("AAA", 1, 0, 100, 5, 77, 1, 0, 78, 2, SELL, 3),
    ):
        venue.ledger.apply(event)
    assert venue.ledger.state_hash() == before
    assert venue.ledger.check_invariants() == []


def scripted_session(venue: Venue) -> None:
    """A deterministic mix of orders between four accounts; invariants checked throughout."""
    for account_id in (1, 2, 3, 4):
        fund(venue, account_id, cents=1_000_000, lots=1_000, cost=50_000)
    for step in range(200):
        order_id = step + 1
        account_id = step % 4 + 1
        side = BUY if (step * 7) % 3 else SELL
        price = 95 + (step * 13) % 11
        qty = 1 + (step * 5) % 9
        tif = (TimeInForce.GTC, TimeInForce.DAY, TimeInForce.IOC)[step % 3]
        stp = SelfTradePrevention((step % 4) + 1)
        place(venue, make(order_id, account_id, side, qty, price, tif=tif, stp=stp))
        if step % 10 == 9:
            cancel(venue, order_id - 3, (step - 3) % 4 + 1)
        if step % 50 == 49:
            venue.matcher.close_session(step)
            pump(venue)


def test_check_invariants_holds_throughout_a_session() -> None:
    venue = new_venue(maker_bps=7, taker_bps=23)
    scripted_session(venue)
    assert any(isinstance(event, Trade) for event in venue.events)
    assert cash(venue, VENUE_ACCOUNT_ID)[0] > 0
    assert venue.ledger.check_invariants() == []
    total_fees = sum(account.fees_paid for account in venue.ledger.accounts.values())
    assert total_fees == cash(venue, VENUE_ACCOUNT_ID)[0]


def test_check_invariants_detects_corruption() -> None:
    venue = new_venue(maker_bps=7, taker_bps=23)
    scripted_session(venue)
    assert venue.ledger.open_orders
    ledger = venue.ledger

    ledger.accounts[1].cash_free += 1
    assert ledger.check_invariants() != []
    ledger.accounts[1].cash_free -= 1
    assert ledger.check_invariants() == []

    ledger.accounts[2].cash_free -= 5
    ledger.accounts[3].cash_reserved += 5  # totals still balance, reservations do not
    assert ledger.check_invariants() != []
    ledger.accounts[2].cash_free += 5
    ledger.accounts[3].cash_reserved -= 5

    ledger.accounts[4].holdings["AAA"].free += 1
    assert ledger.check_invariants() != []
    ledger.accounts[4].holdings["AAA"].free -= 1

    next(iter(ledger.open_orders.values())).reserved += 1
    assert ledger.check_invariants() != []
    next(iter(ledger.open_orders.values())).reserved -= 1

    ledger.accounts[VENUE_ACCOUNT_ID].cash_free -= 1_000_000_000
    assert ledger.check_invariants() != []  # negative and unbalanced
    ledger.accounts[VENUE_ACCOUNT_ID].cash_free += 1_000_000_000
    assert ledger.check_invariants() == []


def test_fee_rates_must_be_in_range() -> None:
    for maker, taker in ((-1, 0), (0, -1), (10_000, 0), (0, 10_000)):
        with pytest.raises(ValueError, match="fee rates"):
            Ledger(SYMBOLS, maker, taker)
    Ledger(SYMBOLS, 9_999, 9_999)


# Snapshots.


def test_export_restore_round_trip() -> None:
    venue = new_venue(maker_bps=7, taker_bps=23)
    scripted_session(venue)
    state = venue.ledger.export_state()
    restored = Ledger.restore(state, SYMBOLS)
    assert restored.state_hash() == venue.ledger.state_hash()
    assert restored.check_invariants() == []
    wire = msgspec.json.decode(msgspec.json.encode(state), type=LedgerState)
    from_wire = Ledger.restore(wire, SYMBOLS)
    assert from_wire.state_hash() == venue.ledger.state_hash()

    # The same orders and events then do the same to all three.
    assert venue.ledger.open_orders
    orders = [make(901, 2, SELL, 40, 90), make(902, 3, BUY, 60, 110, tif=TimeInForce.DAY)]
    ledgers = (venue.ledger, restored, from_wire)
    events: list[Event] = []
    for order in orders:
        for ledger in ledgers:
            ledger.place_order(msgspec.structs.replace(order))
        venue.matcher.submit(order)
        events += venue.matcher.take_events()
    venue.matcher.close_session(1_000)
    events += venue.matcher.take_events()
    assert any(isinstance(event, Trade) for event in events)
    for ledger in ledgers:
        for event in events:
            ledger.apply(event)
        ledger.deposit_cash("after", 1, 10)
        assert ledger.check_invariants() == []
    assert restored.state_hash() == from_wire.state_hash() == venue.ledger.state_hash()


def test_state_hash_tracks_the_state() -> None:
    one, two = new_venue(), new_venue()
    assert one.ledger.state_hash() == two.ledger.state_hash()
    fund(one, 1, cents=100)
    fund(two, 1, cents=100)
    assert one.ledger.state_hash() == two.ledger.state_hash()
    one.ledger.deposit_cash("x", 1, 1)
    assert one.ledger.state_hash() != two.ledger.state_hash()
    assert new_venue(maker_bps=1).ledger.state_hash() != new_venue().ledger.state_hash()


def test_export_is_a_snapshot() -> None:
    venue = new_venue()
    fund(venue, 1, cents=1_000)
    state = venue.ledger.export_state()
    saved = venue.ledger.state_hash()
    venue.ledger.deposit_cash("later", 1, 500)
    place(venue, make(1, 1, BUY, 1, 100))
    assert Ledger.restore(state, SYMBOLS).state_hash() == saved
