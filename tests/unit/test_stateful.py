"""Random command sequences through the matcher and the ledger together, checked after every step.

Hypothesis drives orders of every type and class (OCO pairs, brackets and OTOs, whose legs wait
in the ledger until their entry fills), cancels, replaces, session closes and transfers from a
few accounts on two symbols. After each step: no book is crossed, every trade is at the maker's
price and within both limits, makers are hit in strict price-time priority, every order's
quantity is accounted for (qty = filled + leaves + canceled), the ledger balances and its
reservations agree with the open orders, and a snapshot restores to the same state. At the end,
replaying the same commands from scratch gives the same state hashes.

Two of the accounts are on margin (multipliers 2 and 4, which a rule changes, refused while they
borrow) and hold few shares, so their sales go short and their buys cover; one has little over
the $2,000 that margin needs, and their orders of a $100 symbol are worth up to four times their
equity, so they borrow and meet their buying power. Their orders carry marks (the last trade
price of each symbol, or a price a rule draws) that value their positions. Only a margin
account's cash or shares go negative; every symbol's shares and the cash sum to what was
deposited; every position, its cost basis and realized P&L and every account's cash follow from
its trades; a sale of shares held and a buy that only buys back a short are never refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tradepit.domain.commands import SubmitOco
from tradepit.domain.events import (
    Accepted,
    Canceled,
    Event,
    Expired,
    Queued,
    Replaced,
    Resized,
    SessionChanged,
    Trade,
    TrailMoved,
    Triggered,
)
from tradepit.domain.ids import VENUE_ACCOUNT_ID
from tradepit.domain.orders import (
    Order,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
    trail_stop,
)
from tradepit.domain.refusals import Refusal
from tradepit.domain.session import Phase
from tradepit.domain.symbols import Symbol
from tradepit.ledger import Ledger, LedgerError
from tradepit.ledger.history import OrderHistory
from tradepit.matcher import Matcher, MatcherState

SYMBOLS = [
    Symbol("AAA"),
    Symbol("BBB", tick_size=Decimal("0.05")),
    # Fractional: a tick on a lot is a thousandth of a cent, so fills round down to the cent.
    Symbol("CCC", tick_size=Decimal("1"), lot_size=Decimal("0.00001")),
    # $95-$105 a share: an order's worth is a margin account's equity, to borrow and go short.
    Symbol("DDD", tick_size=Decimal("1")),
]
SYMBOL_BY_NAME = {symbol.name: symbol for symbol in SYMBOLS}
ACCOUNTS = [1, 2, 3]
MARGIN_ACCOUNTS = [2, 3]
# Each account's multiplier, cash (cents) and lots of every symbol to start with: a cash account
# with plenty of shares; a 2x margin account with few (its sales soon go short), and a 4x one
# with few and little over the $2,000 that margin and short sales need.
FUNDING = {1: (1, 50_000_00, 200), 2: (2, 50_000_00, 5), 3: (4, 2_050_00, 5)}
PRICES = st.integers(95, 105)
QTYS = st.integers(1, 12)


@dataclass
class Venue:
    """A matcher and a ledger wired the way the stages wire them: ledger first, then matcher."""

    matcher: Matcher = field(default_factory=Matcher)
    ledger: Ledger = field(
        default_factory=lambda: Ledger(SYMBOLS, maker_fee_bps=7, taker_fee_bps=13)
    )

    history: OrderHistory = field(
        default_factory=lambda: OrderHistory({symbol.name: symbol for symbol in SYMBOLS})
    )

    def __post_init__(self) -> None:
        for symbol in SYMBOLS:
            self.matcher.add_symbol(symbol.name)

    def feed(self) -> list[Event]:
        """The matcher's events, applied; and the legs they released, sent (as the ledger
        stage sends them), until no more are."""
        every: list[Event] = []
        while True:
            events = self.matcher.take_events()
            for event in events:
                self.ledger.apply(event)
                if isinstance(event, TrailMoved):
                    self.history.trail_moved(event)
                else:
                    self.history.apply(event)
            every += events
            released, _ = self.ledger.take_legs()
            if not released:
                return every
            for command in released:
                legs = (command.limit, command.stop) if isinstance(command, SubmitOco) else ()
                for leg in legs or (command.order,):  # type: ignore[attr-defined]
                    self.history.accepted(leg, "")
            self.matcher.apply(released)


# A command is recorded as a function of a venue, so the whole history can be replayed.
Command = Callable[[Venue], list[Event]]


def setup_commands() -> list[Command]:
    def fund(venue: Venue) -> list[Event]:
        for account, (multiplier, cents, lots) in FUNDING.items():
            venue.ledger.open_account(account)
            venue.ledger.deposit_cash(f"cash-{account}", account, cents)
            for symbol in SYMBOLS:
                venue.ledger.deposit_shares(f"{symbol.name}-{account}", account, symbol.name, lots)
            venue.ledger.set_multiplier(account, multiplier)
        return []

    return [fund]


class VenueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.venue = Venue()
        self.history: list[Command] = setup_commands()
        for command in self.history:
            command(self.venue)
        self.next_id = 1000
        self.known_ids: list[tuple[str, int, int]] = []  # (symbol, order id, account)
        # Per order: its quantity, limit, side, and what happened to it, from events alone.
        self.qty: dict[int, int] = {}
        self.limit: dict[int, int] = {}
        self.side: dict[int, Side] = {}
        self.filled: dict[int, int] = {}
        self.done: dict[int, int] = {}  # order id -> lots canceled, expired or replaced away
        self.queued: set[int] = set()  # orders that waited: their Accepted comes at the open
        # The prices margin accounts' orders carry: the last trade of each symbol, unless a
        # rule drew another.
        self.last_trade: dict[str, int] = {}
        self.drawn_marks: dict[str, int] = {}
        # What was deposited, less what was withdrawn, of every asset ("$": cash).
        self.deposited: dict[str, int] = {"$": sum(cents for _, cents, _ in FUNDING.values())}
        for symbol in SYMBOLS:
            self.deposited[symbol.name] = sum(lots for _, _, lots in FUNDING.values())
        # Per account, from the trades alone: its cash in and out of transfers, and per symbol
        # the lots it bought (sold: negative) and what they cost (cents; sold: brought in).
        self.cash_in = {account: cents for account, (_, cents, _) in FUNDING.items()}
        self.bought: dict[tuple[int, str], int] = {}
        self.paid: dict[tuple[int, str], int] = {}

    def marks(self, account: int) -> dict[str, int] | None:
        """The marks a command of `account` carries: none for a cash account's."""
        if self.venue.ledger.accounts[account].multiplier == 1:
            return None
        return {**self.last_trade, **self.drawn_marks}

    # Running a command and checking its events.

    def run(self, command: Command) -> None:
        before = {
            symbol: (book.resting_orders(Side.BUY), book.resting_orders(Side.SELL))
            for symbol, book in self.venue.matcher.books.items()
        }
        before_ids = {
            symbol: ([o.order_id for o in bids], [o.order_id for o in asks])
            for symbol, (bids, asks) in before.items()
        }
        events = command(self.venue)
        self.history.append(command)
        self.account_for(events)
        self.check_priority(events, before_ids)

    def account_for(self, events: list[Event]) -> None:
        seqs: dict[str, int] = {}
        auction = False
        for event in events:
            if event.seq:
                previous = seqs.get(event.symbol)
                assert previous is None or event.seq == previous + 1, "sequence has a gap"
                seqs[event.symbol] = event.seq
            if isinstance(event, SessionChanged):
                auction = True  # the open or the close: this command's trades are its auction's
            if isinstance(event, Queued) and event.order_id in self.qty:
                self.queued.add(event.order_id)  # a resting order, out for the night
            elif isinstance(event, Queued) or (
                isinstance(event, Accepted) and event.order_id not in self.queued
            ):
                if isinstance(event, Queued):
                    self.queued.add(event.order_id)
                self.qty[event.order_id] = event.qty
                self.limit[event.order_id] = event.price
                self.side[event.order_id] = event.side
                self.filled[event.order_id] = 0
            elif isinstance(event, Trade):
                self.last_trade[event.symbol] = event.price
                notional = SYMBOL_BY_NAME[event.symbol].notional(event.price, event.qty)
                maker_side = Side.SELL if event.taker_side is Side.BUY else Side.BUY
                for account, side in (
                    (event.maker_account_id, maker_side),
                    (event.taker_account_id, event.taker_side),
                ):
                    sign = 1 if side is Side.BUY else -1
                    key = (account, event.symbol)
                    self.bought[key] = self.bought.get(key, 0) + sign * event.qty
                    self.paid[key] = self.paid.get(key, 0) + sign * notional
                maker, taker = event.maker_order_id, event.taker_order_id
                if not auction:  # an auction's trades are at its one price, within every limit
                    assert event.price == self.limit[maker], "trade not at the maker's price"
                assert self.side[taker] is event.taker_side is not self.side[maker]
                for order_id, leaves in ((maker, event.maker_leaves), (taker, event.taker_leaves)):
                    if self.side[order_id] is Side.BUY:
                        assert event.price <= self.limit[order_id], "buy traded above limit"
                    else:
                        assert event.price >= self.limit[order_id], "sell traded below limit"
                    self.filled[order_id] += event.qty
                    assert leaves == self.qty[order_id] - self.filled[order_id]
                    if leaves == 0:
                        self.done[order_id] = 0
            elif isinstance(event, Canceled | Expired):
                assert event.qty == self.qty[event.order_id] - self.filled[event.order_id]
                self.done[event.order_id] = event.qty
            elif isinstance(event, Resized):
                # An OCO leg's other leg traded: it is smaller, none of it having traded.
                self.qty[event.order_id] -= event.qty
                assert event.leaves == self.qty[event.order_id] - self.filled[event.order_id]
            elif isinstance(event, Replaced):
                old = event.order_id
                self.done[old] = self.qty[old] - self.filled[old]
                self.qty[event.new_order_id] = event.qty
                self.limit[event.new_order_id] = event.price
                self.side[event.new_order_id] = event.side
                self.filled[event.new_order_id] = 0

    def check_priority(
        self, events: list[Event], before: dict[str, tuple[list[int], list[int]]]
    ) -> None:
        """Without stop triggers, replaces or other orders in the way, the makers an order hit
        (traded with or self-trade-canceled) are exactly the first orders of the other side, in
        order."""
        if any(isinstance(event, Triggered | Replaced | SessionChanged) for event in events):
            return
        if sum(isinstance(event, Accepted) for event in events) > 1:
            return  # an OCO pair, or released legs: more than one order took its turn
        takers = {event.taker_order_id for event in events if isinstance(event, Trade)}
        if len(takers) != 1:
            return
        (taker,) = takers
        hit: list[int] = []
        symbol = ""
        for event in events:
            if isinstance(event, Trade):
                symbol = event.symbol
                if not hit or hit[-1] != event.maker_order_id:
                    hit.append(event.maker_order_id)
            elif (
                isinstance(event, Canceled)
                and event.order_id != taker
                and event.reason == ("self_trade")
            ):
                hit.append(event.order_id)
        bids, asks = before[symbol]
        opposite = asks if self.side[taker] is Side.BUY else bids
        assert hit == opposite[: len(hit)], "makers were not hit in price-time priority"

    # Rules.

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def place(self, order_args: dict[str, Any]) -> None:
        marks = self.marks(order_args["account_id"])

        def command(venue: Venue) -> list[Event]:
            order = Order(**order_args)
            expected = expected_refusals(venue.ledger, order)
            try:
                venue.ledger.place_order(order, marks=marks)
            except LedgerError as error:
                assert expected is None or error.code in expected, (error.code, expected)
                return []
            venue.history.accepted(order, "")
            venue.matcher.submit(order)
            return venue.feed()

        self.run(command)
        self.known_ids.append(
            (order_args["symbol"], order_args["order_id"], order_args["account_id"])
        )

    @rule(
        account=st.sampled_from(ACCOUNTS),
        symbol=st.sampled_from([s.name for s in SYMBOLS]),
        side=st.sampled_from(Side),
        price=PRICES,
        qty=QTYS,
        tif=st.sampled_from(TimeInForce),
        post_only=st.booleans(),
        stp=st.sampled_from(SelfTradePrevention),
        extended_hours=st.booleans(),
    )
    def limit_order(
        self,
        account: int,
        symbol: str,
        side: Side,
        price: int,
        qty: int,
        tif: TimeInForce,
        post_only: bool,
        stp: SelfTradePrevention,
        extended_hours: bool,
    ) -> None:
        post_only = post_only and tif in (TimeInForce.DAY, TimeInForce.GTC)
        self.place(
            dict(
                order_id=self.new_id(),
                account_id=account,
                symbol=symbol,
                side=side,
                type=OrderType.LIMIT,
                time_in_force=tif,
                qty=qty,
                price=price,
                post_only=post_only,
                stp=stp,
                ts=len(self.history),
                extended_hours=extended_hours,
            )
        )

    @rule(
        account=st.sampled_from(MARGIN_ACCOUNTS),
        side=st.sampled_from(Side),
        price=PRICES,
        qty=st.integers(1, 100),
    )
    def large_order(self, account: int, side: Side, price: int, qty: int) -> None:
        """A margin account's order of DDD worth up to about four times its equity: it borrows,
        sells short, meets its buying power, buys back."""
        self.place(
            dict(
                order_id=self.new_id(),
                account_id=account,
                symbol="DDD",
                side=side,
                type=OrderType.LIMIT,
                time_in_force=TimeInForce.GTC,
                qty=qty,
                price=price,
                ts=len(self.history),
            )
        )

    @rule(
        account=st.sampled_from(ACCOUNTS),
        symbol=st.sampled_from([s.name for s in SYMBOLS]),
        side=st.sampled_from(Side),
        qty=QTYS,
        stp=st.sampled_from(SelfTradePrevention),
        fok=st.booleans(),
    )
    def market_order(
        self, account: int, symbol: str, side: Side, qty: int, stp: SelfTradePrevention, fok: bool
    ) -> None:
        self.place(
            dict(
                order_id=self.new_id(),
                account_id=account,
                symbol=symbol,
                side=side,
                type=OrderType.MARKET,
                time_in_force=TimeInForce.FOK if fok else TimeInForce.DAY,
                qty=qty,
                price=110 if side is Side.BUY else 90,  # the protection price
                stp=stp,
                ts=len(self.history),
            )
        )

    @rule(
        account=st.sampled_from(ACCOUNTS),
        symbol=st.sampled_from([s.name for s in SYMBOLS]),
        side=st.sampled_from(Side),
        stop=PRICES,
        limit=st.one_of(st.none(), PRICES),
        qty=QTYS,
        tif=st.sampled_from([TimeInForce.DAY, TimeInForce.GTC]),
    )
    def stop_order(
        self,
        account: int,
        symbol: str,
        side: Side,
        stop: int,
        limit: int | None,
        qty: int,
        tif: TimeInForce,
    ) -> None:
        protection = 110 if side is Side.BUY else 90
        self.place(
            dict(
                order_id=self.new_id(),
                account_id=account,
                symbol=symbol,
                side=side,
                type=OrderType.STOP if limit is None else OrderType.STOP_LIMIT,
                time_in_force=tif,
                qty=qty,
                price=protection if limit is None else limit,
                stop_price=stop,
                ts=len(self.history),
            )
        )

    @rule(
        account=st.sampled_from(ACCOUNTS),
        symbol=st.sampled_from([s.name for s in SYMBOLS]),
        side=st.sampled_from(Side),
        trail=st.integers(1, 6),
        by_rate=st.booleans(),
        qty=QTYS,
        tif=st.sampled_from([TimeInForce.DAY, TimeInForce.GTC]),
    )
    def trailing_stop(
        self,
        account: int,
        symbol: str,
        side: Side,
        trail: int,
        by_rate: bool,
        qty: int,
        tif: TimeInForce,
    ) -> None:
        self.place(
            dict(
                order_id=self.new_id(),
                account_id=account,
                symbol=symbol,
                side=side,
                type=OrderType.TRAILING_STOP,
                time_in_force=tif,
                qty=qty,
                price=110 if side is Side.BUY else 90,  # the protection price
                trail_price=0 if by_rate else trail,
                trail_rate=trail * 5_000 if by_rate else 0,  # 0.5% steps
                ts=len(self.history),
            )
        )

    def legs(
        self, account: int, symbol: str, side: Side, qty: int, limit: int, stop: int, ts: int
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The order arguments of an OCO pair: a limit and a stop (a market's protection)."""
        limit_id, stop_id = self.new_id(), self.new_id()
        common = dict(account_id=account, symbol=symbol, side=side, qty=qty, ts=ts)
        take = dict(
            common,
            order_id=limit_id,
            type=OrderType.LIMIT,
            time_in_force=TimeInForce.GTC,
            price=limit,
            oco=stop_id,
        )
        loss = dict(
            common,
            order_id=stop_id,
            type=OrderType.STOP,
            time_in_force=TimeInForce.GTC,
            price=110 if side is Side.BUY else 90,
            stop_price=stop,
            oco=limit_id,
        )
        return take, loss

    @rule(
        account=st.sampled_from(ACCOUNTS),
        symbol=st.sampled_from([s.name for s in SYMBOLS]),
        side=st.sampled_from(Side),
        qty=QTYS,
        limit=PRICES,
        stop=PRICES,
    )
    def oco_order(
        self, account: int, symbol: str, side: Side, qty: int, limit: int, stop: int
    ) -> None:
        take, loss = self.legs(account, symbol, side, qty, limit, stop, len(self.history))

        marks = self.marks(account)

        def command(venue: Venue) -> list[Event]:
            pair = Order(**take), Order(**loss)
            try:
                submit = venue.ledger.place_oco(*pair, marks=marks)
            except LedgerError:
                return []
            for leg in pair:
                venue.history.accepted(leg, "")
            venue.matcher.apply([submit])
            return venue.feed()

        self.run(command)
        for leg in (take, loss):
            self.known_ids.append((symbol, leg["order_id"], account))

    @rule(
        account=st.sampled_from(ACCOUNTS),
        symbol=st.sampled_from([s.name for s in SYMBOLS]),
        side=st.sampled_from(Side),
        qty=QTYS,
        entry=st.one_of(st.none(), PRICES),
        limit=PRICES,
        stop=PRICES,
        kind=st.sampled_from(["bracket", "take_profit", "stop_loss"]),
    )
    def bracket_order(
        self,
        account: int,
        symbol: str,
        side: Side,
        qty: int,
        entry: int | None,
        limit: int,
        stop: int,
        kind: str,
    ) -> None:
        """A bracket (entry, then an OCO pair of exits) or an OTO (entry, then one exit)."""
        ts = len(self.history)
        exit_side = Side.SELL if side is Side.BUY else Side.BUY
        entry_args: dict[str, Any] = dict(
            order_id=self.new_id(),
            account_id=account,
            symbol=symbol,
            side=side,
            type=OrderType.MARKET if entry is None else OrderType.LIMIT,
            time_in_force=TimeInForce.GTC,
            qty=qty,
            price=(110 if side is Side.BUY else 90) if entry is None else entry,
            ts=ts,
        )
        take, loss = self.legs(account, symbol, exit_side, qty, limit, stop, ts)
        if kind == "take_profit":
            del take["oco"]
        if kind == "stop_loss":
            del loss["oco"]
        exits = {"bracket": [take, loss], "take_profit": [take], "stop_loss": [loss]}[kind]

        marks = self.marks(account)

        def command(venue: Venue) -> list[Event]:
            order = Order(**entry_args)
            try:
                venue.ledger.place_with_legs(order, [Order(**leg) for leg in exits], marks=marks)
            except LedgerError:
                return []
            venue.history.accepted(order, "")
            venue.matcher.submit(order)
            return venue.feed()

        self.run(command)
        for args in (entry_args, *exits):
            self.known_ids.append((symbol, args["order_id"], account))

    @precondition(lambda self: bool(self.known_ids))
    @rule(data=st.data(), wrong_account=st.booleans())
    def cancel(self, data: st.DataObject, wrong_account: bool) -> None:
        symbol, order_id, account = data.draw(st.sampled_from(self.known_ids))
        if wrong_account:
            account = account % len(ACCOUNTS) + 1
        ts = len(self.history)

        def command(venue: Venue) -> list[Event]:
            venue.matcher.cancel(symbol, order_id, account, ts)
            return venue.feed()

        self.run(command)

    @precondition(lambda self: bool(self.known_ids))
    @rule(data=st.data(), qty=QTYS, price=PRICES, trail=st.integers(0, 6))
    def replace(self, data: st.DataObject, qty: int, price: int, trail: int) -> None:
        symbol, order_id, account = data.draw(st.sampled_from(self.known_ids))
        new_order_id = self.new_id()
        ts = len(self.history)
        marks = self.marks(account)

        def command(venue: Venue) -> list[Event]:
            book = venue.matcher.books[symbol]
            order = book.get(order_id) or book.held(order_id)
            is_stop = order is not None and order.type in (OrderType.STOP, OrderType.STOP_LIMIT)
            stop_price = order.stop_price if order is not None and is_stop else 0
            trailing = order is not None and order.type is OrderType.TRAILING_STOP
            new_trail = trail * (5_000 if order is not None and order.trail_rate else 1)
            try:
                venue.ledger.reserve_replacement(
                    order_id, account, new_order_id, qty, price, marks=marks
                )
            except LedgerError:
                return []
            if order is not None:
                replacement = msgspec.structs.replace(
                    order, order_id=new_order_id, qty=qty, price=price, ts=ts
                )
                venue.history.accepted(replacement, "", order_id)
            venue.matcher.replace(
                symbol,
                order_id,
                account,
                new_order_id,
                qty,
                price,
                stop_price,
                ts,
                None,
                new_trail if trailing else 0,
            )
            return venue.feed()

        self.run(command)
        self.known_ids.append((symbol, new_order_id, account))

    @rule(phase=st.sampled_from(Phase))
    def session(self, phase: Phase) -> None:
        """The market moves to `phase`: orders wait outside the regular session, and the
        open and the close uncross the book in their auctions."""
        ts = len(self.history)

        def command(venue: Venue) -> list[Event]:
            venue.matcher.set_session(phase, ts)
            return venue.feed()

        self.run(command)

    @rule()
    def close_session(self) -> None:
        ts = len(self.history)

        def command(venue: Venue) -> list[Event]:
            venue.matcher.close_session(ts)
            return venue.feed()

        self.run(command)

    @rule(account=st.sampled_from(MARGIN_ACCOUNTS), multiplier=st.sampled_from([1, 2, 4, 2, 4]))
    def set_multiplier(self, account: int, multiplier: int) -> None:
        """The operator makes a margin account a cash account, refused while it borrows, or
        changes its multiplier."""

        def command(venue: Venue) -> list[Event]:
            ledger = venue.ledger
            state = ledger.accounts[account]
            borrows = (
                state.cash_free < 0
                or any(h.free < 0 or h.covering for h in state.holdings.values())
                or any(
                    order.short or order.short_cash
                    for order in ledger.open_orders.values()
                    if order.account_id == account
                )
            )
            try:
                ledger.set_multiplier(account, multiplier)
            except LedgerError as error:
                assert multiplier == 1 and borrows and error.code is Refusal.MARGIN_IN_USE
                return []
            assert not (multiplier == 1 and borrows)
            assert state.multiplier == multiplier
            return []

        self.run(command)

    @rule(
        symbol=st.sampled_from([s.name for s in SYMBOLS]),
        price=st.one_of(st.none(), st.integers(1, 400)),
    )
    def move_mark(self, symbol: str, price: int | None) -> None:
        """Margin accounts' orders value `symbol` at `price` from now on (the last trade's
        price again with none): far from the book's, to cross $2.50 and $5.00 a share."""
        if price is None:
            self.drawn_marks.pop(symbol, None)
        else:
            self.drawn_marks[symbol] = price

    @rule(account=st.sampled_from(ACCOUNTS), cents=st.integers(-5_000_00, 5_000_00))
    def move_cash(self, account: int, cents: int) -> None:
        transfer_id = f"t{len(self.history)}"

        def command(venue: Venue) -> list[Event]:
            try:
                if cents >= 0:
                    venue.ledger.deposit_cash(transfer_id, account, cents)
                else:
                    venue.ledger.withdraw_cash(transfer_id, account, -cents)
            except LedgerError:
                pass
            return []

        self.run(command)
        if transfer_id in self.venue.ledger.transfers:
            self.deposited["$"] += cents
            self.cash_in[account] += cents

    # Invariants.

    @invariant()
    def books_never_cross(self) -> None:
        for book in self.venue.matcher.books.values():
            bid, ask = book.best_bid(), book.best_ask()
            assert bid is None or ask is None or bid < ask

    @invariant()
    def levels_are_in_priority_order(self) -> None:
        for book in self.venue.matcher.books.values():
            for side in Side:
                prices = [order.price for order in book.resting_orders(side)]
                assert prices == sorted(prices, reverse=side is Side.BUY)

    @invariant()
    def depth_is_the_lots_resting_at_each_price(self) -> None:
        for book in self.venue.matcher.books.values():
            for side in Side:
                lots: dict[int, int] = {}
                for order in book.resting_orders(side):
                    lots[order.price] = lots.get(order.price, 0) + order.leaves
                assert book.depth(side, 0) == list(lots.items())

    @invariant()
    def every_lot_is_accounted_for(self) -> None:
        open_ids = set()
        for book in self.venue.matcher.books.values():
            for order in [
                *book.orders.values(),
                *book.stop_orders.values(),
                *book.waiting.values(),
                *book.closing.values(),
            ]:
                open_ids.add(order.order_id)
                assert order.leaves == self.qty[order.order_id] - self.filled[order.order_id]
        for order_id, canceled in self.done.items():
            assert order_id not in open_ids
            assert self.qty[order_id] == self.filled[order_id] + canceled

    @invariant()
    def ledger_balances(self) -> None:
        assert self.venue.ledger.check_invariants() == []
        assert all(amount == 0 for amount in self.venue.ledger.trade_flow.values())
        # The ledger holds exactly the orders the matcher holds.
        matcher_ids = {
            order_id
            for book in self.venue.matcher.books.values()
            for order_id in [*book.orders, *book.stop_orders, *book.waiting, *book.closing]
        }
        assert set(self.venue.ledger.open_orders) == matcher_ids

    @invariant()
    def only_margin_accounts_borrow(self) -> None:
        """Negative cash (debt) and negative shares (a short) are a margin account's alone; the
        venue's fee account only ever receives."""
        for account in self.venue.ledger.accounts.values():
            negative = account.cash_free < 0 or any(
                holding.free < 0 or holding.lots < 0 for holding in account.holdings.values()
            )
            if negative:
                assert account.multiplier > 1, account
            if account.account_id == VENUE_ACCOUNT_ID:
                assert account.cash_free >= 0 and not account.holdings

    @invariant()
    def what_was_deposited_is_all_there(self) -> None:
        """Every symbol's lots across the accounts, shorts negative, sum to what was deposited
        (what one account owes, another holds); and the cash too, fees and debts included."""
        totals = {name: 0 for name in self.deposited}
        for account in self.venue.ledger.accounts.values():
            totals["$"] += account.cash_free + account.cash_reserved
            for name, holding in account.holdings.items():
                totals[name] += holding.lots
        assert totals == self.deposited

    @invariant()
    def positions_follow_the_trades(self) -> None:
        """Each position is what was deposited and traded, long or short; its cost basis and
        realized P&L part what its trades paid and brought in (every lot's cost, long or short,
        is either still in the basis or realized), a closed position keeps no cost, and the
        basis has the position's sign. Each account's cash is its transfers, its trades and its
        fees."""
        for account_id, (_, _, lots) in FUNDING.items():
            account = self.venue.ledger.accounts[account_id]
            traded = 0
            for symbol in SYMBOLS:
                key = (account_id, symbol.name)
                position = self.venue.ledger.position(account_id, symbol.name)
                assert position.qty == lots + self.bought.get(key, 0)
                assert position.realized_pnl - position.cost == -self.paid.get(key, 0)
                assert position.cost * position.qty >= 0
                assert position.qty or position.cost == 0
                traded += self.paid.get(key, 0)
            cash = account.cash_free + account.cash_reserved
            assert cash == self.cash_in[account_id] - traded - account.fees_paid

    @invariant()
    def orders_hold_no_more_than_they_may_trade(self) -> None:
        """A sale's held and short lots, and a buy's lots that buy back a short, are within
        what it has left; a short part holds buying power while it is open, and only then."""
        for order in self.venue.ledger.open_orders.values():
            if order.side is Side.SELL:
                assert order.reserved + order.short <= order.leaves
            else:
                assert order.cover <= order.leaves
            assert (order.short == 0) == (order.short_cash == 0)

    @invariant()
    def a_pair_reserves_once(self) -> None:
        """The two legs of an OCO pair hold one reservation between them: one of them holds
        it, the other none; a sell's is its lots open, once."""
        open_orders = self.venue.ledger.open_orders
        for order in open_orders.values():
            other = open_orders.get(order.pair)
            if other is None or other.pair != order.order_id:
                continue
            assert order.leaves == other.leaves
            assert 0 in (order.reserved, other.reserved)
            if order.side is Side.SELL:
                # Its lots open, once: held, and sold short.
                held = order.reserved + other.reserved + order.short + other.short
                assert held == order.leaves
                assert 0 in (order.short_cash, other.short_cash)

    @invariant()
    def legs_wait_until_their_entry_fills(self) -> None:
        """A waiting leg is in no book; its entry is open."""
        ledger = self.venue.ledger
        for entry_id, legs in ledger.held_legs.items():
            assert entry_id in ledger.open_orders
            for leg in legs:
                assert leg.order_id not in ledger.open_orders

    @invariant()
    def trailing_stops_records_show_where_they_stand(self) -> None:
        """What the matcher says of a waiting trailing stop reaches its record, and its trigger
        is where its mark and trail put it."""
        for book in self.venue.matcher.books.values():
            for order in book.stop_orders.values():
                if order.type is not OrderType.TRAILING_STOP:
                    continue
                record = self.venue.history.records[order.order_id]
                assert (record.stop_price, record.hwm) == (order.stop_price, order.hwm)
                assert order.stop_price == trail_stop(
                    order.side, order.hwm, order.trail_price, order.trail_rate
                )

    @invariant()
    def snapshot_restores_the_same_state(self) -> None:
        state = self.venue.matcher.export_state()
        restored = Matcher()
        restored.restore(MatcherState(state.books))
        assert restored.state_hash() == self.venue.matcher.state_hash()
        for symbol, book in self.venue.matcher.books.items():
            for side in Side:
                assert restored.books[symbol].depth(side, 0) == book.depth(side, 0)

    def teardown(self) -> None:
        replay = Venue()
        for command in self.history:
            command(replay)
        assert replay.matcher.state_hash() == self.venue.matcher.state_hash()
        assert replay.ledger.state_hash() == self.venue.ledger.state_hash()


def expected_refusals(ledger: Ledger, order: Order) -> set[Refusal] | None:
    """The refusals `order` may meet, where that can be told without the ledger's arithmetic
    (None: any). A sale of lots held is never refused, nor a buy that only buys back a short;
    a cash account's sale beyond its shares is refused for them, as before margin; a margin
    account's, as a short sale."""
    account = ledger.accounts[order.account_id]
    holding = account.holdings.get(order.symbol)
    free = holding.free if holding is not None else 0
    if order.side is Side.BUY:
        if holding is not None and free < 0 and order.qty <= -holding.lots - holding.covering:
            return set()
        return None
    if order.qty <= free:
        return set()
    if account.multiplier == 1:
        return {Refusal.INSUFFICIENT_SHARES}
    return {
        Refusal.FRACTIONAL_SHORT,
        Refusal.SHORT_NOT_ALLOWED,
        Refusal.INSUFFICIENT_BUYING_POWER,
    }


TestVenue = VenueMachine.TestCase
TestVenue.settings = settings(
    max_examples=150,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.slow
class TestVenueLong(VenueMachine.TestCase):  # type: ignore[misc,valid-type]
    settings = settings(
        max_examples=1500,
        stateful_step_count=120,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
