"""OCO pairs in the matcher: a limit leg and a stop leg that together never trade more than the
pair's qty, since the book ties them inside the command that trades or triggers either."""

from __future__ import annotations

import itertools
from decimal import Decimal

import msgspec
from builders import make
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tradepit.domain.commands import SubmitOco
from tradepit.domain.events import (
    Accepted,
    Canceled,
    CancelReason,
    Event,
    Expired,
    Rejected,
    RejectReason,
    Replaced,
    ReplaceRejected,
    Resized,
    Trade,
    Triggered,
)
from tradepit.domain.orders import Order, OrderType, SelfTradePrevention, Side, TimeInForce
from tradepit.domain.symbols import Symbol
from tradepit.ledger import Ledger
from tradepit.matcher import Matcher
from tradepit.matcher.book import Book

SYM = "AAA"
BUY = Side.BUY
SELL = Side.SELL
OWNER = 9
ids = itertools.count(1000)


def pair(
    side: Side,
    qty: int,
    limit: int,
    stop: int,
    *,
    stop_limit: int = 0,
    tif: TimeInForce = TimeInForce.GTC,
    account: int = OWNER,
) -> tuple[Order, Order]:
    limit_id, stop_id = next(ids), next(ids)
    take = make(limit_id, account, side, qty, limit, tif=tif)
    protection = stop_limit or (1 if side is SELL else 10_000)
    kind = OrderType.STOP_LIMIT if stop_limit else OrderType.STOP
    loss = make(stop_id, account, side, qty, protection, kind=kind, stop_price=stop, tif=tif)
    take.oco, loss.oco = stop_id, limit_id
    return take, loss


def new_matcher(last: int = 100) -> Matcher:
    """A book that last traded at `last`, with nothing resting."""
    matcher = Matcher()
    matcher.add_symbol(SYM)
    matcher.submit(make(next(ids), 1, SELL, 1, last))
    matcher.submit(make(next(ids), 2, BUY, 1, last))
    matcher.take_events()
    return matcher


def of(events: list[Event], kind: type[Event]) -> list[Event]:
    return [event for event in events if isinstance(event, kind)]


def test_both_legs_are_accepted_the_stop_waits_the_limit_rests() -> None:
    matcher = new_matcher()
    take, loss = pair(SELL, 5, 110, 90)
    matcher.apply([SubmitOco(take, loss)])
    events = matcher.take_events()
    assert [type(event) for event in events] == [Accepted, Accepted]
    book = matcher.books[SYM]
    assert book.depth(SELL) == [(110, 5)]
    assert loss.order_id in book.stop_orders
    assert book.oco == {take.order_id: loss.order_id, loss.order_id: take.order_id}


def test_a_partial_fill_of_the_limit_leg_resizes_the_stop_leg() -> None:
    matcher = new_matcher()
    take, loss = pair(SELL, 5, 110, 90)
    matcher.submit_oco(take, loss)
    matcher.take_events()
    matcher.submit(make(next(ids), 1, BUY, 2, 110))
    events = matcher.take_events()
    (trade,) = of(events, Trade)
    (resized,) = of(events, Resized)
    assert trade.maker_order_id == take.order_id  # type: ignore[attr-defined]
    assert resized == Resized(SYM, resized.seq, resized.ts, loss.order_id, OWNER, SELL, 2, 3)
    assert loss.leaves == loss.qty == 3
    # The stop now sells only the 3 lots left: its trigger cannot sell the 2 sold again.
    matcher.submit(make(next(ids), 3, BUY, 10, 80))
    matcher.submit(make(next(ids), 4, SELL, 1, 80))
    events = matcher.take_events()
    assert any(isinstance(e, Triggered) and e.order_id == loss.order_id for e in events)
    sold = sum(
        e.qty
        for e in of(events, Trade)
        if e.taker_order_id == loss.order_id  # type: ignore[attr-defined]
    )
    assert sold == 3
    assert not matcher.books[SYM].oco


def test_a_full_fill_of_the_limit_leg_cancels_the_stop_leg_in_the_same_command() -> None:
    matcher = new_matcher()
    take, loss = pair(SELL, 5, 110, 90)
    matcher.submit_oco(take, loss)
    matcher.take_events()
    matcher.submit(make(next(ids), 1, BUY, 7, 110))
    events = matcher.take_events()
    canceled = [e for e in of(events, Canceled) if e.order_id == loss.order_id]  # type: ignore[attr-defined]
    assert len(canceled) == 1 and canceled[0].reason == CancelReason.OCO  # type: ignore[attr-defined]
    book = matcher.books[SYM]
    assert not book.oco and not book.stop_orders


def test_a_trigger_of_the_stop_leg_cancels_the_limit_leg_before_it_trades() -> None:
    matcher = new_matcher()
    take, loss = pair(SELL, 5, 110, 90)
    matcher.submit_oco(take, loss)
    matcher.submit(make(next(ids), 1, BUY, 9, 89))
    matcher.take_events()
    matcher.submit(make(next(ids), 2, SELL, 1, 89))  # trades at 89: the stop at 90 triggers
    events = matcher.take_events()
    kinds = [(type(e).__name__, getattr(e, "order_id", None)) for e in events]
    assert kinds.index(("Canceled", take.order_id)) < kinds.index(("Triggered", loss.order_id))
    assert matcher.books[SYM].depth(SELL) == []
    assert loss.oco == 0 and not matcher.books[SYM].oco


def test_a_marketable_limit_leg_trades_at_once_and_the_stop_follows() -> None:
    matcher = new_matcher()
    matcher.submit(make(next(ids), 1, BUY, 2, 105))
    matcher.take_events()
    take, loss = pair(SELL, 5, 104, 90)
    matcher.submit_oco(take, loss)
    events = matcher.take_events()
    assert [type(e) for e in events] == [Accepted, Accepted, Trade, Resized]
    assert loss.leaves == 3 and take.leaves == 3


def test_cancelling_either_leg_cancels_both() -> None:
    for cancel_stop in (False, True):
        matcher = new_matcher()
        take, loss = pair(SELL, 5, 110, 90)
        matcher.submit_oco(take, loss)
        matcher.take_events()
        first, second = (loss, take) if cancel_stop else (take, loss)
        matcher.cancel(SYM, first.order_id, OWNER, 1)
        events = matcher.take_events()
        assert [(type(e), e.order_id) for e in events] == [  # type: ignore[attr-defined]
            (Canceled, first.order_id),
            (Canceled, second.order_id),
        ]
        assert events[1].reason == CancelReason.OCO  # type: ignore[attr-defined]
        book = matcher.books[SYM]
        assert not book.oco and not book.stop_orders and not book.orders


def test_a_bad_pair_is_rejected_whole() -> None:
    matcher = new_matcher()
    take, loss = pair(SELL, 5, 110, 90)
    loss.qty = 4
    matcher.submit_oco(take, loss)
    events = matcher.take_events()
    assert [(type(e), e.reason) for e in events] == [  # type: ignore[attr-defined]
        (Rejected, RejectReason.INVALID_QTY),
        (Rejected, RejectReason.INVALID_QTY),
    ]
    take, loss = pair(SELL, 5, 110, 90, tif=TimeInForce.IOC)
    matcher.submit_oco(take, loss)
    assert {e.reason for e in matcher.take_events()} == {RejectReason.INVALID_ORDER}  # type: ignore[attr-defined]
    assert not matcher.books[SYM].oco


def test_a_replaced_leg_stays_a_leg_at_the_pairs_size() -> None:
    matcher = new_matcher()
    take, loss = pair(SELL, 5, 110, 90)
    matcher.submit_oco(take, loss)
    matcher.take_events()
    new_id = next(ids)
    matcher.replace(SYM, take.order_id, OWNER, new_id, 4, 111, 0, 1)
    (refused,) = matcher.take_events()
    assert isinstance(refused, ReplaceRejected) and refused.reason == RejectReason.INVALID_QTY
    book = matcher.books[SYM]
    assert take.order_id in book.oco  # refused: a leg keeps its pair's size
    matcher.replace(SYM, take.order_id, OWNER, new_id, 5, 111, 0, 2)
    (replaced,) = of(matcher.take_events(), Replaced)
    assert book.oco == {new_id: loss.order_id, loss.order_id: new_id}
    assert loss.oco == new_id
    matcher.cancel(SYM, loss.order_id, OWNER, 3)
    assert [e.order_id for e in of(matcher.take_events(), Canceled)] == [  # type: ignore[attr-defined]
        loss.order_id,
        new_id,
    ]
    assert replaced.qty == 5


def test_day_legs_expire_together_and_a_restored_book_keeps_its_pairs() -> None:
    matcher = new_matcher()
    take, loss = pair(SELL, 5, 110, 90, tif=TimeInForce.DAY)
    matcher.submit_oco(take, loss)
    matcher.take_events()
    restored = Book.restore(matcher.books[SYM].export_state(), [])
    assert restored.oco == matcher.books[SYM].oco
    matcher.close_session(1)
    assert len(of(matcher.take_events(), Expired)) == 2
    assert not matcher.books[SYM].oco


# A stateful test: random pairs, orders, cancels and replaces on one book, checked after each.

PRICES = st.integers(95, 105)
QTYS = st.integers(1, 8)


class OcoMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.matcher = new_matcher()
        self.book = self.matcher.books[SYM]
        self.pairs: list[tuple[int, int, int]] = []  # (limit id, stop id, qty)
        self.traded: dict[int, int] = {}
        self.known: list[int] = []
        self.ts = 0

    def feed(self, leg: bool = False) -> None:
        """Count the events' fills; `leg`: the command replaced a leg of a pair."""
        for event in self.matcher.take_events():
            if isinstance(event, Trade):
                for order_id in (event.maker_order_id, event.taker_order_id):
                    self.traded[order_id] = self.traded.get(order_id, 0) + event.qty
            elif isinstance(event, Replaced) and leg:
                # A replacement trades on for its leg: count its fills with the pair's.
                for index, (limit_id, stop_id, qty) in enumerate(self.pairs):
                    if event.order_id in (limit_id, stop_id):
                        done = self.traded.get(limit_id, 0) + self.traded.get(stop_id, 0)
                        other = stop_id if event.order_id == limit_id else limit_id
                        self.traded[event.new_order_id] = done - self.traded.get(other, 0)
                        self.pairs[index] = (
                            (event.new_order_id, stop_id, qty)
                            if event.order_id == limit_id
                            else (limit_id, event.new_order_id, qty)
                        )
            if isinstance(event, Replaced):
                self.known.append(event.new_order_id)

    @rule(side=st.sampled_from(Side), qty=QTYS, gap=st.integers(1, 5), limit=st.booleans())
    def oco(self, side: Side, qty: int, gap: int, limit: bool) -> None:
        last = self.book.last_price
        sign = 1 if side is SELL else -1
        take, loss = pair(
            side,
            qty,
            last + sign * gap,
            last - sign * gap,
            stop_limit=(last - sign * (gap + 2)) if limit else 0,
            account=1 + qty % 3,
        )
        self.ts += 1
        take.ts = loss.ts = self.ts
        self.matcher.submit_oco(take, loss)
        self.pairs.append((take.order_id, loss.order_id, qty))
        self.known += [take.order_id, loss.order_id]
        self.feed()

    @rule(
        side=st.sampled_from(Side),
        qty=QTYS,
        price=PRICES,
        account=st.integers(1, 3),
        stp=st.sampled_from(SelfTradePrevention),
        market=st.booleans(),
    )
    def order(
        self, side: Side, qty: int, price: int, account: int, stp: SelfTradePrevention, market: bool
    ) -> None:
        self.ts += 1
        order = make(next(ids), account, side, qty, price, stp=stp, ts=self.ts)
        if market:
            order.type = OrderType.MARKET
            order.price = 1 if side is SELL else 10_000
        self.matcher.submit(order)
        self.known.append(order.order_id)
        self.feed()

    @precondition(lambda self: bool(self.known))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        order_id = data.draw(st.sampled_from(self.known))
        order = self.book.get(order_id)
        self.ts += 1
        self.matcher.cancel(SYM, order_id, order.account_id if order else 1, self.ts)
        self.feed()

    @precondition(lambda self: bool(self.known))
    @rule(data=st.data(), price=PRICES, same_size=st.booleans())
    def replace(self, data: st.DataObject, price: int, same_size: bool) -> None:
        order_id = data.draw(st.sampled_from(self.known))
        order = self.book.get(order_id)
        if order is None:
            return
        self.ts += 1
        leg = order_id in self.book.oco
        qty = order.leaves if same_size else order.leaves + 1
        is_stop = order.type in (OrderType.STOP, OrderType.STOP_LIMIT)
        new_price = order.price if order.type is OrderType.STOP else price
        self.matcher.replace(
            SYM,
            order_id,
            order.account_id,
            next(ids),
            qty,
            new_price,
            price if is_stop else 0,
            self.ts,
        )
        self.feed(leg)

    @rule()
    def close(self) -> None:
        self.ts += 1
        self.matcher.close_session(self.ts)
        self.feed()

    @invariant()
    def a_pair_never_trades_more_than_its_qty(self) -> None:
        for limit_id, stop_id, qty in self.pairs:
            assert self.traded.get(limit_id, 0) + self.traded.get(stop_id, 0) <= qty

    @invariant()
    def linked_legs_have_equal_leaves(self) -> None:
        book = self.book
        for order_id, other in book.oco.items():
            assert book.oco[other] == order_id
            leg, sibling = book.get(order_id), book.get(other)
            assert leg is not None and sibling is not None
            assert leg.leaves == sibling.leaves > 0
            assert leg.oco == other
        # The stop leg waits: a pair always has one among the stops.
        for order_id in book.oco:
            assert (order_id in book.stop_orders) != (book.oco[order_id] in book.stop_orders)

    @invariant()
    def a_restored_book_is_the_same(self) -> None:
        state = self.book.export_state()
        restored = Book.restore(
            msgspec.json.decode(msgspec.json.encode(state), type=type(state)), []
        )
        assert restored.oco == self.book.oco
        assert restored.export_state() == state


TestOcoMachine = OcoMachine.TestCase
TestOcoMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


# The ledger: one reservation per pair, legs waiting for their entry.


class Venue:
    """A ledger and a matcher, the ledger's released legs sent on as the ledger stage sends
    them."""

    def __init__(self) -> None:
        self.ledger = Ledger([Symbol(SYM, tick_size=Decimal("1"))])
        self.matcher = new_matcher()
        for account in (1, 2, 3, OWNER):
            self.ledger.open_account(account)
            self.ledger.deposit_cash(f"c{account}", account, 1_000_000)
        self.ledger.deposit_shares("s", 2, SYM, 100)
        self.dropped: list[tuple[int, str]] = []

    def pump(self) -> list[Event]:
        every: list[Event] = []
        while True:
            events = self.matcher.take_events()
            for event in events:
                self.ledger.apply(event)
            every += events
            released, dropped = self.ledger.take_legs()
            self.dropped += dropped
            if not released:
                assert self.ledger.check_invariants() == []
                return every
            self.matcher.apply(released)

    def shares(self, account: int = OWNER) -> tuple[int, int]:
        holding = self.ledger.accounts[account].holdings.get(SYM)
        return (holding.free, holding.reserved) if holding else (0, 0)


def bracket(qty: int = 10, entry: int = 100) -> tuple[Order, Order, Order]:
    parent = make(next(ids), OWNER, BUY, qty, entry)
    take, loss = pair(SELL, qty, 110, 90)
    return parent, take, loss


def test_a_brackets_legs_wait_for_the_entry_to_fill_completely() -> None:
    venue = Venue()
    parent, take, loss = bracket()
    venue.ledger.place_with_legs(parent, [take, loss])
    venue.matcher.submit(parent)
    venue.pump()
    venue.matcher.submit(make(next(ids), 2, SELL, 4, 100))
    venue.pump()
    book = venue.matcher.books[SYM]
    assert take.order_id not in book.orders and venue.shares() == (4, 0)  # partly: they wait
    venue.matcher.submit(make(next(ids), 2, SELL, 6, 100))
    venue.pump()
    # Filled: both legs live as one pair, the ten shares reserved once for the two of them.
    assert book.oco == {take.order_id: loss.order_id, loss.order_id: take.order_id}
    assert venue.shares() == (0, 10)
    # The take-profit fills 4: the stop-loss sells the 6 left, reserved once still.
    venue.matcher.submit(make(next(ids), 3, BUY, 4, 110))
    venue.pump()
    assert venue.shares() == (0, 6)
    assert venue.ledger.open_orders[loss.order_id].leaves == 6
    # The stop triggers: the take-profit goes, the stop sells the 6.
    venue.matcher.submit(make(next(ids), 3, BUY, 20, 85))
    venue.matcher.submit(make(next(ids), 2, SELL, 1, 85))
    venue.pump()
    assert venue.shares() == (0, 0)
    assert not venue.ledger.open_orders.keys() & {take.order_id, loss.order_id}


def test_cancelling_the_entry_cancels_its_waiting_legs() -> None:
    venue = Venue()
    parent, take, loss = bracket()
    venue.ledger.place_with_legs(parent, [take, loss])
    venue.matcher.submit(parent)
    venue.matcher.submit(make(next(ids), 2, SELL, 3, 100))
    venue.pump()
    venue.matcher.cancel(SYM, parent.order_id, OWNER, 1)
    venue.pump()
    assert venue.dropped == [(take.order_id, "canceled"), (loss.order_id, "canceled")]
    assert not venue.ledger.held_legs and venue.shares() == (3, 0)
    assert venue.ledger.accounts[OWNER].cash_reserved == 0


def test_an_oto_sends_its_one_leg_and_an_oco_reserves_once() -> None:
    venue = Venue()
    parent = make(next(ids), OWNER, BUY, 5, 100)
    stop = make(next(ids), OWNER, SELL, 5, 1, kind=OrderType.STOP, stop_price=90)
    venue.ledger.place_with_legs(parent, [stop])
    venue.matcher.submit(parent)
    venue.matcher.submit(make(next(ids), 2, SELL, 5, 100))
    venue.pump()
    assert stop.order_id in venue.matcher.books[SYM].stop_orders
    assert venue.shares() == (0, 5)
    # An OCO of the shares held by account 2: 10 lots reserved for the two legs, not 20.
    # (Its counterparties here are the matcher's alone: this ledger settles OWNER's side.)
    take, loss = pair(SELL, 10, 120, 80, account=2)
    venue.matcher.apply([venue.ledger.place_oco(take, loss)])
    venue.pump()
    assert venue.shares(2) == (90, 10)
    venue.matcher.cancel(SYM, loss.order_id, 2, 2)
    venue.pump()
    assert venue.shares(2) == (100, 0)


def test_a_replaced_leg_keeps_the_pairs_one_reservation() -> None:
    venue = Venue()
    take, loss = pair(SELL, 10, 120, 80, account=2)
    venue.matcher.apply([venue.ledger.place_oco(take, loss)])
    venue.pump()
    new_id = next(ids)
    venue.ledger.reserve_replacement(take.order_id, 2, new_id, 10, 118)
    venue.matcher.replace(SYM, take.order_id, 2, new_id, 10, 118, 0, 1)
    venue.pump()
    assert venue.shares(2) == (90, 10)
    assert venue.ledger.open_orders[loss.order_id].pair == new_id
    venue.matcher.submit(make(next(ids), 3, BUY, 10, 118))
    venue.pump()
    assert venue.shares(2) == (90, 0) and not venue.ledger.open_orders


def test_waiting_legs_follow_their_replaced_entry() -> None:
    venue = Venue()
    parent, take, loss = bracket(qty=10, entry=99)
    venue.ledger.place_with_legs(parent, [take, loss])
    venue.matcher.submit(parent)
    venue.pump()
    new_id = next(ids)
    venue.ledger.reserve_replacement(parent.order_id, OWNER, new_id, 6, 100)
    venue.matcher.replace(SYM, parent.order_id, OWNER, new_id, 6, 100, 0, 1)
    venue.pump()
    assert [leg.qty for leg in venue.ledger.held_legs[new_id]] == [6, 6]
    venue.matcher.submit(make(next(ids), 2, SELL, 6, 100))
    venue.pump()
    assert venue.shares() == (0, 6) and venue.matcher.books[SYM].oco
