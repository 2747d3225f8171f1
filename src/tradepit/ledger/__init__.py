"""Account management: cash, holdings, reservations, settlement, fees, positions. Pure, no I/O.

Money is integers: cash in cents, holdings in lots, prices in ticks (a `Symbol` turns ticks x lots
into cents exactly). The ledger is a state machine fed by two kinds of input:

- requests it may refuse (`place_order`, `reserve_replacement`, withdrawals): these raise
  `LedgerError` and change nothing when they fail;
- the matcher's events (`apply`), which are facts: fills settle, ended orders release what is
  left of their reservation. Events for orders this ledger does not hold (another shard's
  accounts) are ignored, so one event stream can feed every ledger shard.

Margin (`tradepit.domain.margin`): an account the operator gives a `multiplier` of 2 or 4 may
borrow cash (its free cash goes negative) and sell short (a holding's free lots go negative:
shares owed), within buying power computed at the prices the command carries (`marks`, as time
is carried: the core stays deterministic). A sale is split when it is placed: the lots the
account holds are reserved as ever, the rest is a short sale, which holds cash for its value
(buying power) until it trades. A buy's lots that close a short (`cover`) need no buying power:
an account in a margin call can always buy in.

Fees are charged per order on its cumulative traded notional: after each fill the order has paid
`ceil(sum(notional_i * bps_i) / 10_000)` in all. That is rounded in the venue's favour, never
charges more than a single rounding on the order's whole notional, and so never exceeds the fee
reserved up front at the higher of the two rates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import msgspec

from tradepit.domain.commands import MatcherCommand, Submit, SubmitOco
from tradepit.domain.events import (
    Canceled,
    Event,
    Expired,
    Rejected,
    Replaced,
    ReplaceRejected,
    Resized,
    Trade,
)
from tradepit.domain.ids import VENUE_ACCOUNT_ID
from tradepit.domain.margin import MULTIPLIERS, Margin, margin_of, position_value
from tradepit.domain.orders import Order, OrderType, Side
from tradepit.domain.refusals import Refusal
from tradepit.domain.symbols import Symbol
from tradepit.errors import RefusalError

__all__ = [
    "CASH",
    "LedgerError",
    "Holding",
    "Account",
    "OpenOrder",
    "Position",
    "Ledger",
    "LedgerState",
    "account_margin",
]

CASH = "$"  # the asset name of cash in per-asset totals (no symbol can be named so)
_BPS = 10_000


# A request the ledger refused; nothing changed. The same class as the operator's `AdminError`:
# a refusal is one thing wherever it is raised.
LedgerError = RefusalError


class Holding(msgspec.Struct):
    """Lots of one symbol in one account, and the position's cost basis and realized P&L.

    The position is `free + reserved` lots; negative, it is short (only on margin), and `free`
    is then negative. `cost` has the position's sign: what the lots held cost, or what a short
    sale's lots brought in, negated."""

    free: int = 0
    reserved: int = 0
    cost: int = 0  # cents paid for the lots held (deposits at their stated cost)
    realized_pnl: int = 0  # cents: proceeds of sales minus the cost of the lots sold
    covering: int = 0  # lots that open buys will buy back of a short position

    @property
    def lots(self) -> int:
        return self.free + self.reserved


class Account(msgspec.Struct):
    account_id: int
    cash_free: int = 0
    cash_reserved: int = 0
    fees_paid: int = 0
    holdings: dict[str, Holding] = msgspec.field(default_factory=dict)
    multiplier: int = 1  # 1: a cash account; 2 or 4: margin (`tradepit.domain.margin`)


class OpenOrder(msgspec.Struct):
    """What the ledger holds for a live order: its reservation and its fee state.

    `reserved` is cents for a buy, lots for a sell (the lots held, sold first). A sale's
    `short` lots are sold short, and hold `short_cash` cents of buying power until they trade;
    a buy's `cover` lots buy back a short position. `fee_basis` is the sum of notional x bps
    over its fills so far; `fees_charged` the cents it has paid.
    """

    order_id: int
    account_id: int
    symbol: str
    side: Side
    price: int
    leaves: int
    reserved: int
    fee_basis: int = 0
    fees_charged: int = 0
    replaces: int = 0  # the order this one replaces, until the matcher says it did
    # The other leg of its OCO pair (0: none). The pair's one reservation is on one of the two,
    # the other holding none (`tradepit.matcher.oco`).
    pair: int = 0
    short: int = 0
    short_cash: int = 0
    cover: int = 0


class Position(msgspec.Struct, frozen=True):
    symbol: str
    qty: int  # lots, free + reserved (negative: short)
    cost: int  # cents
    realized_pnl: int  # cents


class LedgerState(msgspec.Struct):
    maker_fee_bps: int
    taker_fee_bps: int
    accounts: list[Account]
    open_orders: list[OpenOrder]
    transfers: dict[str, tuple[int, str, int, int]]
    client_order_ids: dict[int, dict[str, int]]
    net_deposits: dict[str, int]
    trade_flow: dict[str, int]
    held_legs: dict[int, list[Order]] = {}


class Ledger:
    def __init__(
        self, symbols: Iterable[Symbol] = (), maker_fee_bps: int = 0, taker_fee_bps: int = 0
    ) -> None:
        for bps in (maker_fee_bps, taker_fee_bps):
            if not 0 <= bps < _BPS:
                raise ValueError("fee rates must be within 0..9999 bps")
        self.maker_fee_bps = maker_fee_bps
        self.taker_fee_bps = taker_fee_bps
        self.symbols: dict[str, Symbol] = {symbol.name: symbol for symbol in symbols}
        self.accounts: dict[int, Account] = {VENUE_ACCOUNT_ID: Account(VENUE_ACCOUNT_ID)}
        self.open_orders: dict[int, OpenOrder] = {}
        # transfer id -> (account, asset, signed amount, cost): what a done transfer did.
        self.transfers: dict[str, tuple[int, str, int, int]] = {}
        # account -> client order id -> order id. Kept apart from `Account` so that an account
        # stays small to store however many orders it has placed.
        self.client_order_ids: dict[int, dict[str, int]] = {}
        # Per asset: deposits - withdrawals, and value settled with other shards' accounts
        # (positive: received). Balances always sum to their total.
        self.net_deposits: dict[str, int] = {}
        self.trade_flow: dict[str, int] = {}
        # A bracket's or OTO's entry id -> its exit legs, waiting here (reserved for and sent to
        # the matcher by no one) until the entry fills completely.
        self.held_legs: dict[int, list[Order]] = {}
        # The entries whose held legs were added, changed or removed since the caller last
        # cleared it: what a store writes of `held_legs`.
        self.legs_changed: set[int] = set()
        # What `apply` decided of waiting legs since `take_legs`: the commands that send the
        # released ones to their matcher, and the ids of those that ended unsent.
        self.released: list[MatcherCommand] = []
        self.dropped: list[tuple[int, str]] = []  # (leg id, why: a Refusal code or "canceled")

    # Accounts and transfers.

    def add_symbol(self, symbol: Symbol) -> None:
        self.symbols[symbol.name] = symbol

    def open_account(self, account_id: int) -> Account:
        """Open an account (idempotent: an open account is returned as it is)."""
        account = self.accounts.get(account_id)
        if account is None:
            account = self.accounts[account_id] = Account(account_id)
        return account

    def deposit_cash(self, transfer_id: str, account_id: int, cents: int) -> None:
        self._transfer(transfer_id, account_id, CASH, cents, False, 0)

    def withdraw_cash(self, transfer_id: str, account_id: int, cents: int) -> None:
        self._transfer(transfer_id, account_id, CASH, cents, True, 0)

    def deposit_shares(
        self, transfer_id: str, account_id: int, symbol: str, lots: int, cost: int = 0
    ) -> None:
        """Credit `lots` of `symbol`; `cost` (cents) becomes part of the position's cost basis."""
        self._transfer(transfer_id, account_id, symbol, lots, False, cost)

    def withdraw_shares(self, transfer_id: str, account_id: int, symbol: str, lots: int) -> None:
        self._transfer(transfer_id, account_id, symbol, lots, True, 0)

    def _transfer(
        self,
        transfer_id: str,
        account_id: int,
        asset: str,
        quantity: int,
        withdraw: bool,
        cost: int,
    ) -> None:
        """Move `quantity` of `asset` in (or out, to `withdraw`), once per `transfer_id`."""
        amount = -quantity if withdraw else quantity
        done = self.transfers.get(transfer_id)
        if done is not None:
            if done != (account_id, asset, amount, cost):
                raise LedgerError(
                    Refusal.TRANSFER_CONFLICT,
                    f"transfer {transfer_id} was already done differently",
                )
            return
        account = self._account(account_id)
        if quantity <= 0 or cost < 0:
            raise LedgerError(Refusal.INVALID_AMOUNT, "a transfer moves a positive amount")
        if asset == CASH:
            if withdraw and self._withdrawable(account) < quantity:  # a deposit always goes in
                raise LedgerError(
                    Refusal.INSUFFICIENT_FUNDS,
                    "not enough free cash to withdraw (on margin: the equity beyond the initial "
                    "margin of the positions at their cost, and open orders)",
                )
            account.cash_free += amount
        else:
            if asset not in self.symbols:
                raise LedgerError(Refusal.UNKNOWN_SYMBOL, f"unknown symbol {asset}")
            holding = account.holdings.get(asset)
            if withdraw:
                if holding is None or holding.free < quantity:
                    raise LedgerError(
                        Refusal.INSUFFICIENT_SHARES, f"not enough free {asset} to withdraw"
                    )
                cost_out = holding.cost * quantity // (holding.free + holding.reserved)
                if account.multiplier > 1 and not self._may_leave(
                    account, asset, quantity, cost_out
                ):
                    raise LedgerError(
                        Refusal.INSUFFICIENT_FUNDS,
                        f"the {asset} shares are collateral: on margin, shares leave only while "
                        "the equity at cost still covers the initial margin and open orders",
                    )
                holding.cost -= cost_out
            else:
                if holding is None:
                    holding = account.holdings[asset] = Holding()
                # Shares delivered into a short position buy it back, at their stated cost.
                _book_position(holding, quantity, cost)
            holding.free += amount
        self.net_deposits[asset] = self.net_deposits.get(asset, 0) + amount
        self.transfers[transfer_id] = (account_id, asset, amount, cost)

    def set_multiplier(self, account_id: int, multiplier: int) -> None:
        """Make an account a cash account (1) or a margin account (2, 4). An account that
        borrows (cash below zero, a short position, a short sale or cover open) keeps margin."""
        account = self._account(account_id)
        if multiplier not in MULTIPLIERS:
            raise LedgerError(Refusal.INVALID_REQUEST, "the multiplier is 1, 2 or 4")
        if multiplier == 1 and self._borrows(account):
            raise LedgerError(Refusal.MARGIN_IN_USE, "close the account's short positions and debt")
        account.multiplier = multiplier

    def _borrows(self, account: Account) -> bool:
        return (
            account.cash_free < 0
            or any(holding.free < 0 or holding.covering for holding in account.holdings.values())
            or any(
                order.short or order.short_cash
                for order in self.open_orders.values()
                if order.account_id == account.account_id
            )
        )

    def _may_leave(self, account: Account, asset: str, lots: int, cost: int) -> bool:
        """Whether a margin account's equity still covers its initial margin and its open
        orders' commitments, its positions at cost, without `lots` of `asset` (that cost
        `cost`): the bound a cash withdrawal keeps."""
        holding = account.holdings[asset]
        left = msgspec.structs.replace(holding, free=holding.free - lots, cost=holding.cost - cost)
        rest = msgspec.structs.replace(account, holdings={**account.holdings, asset: left})
        margin = account_margin(rest, self.symbols, {})
        return margin.equity - margin.initial_margin - margin.committed >= 0

    def _withdrawable(self, account: Account) -> int:
        """Cents of cash that may leave: the free cash; on margin, no more than the equity in
        excess of the positions' initial margin and the open orders' commitments, with the
        positions at their cost (a transfer carries no prices). A short sale's proceeds stay."""
        if account.multiplier == 1:
            return account.cash_free
        margin = account_margin(account, self.symbols, {})
        return min(account.cash_free, margin.equity - margin.initial_margin - margin.committed)

    def _account(self, account_id: int) -> Account:
        account = self.accounts.get(account_id)
        if account is None:
            raise LedgerError(Refusal.UNKNOWN_ACCOUNT, f"account {account_id} does not exist")
        return account

    # Orders.

    def buy_reservation(self, symbol: Symbol, price: int, lots: int) -> int:
        """Cents a buy of `lots` at `price` must hold: its notional (rounded up: it covers the
        fills, each rounded down) plus the largest fee."""
        notional = symbol.notional_up(price, lots)
        return notional + _ceil_div(notional * max(self.maker_fee_bps, self.taker_fee_bps), _BPS)

    def place_order(
        self,
        order: Order,
        client_order_id: str | None = None,
        marks: Mapping[str, int] | None = None,
    ) -> None:
        """Check an order and reserve what it may spend: cash for a buy (at its limit or
        protection price, plus the largest fee), shares for a sell, and for a short sale
        (on margin) buying power. `marks` are the prices (ticks) a margin account's positions
        are valued at; one without a mark is valued at its cost."""
        account = self._account(order.account_id)
        symbol = self.symbols.get(order.symbol)
        if symbol is None:
            raise LedgerError(Refusal.UNKNOWN_SYMBOL, f"unknown symbol {order.symbol}")
        if order.qty <= 0 or order.price <= 0:
            raise LedgerError(Refusal.INVALID_ORDER, "qty and price must be positive")
        if order.order_id in self.open_orders:
            raise LedgerError(Refusal.DUPLICATE_ORDER_ID, "an open order already has this id")
        self._check_client_order_id(account.account_id, client_order_id)
        self._reserve(account, symbol, order.order_id, order.side, order.price, order.qty, 0, marks)
        if client_order_id is not None:
            self.client_order_ids.setdefault(account.account_id, {})[client_order_id] = (
                order.order_id
            )

    def place_oco(
        self,
        limit: Order,
        stop: Order,
        client_order_id: str | None = None,
        marks: Mapping[str, int] | None = None,
    ) -> SubmitOco:
        """Check an OCO pair and reserve for it once: the shares of a sell, the cash of a buy
        at the higher of its two prices. The limit leg holds the reservation to start with.
        Returns the command that sends it to its matcher."""
        self._check_pair(limit, stop)
        self.place_order(
            msgspec.structs.replace(limit, price=max(limit.price, stop.price)),
            client_order_id,
            marks,
        )
        held = self.open_orders[limit.order_id]
        held.price, held.pair = limit.price, stop.order_id
        self.open_orders[stop.order_id] = OpenOrder(
            stop.order_id,
            stop.account_id,
            stop.symbol,
            stop.side,
            stop.price,
            stop.qty,
            0,
            pair=limit.order_id,
        )
        return SubmitOco(limit, stop)

    def _check_pair(self, limit: Order, stop: Order) -> None:
        if (
            limit.type is not OrderType.LIMIT
            or stop.type not in (OrderType.STOP, OrderType.STOP_LIMIT)
            or (limit.account_id, limit.symbol, limit.side, limit.qty)
            != (stop.account_id, stop.symbol, stop.side, stop.qty)
            or (limit.oco, stop.oco) != (stop.order_id, limit.order_id)
            or limit.order_id == stop.order_id
        ):
            raise LedgerError(
                Refusal.INVALID_ORDER,
                "an oco pair is a limit and a stop of one account, symbol, side and qty",
            )
        if stop.order_id in self.open_orders:
            raise LedgerError(Refusal.DUPLICATE_ORDER_ID, "an open order already has this id")

    def place_with_legs(
        self,
        entry: Order,
        legs: list[Order],
        client_order_id: str | None = None,
        marks: Mapping[str, int] | None = None,
    ) -> None:
        """Place a bracket's or OTO's entry (reserved for as any order) and hold its exit
        legs here until it fills completely: a bracket's two, an OCO pair, an OTO's one. The
        legs are on the other side, for the entry's qty; they are reserved for when they go."""
        if not 1 <= len(legs) <= 2 or any(
            (leg.account_id, leg.symbol, leg.qty) != (entry.account_id, entry.symbol, entry.qty)
            or leg.side is entry.side
            for leg in legs
        ):
            raise LedgerError(
                Refusal.INVALID_ORDER, "a leg is the entry's opposite, for its account and qty"
            )
        if len(legs) == 2:
            self._check_pair(*legs)
        ids = {entry.order_id, *(leg.order_id for leg in legs)}
        if len(ids) != len(legs) + 1 or any(
            order_id in self.open_orders or order_id in self.held_legs for order_id in ids
        ):
            raise LedgerError(Refusal.DUPLICATE_ORDER_ID, "an open order already has this id")
        self.place_order(entry, client_order_id, marks)
        self.held_legs[entry.order_id] = legs
        self.legs_changed.add(entry.order_id)

    def take_legs(self) -> tuple[list[MatcherCommand], list[tuple[int, str]]]:
        """The commands that send the legs released since the last call, and the legs that
        ended without being sent (their entry ended first, or they could not be reserved
        for), with why."""
        released, dropped = self.released, self.dropped
        self.released, self.dropped = [], []
        return released, dropped

    def _release_legs(self, entry_id: int, ts: int) -> None:
        """The entry filled completely, at `ts`: its legs go, stamped with that time, if what
        they sell (or spend) is there."""
        legs = self.held_legs.pop(entry_id)
        self.legs_changed.add(entry_id)
        for leg in legs:
            leg.ts = ts
        try:
            if len(legs) == 2:
                self.released.append(self.place_oco(legs[0], legs[1]))
            else:
                self.place_order(legs[0])
                self.released.append(Submit(legs[0]))
        except LedgerError as error:
            self.dropped += [(leg.order_id, error.code.value) for leg in legs]

    def _drop_legs(self, entry_id: int) -> None:
        legs = self.held_legs.pop(entry_id, None)
        if legs is not None:
            self.legs_changed.add(entry_id)
            self.dropped += [(leg.order_id, "canceled") for leg in legs]

    def reserve_replacement(
        self,
        order_id: int,
        account_id: int,
        new_order_id: int,
        qty: int,
        price: int,
        client_order_id: str | None = None,
        marks: Mapping[str, int] | None = None,
    ) -> None:
        """Reserve for the order that is to replace `order_id`, before the matcher decides.

        The replacement is reserved in full, beside the old order's reservation: the old order
        may still trade until the matcher replaces it, so its reservation must stay whole. On
        `Replaced` the old order's remainder is released; on `ReplaceRejected` the new one's.
        """
        account = self._account(account_id)
        old = self.open_orders.get(order_id)
        if old is None or old.account_id != account_id:
            raise LedgerError(Refusal.UNKNOWN_ORDER, "no such open order")
        if qty <= 0 or price <= 0:
            raise LedgerError(Refusal.INVALID_ORDER, "qty and price must be positive")
        if new_order_id in self.open_orders:
            raise LedgerError(Refusal.DUPLICATE_ORDER_ID, "an open order already has this id")
        self._check_client_order_id(account.account_id, client_order_id)
        symbol = self.symbols[old.symbol]
        if old.pair:
            self._reserve_leg(old, new_order_id, qty, price)
        else:
            self._reserve(account, symbol, new_order_id, old.side, price, qty, order_id, marks)
        if client_order_id is not None:
            self.client_order_ids.setdefault(account_id, {})[client_order_id] = new_order_id

    def _reserve_leg(self, old: OpenOrder, new_order_id: int, qty: int, price: int) -> None:
        """A leg's replacement shares its pair's reservation: it keeps the pair's size, and a
        buy leg its price within what the pair reserved."""
        other = self.open_orders[old.pair]
        if qty != old.leaves:
            raise LedgerError(Refusal.INVALID_ORDER, "a leg keeps the size of its pair")
        if old.side is Side.BUY and price > max(old.price, other.price):
            raise LedgerError(
                Refusal.INSUFFICIENT_BUYING_POWER, "a buy leg's price stays within its pair's"
            )
        self.open_orders[new_order_id] = OpenOrder(
            new_order_id,
            old.account_id,
            old.symbol,
            old.side,
            price,
            qty,
            0,
            replaces=old.order_id,
            pair=old.pair,
        )

    def _check_client_order_id(self, account_id: int, client_order_id: str | None) -> None:
        if client_order_id is not None and client_order_id in self.client_order_ids.get(
            account_id, ()
        ):
            raise LedgerError(
                Refusal.DUPLICATE_CLIENT_ORDER_ID, f"client_order_id {client_order_id!r} is taken"
            )

    def _reserve(
        self,
        account: Account,
        symbol: Symbol,
        order_id: int,
        side: Side,
        price: int,
        qty: int,
        replaces: int,
        marks: Mapping[str, int] | None,
    ) -> None:
        holding = account.holdings.get(symbol.name)
        # A replacement may count on what the order it replaces holds on a short's side: it
        # goes when the matcher replaces it (and an account in a margin call may still move
        # its buy-back). Only its lots may trade meanwhile, which the short's bounds absorb.
        old = self.open_orders.get(replaces) if replaces else None
        if side is Side.BUY:
            needed = self.buy_reservation(symbol, price, qty)
            cover = 0
            if holding is not None and holding.free < 0:
                covering = holding.covering - (old.cover if old is not None else 0)
                cover = min(qty, max(0, -holding.lots - covering))
            # Buying back a short needs no buying power: only what goes beyond it.
            charged = needed if not cover else self.buy_reservation(symbol, price, qty - cover)
            if charged:
                available = (
                    account.cash_free
                    if account.multiplier == 1
                    else self.margin(account.account_id, marks).buying_power
                )
                if charged > available:
                    raise LedgerError(
                        Refusal.INSUFFICIENT_BUYING_POWER,
                        f"needs {charged} cents of buying power, has {available}",
                    )
            account.cash_free -= needed
            account.cash_reserved += needed
            if cover:
                assert holding is not None
                holding.covering += cover
            self.open_orders[order_id] = OpenOrder(
                order_id,
                account.account_id,
                symbol.name,
                side,
                price,
                qty,
                needed,
                replaces=replaces,
                cover=cover,
            )
            return
        if holding is not None and holding.free >= qty:
            held, short = qty, 0
        else:
            held = max(0, holding.free) if holding is not None else 0
            short = qty - held
        short_cash = 0
        if short:
            freed = old.short_cash if old is not None else 0
            short_cash = self._check_short_sale(
                account, symbol, holding, price, short, marks, freed
            )
            account.cash_free -= short_cash
            account.cash_reserved += short_cash
        if held:
            assert holding is not None
            holding.free -= held
            holding.reserved += held
        self.open_orders[order_id] = OpenOrder(
            order_id,
            account.account_id,
            symbol.name,
            side,
            price,
            qty,
            held,
            replaces=replaces,
            short=short,
            short_cash=short_cash,
        )

    def _check_short_sale(
        self,
        account: Account,
        symbol: Symbol,
        holding: Holding | None,
        price: int,
        short: int,
        marks: Mapping[str, int] | None,
        freed: int = 0,
    ) -> int:
        """Whether `short` lots may be sold short at `price`: the cents of buying power the
        sale holds (its value at the higher of its price and the mark), or LedgerError.
        `freed`: buying power the order it replaces holds, which it will release."""
        have = max(0, holding.free) if holding is not None else 0
        if account.multiplier == 1:
            raise LedgerError(
                Refusal.INSUFFICIENT_SHARES,
                f"needs {have + short} lots of {symbol.name}, has {have}",
            )
        if not symbol.shortable:
            raise LedgerError(Refusal.NOT_SHORTABLE, f"{symbol.name} cannot be sold short")
        if not (symbol.whole_shares(short) and symbol.whole_shares(have + short)):
            raise LedgerError(Refusal.FRACTIONAL_SHORT, "a sale that goes short is of whole shares")
        margin = self.margin(account.account_id, marks)
        if not margin.margin_enabled:
            raise LedgerError(
                Refusal.SHORT_NOT_ALLOWED, "selling short needs $2,000 of equity on margin"
            )
        mark = (marks or {}).get(symbol.name, 0)
        value = symbol.notional_up(max(price, mark), short)
        available = margin.buying_power + freed
        if value > available:
            raise LedgerError(
                Refusal.INSUFFICIENT_BUYING_POWER,
                f"a short sale needs {value} cents of buying power, has {available}",
            )
        return value

    def margin(self, account_id: int, marks: Mapping[str, int] | None = None) -> Margin:
        """The account's margin with its positions at `marks` (ticks; at cost without one)."""
        return account_margin(self._account(account_id), self.symbols, marks or {})

    # The matcher's events.

    def apply(self, event: Event) -> None:
        """Apply one matcher event: settle a trade, or release what an ended order reserved.

        Only the orders this ledger holds are touched: a trade between two ledgers' accounts is
        applied to each, and each settles its own side.
        """
        if isinstance(event, Trade):
            open_orders = self.open_orders
            maker = open_orders.get(event.maker_order_id)
            if maker is not None:
                self._settle(maker, event.price, event.qty, self.maker_fee_bps, event.ts)
            taker = open_orders.get(event.taker_order_id)
            if taker is not None:
                self._settle(taker, event.price, event.qty, self.taker_fee_bps, event.ts)
        elif isinstance(event, Canceled | Expired | Rejected):
            order = self.open_orders.get(event.order_id)
            if order is not None:
                self._close(order)
            if self.held_legs:
                self._drop_legs(event.order_id)
        elif isinstance(event, Resized):
            order = self.open_orders.get(event.order_id)
            if order is not None:
                order.leaves = event.leaves
        elif isinstance(event, Replaced):
            old = self.open_orders.get(event.order_id)
            new = self.open_orders.get(event.new_order_id)
            if old is not None and new is not None and new.pair:
                # The replacement is the leg now: the old leg's share of the reservation (all
                # or none of it) and the link are its.
                _hand_over(old, new)
                old.pair = 0
                self.open_orders[new.pair].pair = new.order_id
            if old is not None:
                self._close(old)
            if new is not None:
                new.replaces = 0
            legs = self.held_legs.pop(event.order_id, None)
            if legs is not None:
                # The legs follow their entry, and its new size: they exit what it buys.
                for leg in legs:
                    leg.qty = event.qty
                self.held_legs[event.new_order_id] = legs
                self.legs_changed.update((event.order_id, event.new_order_id))
        elif isinstance(event, ReplaceRejected):
            new = self.open_orders.get(event.new_order_id)
            if new is not None and new.replaces == event.order_id:
                self._close(new)

    def _settle(self, order: OpenOrder, price: int, qty: int, bps: int, ts: int) -> None:
        """`qty` lots of `order` traded at `price`, at `ts`; the fee is `bps` basis points of
        it."""
        account = self.accounts[order.account_id]
        symbol = self.symbols[order.symbol]
        holding = account.holdings.get(order.symbol) or account.holdings.setdefault(
            order.symbol, Holding()
        )
        if order.pair:
            self._hold(order)
        notional = symbol.notional(price, qty)
        order.fee_basis += notional * bps
        fees_due = _ceil_div(order.fee_basis, _BPS)
        fee = fees_due - order.fees_charged
        order.fees_charged = fees_due
        order.leaves -= qty
        account.fees_paid += fee
        self.accounts[VENUE_ACCOUNT_ID].cash_free += fee
        if order.side is Side.BUY:
            if holding.free < 0:  # buying back a short
                _book_position(holding, qty, notional)
            else:
                holding.cost += notional
            spent = notional + fee
            order.reserved -= spent
            account.cash_reserved -= spent
            holding.free += qty
            if order.cover:
                covered = min(qty, order.cover)
                order.cover -= covered
                holding.covering -= covered
            self._flow(CASH, -notional)
            self._flow(order.symbol, qty)
            # Release what the rest of the order no longer needs (a better price, a lower fee).
            still_needed = self._buy_still_needed(order, symbol)
            self._release_cash(account, order, order.reserved - still_needed)
        else:
            position = holding.free + holding.reserved
            if qty <= position:  # a sale of longs, the common case, inline
                cost_sold = holding.cost * qty // position
                holding.cost -= cost_sold
                holding.realized_pnl += notional - cost_sold
            else:
                _book_position(holding, -qty, notional)
            held = min(qty, order.reserved)  # the lots held go first, then the short sale
            order.reserved -= held
            holding.reserved -= held
            if held < qty:
                shorted = qty - held
                released = order.short_cash * shorted // order.short
                order.short -= shorted
                order.short_cash -= released
                account.cash_reserved -= released
                account.cash_free += released
                holding.free -= shorted
            account.cash_free += notional - fee
            self._flow(CASH, notional)
            self._flow(order.symbol, -qty)
        if order.leaves == 0:
            self._close(order)
            if order.order_id in self.held_legs:
                self._release_legs(order.order_id, ts)

    def _hold(self, order: OpenOrder) -> None:
        """Move its pair's reservation onto `order`, the leg that trades."""
        other = self.open_orders.get(order.pair)
        if other is not None and other.pair == order.order_id:
            _hand_over(other, order)

    def _buy_still_needed(self, order: OpenOrder, symbol: Symbol) -> int:
        price = order.price
        if order.pair and order.pair in self.open_orders:
            price = max(price, self.open_orders[order.pair].price)  # the other leg may trade
        notional = symbol.notional_up(price, order.leaves)
        top_bps = max(self.maker_fee_bps, self.taker_fee_bps)
        fees_cap = _ceil_div(order.fee_basis + notional * top_bps, _BPS)
        return notional + fees_cap - order.fees_charged

    def _release_cash(self, account: Account, order: OpenOrder, cents: int) -> None:
        order.reserved -= cents
        account.cash_reserved -= cents
        account.cash_free += cents

    def _close(self, order: OpenOrder) -> None:
        """The order ended: release all it still holds, or, a leg whose other leg is still
        open, hand it over."""
        other = self.open_orders.get(order.pair) if order.pair else None
        if other is not None and other.pair == order.order_id:
            _hand_over(order, other)
            other.pair = 0
            del self.open_orders[order.order_id]
            return
        account = self.accounts[order.account_id]
        if order.side is Side.BUY:
            self._release_cash(account, order, order.reserved)
            if order.cover:
                account.holdings[order.symbol].covering -= order.cover
                order.cover = 0
        else:
            if order.reserved:
                holding = account.holdings[order.symbol]
                holding.reserved -= order.reserved
                holding.free += order.reserved
                order.reserved = 0
            if order.short_cash:
                account.cash_reserved -= order.short_cash
                account.cash_free += order.short_cash
            order.short = order.short_cash = 0
        del self.open_orders[order.order_id]

    def _flow(self, asset: str, amount: int) -> None:
        self.trade_flow[asset] = self.trade_flow.get(asset, 0) + amount

    # Queries.

    def position(self, account_id: int, symbol: str) -> Position:
        holding = self._account(account_id).holdings.get(symbol) or Holding()
        return Position(symbol, holding.free + holding.reserved, holding.cost, holding.realized_pnl)

    def check_invariants(self) -> list[str]:
        """Every way the books fail to balance; an empty list when all is well.

        For every asset, the sum over all accounts (the venue's fee account included) of free
        plus reserved equals deposits - withdrawals, plus what was settled with other shards
        (nothing, when one ledger holds every account): borrowed shares and cash are negative
        balances, so what one account owes another holds. Each account's reserved balances
        equal what its open orders hold: cash for buys and short sales, lots for sales,
        buy-backs of shorts; a sale holds every lot it may still sell, held or short. Nothing
        reserved is negative, and only a margin account's free cash or shares may be (its
        debt, its shorts).
        """
        problems = []
        totals: dict[str, int] = {}
        held_by_orders: dict[tuple[int, str], list[int]] = {}  # -> [reserved, covering]
        for order in self.open_orders.values():
            buy = order.side is Side.BUY
            cash = held_by_orders.setdefault((order.account_id, CASH), [0, 0])
            lots = held_by_orders.setdefault((order.account_id, order.symbol), [0, 0])
            if buy:
                cash[0] += order.reserved
                lots[1] += order.cover
            else:
                cash[0] += order.short_cash
                lots[0] += order.reserved
            if min(order.reserved, order.short, order.short_cash, order.cover) < 0 or (
                order.leaves <= 0
            ):
                problems.append(f"order {order.order_id}: reserved {order.reserved}")
            if not buy and not order.pair and order.reserved + order.short != order.leaves:
                problems.append(
                    f"order {order.order_id}: holds {order.reserved} + {order.short} short "
                    f"lots for {order.leaves}"
                )
            if (order.short or order.short_cash) if buy else order.cover:
                problems.append(f"order {order.order_id}: holds for the other side")
        for account in self.accounts.values():
            balances = {CASH: (account.cash_free, account.cash_reserved, 0)}
            balances.update(
                (name, (holding.free, holding.reserved, holding.covering))
                for name, holding in account.holdings.items()
            )
            for asset, (free, reserved, covering) in balances.items():
                totals[asset] = totals.get(asset, 0) + free + reserved
                if reserved < 0 or covering < 0 or (free < 0 and account.multiplier == 1):
                    problems.append(f"account {account.account_id}: {asset} {free}/{reserved}")
                expected, expected_covering = held_by_orders.pop(
                    (account.account_id, asset), (0, 0)
                )
                if reserved != expected or covering != expected_covering:
                    problems.append(
                        f"account {account.account_id}: {asset} reserved {reserved} "
                        f"(covering {covering}), open orders hold {expected} "
                        f"({expected_covering})"
                    )
        for key, (amount, covering) in held_by_orders.items():
            if amount or covering:
                problems.append(f"account {key[0]}: orders hold {amount} {key[1]} it does not have")
        for asset in set(totals) | set(self.net_deposits) | set(self.trade_flow):
            expected = self.net_deposits.get(asset, 0) + self.trade_flow.get(asset, 0)
            if totals.get(asset, 0) != expected:
                problems.append(f"{asset}: balances sum to {totals.get(asset, 0)}, not {expected}")
        return problems

    # Snapshots.

    def export_state(self) -> LedgerState:
        """A deep copy of the whole state, in canonical order."""
        state = LedgerState(
            self.maker_fee_bps,
            self.taker_fee_bps,
            [self.accounts[key] for key in sorted(self.accounts)],
            [self.open_orders[key] for key in sorted(self.open_orders)],
            dict(sorted(self.transfers.items())),
            {key: dict(sorted(ids.items())) for key, ids in sorted(self.client_order_ids.items())},
            dict(sorted(self.net_deposits.items())),
            dict(sorted(self.trade_flow.items())),
            dict(sorted(self.held_legs.items())),
        )
        return msgspec.json.decode(msgspec.json.encode(state), type=LedgerState)

    @classmethod
    def restore(cls, state: LedgerState, symbols: Iterable[Symbol]) -> Ledger:
        state = msgspec.json.decode(msgspec.json.encode(state), type=LedgerState)
        ledger = cls(symbols, state.maker_fee_bps, state.taker_fee_bps)
        ledger.accounts = {account.account_id: account for account in state.accounts}
        ledger.open_orders = {order.order_id: order for order in state.open_orders}
        ledger.transfers = state.transfers
        ledger.client_order_ids = state.client_order_ids
        ledger.net_deposits = state.net_deposits
        ledger.trade_flow = state.trade_flow
        ledger.held_legs = state.held_legs
        return ledger

    def state_hash(self) -> str:
        return hashlib.sha256(msgspec.json.encode(self.export_state())).hexdigest()


def account_margin(
    account: Account, symbols: Mapping[str, Symbol], marks: Mapping[str, int]
) -> Margin:
    """An account's margin with its positions at `marks` (ticks; a position without one at its
    cost). A holding of a symbol not in `symbols` (not listed yet) is left out."""
    positions = [
        position_value(symbols[name], holding.lots, marks.get(name, 0), holding.cost)
        for name, holding in account.holdings.items()
        if holding.lots and name in symbols
    ]
    return margin_of(account.multiplier, account.cash_free, account.cash_reserved, positions)


def _hand_over(giver: OpenOrder, taker: OpenOrder) -> None:
    """Move all an OCO leg holds onto the other leg of its pair (or its replacement)."""
    taker.reserved += giver.reserved
    taker.short += giver.short
    taker.short_cash += giver.short_cash
    taker.cover += giver.cover
    giver.reserved = giver.short = giver.short_cash = giver.cover = 0


def _book_position(holding: Holding, bought: int, notional: int) -> None:
    """A trade of `bought` lots (negative: sold) for `notional` cents changes the position's
    cost basis and realized P&L: the part that closes the position realizes its share of the
    cost (pro rata, rounded down), the part that opens or adds to it is at its price."""
    held = holding.lots
    closing = 0
    if held and (held > 0) != (bought > 0):
        closing = min(abs(bought), abs(held))
        cost_closed = holding.cost * closing // abs(held)
        value_closed = notional * closing // abs(bought)
        holding.cost -= cost_closed
        # A sale of longs realizes what it brought in over their cost; a buy-back of a short
        # what the short sale brought in (-cost) over what buying back costs.
        if held > 0:
            holding.realized_pnl += value_closed - cost_closed
        else:
            holding.realized_pnl += -cost_closed - value_closed
        notional -= value_closed
    if closing < abs(bought):
        holding.cost += notional if bought > 0 else -notional


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)
