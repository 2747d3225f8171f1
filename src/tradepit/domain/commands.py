"""What a matcher is told to do: the commands its stage reads from its inboxes.

From the ledgers: orders, cancels and replaces, each already checked and reserved for. From the
operator: new books, halts, and the sessions' changes. Time arrives in each command (`ts`, ns).
"""

from __future__ import annotations

import msgspec

from tradepit.domain.orders import Order, TimeInForce
from tradepit.domain.session import Phase

__all__ = [
    "MatcherCommand",
    "Submit",
    "Cancel",
    "Replace",
    "SubmitOco",
    "AddBook",
    "SetHalted",
    "CloseSession",
    "SetSession",
    "AnyMatcherCommand",
]


class MatcherCommand(msgspec.Struct, array_like=True, gc=False, tag=True):
    pass


class Submit(MatcherCommand, tag="submit"):
    order: Order


class Cancel(MatcherCommand, tag="cancel"):
    symbol: str
    order_id: int
    account_id: int
    ts: int


class Replace(MatcherCommand, tag="replace"):
    symbol: str
    order_id: int
    account_id: int
    new_order_id: int
    qty: int
    price: int
    stop_price: int
    ts: int
    time_in_force: TimeInForce | None = None  # None: the old order's
    trail: int = 0  # a trailing stop's new trail, in its own unit (ticks or rate); 0: the old


class SubmitOco(MatcherCommand, tag="submit_oco"):
    """One OCO pair, both legs at once: a limit and a stop (or stop-limit) of one account,
    symbol, side and qty, whose `oco` name each other (`tradepit.matcher.oco`)."""

    limit: Order
    stop: Order


class AddBook(MatcherCommand, tag="add_book"):
    symbol: str


class SetHalted(MatcherCommand, tag="set_halted"):
    symbol: str
    halted: bool
    ts: int


class CloseSession(MatcherCommand, tag="close_session"):
    """The 24x7 session's end, at UTC midnight: DAY orders expire."""

    ts: int


class SetSession(MatcherCommand, tag="set_session"):
    """The market moved to `phase` (a `tradepit.domain.session.Phase`) at `ts`: at the open
    the opening auction, at the close the closing auction, and the DAY orders' expiry."""

    phase: Phase
    ts: int


AnyMatcherCommand = (
    Submit | Cancel | Replace | AddBook | SetHalted | CloseSession | SetSession | SubmitOco
)
