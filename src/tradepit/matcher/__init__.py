"""Order management: one price-time priority book per symbol. Pure, deterministic, no I/O.

Time arrives in the commands (`ts`, nanoseconds); nothing here reads a clock or draws a random
number, so the same commands always give the same events and the same `state_hash()`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from itertools import chain

import msgspec

from tradepit.domain.commands import (
    AddBook,
    Cancel,
    CloseSession,
    MatcherCommand,
    Replace,
    SetHalted,
    SetSession,
    Submit,
    SubmitOco,
)
from tradepit.domain.events import CancelRejected, Event, Rejected, RejectReason, ReplaceRejected
from tradepit.domain.orders import Order, TimeInForce
from tradepit.domain.session import Phase
from tradepit.matcher.book import Book, BookState

__all__ = ["Book", "BookState", "Matcher", "MatcherState"]


class MatcherState(msgspec.Struct, array_like=True):
    books: list[BookState]


class Matcher:
    """The books of a set of symbols, and the events their commands produced.

    Commands are methods, or a batch of command structs for `apply`; their events accumulate in
    `events` until `take_events()`. An order submitted belongs to the matcher from then on (it
    keeps `leaves` up to date).
    """

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.books: dict[str, Book] = {}
        self.phase = Phase.OPEN  # the market's session, which a new book starts in

    def add_symbol(self, symbol: str) -> Book:
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = Book(symbol, self.events)
            book.phase = self.phase
            book.gated = self.phase is not Phase.OPEN
        return book

    def take_events(self) -> list[Event]:
        events = self.events[:]
        self.events.clear()
        return events

    def apply(self, commands: Iterable[MatcherCommand]) -> None:
        """Carry out `commands` in order: a stage's batch, in one call.

        The same as calling the method each command names, one by one. A run of submits and
        cancels for one symbol goes to its book's `run` in one call: that is where a busy batch
        spends its time.
        """
        books = self.books
        pending = iter(commands)
        command = next(pending, None)
        while command is not None:
            # Exact types: a little cheaper than isinstance, and nothing subclasses a command.
            if type(command) is Submit:
                book = books.get(command.order.symbol)
            elif type(command) is Cancel:
                book = books.get(command.symbol)
            else:
                book = None
            if book is None:
                self._apply_one(command)
                command = next(pending, None)
            else:
                command = book.run(chain((command,), pending))

    def _apply_one(self, command: MatcherCommand) -> None:
        if isinstance(command, Submit):
            self.submit(command.order)
        elif isinstance(command, Cancel):
            self.cancel(command.symbol, command.order_id, command.account_id, command.ts)
        elif isinstance(command, Replace):
            self.replace(
                command.symbol,
                command.order_id,
                command.account_id,
                command.new_order_id,
                command.qty,
                command.price,
                command.stop_price,
                command.ts,
                command.time_in_force,
                command.trail,
            )
        elif isinstance(command, SubmitOco):
            self.submit_oco(command.limit, command.stop)
        elif isinstance(command, AddBook):
            self.add_symbol(command.symbol)
        elif isinstance(command, SetHalted):
            self.set_halted(command.symbol, command.halted, command.ts)
        elif isinstance(command, CloseSession):
            self.close_session(command.ts)
        elif isinstance(command, SetSession):
            self.set_session(command.phase, command.ts)

    def submit(self, order: Order) -> None:
        book = self.books.get(order.symbol)
        if book is None:
            self.events.append(
                Rejected(
                    order.symbol,
                    0,
                    order.ts,
                    order.order_id,
                    order.account_id,
                    RejectReason.UNKNOWN_SYMBOL,
                )
            )
        else:
            book.run((Submit(order),))

    def submit_oco(self, limit: Order, stop: Order) -> None:
        """Submit an OCO pair (`tradepit.matcher.oco`): two legs, accepted or rejected as one."""
        book = self.books.get(limit.symbol)
        if book is None:
            for order in (limit, stop):
                self.events.append(
                    Rejected(
                        order.symbol,
                        0,
                        order.ts,
                        order.order_id,
                        order.account_id,
                        RejectReason.UNKNOWN_SYMBOL,
                    )
                )
        else:
            book.submit_oco(limit, stop)

    def cancel(self, symbol: str, order_id: int, account_id: int, ts: int) -> None:
        book = self.books.get(symbol)
        if book is None:
            self.events.append(
                CancelRejected(symbol, 0, ts, order_id, account_id, RejectReason.UNKNOWN_SYMBOL)
            )
        else:
            book.run((Cancel(symbol, order_id, account_id, ts),))

    def replace(
        self,
        symbol: str,
        order_id: int,
        account_id: int,
        new_order_id: int,
        qty: int,
        price: int,
        stop_price: int,
        ts: int,
        time_in_force: TimeInForce | None = None,
        trail: int = 0,
    ) -> None:
        book = self.books.get(symbol)
        if book is None:
            self.events.append(
                ReplaceRejected(
                    symbol, 0, ts, order_id, account_id, new_order_id, RejectReason.UNKNOWN_SYMBOL
                )
            )
            return
        book.replace(
            order_id, account_id, new_order_id, qty, price, stop_price, ts, time_in_force, trail
        )

    def close_session(self, ts: int) -> None:
        """Expire every DAY order of every book, symbol by symbol in name order."""
        for symbol in sorted(self.books):
            self.books[symbol].expire_day_orders(ts)

    def set_session(self, phase: Phase, ts: int) -> None:
        """The market moved to `phase`: every book, in name order (`Book.set_phase`)."""
        self.phase = phase
        for symbol in sorted(self.books):
            self.books[symbol].set_phase(phase, ts)

    def set_halted(self, symbol: str, halted: bool, ts: int) -> None:
        self.add_symbol(symbol).set_halted(halted, ts)

    def export_state(self) -> MatcherState:
        return MatcherState([self.books[symbol].export_state() for symbol in sorted(self.books)])

    def restore(self, state: MatcherState) -> None:
        """Replace all books with `state`'s. Pending events are kept."""
        self.books = {book.symbol: Book.restore(book, self.events) for book in state.books}
        if state.books:
            self.phase = state.books[0].phase

    def state_hash(self) -> str:
        """A digest of the canonical state: equal iff two matchers hold the same books."""
        return hashlib.sha256(msgspec.json.encode(self.export_state())).hexdigest()
