"""Order classes in the ledger, with the matcher: brackets, OTOs and OCO pairs driven the way
the ledger stage drives them (`tradepit.stage.ledger`), checked after every step.

A Hypothesis state machine places brackets (a limit, market, stop or stop-limit entry, buy or
sell, and its two exit legs: a take-profit limit and a stop or stop-limit naming each other),
OTOs (one leg) and OCO pairs, and plain orders from every account that fill the legs partly and
fully and trigger their stops. It cancels and replaces any order it knows, in whatever state it
is in (a held leg's cancel or replace is refused, as the stage refuses it; the ledger's
refusals are counted, not failures), halts the book for one command, and closes the session.
After each step: the ledger balances, the two venues
agree on what is open and which orders are pairs, a pair (or a bracket's exits) never trades
more than its qty (the entry's filled qty), every sell's shares are reserved once, cash and
shares are conserved across the accounts, a held leg's entry is open, and every leg is
accounted for: held, released (then in the book, or ended) or dropped (reported once).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest
from builders import make
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from test_oco import OWNER, SYM, Venue, ids, new_matcher, of, pair
from test_oco import bracket as held_bracket

from tradepit.domain.commands import Submit, SubmitOco
from tradepit.domain.events import (
    Canceled,
    CancelRejected,
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
from tradepit.domain.refusals import Refusal
from tradepit.domain.symbols import Symbol
from tradepit.ledger import CASH, Ledger, LedgerError
from tradepit.matcher import Matcher
from tradepit.matcher.book import Book

BUY, SELL = Side.BUY, Side.SELL
TRADERS = (1, 2)  # the accounts that place brackets, OTOs and OCOs
OTHERS = (3, 4)  # the market around them
ACCOUNTS = TRADERS + OTHERS
TRADER_CASH, TRADER_SHARES = 5_000, 40  # cents, lots: enough for a few orders, not for all
OTHER_CASH, OTHER_SHARES = 10_000_000, 5_000
LOW, HIGH = 60, 140  # prices stay in this band of ticks
PROTECTION = 30  # a market (or stop) order's protection price: this many ticks past the last
QTYS = st.integers(1, 12)
GAPS = st.integers(1, 6)
DAY_OR_GTC = st.sampled_from([TimeInForce.DAY, TimeInForce.GTC])
STOPS = (OrderType.STOP, OrderType.STOP_LIMIT)
ENTRY_KINDS = [OrderType.LIMIT, OrderType.LIMIT, OrderType.MARKET, *STOPS]
REPLACE_TIFS = [TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK]


def clamp(price: int) -> int:
    return max(LOW, min(HIGH, price))


def protection(side: Side, last: int) -> int:
    return last + PROTECTION if side is BUY else max(1, last - PROTECTION)


def other_side(side: Side) -> Side:
    return SELL if side is BUY else BUY


def exits(
    first_id: int,
    account: int,
    side: Side,
    qty: int,
    base: int,
    take_gap: int,
    stop_gap: int,
    stop_limit: bool,
    tif: TimeInForce,
    last: int,
) -> tuple[Order, Order]:
    """A take-profit limit and a stop-loss stop (or stop-limit) exiting on `side`, `take_gap`
    and `stop_gap` ticks from `base` on their own sides of it (as the gateway builds them),
    naming each other in `oco`."""
    sign = 1 if side is SELL else -1  # a sell takes its profit above, a buy below
    take = make(first_id, account, side, qty, clamp(base + sign * take_gap), tif=tif)
    stop_price = clamp(base - sign * stop_gap)
    if stop_limit:
        limit = clamp(stop_price - sign * 2)
        loss = make(
            first_id + 1,
            account,
            side,
            qty,
            limit,
            kind=OrderType.STOP_LIMIT,
            stop_price=stop_price,
            tif=tif,
        )
    else:
        loss = make(
            first_id + 1,
            account,
            side,
            qty,
            protection(side, last),
            kind=OrderType.STOP,
            stop_price=stop_price,
            tif=tif,
        )
    take.oco, loss.oco = loss.order_id, take.order_id
    return take, loss


@dataclass
class Group:
    """Orders that together may trade no more than `qty`: an OCO pair's legs, a bracket's or
    OTO's released exits, and the replacements of those that were legs when replaced."""

    qty: int
    ids: set[int]


@dataclass
class Bracket:
    """A bracket or OTO: its entry (the last of `entries` is the live one, the others were
    replaced by it) and its legs, held, released or dropped."""

    account: int
    side: Side  # the entry's
    entries: list[int]
    legs: list[int]
    state: str = "held"  # "held", "released", "dropped"
    # How the live entry ended, seen in the events: "filled" (completely), "ended" (canceled,
    # expired or rejected with lots left), "" while it is open.
    entry_end: str = ""
    dropped_why: str = ""
    exits: Group | None = None


@dataclass
class Tally:
    """What a run did, for `event` (Hypothesis' statistics) and a look in a debugger."""

    counts: Counter[str] = field(default_factory=Counter)

    def note(self, what: str) -> None:
        self.counts[what] += 1
        event(what)


class OrderClassMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger([Symbol(SYM)], maker_fee_bps=5, taker_fee_bps=10)
        self.matcher = Matcher()
        self.book = self.matcher.add_symbol(SYM)
        self.deposited: Counter[str] = Counter()
        for account in ACCOUNTS:
            cash, shares = OTHER_CASH, OTHER_SHARES
            if account in TRADERS:
                cash, shares = TRADER_CASH, TRADER_SHARES
            self.ledger.open_account(account)
            self.ledger.deposit_cash(f"c{account}", account, cash)
            self.ledger.deposit_shares(f"s{account}", account, SYM, shares, cost=100 * shares)
            self.deposited[CASH] += cash
            self.deposited[SYM] += shares
        self.next_id = 1_000
        self.ts = 0
        self.tally = Tally()
        # What the events said: lots traded per order, and the orders that ended.
        self.traded: Counter[int] = Counter()
        self.ended: set[int] = set()
        self.known: list[int] = []  # every order id placed or made by a replace
        self.owner: dict[int, int] = {}  # order id -> account
        self.brackets: list[Bracket] = []
        self.entry_of: dict[int, Bracket] = {}  # the live entry's id -> its bracket
        self.leg_of: dict[int, Bracket] = {}  # a bracket's or OTO's leg id -> it
        self.groups: list[Group] = []
        self.group_of: dict[int, Group] = {}
        self.released_legs: set[int] = set()
        self.dropped_reports: Counter[int] = Counter()
        # The stop legs whose other leg traded in the events being applied, until they are
        # resized or canceled (as the matcher must, before they trigger).
        self.untied: set[int] = set()
        # The market trades once, between two of the others, so that stops have a last price.
        self.place(make(self.new_id(), 3, SELL, 1, 100))
        self.place(make(self.new_id(), 4, BUY, 1, 100))
        assert self.book.last_price == 100

    # Plumbing.

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def tick(self) -> int:
        self.ts += 1
        return self.ts

    def last(self) -> int:
        return self.book.last_price

    def remember(self, order: Order) -> None:
        self.known.append(order.order_id)
        self.owner[order.order_id] = order.account_id

    def place(self, order: Order) -> bool:
        """A simple order, as `_place_order` places it: reserved, then sent."""
        order.ts = self.tick()
        try:
            self.ledger.place_order(order)
        except LedgerError as error:
            self.tally.note(f"refused: place {error.code.value}")
            return False
        self.remember(order)
        self.matcher.submit(order)
        self.pump()
        return True

    def pump(self) -> None:
        """The matcher's events to the ledger, and the legs they released back to the matcher
        (as the ledger stage sends them), until no more are; what each said, recorded."""
        while True:
            self.untied = set()
            for item in self.matcher.take_events():
                self.observe(item)
                self.ledger.apply(item)
            released, dropped = self.ledger.take_legs()
            for leg_id, why in dropped:
                self.leg_dropped(leg_id, why)
            for command in released:
                self.legs_released(command)
            if not released:
                break
            self.matcher.apply(released)
        for bracket in self.brackets:
            if bracket.state == "held":
                # Its entry is open: had it ended, its legs would have been decided.
                assert not bracket.entry_end, f"legs of {bracket.entries[-1]} left undecided"

    def observe(self, item: Event) -> None:
        """One event, before the ledger applies it (so the ledger's state before it is there
        to read)."""
        if isinstance(item, Trade):
            for order_id, leaves in (
                (item.maker_order_id, item.maker_leaves),
                (item.taker_order_id, item.taker_leaves),
            ):
                self.traded[order_id] += item.qty
                open_order = self.ledger.open_orders.get(order_id)
                if open_order is not None and open_order.pair:
                    # A leg traded: its other leg is resized or canceled next, before it can
                    # trigger (`tradepit.matcher.oco`).
                    self.untied.add(open_order.pair)
                if order_id in self.group_of:
                    self.tally.note("a leg traded" + (" partly" if leaves else " fully"))
                if not leaves:
                    self.ended.add(order_id)
                    bracket = self.entry_of.get(order_id)
                    if bracket is not None and bracket.state == "held":
                        bracket.entry_end = "filled"
        elif isinstance(item, Canceled | Expired | Rejected):
            self.untied.discard(item.order_id)
            self.ended.add(item.order_id)
            bracket = self.entry_of.get(item.order_id)
            if bracket is not None and bracket.state == "held":
                bracket.entry_end = "ended"
                partly = self.traded[item.order_id] > 0
                self.tally.note(
                    f"an entry with held legs {type(item).__name__}" + (" partly" * partly)
                )
        elif isinstance(item, Replaced):
            old, new = item.order_id, item.new_order_id
            self.ended.add(old)
            bracket = self.entry_of.pop(old, None)
            if bracket is not None:
                bracket.entries.append(new)
                self.entry_of[new] = bracket
            group = self.group_of.get(old)
            open_order = self.ledger.open_orders.get(old)
            if group is not None and open_order is not None and open_order.pair:
                # A leg's replacement is the leg in its place: it trades for the group.
                group.ids.add(new)
                self.group_of[new] = group
        elif isinstance(item, ReplaceRejected):
            self.tally.note(f"replace rejected by the matcher: {item.reason}")
        elif isinstance(item, Resized):
            self.untied.discard(item.order_id)
        elif isinstance(item, Triggered) and item.order_id in self.group_of:
            self.tally.note("a stop leg triggered")
            # Its other leg may have traded in this command: then it was resized (or
            # canceled) before it triggered.
            assert item.order_id not in self.untied, "a stop leg triggered untied"

    def legs_released(self, command: object) -> None:
        if isinstance(command, SubmitOco):
            legs = [command.limit, command.stop]
        else:
            assert isinstance(command, Submit)
            legs = [command.order]
        bracket = self.leg_of[legs[0].order_id]
        assert [leg.order_id for leg in legs] == bracket.legs
        assert bracket.state == "held", "legs released twice"
        assert bracket.entry_end == "filled", "legs released before their entry filled"
        entry = bracket.entries[-1]
        assert all(leg.qty == self.traded[entry] for leg in legs)
        bracket.state = "released"
        bracket.exits = Group(legs[0].qty, {leg.order_id for leg in legs})
        self.groups.append(bracket.exits)
        for leg in legs:
            self.group_of[leg.order_id] = bracket.exits
            self.released_legs.add(leg.order_id)
        self.tally.note(f"legs released ({len(legs)})")

    def leg_dropped(self, leg_id: int, why: str) -> None:
        self.dropped_reports[leg_id] += 1
        assert self.dropped_reports[leg_id] == 1, f"leg {leg_id} dropped twice"
        assert leg_id not in self.released_legs
        bracket = self.leg_of[leg_id]
        assert bracket.state in ("held", "dropped")
        if why == "canceled":
            # Its entry ended before filling completely.
            assert bracket.entry_end == "ended", f"leg {leg_id} canceled, entry {bracket}"
        else:
            # Its entry filled, and the legs could not be reserved for.
            assert bracket.entry_end == "filled"
            assert why in {refusal.value for refusal in Refusal}
        bracket.state, bracket.dropped_why = "dropped", why
        self.tally.note(f"legs dropped: {why}")

    def held(self) -> set[int]:
        return {leg.order_id for legs in self.ledger.held_legs.values() for leg in legs}

    def is_held(self, order_id: int) -> bool:
        return order_id in self.held()

    def target(self, data: st.DataObject) -> int:
        """An order to cancel or replace: mostly one that is open or held, else any known."""
        held = self.held()
        live = [i for i in self.known if i in self.ledger.open_orders or i in held]
        if live and data.draw(st.integers(0, 4), label="live"):
            return data.draw(st.sampled_from(live), label="order")
        return data.draw(st.sampled_from(self.known), label="order")

    def state_of(self, order_id: int) -> str:
        """What the order is, for the statistics."""
        if order_id in self.entry_of and self.entry_of[order_id].state == "held":
            kind = "entry with held legs"
        elif order_id in self.leg_of and self.is_held(order_id):
            return "held leg"
        elif order_id in self.group_of:
            kind = "leg" if order_id in self.book.oco else "exit (a leg no longer)"
        else:
            kind = "order"
        if order_id not in self.ledger.open_orders:
            return f"{kind}, ended"
        return f"{kind}, {'partly filled' if self.traded[order_id] else 'open'}"

    # Rules: orders of every class.

    @rule(
        account=st.sampled_from(TRADERS),
        side=st.sampled_from(Side),
        kind=st.sampled_from(ENTRY_KINDS),
        qty=QTYS,
        offset=st.integers(-4, 4),
        take_gap=GAPS,
        stop_gap=GAPS,
        stop_limit=st.booleans(),
        tif=DAY_OR_GTC,
        oto=st.sampled_from(["bracket", "bracket", "take_profit", "stop_loss"]),
    )
    def bracket(
        self,
        account: int,
        side: Side,
        kind: OrderType,
        qty: int,
        offset: int,
        take_gap: int,
        stop_gap: int,
        stop_limit: bool,
        tif: TimeInForce,
        oto: str,
    ) -> None:
        """A bracket (entry, then an OCO pair of exits) or an OTO (entry, then one exit), as
        `_place_with_legs` places them. The entry is a limit or a market order, or a stop (or
        stop-limit) `offset` ticks from the last trade, on its own side of it."""
        last = self.last()
        entry_id = self.new_id()
        if kind is OrderType.MARKET:
            entry = make(entry_id, account, side, qty, protection(side, last), tif=tif)
            entry.type = OrderType.MARKET
            base = last
        elif kind is OrderType.LIMIT:
            entry = make(entry_id, account, side, qty, clamp(last + offset), tif=tif)
            base = entry.price
        else:
            # A buy stop waits above the last trade, a sell stop below (at it: triggers now).
            stop = clamp(last + abs(offset) if side is BUY else last - abs(offset))
            price = protection(side, last)
            if kind is OrderType.STOP_LIMIT:
                price = clamp(stop + 2 if side is BUY else stop - 2)
            entry = make(entry_id, account, side, qty, price, kind=kind, stop_price=stop, tif=tif)
            base = stop
        first_leg = self.new_id()
        self.new_id()
        take, loss = exits(
            first_leg,
            account,
            other_side(side),
            qty,
            base,
            take_gap,
            stop_gap,
            stop_limit,
            tif,
            last,
        )
        if oto == "take_profit":
            take.oco, legs = 0, [take]
        elif oto == "stop_loss":
            loss.oco, legs = 0, [loss]
        else:
            legs = [take, loss]
        entry.ts = take.ts = loss.ts = self.tick()
        try:
            self.ledger.place_with_legs(entry, legs)
        except LedgerError as error:
            self.tally.note(f"refused: bracket {error.code.value}")
            return
        bracket = Bracket(account, side, [entry_id], [leg.order_id for leg in legs])
        self.brackets.append(bracket)
        self.entry_of[entry_id] = bracket
        self.remember(entry)
        for leg in legs:
            self.leg_of[leg.order_id] = bracket
            self.remember(leg)
        self.tally.note(f"{oto} placed")
        self.matcher.submit(entry)
        self.pump()

    @rule(
        account=st.sampled_from(TRADERS),
        side=st.sampled_from(Side),
        qty=st.one_of(QTYS, st.none()),
        take_gap=GAPS,
        stop_gap=GAPS,
        stop_limit=st.booleans(),
        tif=DAY_OR_GTC,
    )
    def oco(
        self,
        account: int,
        side: Side,
        qty: int | None,
        take_gap: int,
        stop_gap: int,
        stop_limit: bool,
        tif: TimeInForce,
    ) -> None:
        """An OCO pair exiting a position: a sell of (at most) the free shares the account
        has, or a buy (of cash it has, or has not); `qty` None: all its free shares."""
        holding = self.ledger.accounts[account].holdings.get(SYM)
        free = holding.free if holding else 0
        if side is SELL:
            qty = min(qty or free, free) or 1  # 1 when it has none: refused
        qty = qty or 1
        last = self.last()
        first = self.new_id()
        self.new_id()
        take, loss = exits(
            first, account, side, qty, last, take_gap, stop_gap, stop_limit, tif, last
        )
        take.ts = loss.ts = self.tick()
        try:
            submit = self.ledger.place_oco(take, loss)
        except LedgerError as error:
            self.tally.note(f"refused: oco {error.code.value}")
            return
        group = Group(qty, {take.order_id, loss.order_id})
        self.groups.append(group)
        for leg in (take, loss):
            self.group_of[leg.order_id] = group
            self.remember(leg)
        self.tally.note("oco placed")
        self.matcher.apply([submit])
        self.pump()

    @rule(
        account=st.sampled_from(ACCOUNTS + OTHERS * 2),
        side=st.sampled_from(Side),
        qty=st.integers(1, 15),
        offset=st.integers(-8, 8),
        kind=st.sampled_from(["limit", "limit", "market", "ioc", "day"]),
        stp=st.sampled_from(SelfTradePrevention),
    )
    def order(
        self, account: int, side: Side, qty: int, offset: int, kind: str, stp: SelfTradePrevention
    ) -> None:
        """A plain order, mostly from the market around the traders, at prices around the
        last trade: they fill legs partly and fully, and their trades trigger stops."""
        last = self.last()
        tif = {"ioc": TimeInForce.IOC, "day": TimeInForce.DAY}.get(kind, TimeInForce.GTC)
        order = make(self.new_id(), account, side, qty, clamp(last + offset), tif=tif, stp=stp)
        if kind == "market":
            order.type, order.price = OrderType.MARKET, protection(side, last)
            order.time_in_force = TimeInForce.DAY
        self.place(order)

    # Rules: cancels and replaces of whatever is known, in whatever state it is.

    def refusal(self, order_id: int, account: int) -> str | None:
        """Why the stage refuses a cancel or replace of `order_id` by `account` before it asks
        the ledger (`_check_not_held`, `_own_open_order`), or None."""
        if self.is_held(order_id):
            return Refusal.ORDER_PENDING.value
        open_order = self.ledger.open_orders.get(order_id)
        if open_order is None or open_order.account_id != account:
            return Refusal.UNKNOWN_ORDER.value
        return None

    @rule(data=st.data(), wrong_account=st.integers(0, 9))
    def cancel(self, data: st.DataObject, wrong_account: int) -> None:
        order_id = self.target(data)
        account = self.owner[order_id]
        if wrong_account == 0:
            account = ACCOUNTS[(ACCOUNTS.index(account) + 1) % len(ACCOUNTS)]
        self.cancel_order(order_id, account)

    def cancel_order(self, order_id: int, account: int) -> None:
        """A cancel as `_cancel_order` makes it: refused for a held leg, then sent."""
        state = self.state_of(order_id)
        why = self.refusal(order_id, account)
        if why is not None:
            self.tally.note(f"cancel refused ({why}): {state}")
            return
        self.tally.note(f"cancel: {state}")
        self.matcher.cancel(SYM, order_id, account, self.tick())
        self.pump()
        assert order_id not in self.ledger.open_orders

    @rule(
        data=st.data(),
        qty=st.one_of(st.none(), QTYS),
        price_move=st.one_of(st.none(), st.integers(-5, 5)),
        stop_move=st.one_of(st.none(), st.integers(-5, 5)),
        tif=st.one_of(st.none(), st.none(), st.none(), st.sampled_from(REPLACE_TIFS)),
    )
    def replace(
        self,
        data: st.DataObject,
        qty: int | None,
        price_move: int | None,
        stop_move: int | None,
        tif: TimeInForce | None,
    ) -> None:
        """A replace as `_replace_order` makes it: refused for a held leg, reserved for by the
        ledger, then sent. `qty` None: the same size (what is left); the moves None: the same
        price and stop price; `tif` None: the same time in force (a leg's cannot change: the
        matcher refuses it, after the ledger reserved)."""
        self.replace_order(self.target(data), qty, price_move, stop_move, tif)

    def replace_order(
        self,
        order_id: int,
        qty: int | None = None,
        price_move: int | None = None,
        stop_move: int | None = None,
        tif: TimeInForce | None = None,
    ) -> None:
        account = self.owner[order_id]
        state = self.state_of(order_id)
        why = self.refusal(order_id, account)
        if why is not None:
            self.tally.note(f"replace refused ({why}): {state}")
            return
        order = self.book.get(order_id)
        assert order is not None, f"{order_id} is open in the ledger, not in the book"
        new_qty = order.leaves if qty is None else qty
        price = order.price
        if order.type is not OrderType.STOP and price_move is not None:
            price = clamp(price + price_move)
        stop_price = 0
        if order.type in STOPS:
            stop_price = order.stop_price
            if stop_move is not None:
                stop_price = clamp(stop_price + stop_move)
        new_id = self.new_id()
        try:
            self.ledger.reserve_replacement(order_id, account, new_id, new_qty, price)
        except LedgerError as error:
            self.tally.note(f"replace refused ({error.code.value}): {state}")
            return
        self.tally.note(f"replace: {state}")
        self.known.append(new_id)
        self.owner[new_id] = account
        self.matcher.replace(
            SYM, order_id, account, new_id, new_qty, price, stop_price, self.tick(), tif
        )
        self.pump()

    @rule(data=st.data(), what=st.sampled_from(["bracket", "cancel", "replace"]))
    def while_halted(self, data: st.DataObject, what: str) -> None:
        """The book halts for one command, then resumes: an entry (with its held legs) is
        rejected, a replace refused, a cancel done."""
        self.matcher.set_halted(SYM, True, self.tick())
        self.tally.note(f"halted: {what}")
        if what == "bracket":
            side = data.draw(st.sampled_from(Side), label="side")
            self.bracket(
                TRADERS[0], side, OrderType.LIMIT, 1, 0, 2, 2, False, TimeInForce.GTC, "bracket"
            )
        elif what == "cancel":
            order_id = self.target(data)
            self.cancel_order(order_id, self.owner[order_id])
        else:
            self.replace_order(self.target(data))
        self.matcher.set_halted(SYM, False, self.tick())
        self.pump()

    @rule()
    def close_session(self) -> None:
        self.tally.note("close_session")
        self.matcher.close_session(self.tick())
        self.pump()
        assert not any(
            order.time_in_force is TimeInForce.DAY
            for order in [*self.book.orders.values(), *self.book.stop_orders.values()]
        )

    # Invariants.

    @invariant()
    def the_ledger_balances(self) -> None:
        assert self.ledger.check_invariants() == []
        # One ledger holds every account: trades only move value between them.
        assert all(amount == 0 for amount in self.ledger.trade_flow.values())

    @invariant()
    def cash_and_shares_are_conserved(self) -> None:
        totals: Counter[str] = Counter()
        for account in self.ledger.accounts.values():  # the venue's, which takes fees, too
            totals[CASH] += account.cash_free + account.cash_reserved
            for name, holding in account.holdings.items():
                assert holding.free >= 0 and holding.reserved >= 0
                # A position's cost basis is what its lots cost: none when it has none.
                assert holding.cost >= 0
                assert holding.cost == 0 or holding.free + holding.reserved > 0
                totals[name] += holding.free + holding.reserved
        assert totals == self.deposited

    @invariant()
    def the_ledger_and_the_book_hold_the_same_orders_and_pairs(self) -> None:
        ledger_orders = self.ledger.open_orders
        book_orders = {**self.book.orders, **self.book.stop_orders}
        assert set(ledger_orders) == set(book_orders)
        pairs = {order_id: order.pair for order_id, order in ledger_orders.items() if order.pair}
        assert pairs == self.book.oco
        for order_id, order in ledger_orders.items():
            assert order.leaves == book_orders[order_id].leaves

    @invariant()
    def reservations_cover_what_each_order_may_trade(self) -> None:
        """A sell holds its open lots, a pair's once; a buy its open lots' cost at its price
        (a pair's at the higher of its legs'). So an account never reserves more shares than
        it holds."""
        ledger = self.ledger
        symbol = ledger.symbols[SYM]
        shares: Counter[int] = Counter()
        seen: set[int] = set()
        for order_id, order in ledger.open_orders.items():
            if order_id in seen:
                continue
            reserved, price = order.reserved, order.price
            if order.pair:
                other = ledger.open_orders[order.pair]
                assert other.pair == order_id and other.leaves == order.leaves
                assert 0 in (order.reserved, other.reserved)  # one leg holds it
                seen.add(other.order_id)
                reserved += other.reserved
                price = max(price, other.price)
            if order.side is SELL:
                assert reserved == order.leaves
                shares[order.account_id] += order.leaves
            else:
                assert reserved >= symbol.notional(price, order.leaves)
        for account_id, account in ledger.accounts.items():
            holding = account.holdings.get(SYM)
            held = holding.reserved if holding else 0
            assert held == shares[account_id]
            assert held <= (holding.free + holding.reserved if holding else 0)

    @invariant()
    def a_restored_ledger_and_book_are_the_same(self) -> None:
        """What the stages store (the ledger's state with its held legs, the book's orders
        with their `oco` links) is all there is."""
        state = self.ledger.export_state()
        restored = Ledger.restore(state, self.ledger.symbols.values())
        assert restored.export_state() == state
        assert restored.held_legs == self.ledger.held_legs
        book = Book.restore(self.book.export_state(), [])
        assert book.oco == self.book.oco
        assert book.export_state() == self.book.export_state()

    @invariant()
    def a_pair_never_trades_more_than_its_qty(self) -> None:
        for group in self.groups:
            assert sum(self.traded[order_id] for order_id in group.ids) <= group.qty

    @invariant()
    def every_leg_is_held_released_or_dropped(self) -> None:
        ledger = self.ledger
        held = {
            leg.order_id: entry_id for entry_id, legs in ledger.held_legs.items() for leg in legs
        }
        for bracket in self.brackets:
            entry = bracket.entries[-1]
            filled = sum(self.traded[order_id] for order_id in bracket.entries)
            if bracket.state == "held":
                # Its entry is open, in both, and the legs wait for it at its size.
                assert entry in ledger.open_orders and self.book.get(entry) is not None
                assert [leg.order_id for leg in ledger.held_legs[entry]] == bracket.legs
                entry_qty = self.book.get(entry).qty  # type: ignore[union-attr]
                assert all(leg.qty == entry_qty for leg in ledger.held_legs[entry])
                for leg_id in bracket.legs:
                    assert held[leg_id] == entry
                    assert leg_id not in ledger.open_orders and self.book.get(leg_id) is None
                continue
            assert entry not in ledger.open_orders and entry not in ledger.held_legs
            assert all(leg_id not in held for leg_id in bracket.legs)
            if bracket.state == "dropped":
                for leg_id in bracket.legs:
                    assert self.dropped_reports[leg_id] == 1
                    assert leg_id not in ledger.open_orders and self.book.get(leg_id) is None
                    assert leg_id not in self.traded
            else:
                assert bracket.exits is not None
                # The exits sell (or buy back) what the entry bought (or sold), no more.
                assert bracket.exits.qty == self.traded[entry] <= filled
                exited = sum(self.traded[order_id] for order_id in bracket.exits.ids)
                assert exited <= bracket.exits.qty
                for leg_id in bracket.legs:
                    assert self.dropped_reports[leg_id] == 0
                    # In the book, or ended (and then by an event that said so).
                    in_book = self.book.get(leg_id) is not None
                    assert in_book != (leg_id in self.ended)
                    assert in_book == (leg_id in ledger.open_orders)
        assert set(held) <= set(self.leg_of)


TestOrderClassMachine = OrderClassMachine.TestCase
TestOrderClassMachine.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.slow
class TestOrderClassMachineLong(OrderClassMachine.TestCase):  # type: ignore[misc,valid-type]
    settings = settings(
        max_examples=1_500,
        stateful_step_count=80,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


# Unit tests of each order class in the ledger, on test_oco's `Venue` (a ledger and a matcher,
# released legs sent on): one account, OWNER, against counterparties the ledger does not hold.


def test_a_sell_brackets_buy_legs_are_reserved_for_in_cash_when_its_entry_fills() -> None:
    venue = Venue()
    venue.ledger.deposit_shares("s9", OWNER, SYM, 5)
    owner, symbol = venue.ledger.accounts[OWNER], venue.ledger.symbols[SYM]
    entry = make(next(ids), OWNER, SELL, 5, 100)
    take, loss = pair(BUY, 5, 95, 105, stop_limit=107)
    venue.ledger.place_with_legs(entry, [take, loss])
    venue.matcher.submit(entry)
    venue.pump()
    assert venue.shares() == (0, 5) and owner.cash_reserved == 0
    venue.matcher.submit(make(next(ids), 3, BUY, 5, 100))
    venue.pump()
    # Sold: the two buy legs hold one reservation, at the higher of their prices.
    assert venue.shares() == (0, 0)
    assert owner.cash_reserved == symbol.notional(107, 5)
    assert venue.matcher.books[SYM].oco == {
        take.order_id: loss.order_id,
        loss.order_id: take.order_id,
    }
    # The take-profit buys 2: the pair holds for the 3 left, the stop leg is resized.
    venue.matcher.submit(make(next(ids), 2, SELL, 2, 95))
    venue.pump()
    assert owner.cash_reserved == symbol.notional(107, 3)
    assert venue.ledger.open_orders[loss.order_id].leaves == 3
    venue.matcher.cancel(SYM, loss.order_id, OWNER, 1)
    venue.pump()
    assert owner.cash_reserved == 0 and not venue.ledger.open_orders
    assert venue.shares() == (2, 0)
    assert owner.cash_free == 1_000_000 + symbol.notional(100, 5) - symbol.notional(95, 2)


def test_each_leg_of_a_bracket_fills_partly_and_the_shares_are_sold_once() -> None:
    venue = Venue()
    entry = make(next(ids), OWNER, BUY, 10, 100)
    take, loss = pair(SELL, 10, 110, 90, stop_limit=88)
    venue.ledger.place_with_legs(entry, [take, loss])
    venue.matcher.submit(entry)
    venue.matcher.submit(make(next(ids), 2, SELL, 10, 100))
    venue.pump()
    assert venue.shares() == (0, 10)
    venue.matcher.submit(make(next(ids), 3, BUY, 3, 110))  # the take-profit sells 3
    venue.pump()
    assert venue.shares() == (0, 7)
    venue.matcher.submit(make(next(ids), 3, BUY, 2, 89))
    venue.matcher.submit(make(next(ids), 2, SELL, 1, 89))  # a trade at 89: the stop triggers
    events = venue.pump()
    assert [e.order_id for e in of(events, Canceled)] == [take.order_id]  # type: ignore[attr-defined]
    # It sold 1 at 89 and rests at its limit, 88, with 6 lots: reserved still.
    assert venue.shares() == (0, 6)
    venue.matcher.submit(make(next(ids), 3, BUY, 2, 88))
    venue.pump()
    assert venue.shares() == (0, 4)
    venue.matcher.cancel(SYM, loss.order_id, OWNER, 2)
    venue.pump()
    assert venue.shares() == (4, 0) and not venue.ledger.open_orders


def test_an_otos_one_leg_fills_partly_then_fully() -> None:
    venue = Venue()
    entry = make(next(ids), OWNER, BUY, 6, 100)
    leg = make(next(ids), OWNER, SELL, 6, 110)
    venue.ledger.place_with_legs(entry, [leg])
    venue.matcher.submit(entry)
    venue.matcher.submit(make(next(ids), 2, SELL, 6, 100))
    venue.pump()
    assert venue.matcher.books[SYM].get(leg.order_id) is not None
    assert venue.shares() == (0, 6)
    venue.matcher.submit(make(next(ids), 3, BUY, 2, 110))
    venue.pump()
    assert venue.shares() == (0, 4)
    venue.matcher.submit(make(next(ids), 3, BUY, 9, 110))
    venue.pump()
    assert venue.shares() == (0, 0) and not venue.ledger.open_orders


def test_a_partly_filled_entry_replaced_takes_its_legs_at_its_new_size() -> None:
    venue = Venue()
    entry, take, loss = held_bracket(qty=10, entry=99)
    venue.ledger.place_with_legs(entry, [take, loss])
    venue.matcher.submit(entry)
    venue.matcher.submit(make(next(ids), 2, SELL, 4, 99))
    venue.pump()
    new_id = next(ids)
    venue.ledger.reserve_replacement(entry.order_id, OWNER, new_id, 5, 99)
    venue.matcher.replace(SYM, entry.order_id, OWNER, new_id, 5, 99, 0, 1)
    (replaced,) = of(venue.pump(), Replaced)
    assert replaced.kept_priority  # type: ignore[attr-defined]
    assert [leg.qty for leg in venue.ledger.held_legs[new_id]] == [5, 5]
    assert venue.shares() == (4, 0)
    venue.matcher.submit(make(next(ids), 2, SELL, 5, 99))
    venue.pump()
    # The legs exit what the replacement bought: 5 of the 9 lots.
    assert venue.shares() == (4, 5)
    assert venue.matcher.books[SYM].oco == {
        take.order_id: loss.order_id,
        loss.order_id: take.order_id,
    }


def test_legs_whose_shares_were_reserved_meanwhile_are_dropped_when_the_entry_fills() -> None:
    venue = Venue()
    entry, take, loss = held_bracket(qty=5)
    venue.ledger.place_with_legs(entry, [take, loss])
    venue.matcher.submit(entry)
    venue.matcher.submit(make(next(ids), 2, SELL, 2, 100))
    venue.pump()
    # The 2 lots bought so far are sold by an OCO of their own.
    exit_take, exit_loss = pair(SELL, 2, 120, 80)
    venue.matcher.apply([venue.ledger.place_oco(exit_take, exit_loss)])
    venue.pump()
    assert venue.shares() == (0, 2)
    venue.matcher.submit(make(next(ids), 2, SELL, 3, 100))
    venue.pump()
    # Filled: its legs would sell 5 lots, 3 are free. They end unsent, and say why.
    why = Refusal.INSUFFICIENT_SHARES.value
    assert venue.dropped == [(take.order_id, why), (loss.order_id, why)]
    assert not venue.ledger.held_legs and venue.shares() == (3, 2)
    assert set(venue.ledger.open_orders) == {exit_take.order_id, exit_loss.order_id}


def test_a_held_leg_is_in_no_book_and_has_no_reservation_to_replace() -> None:
    venue = Venue()
    entry, take, loss = held_bracket()
    venue.ledger.place_with_legs(entry, [take, loss])
    venue.matcher.submit(entry)
    venue.pump()
    venue.matcher.cancel(SYM, take.order_id, OWNER, 1)
    (refused,) = venue.pump()
    assert isinstance(refused, CancelRejected) and refused.reason == RejectReason.UNKNOWN_ORDER
    with pytest.raises(LedgerError) as caught:
        venue.ledger.reserve_replacement(loss.order_id, OWNER, next(ids), 10, 1)
    assert caught.value.code is Refusal.UNKNOWN_ORDER
    held = venue.ledger.held_legs[entry.order_id]
    assert [leg.order_id for leg in held] == [take.order_id, loss.order_id]


def test_a_day_bracket_expires_with_its_legs_held_or_released() -> None:
    venue = Venue()
    day = TimeInForce.DAY
    # Partly filled at the close: the entry expires, its held legs go with it.
    entry = make(next(ids), OWNER, BUY, 10, 100, tif=day)
    take, loss = pair(SELL, 10, 110, 90, tif=day)
    venue.ledger.place_with_legs(entry, [take, loss])
    venue.matcher.submit(entry)
    venue.matcher.submit(make(next(ids), 2, SELL, 3, 100))
    venue.pump()
    venue.matcher.close_session(1)
    venue.pump()
    assert venue.dropped == [(take.order_id, "canceled"), (loss.order_id, "canceled")]
    assert venue.shares() == (3, 0) and venue.ledger.accounts[OWNER].cash_reserved == 0
    # Filled: the released legs expire together, their one reservation released once.
    entry = make(next(ids), OWNER, BUY, 4, 100, tif=day)
    take, loss = pair(SELL, 4, 110, 90, tif=day)
    venue.ledger.place_with_legs(entry, [take, loss])
    venue.matcher.submit(entry)
    venue.matcher.submit(make(next(ids), 2, SELL, 4, 100))
    venue.pump()
    assert venue.shares() == (3, 4)
    venue.matcher.close_session(2)
    assert len(of(venue.pump(), Expired)) == 2
    assert venue.shares() == (7, 0) and not venue.ledger.open_orders


def test_a_legs_replace_the_matcher_refuses_leaves_the_pairs_one_reservation() -> None:
    venue = Venue()
    owner, symbol = venue.ledger.accounts[OWNER], venue.ledger.symbols[SYM]
    take, loss = pair(BUY, 5, 95, 105, stop_limit=107)
    venue.matcher.apply([venue.ledger.place_oco(take, loss)])
    venue.pump()
    assert owner.cash_reserved == symbol.notional(107, 5)
    # The ledger refuses a leg at another size, and a buy leg above what the pair reserved.
    for qty, price, code in (
        (4, 96, Refusal.INVALID_ORDER),
        (5, 108, Refusal.INSUFFICIENT_BUYING_POWER),
    ):
        with pytest.raises(LedgerError) as caught:
            venue.ledger.reserve_replacement(take.order_id, OWNER, next(ids), qty, price)
        assert caught.value.code is code
    # The matcher refuses a leg another time in force, after the ledger reserved for it.
    new_id = next(ids)
    venue.ledger.reserve_replacement(take.order_id, OWNER, new_id, 5, 96)
    venue.matcher.replace(SYM, take.order_id, OWNER, new_id, 5, 96, 0, 1, TimeInForce.DAY)
    (refused,) = venue.pump()
    assert isinstance(refused, ReplaceRejected) and refused.reason == RejectReason.INVALID_ORDER
    assert set(venue.ledger.open_orders) == {take.order_id, loss.order_id}
    assert venue.ledger.open_orders[take.order_id].pair == loss.order_id
    assert owner.cash_reserved == symbol.notional(107, 5)


# Found by the machine above (fixed in Book._due_leg_goes): an OCO pair traded more than its
# qty when its stop leg was due in the same round of triggers as another stop whose trades
# filled (or partly filled) its limit leg.


@pytest.mark.parametrize("qty", [1, 2], ids=["filled", "partly filled"])
def test_a_stop_leg_due_with_another_stop_trades_after_its_pair_did(qty: int) -> None:
    matcher = new_matcher()  # last trade at 100
    take, loss = pair(BUY, qty, 98, 101)  # a buy limit at 98, a buy stop at 101
    matcher.submit_oco(take, loss)
    matcher.submit(make(next(ids), 3, SELL, 1, 1, kind=OrderType.STOP, stop_price=99))
    matcher.submit(make(next(ids), 1, SELL, 1, 99))
    matcher.submit(make(next(ids), 1, SELL, 5, 101))
    matcher.take_events()
    # Trades at 99 and 101: the sell stop at 99 and the stop leg at 101 are due together. The
    # sell stop, a market order now, sells 1 lot to the limit leg at 98; the stop leg must
    # then be canceled (qty 1) or resized to the lot left (qty 2), not buy `qty` lots more.
    matcher.submit(make(next(ids), 4, BUY, 2, 101))
    events = matcher.take_events()
    legs = {take.order_id, loss.order_id}
    traded = sum(
        e.qty  # type: ignore[attr-defined]
        for e in of(events, Trade)
        for order_id in (e.maker_order_id, e.taker_order_id)  # type: ignore[attr-defined]
        if order_id in legs
    )
    assert traded <= qty


def test_an_oco_sell_pair_sells_its_shares_once_when_its_stop_is_due_with_another() -> None:
    venue = Venue()
    venue.ledger.deposit_shares("s9", OWNER, SYM, 1)
    take, loss = pair(SELL, 1, 102, 99)  # a sell limit at 102, a sell stop at 99: 1 lot
    venue.matcher.apply([venue.ledger.place_oco(take, loss)])
    venue.pump()
    matcher = venue.matcher
    matcher.submit(make(next(ids), 3, BUY, 1, 10_000, kind=OrderType.STOP, stop_price=101))
    matcher.submit(make(next(ids), 1, BUY, 1, 101))
    matcher.submit(make(next(ids), 1, BUY, 2, 99))
    venue.pump()
    # Trades at 101 and 99: the buy stop at 101 (it fills the limit leg at 102) and the stop
    # leg at 99 are due together.
    matcher.submit(make(next(ids), 4, SELL, 2, 99))
    for item in matcher.take_events():
        venue.ledger.apply(item)
    assert venue.ledger.check_invariants() == []
    assert venue.shares() == (0, 0) and not venue.ledger.open_orders
