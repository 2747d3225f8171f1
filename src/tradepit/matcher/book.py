"""One symbol's order book: price-time priority matching, deterministic, no I/O.

Layout, chosen for speed in CPython:

- Each side is a dict of price levels plus a sorted list of their keys. Keys are signed so that
  the best level of *either* side is the largest key: a bid rests under `price`, an ask under
  `-price`. One matching loop then serves both sides: the taker crosses every level whose key is
  `>= threshold` (`-limit` for a buy, `limit` for a sell), and the best level is `keys[-1]`.
- A level is one list, `[live, head, lots, order, order, ...]`: the count of its live orders,
  the index of its first order not yet done, the lots its live orders have open (kept as they
  change, so that depth is read per level, not summed per order), then its orders in arrival
  order (FIFO from `head`).
  Cancel is O(1): the order is dropped from the id map and marked dead (`leaves == 0`); matching
  skips dead entries at the head, and an emptied level is dropped whole. A level whose dead
  entries outnumber its live ones is compacted, so memory stays bounded. One plain list, with
  its counters at indexes 0 to 2 (literals: a named index costs a global lookup), because
  CPython specializes loads and stores of list items but not stores to a msgspec Struct's
  attributes, and most resting orders open a new level: against a Struct of queue, head and
  live, this takes a tenth off the instructions per command.
- Events are appended to a list shared with the `Matcher`, each with the next sequence number.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from typing import Any

import msgspec

from tradepit.domain.commands import Cancel, MatcherCommand, Submit
from tradepit.domain.events import (
    Accepted,
    Canceled,
    CancelReason,
    CancelRejected,
    Event,
    Expired,
    Queued,
    Rejected,
    RejectReason,
    Replaced,
    ReplaceRejected,
    Resized,
    SessionChanged,
    Trade,
    TradingStatus,
    TrailMoved,
    Triggered,
)
from tradepit.domain.orders import (
    TRAIL_RATE_UNIT,
    Order,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
    trail_stop,
)
from tradepit.domain.session import Phase
from tradepit.matcher.auction import uncross
from tradepit.matcher.oco import check_pair

__all__ = ["Book", "BookState"]

# Enum members bound once: in Python 3.11 a member read through its class runs
# EnumType.__getattr__'s hook (gone in 3.12), several times the cost of a global.
BUY = Side.BUY
LIMIT = OrderType.LIMIT
MARKET = OrderType.MARKET
STOP = OrderType.STOP
STOP_LIMIT = OrderType.STOP_LIMIT
TRAILING_STOP = OrderType.TRAILING_STOP
DAY = TimeInForce.DAY
GTC = TimeInForce.GTC
IOC = TimeInForce.IOC
FOK = TimeInForce.FOK
OPG = TimeInForce.OPG
CLS = TimeInForce.CLS
OPEN = Phase.OPEN
CLOSED = Phase.CLOSED
STP_NONE = SelfTradePrevention.NONE
CANCEL_NEWEST = SelfTradePrevention.CANCEL_NEWEST
CANCEL_OLDEST = SelfTradePrevention.CANCEL_OLDEST
REQUESTED = CancelReason.REQUESTED
IOC_REMAINDER = CancelReason.IOC_REMAINDER
FOK_UNFILLED = CancelReason.FOK_UNFILLED
MARKET_REMAINDER = CancelReason.MARKET_REMAINDER
SELF_TRADE = CancelReason.SELF_TRADE
BAND_REMAINDER = CancelReason.BAND_REMAINDER
OCO = CancelReason.OCO
HALTED = RejectReason.HALTED
UNKNOWN_ORDER = RejectReason.UNKNOWN_ORDER
NOT_OWNER = RejectReason.NOT_OWNER
INVALID_QTY = RejectReason.INVALID_QTY
INVALID_PRICE = RejectReason.INVALID_PRICE
INVALID_ORDER = RejectReason.INVALID_ORDER
DUPLICATE_ORDER_ID = RejectReason.DUPLICATE_ORDER_ID
POST_ONLY_WOULD_TAKE = RejectReason.POST_ONLY_WOULD_TAKE
OUTSIDE_BAND = RejectReason.OUTSIDE_BAND

# A level is compacted when it holds more than this many dead entries beyond its live ones.
_COMPACT_SLACK = 16


_Level = list[Any]  # [live, head, lots, *orders]: ints, then Orders, as the docstring says
_FIRST = 3  # the index of a new level's first order: its head
_NO_MATCH = 1 << 62  # a threshold above every key: nothing crosses it
# Past this many, trailing stops whose triggers move are re-keyed by one sort of their list
# rather than each by a deletion and an insertion (each a memmove of the list's tail).
_REKEY_ONE_BY_ONE = 16
Key = tuple[int, int, int]  # a stop's or a mark's key: (price or -price, arrival, order id)
_COMPACT_AFTER = _FIRST + _COMPACT_SLACK  # a head past this has more done entries than the slack


def _in_auction(order: Order) -> bool:
    """Whether an order waiting for the open takes part in the opening auction: a plain limit
    or market order that may rest (day, gtc) or is for the auction (opg)."""
    return (
        (order.type is LIMIT or order.type is MARKET)
        and not order.oco
        and not order.post_only
        and order.time_in_force in (DAY, GTC, OPG)
    )


def _open_orders(level: _Level) -> list[Order]:
    """The level's orders from its head on, dead ones (`leaves == 0`) included, FIFO."""
    return level[level[1] :]


class BookState(msgspec.Struct, array_like=True):
    """A book's whole state, in canonical order: what `export_state` gives and `restore` takes.

    `bids` and `asks` list resting orders best level first, FIFO within a level; `stops` lists
    waiting stop orders with their arrival numbers, in trigger order per side; `waiting` the
    orders that wait for the open, and `closing` those for the closing auction, in arrival
    order.
    """

    symbol: str
    seq: int
    last_price: int
    halted: bool
    arrival: int
    bids: list[Order]
    asks: list[Order]
    buy_stops: list[tuple[int, Order]]
    sell_stops: list[tuple[int, Order]]
    phase: Phase = Phase.OPEN
    waiting: list[Order] = []
    closing: list[Order] = []


class Book:
    def __init__(self, symbol: str, out: list[Event]) -> None:
        self.symbol = symbol
        self.out = out
        self.seq = 0
        self.last_price = 0
        self.halted = False
        self.bid_keys: list[int] = []  # ascending prices; the best bid is last
        self.ask_keys: list[int] = []  # ascending negated prices; the best ask is last
        self.bids: dict[int, _Level] = {}
        self.asks: dict[int, _Level] = {}
        self.orders: dict[int, Order] = {}  # resting orders by id
        # Waiting stop orders: (stop, arrival, id) ascending for buys, which trigger when the
        # last trade is at or above their stop; (-stop, arrival, id) for sells.
        self.stops: dict[int, tuple[int, int, int]] = {}
        self.stop_orders: dict[int, Order] = {}
        self.buy_stops: list[tuple[int, int, int]] = []
        self.sell_stops: list[tuple[int, int, int]] = []
        self.arrival = 0
        # Trailing stops wait among the stops, keyed by their current trigger, and are also
        # indexed by their mark: (hwm, arrival, id) ascending for sells, (-hwm, arrival, id) for
        # buys, so that a trade finds by bisection the ones whose mark it moves (only those
        # with a mark below it, for a sell) and costs nothing for the rest.
        self.trail_sells: list[tuple[int, int, int]] = []
        self.trail_buys: list[tuple[int, int, int]] = []
        self.trail_marks: dict[int, tuple[int, int, int]] = {}
        self.trail_moved: dict[int, Order] = {}  # moved by the command being carried out
        # Each open OCO leg's id -> the other leg's (`tradepit.matcher.oco`). A pair always
        # has its stop leg waiting, so `stop_orders` is never empty while this is not: the
        # fast path of `run` never sees a leg trade.
        self.oco: dict[int, int] = {}
        # The market's session (`tradepit.domain.session`): a 24x7 venue's books are always
        # open. Outside the regular session an order waits in `waiting` for the open (unless it
        # is an extended-hours limit and the extended sessions are on), and `cls` orders wait
        # in `closing` for the close, both by arrival; `gated` is whether the fast path of
        # `run` must leave submits to the checked path (halted, or not open).
        self.phase = OPEN
        self.waiting: dict[int, Order] = {}
        self.closing: dict[int, Order] = {}
        self.gated = False

    # Queries.

    def best_bid(self) -> int | None:
        return self.bid_keys[-1] if self.bid_keys else None

    def best_ask(self) -> int | None:
        return -self.ask_keys[-1] if self.ask_keys else None

    def depth(self, side: Side, levels: int = 10) -> list[tuple[int, int]]:
        """(price, total lots) of the best `levels` levels of one side, best first."""
        keys, book_side, sign = (
            (self.bid_keys, self.bids, 1) if side is BUY else (self.ask_keys, self.asks, -1)
        )
        result = []
        for key in reversed(keys[-levels:] if levels else keys):
            result.append((key * sign, book_side[key][2]))
        return result

    def resting_orders(self, side: Side) -> list[Order]:
        """Live resting orders of one side in priority order: best price first, then FIFO."""
        keys, book_side = (self.bid_keys, self.bids) if side is BUY else (self.ask_keys, self.asks)
        return [
            order
            for key in reversed(keys)
            for order in _open_orders(book_side[key])
            if order.leaves
        ]

    def get(self, order_id: int) -> Order | None:
        return self.orders.get(order_id) or self.stop_orders.get(order_id)

    def held(self, order_id: int) -> Order | None:
        """An order waiting for the open or for the closing auction."""
        return self.waiting.get(order_id) or self.closing.get(order_id)

    # Commands.

    def run(self, commands: Iterable[MatcherCommand]) -> MatcherCommand | None:
        """Carry out the submits and cancels for this book in `commands`, in order, until one
        that is not (another symbol's, or another command); return that one, taken from the
        iterator, or None when every command was done.

        This is the hot loop, and why it is one function: a submit or cancel costs a few hundred
        bytecodes, and a Python call per command, or an attribute load per use of the book's
        lists, would be a tenth of that. A plain limit or market order, with no stop order
        waiting to trigger, is matched and rested right here; everything else goes to the
        checked path.
        """
        out = self.out.append
        orders = self.orders
        symbol = self.symbol
        for command in commands:
            if type(command) is Submit:
                order = command.order
                if order.symbol != symbol:
                    return command
                kind = order.type
                order_id = order.order_id
                price = order.price
                qty = order.qty
                if (
                    (kind is not LIMIT and kind is not MARKET)
                    or order.post_only
                    or order.stop_price
                    or qty <= 0
                    or price <= 0
                    or self.gated
                    or self.stop_orders
                    or order_id in orders
                ):
                    self._submit_checked(order)
                    continue
                tif = order.time_in_force
                if tif is FOK or tif is CLS or tif is OPG:  # all or none, or an auction's
                    self._submit_checked(order)
                    continue
                # Three names at a time, not four: CPython 3.11 assigns three by swapping, four
                # by building and unpacking a tuple.
                is_buy = order.side is BUY
                if is_buy:
                    keys, levels, threshold = self.ask_keys, self.asks, -price
                else:
                    keys, levels, threshold = self.bid_keys, self.bids, price
                crosses = keys and keys[-1] >= threshold
                if crosses and order.band_bps:
                    # It takes liquidity within a band: the checked path (a passive order,
                    # the common case, pays for none of it).
                    self._submit_checked(order)
                    continue
                seq = self.seq = self.seq + 1
                out(
                    Accepted(
                        symbol, seq, order.ts, order_id, order.account_id, order.side, price, qty
                    )
                )
                if crosses:
                    if self._match(order, qty, keys, levels, threshold, 0):
                        self._cancel_remainder(order, SELF_TRADE)
                        continue
                    if not order.leaves:
                        continue
                else:  # (`_match` sets it when it runs: a Struct attribute store is not cheap)
                    order.leaves = qty
                if kind is MARKET:
                    self._cancel_remainder(order, MARKET_REMAINDER)
                elif tif is IOC:
                    self._cancel_remainder(order, IOC_REMAINDER)
                else:  # it rests: `_rest`, inlined
                    if is_buy:
                        key, keys, levels = price, self.bid_keys, self.bids
                    else:
                        key, keys, levels = -price, self.ask_keys, self.asks
                    level = levels.get(key)
                    if level is None:
                        levels[key] = [1, _FIRST, order.leaves, order]
                        insort(keys, key)
                    else:
                        level.append(order)
                        level[0] += 1  # live
                        level[2] += order.leaves  # lots
                    orders[order_id] = order
            elif type(command) is Cancel:
                if command.symbol != symbol:
                    return command
                order_id = command.order_id
                account_id = command.account_id
                resting = orders.get(order_id) or self.stop_orders.get(order_id)
                if resting is None and (self.waiting or self.closing):
                    resting = self.held(order_id)
                    if resting is not None and resting.account_id == account_id:
                        self._cancel_held(resting, command.ts)
                        continue
                if resting is None or resting.account_id != account_id:
                    reason = UNKNOWN_ORDER if resting is None else NOT_OWNER
                    seq = self.seq = self.seq + 1
                    out(CancelRejected(symbol, seq, command.ts, order_id, account_id, reason))
                    continue
                leaves = resting.leaves
                self._remove(resting)
                seq = self.seq = self.seq + 1
                out(
                    Canceled(
                        symbol,
                        seq,
                        command.ts,
                        order_id,
                        account_id,
                        resting.side,
                        leaves,
                        REQUESTED,
                    )
                )
                if self.oco and order_id in self.oco:
                    self._end_leg(order_id, command.ts)
            else:
                return command
        return None

    def _submit_checked(self, order: Order, returning: bool = False) -> None:
        """Submit with every check, for what the fast path in `run` does not handle;
        `returning`: an order back from waiting for the open, with its `leaves` (it may have
        traded before the night)."""
        start = len(self.out)
        reason = self._check_new(order)
        if reason is None and order.post_only and self._would_take(order):
            reason = POST_ONLY_WOULD_TAKE
        if reason is None and order.band_bps and order.type is LIMIT and self._off_band(order):
            reason = OUTSIDE_BAND
        if reason is None and order.time_in_force is OPG and self.phase is OPEN:
            reason = INVALID_ORDER  # the opening auction is over
        if reason is not None:
            self._emit_rejected(order, reason)
            return
        if not returning:
            order.leaves = order.qty
        if self._holds(order):
            return
        self._say(Accepted, order, order.ts)
        if order.type is STOP or order.type is STOP_LIMIT:
            self._park_stop(order)
        elif order.type is TRAILING_STOP:
            hwm = order.hwm = self.last_price or order.reference
            order.stop_price = trail_stop(order.side, hwm, order.trail_price, order.trail_rate)
            self._park_stop(order)
            if order.hwm:
                self.trail_moved[order.order_id] = order  # its first mark and trigger
        else:
            self._execute(order)
        if self.stops:
            self._run_triggers(order.ts, start)

    def submit_oco(self, limit: Order, stop: Order, returning: bool = False) -> None:
        """Submit an OCO pair: both legs are accepted or both rejected; the stop leg waits,
        the limit leg trades or rests, and each then answers for the other
        (`tradepit.matcher.oco`); `returning` as for `_submit_checked`."""
        start = len(self.out)
        reason = check_pair(limit, stop) or self._check_new(limit) or self._check_new(stop)
        if reason is None and limit.band_bps and self._off_band(limit):
            reason = OUTSIDE_BAND
        if reason is not None:
            self._emit_rejected(limit, reason)
            self._emit_rejected(stop, reason)
            return
        if not returning:
            limit.leaves, stop.leaves = limit.qty, stop.qty
        if self.phase is not OPEN:  # the pair waits for the open, as one
            for order in (limit, stop):
                self._queue(self.waiting, order)
            return
        for order in (limit, stop):
            self._say(Accepted, order, order.ts)
        self.oco[limit.order_id] = stop.order_id
        self.oco[stop.order_id] = limit.order_id
        self._park_stop(stop)
        self._execute(limit)
        self._run_triggers(limit.ts, start)

    def replace(
        self,
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
        """Replace an open order with `new_order_id` for `qty` lots at `price` (and `stop_price`),
        and with `time_in_force` if it is not None.

        The old order's fills stay with it; the new order starts unfilled with `qty` lots. A
        pure size decrease keeps the queue position (whatever its time in force, if it is one
        that rests); anything else goes to the back, and may trade at once if the new price
        crosses the book. A trailing stop may change its `trail` (0: keeps it), in its own
        unit, and keeps the mark it has reached.
        """
        start = len(self.out)
        old = self.orders.get(order_id) or self.stop_orders.get(order_id)
        # An order that waits (for the open, or the closing auction) is replaced in its place.
        held = None
        if old is None and (self.waiting or self.closing):
            held = self.waiting if order_id in self.waiting else self.closing
            old = held.get(order_id)
        reason: RejectReason | None = None
        if self.halted:
            reason = HALTED
        elif old is None:
            reason = UNKNOWN_ORDER
        elif old.account_id != account_id:
            reason = NOT_OWNER
        elif qty <= 0:
            reason = INVALID_QTY
        elif price <= 0 or (old.type in (STOP, STOP_LIMIT)) != (stop_price > 0):
            reason = INVALID_PRICE
        elif self.get(new_order_id) is not None or self.held(new_order_id) is not None:
            reason = DUPLICATE_ORDER_ID
        elif trail < 0 or (trail and old.type is not TRAILING_STOP):
            reason = INVALID_ORDER
        elif held is not None and old.oco:
            reason = INVALID_ORDER  # a waiting pair is canceled and sent again, not replaced
        elif (
            held is not None
            and CLS in (time_in_force, old.time_in_force)
            and (time_in_force not in (None, old.time_in_force))
        ):
            reason = INVALID_ORDER  # to or from the closing auction: cancel and send again
        elif order_id in self.oco and qty != old.leaves:
            reason = INVALID_QTY  # a leg stays the size of its pair
        elif order_id in self.oco and time_in_force not in (None, old.time_in_force):
            reason = INVALID_ORDER
        if old is None or reason is not None:
            # Without an order there is always a reason by now: `or` is for the type checker.
            reason = reason or UNKNOWN_ORDER
            self.seq += 1
            self.out.append(
                ReplaceRejected(
                    self.symbol, self.seq, ts, order_id, account_id, new_order_id, reason
                )
            )
            return
        new = msgspec.structs.replace(
            old,
            order_id=new_order_id,
            qty=qty,
            price=price,
            stop_price=stop_price,
            ts=ts,
            leaves=qty,
            time_in_force=old.time_in_force if time_in_force is None else time_in_force,
        )
        if new.type is TRAILING_STOP:
            # The new trail, from the mark the old one reached.
            if trail and new.trail_price:
                new.trail_price = trail
            elif trail:
                new.trail_rate = trail
            new.stop_price = trail_stop(new.side, new.hwm, new.trail_price, new.trail_rate)
        if held is not None:
            del held[order_id]
            old.leaves = 0
            self._emit_replaced(old, new, False, waits=True)
            self._queue(held, new)
            return
        if new.post_only and self._would_take(new):
            self.seq += 1
            self.out.append(
                ReplaceRejected(
                    self.symbol,
                    self.seq,
                    ts,
                    order_id,
                    account_id,
                    new_order_id,
                    POST_ONLY_WOULD_TAKE,
                )
            )
            return
        if new.band_bps and new.type is LIMIT and self._off_band(new):
            self.seq += 1
            self.out.append(
                ReplaceRejected(
                    self.symbol, self.seq, ts, order_id, account_id, new_order_id, OUTSIDE_BAND
                )
            )
            return
        keeps_priority = (
            order_id in self.orders
            and price == old.price
            and qty <= old.leaves
            and new.time_in_force is not IOC
            and new.time_in_force is not FOK
        )
        self._emit_replaced(old, new, keeps_priority)
        other = self.oco.pop(order_id, None)
        if other is not None:
            # The replacement is the leg in the old one's place.
            self.oco[new_order_id] = other
            self.oco[other] = new_order_id
            self._leg(other).oco = new_order_id
        if keeps_priority:
            # The old order object holds the queue position: it becomes the new order in place.
            del self.orders[order_id]
            level = self.bids[old.price] if old.side is BUY else self.asks[-old.price]
            level[2] += qty - old.leaves  # lots
            old.order_id = new_order_id
            old.qty = old.leaves = qty
            old.ts = ts
            old.time_in_force = new.time_in_force
            self.orders[new_order_id] = old
            return
        self._remove(old)
        if new.type is STOP or new.type is STOP_LIMIT or new.type is TRAILING_STOP:
            self._park_stop(new)
            if new.type is TRAILING_STOP and new.hwm:
                self.trail_moved[new_order_id] = new  # where its new trail puts its trigger
        else:
            self._execute(new)
        if self.stops:
            self._run_triggers(ts, start)

    def expire_day_orders(self, ts: int, keep_extended: bool = False) -> None:
        """The session closed: every DAY order, resting or waiting to trigger, expires; but
        extended-hours ones, if `keep_extended`, until after-hours end. Orders waiting for the
        open wait on: they are for the next session."""
        day_orders = [
            order
            for order in self.resting_orders(Side.BUY) + self.resting_orders(Side.SELL)
            if order.time_in_force is DAY and not (keep_extended and order.extended_hours)
        ]
        for key in self.buy_stops + self.sell_stops:
            order = self.stop_orders[key[2]]
            if order.time_in_force is DAY:
                day_orders.append(order)
        for order in day_orders:
            leaves = order.leaves
            self._remove(order)
            self.oco.pop(order.order_id, None)  # both legs of a pair share a time in force
            self.seq += 1
            self.out.append(
                Expired(
                    self.symbol,
                    self.seq,
                    ts,
                    order.order_id,
                    order.account_id,
                    order.side,
                    leaves,
                )
            )

    def set_halted(self, halted: bool, ts: int) -> None:
        self.halted = halted
        self.gated = halted or self.phase is not OPEN
        self.seq += 1
        self.out.append(TradingStatus(self.symbol, self.seq, ts, halted))
        if not halted and self.phase is OPEN and self.waiting:
            self._open(ts)  # it was halted at the open: it opens now

    # Sessions and auctions.

    def set_phase(self, phase: Phase, ts: int) -> None:
        """The market moved to `phase` at `ts`. At the open, the orders that waited for it and
        the book uncross in the opening auction, then trading goes on; at the close, the `cls`
        orders and the book uncross in the closing auction, then DAY orders expire (those for
        the extended hours at the end of after-hours). A halted book holds no auction."""
        was = self.phase
        if phase is was:
            return
        start = len(self.out)
        self.phase = phase
        self.gated = self.halted or phase is not OPEN
        self.seq += 1
        self.out.append(SessionChanged(self.symbol, self.seq, ts, phase.value))
        if phase is OPEN:
            if not self.halted:
                self._open(ts)
            if self.stops:
                self._run_triggers(ts, start)
            return
        if was is OPEN:
            self._close(ts)
            if self.stops:  # the pairs' rules for its trades (no stop triggers now)
                self._run_triggers(ts, start)
        if was is OPEN or phase is CLOSED:
            self.expire_day_orders(ts, keep_extended=phase is not CLOSED)
        if was is OPEN:
            self._withdraw_regular_orders()

    def _withdraw_regular_orders(self) -> None:
        """The regular session ended: the resting orders not for the extended hours (GTC ones,
        OCO pairs with their stop legs) leave the book for the night, in priority order, and
        go back in at the next open, in its auction; so that only extended-hours orders trade
        in the extended sessions, as on an exchange."""
        for order in self.resting_orders(BUY) + self.resting_orders(Side.SELL):
            if order.extended_hours:
                continue
            self._withdraw(order)
            if order.oco:
                # The pair waits unlinked, its link on the orders: the open submits it again.
                stop = self.stop_orders.get(order.oco)
                self.oco.pop(order.order_id, None)
                self.oco.pop(order.oco, None)
                if stop is not None:
                    self._withdraw(stop)

    def _withdraw(self, order: Order) -> None:
        # A copy waits: the book's entry of the order stays behind, dead, as a cancel's does.
        waiting = msgspec.structs.replace(order)
        self._remove(order)
        self._queue(self.waiting, waiting)

    def _open(self, ts: int) -> None:
        entering = list(self.waiting.values())
        self.waiting.clear()
        auction = [order for order in entering if _in_auction(order)]
        self._auction(auction, ts, OPG)
        # Then the rest, in arrival order, as if they came now: stops, IOC and FOK orders,
        # post-only ones, and OCO pairs (as pairs).
        for order in entering:
            if _in_auction(order):
                continue
            order.ts = ts
            if not order.oco:
                self._submit_checked(order, returning=True)
            elif order.type is LIMIT:  # a pair goes in as one, its limit leg first
                stop = next(o for o in entering if o.order_id == order.oco)
                stop.ts = ts
                self.submit_oco(order, stop, returning=True)

    def _close(self, ts: int) -> None:
        entering = list(self.closing.values())
        self.closing.clear()
        if self.halted:
            for order in entering:
                self._expire(order, ts)
            return
        self._auction(entering, ts, CLS)

    def _auction(self, entering: list[Order], ts: int, only: TimeInForce) -> None:
        """Uncross the book and the `entering` orders at the one price that trades the most
        (`tradepit.matcher.auction`). Every order trades at that price, in price-time priority,
        the older order of each trade as its maker. What is left of an
        `only` order (opg at the open, cls at the close) expires; the rest goes on as if it
        came now (a limit rests; a market order takes what is there, and is canceled)."""
        for order in entering:
            self._say(Accepted, order, ts)
        # A market order takes part at its protection price, the worst it may trade at: it
        # ranks first by it (the edge of its band), but never trades beyond it.
        bids = self.resting_orders(BUY) + [order for order in entering if order.side is BUY]
        asks = self.resting_orders(Side.SELL) + [o for o in entering if o.side is not BUY]
        reference = self.last_price or next(
            (order.reference for order in entering if order.reference), 0
        )
        if not reference and (bids or asks):
            reference = (bids or asks)[0].price  # a first auction without a reference
        result = (
            uncross(
                [(o.price, o.leaves) for o in bids], [(o.price, o.leaves) for o in asks], reference
            )
            if reference
            else None
        )
        if result is not None:
            price = result.price
            # Priority: the better price, then time (the book's resting orders before those
            # entering at the same price, which a stable sort keeps).
            buys = sorted((o for o in bids if o.price >= price), key=lambda o: -o.price)
            sells = sorted((o for o in asks if o.price <= price), key=lambda o: o.price)
            self._cross(buys, sells, price, result.volume, ts)
        for order in entering:
            if not order.leaves:
                continue
            if order.time_in_force is only:
                self._expire(order, ts)
            else:
                order.ts = ts
                self._execute(order)

    def _cross(
        self, buys: list[Order], sells: list[Order], price: int, volume: int, ts: int
    ) -> None:
        """Trade `volume` lots at `price` between `buys` and `sells`, each in priority order."""
        buy_index = sell_index = 0
        while volume:
            buy, sell = buys[buy_index], sells[sell_index]
            qty = min(buy.leaves, sell.leaves, volume)
            volume -= qty
            self._take(buy, qty)
            self._take(sell, qty)
            if (buy.ts, buy.order_id) <= (sell.ts, sell.order_id):
                maker, taker = buy, sell
            else:
                maker, taker = sell, buy
            self.seq += 1
            self.out.append(
                Trade(
                    self.symbol,
                    self.seq,
                    ts,
                    price,
                    qty,
                    maker.order_id,
                    maker.account_id,
                    maker.leaves,
                    taker.order_id,
                    taker.account_id,
                    taker.side,
                    taker.leaves,
                )
            )
            if not buy.leaves:
                buy_index += 1
            if not sell.leaves:
                sell_index += 1
        self.last_price = price

    def _take(self, order: Order, qty: int) -> None:
        """`qty` of `order`'s lots trade: out of its level too, if it rests (and out of the
        book, once none are left)."""
        order.leaves -= qty
        if order.order_id not in self.orders:
            return
        if order.side is BUY:
            key, keys, levels = order.price, self.bid_keys, self.bids
        else:
            key, keys, levels = -order.price, self.ask_keys, self.asks
        level = levels[key]
        level[2] -= qty  # lots
        if order.leaves:
            return
        del self.orders[order.order_id]
        level[0] -= 1  # live; the entry stays, dead, as a cancel leaves it
        if not level[0]:
            del levels[key]
            del keys[bisect_left(keys, key)]

    def _expire(self, order: Order, ts: int) -> None:
        leaves = order.leaves
        order.leaves = 0
        self.seq += 1
        self.out.append(
            Expired(self.symbol, self.seq, ts, order.order_id, order.account_id, order.side, leaves)
        )

    def _holds(self, order: Order) -> bool:
        """Whether `order` is not to trade now, and waits (it has been queued): a cls order
        for the close, any other outside the regular session for the open, except a DAY limit
        for the extended hours while they are on."""
        if order.time_in_force is CLS:
            self._queue(self.closing, order)
            return True
        phase = self.phase
        if phase is OPEN:
            return False
        if (
            order.extended_hours
            and phase is not CLOSED
            and order.type is LIMIT
            and order.time_in_force is DAY
        ):
            return False
        self._queue(self.waiting, order)
        return True

    def _queue(self, held: dict[int, Order], order: Order) -> None:
        held[order.order_id] = order
        self._say(Queued, order, order.ts)

    def _say(self, kind: type[Accepted] | type[Queued], order: Order, ts: int) -> None:
        """That `order` is live (`Accepted`) or waits (`Queued`), at `ts`."""
        self.seq += 1
        self.out.append(
            kind(
                self.symbol,
                self.seq,
                ts,
                order.order_id,
                order.account_id,
                order.side,
                order.price,
                order.qty,
            )
        )

    def _cancel_held(self, order: Order, ts: int) -> None:
        """Cancel an order that waits (for the open, or its auction), and its OCO pair's other
        leg with it."""
        for held in (self.waiting, self.closing):
            held.pop(order.order_id, None)
        self._cancel_remainder(order, REQUESTED, ts)
        other = self.waiting.pop(order.oco, None) if order.oco else None
        if other is not None:
            self._cancel_remainder(other, OCO, ts)

    def _emit_replaced(
        self, old: Order, new: Order, kept_priority: bool, waits: bool = False
    ) -> None:
        self.seq += 1
        self.out.append(
            Replaced(
                self.symbol,
                self.seq,
                new.ts,
                old.order_id,
                old.account_id,
                old.side,
                new.order_id,
                new.price,
                new.stop_price,
                new.qty,
                kept_priority,
                waits,
            )
        )

    # Snapshots.

    def export_state(self) -> BookState:
        copy = msgspec.structs.replace
        return BookState(
            symbol=self.symbol,
            seq=self.seq,
            last_price=self.last_price,
            halted=self.halted,
            arrival=self.arrival,
            bids=[copy(order) for order in self.resting_orders(Side.BUY)],
            asks=[copy(order) for order in self.resting_orders(Side.SELL)],
            buy_stops=[(key[1], copy(self.stop_orders[key[2]])) for key in self.buy_stops],
            sell_stops=[(key[1], copy(self.stop_orders[key[2]])) for key in self.sell_stops],
            phase=self.phase,
            waiting=[copy(order) for order in self.waiting.values()],
            closing=[copy(order) for order in self.closing.values()],
        )

    @classmethod
    def restore(cls, state: BookState, out: list[Event]) -> Book:
        book = cls(state.symbol, out)
        book.seq = state.seq
        book.last_price = state.last_price
        book.halted = state.halted
        book.arrival = state.arrival
        copy = msgspec.structs.replace
        for order in state.bids + state.asks:
            book._rest(copy(order))
        for arrival, order in state.buy_stops + state.sell_stops:
            book._insert_stop(copy(order), arrival)
        book.phase = state.phase
        book.gated = book.halted or book.phase is not OPEN
        book.waiting = {order.order_id: copy(order) for order in state.waiting}
        book.closing = {order.order_id: copy(order) for order in state.closing}
        for order_id, order in list(book.orders.items()) + list(book.stop_orders.items()):
            if order.oco and book.get(order.oco) is not None:
                book.oco[order_id] = order.oco
        return book

    # Internals.

    def _check_new(self, order: Order) -> RejectReason | None:
        if self.halted:
            return HALTED
        if order.qty <= 0:
            return INVALID_QTY
        if order.price <= 0:
            return INVALID_PRICE
        if order.order_id in self.orders or order.order_id in self.stop_orders:
            return DUPLICATE_ORDER_ID
        if self.held(order.order_id) is not None:
            return DUPLICATE_ORDER_ID
        kind = order.type
        if (kind is STOP or kind is STOP_LIMIT) != (order.stop_price > 0):
            return INVALID_PRICE
        if kind is TRAILING_STOP:
            # Exactly one trail, and a rate below 100%.
            trail_price, trail_rate = order.trail_price, order.trail_rate
            if (trail_price > 0) == (trail_rate > 0) or trail_price < 0 or trail_rate < 0:
                return INVALID_PRICE
            if trail_rate >= TRAIL_RATE_UNIT:
                return INVALID_PRICE
        if order.post_only and (kind is not LIMIT or order.time_in_force in (IOC, FOK)):
            return INVALID_ORDER
        return None

    def _emit_rejected(self, order: Order, reason: RejectReason) -> None:
        self.seq += 1
        self.out.append(
            Rejected(self.symbol, self.seq, order.ts, order.order_id, order.account_id, reason)
        )

    def _would_take(self, order: Order) -> bool:
        if order.side is BUY:
            return bool(self.ask_keys) and self.ask_keys[-1] >= -order.price
        return bool(self.bid_keys) and self.bid_keys[-1] >= order.price

    def _band(self, order: Order) -> tuple[int, int]:
        """The lowest and highest price, in ticks, `order` may trade at now: its band around
        the book's last trade (or, before the first, the reference it came with), as
        `tradepit.domain.symbols.price_band` computes it."""
        reference = self.last_price or order.reference
        bps = order.band_bps
        low = -((-reference * (10_000 - bps)) // 10_000)
        return max(low, 1), (reference * (10_000 + bps)) // 10_000

    def _bounds(self, order: Order) -> tuple[int, int]:
        """The matching threshold (a key, as `_match` takes it) and the price a maker beyond
        the band trades at, for `order` taking liquidity within its band.

        A buy takes asks up to the lower of its limit and the band's top; an ask resting below
        the band's bottom trades at the bottom (it gets more than it asked, the print stays in
        the band, and the book is not left crossed). A sell mirrors it. When no price satisfies
        both the order and the band, the threshold is above every key.
        """
        low, high = self._band(order)
        if order.side is BUY:
            cap = min(order.price, high)
            if cap < low:
                return _NO_MATCH, 0
            return -cap, low
        floor = max(order.price, low)
        if floor > high:
            return _NO_MATCH, 0
        return floor, high

    def _off_band(self, order: Order) -> bool:
        """Whether a limit order crosses the book and its first trade would print outside its
        band: it is refused, as a collar refuses a fat finger. One that is not marketable rests
        at any price; one whose first trade is in the band trades up to the band's edge."""
        if order.side is BUY:
            keys, threshold = self.ask_keys, -order.price
        else:
            keys, threshold = self.bid_keys, order.price
        if not keys or keys[-1] < threshold:
            return False
        return keys[-1] < self._bounds(order)[0]

    def _execute(self, order: Order) -> None:
        """Match an incoming (or just triggered) order, then rest or cancel what is left."""
        if order.side is BUY:
            keys, levels, threshold = self.ask_keys, self.asks, -order.price
        else:
            keys, levels, threshold = self.bid_keys, self.bids, order.price
        limit = threshold
        slide = 0
        if order.band_bps and keys and keys[-1] >= threshold:
            threshold, slide = self._bounds(order)
        if order.time_in_force is FOK and not self._can_fill(order, keys, levels, threshold):
            self._cancel_remainder(order, FOK_UNFILLED)
            return
        if (
            keys
            and keys[-1] >= threshold
            and self._match(order, order.leaves, keys, levels, threshold, slide)
        ):
            self._cancel_remainder(order, SELF_TRADE)
            return
        if not order.leaves:
            return
        if order.type is MARKET:
            self._cancel_remainder(order, MARKET_REMAINDER)
        elif order.time_in_force is IOC or order.time_in_force is FOK:
            self._cancel_remainder(order, IOC_REMAINDER)
        elif threshold != limit and keys and keys[-1] >= limit:
            # Resting would leave the book crossed at prices beyond the band.
            self._cancel_remainder(order, BAND_REMAINDER)
        else:
            self._rest(order)

    def _match(
        self,
        taker: Order,
        leaves: int,
        keys: list[int],
        levels: dict[int, _Level],
        threshold: int,
        slide: int,
    ) -> bool:
        """Trade `taker`, unfilled with `leaves` lots open, against the levels crossing
        `threshold`, best first, FIFO within each; then set the taker's `leaves`.

        `slide` (0: none) is the band's edge on the makers' side: a level beyond it trades at
        it instead of its own price, the better for its makers (`_bounds`).

        Returns True when self-trade prevention ended the taker (its remainder must be
        canceled). This is the hot path: locals only, one event struct per trade.
        """
        out = self.out.append
        orders = self.orders
        symbol = self.symbol
        seq = self.seq
        taker_id = taker.order_id
        taker_account = taker.account_id
        taker_side = taker.side
        ts = taker.ts
        stp = taker.stp
        price = traded_price = 0
        stopped_by_self_trade = False
        while keys:
            key = keys[-1]
            if key < threshold:
                break
            level = levels[key]
            head = level[1]
            price = level[head].price  # the level's price (a maker's, not a new int object)
            if slide and (price < slide if taker_side is BUY else price > slide):
                price = slide
            while True:
                maker = level[head]
                maker_leaves = maker.leaves
                if not maker_leaves:
                    head += 1
                    continue
                maker_id = maker.order_id
                maker_account = maker.account_id
                if maker_account == taker_account and stp is not STP_NONE:
                    if stp is CANCEL_NEWEST:
                        stopped_by_self_trade = True
                        break
                    # Cancel oldest (or both): the resting order goes, matching goes on.
                    head += 1
                    del orders[maker_id]
                    maker.leaves = 0
                    level[0] -= 1  # live
                    level[2] -= maker_leaves  # lots
                    seq += 1
                    out(
                        Canceled(
                            symbol,
                            seq,
                            ts,
                            maker_id,
                            maker_account,
                            maker.side,
                            maker_leaves,
                            SELF_TRADE,
                        )
                    )
                    if stp is not CANCEL_OLDEST:
                        stopped_by_self_trade = True
                    if not level[0]:
                        del levels[key]
                        keys.pop()
                        break
                    if stopped_by_self_trade:
                        break
                    continue
                if maker_leaves > leaves:
                    qty = leaves
                    maker_leaves -= qty
                    maker.leaves = maker_leaves
                else:
                    qty = maker_leaves
                    maker_leaves = 0
                    maker.leaves = 0
                    head += 1
                    del orders[maker_id]
                    level[0] -= 1  # live
                leaves -= qty
                level[2] -= qty  # lots
                traded_price = price
                seq += 1
                out(
                    Trade(
                        symbol,
                        seq,
                        ts,
                        price,
                        qty,
                        maker_id,
                        maker_account,
                        maker_leaves,
                        taker_id,
                        taker_account,
                        taker_side,
                        leaves,
                    )
                )
                if not level[0]:
                    del levels[key]
                    keys.pop()
                    break
                if not leaves:
                    break
            if level[0]:
                # Matching stopped inside this level: it is the only one touched that survives.
                if head > _COMPACT_AFTER and head + head > len(level) + _FIRST:
                    del level[_FIRST:head]  # more than half of it was done
                    head = _FIRST
                level[1] = head
                break
            if not leaves or stopped_by_self_trade:
                break
        if traded_price:
            self.last_price = traded_price
        self.seq = seq
        taker.leaves = leaves
        return stopped_by_self_trade

    def _can_fill(
        self, taker: Order, keys: list[int], levels: dict[int, _Level], threshold: int
    ) -> bool:
        """Whether `taker` would fill completely, self-trade prevention included (for FOK)."""
        needed = taker.leaves
        account = taker.account_id
        stp = taker.stp
        for key in reversed(keys):
            if key < threshold:
                return False
            for maker in _open_orders(levels[key]):
                if not maker.leaves:
                    continue
                if maker.account_id == account and stp is not STP_NONE:
                    if stp is CANCEL_OLDEST:
                        continue
                    return False
                needed -= maker.leaves
                if needed <= 0:
                    return True
        return False

    def _rest(self, order: Order) -> None:
        if order.side is BUY:
            key, keys, levels = order.price, self.bid_keys, self.bids
        else:
            key, keys, levels = -order.price, self.ask_keys, self.asks
        level = levels.get(key)
        if level is None:
            levels[key] = [1, _FIRST, order.leaves, order]
            insort(keys, key)
        else:
            level.append(order)
            level[0] += 1  # live
            level[2] += order.leaves  # lots
        self.orders[order.order_id] = order

    def _remove(self, order: Order) -> None:
        """Take an open order (resting or waiting stop) out of the book, without an event."""
        order_id = order.order_id
        if self.orders.pop(order_id, None) is None:
            self._take_stop(order_id, self.stops[order_id])
            order.leaves = 0
            return
        if order.side is BUY:
            key, keys, levels = order.price, self.bid_keys, self.bids
        else:
            key, keys, levels = -order.price, self.ask_keys, self.asks
        level = levels[key]
        level[2] -= order.leaves  # lots
        order.leaves = 0
        live = level[0] = level[0] - 1
        if not live:
            del levels[key]
            del keys[bisect_left(keys, key)]
        elif len(level) - level[1] > 2 * live + _COMPACT_SLACK:
            level[_FIRST:] = [entry for entry in _open_orders(level) if entry.leaves]
            level[1] = _FIRST

    def _cancel_remainder(self, order: Order, reason: CancelReason, ts: int | None = None) -> None:
        """Cancel what is left of `order`, at `ts` (default: the order's own time)."""
        leaves = order.leaves
        order.leaves = 0
        self.seq += 1
        self.out.append(
            Canceled(
                self.symbol,
                self.seq,
                order.ts if ts is None else ts,
                order.order_id,
                order.account_id,
                order.side,
                leaves,
                reason,
            )
        )

    def _park_stop(self, order: Order) -> None:
        self.arrival += 1
        self._insert_stop(order, self.arrival)

    def _insert_stop(self, order: Order, arrival: int) -> None:
        if order.side is BUY:
            # (A trailing buy with no mark yet has no trigger: no price reaches it.)
            key = (order.stop_price or _NO_MATCH, arrival, order.order_id)
            insort(self.buy_stops, key)
        else:
            key = (-order.stop_price, arrival, order.order_id)
            insort(self.sell_stops, key)
        self.stops[order.order_id] = key
        self.stop_orders[order.order_id] = order
        if order.type is TRAILING_STOP:
            if order.side is BUY:
                mark = (-order.hwm if order.hwm else -_NO_MATCH, arrival, order.order_id)
                insort(self.trail_buys, mark)
            else:
                mark = (order.hwm, arrival, order.order_id)
                insort(self.trail_sells, mark)
            self.trail_marks[order.order_id] = mark

    def _take_stop(self, order_id: int, key: tuple[int, int, int]) -> Order:
        """Take a waiting stop out of the stops (and a trailing one out of its marks)."""
        del self.stops[order_id]
        order = self.stop_orders.pop(order_id)
        stops = self.buy_stops if order.side is BUY else self.sell_stops
        del stops[bisect_left(stops, key)]
        mark = self.trail_marks.pop(order_id, None)
        if mark is not None:
            marks = self.trail_buys if order.side is BUY else self.trail_sells
            del marks[bisect_left(marks, mark)]
        return order

    def _follow(self, price: int) -> None:
        """A trade at `price`: move the marks it passes (a sell's up to it, a buy's down) and
        the triggers that follow them. The orders it does not pass cost a comparison; those it
        does are moved together, as one sorted run (a rising market moves many at once)."""
        sells = self.trail_sells
        if sells and sells[0][0] < price:
            end = bisect_left(sells, (price,))
            marks = sorted([(price, arrival, order_id) for _, arrival, order_id in sells[:end]])
            del sells[:end]
            same = bisect_left(sells, (price + 1,))  # the marks already at `price`, first
            sells[:same] = sorted(sells[:same] + marks) if same else marks
            self._move_trails(marks, price, self.sell_stops, False)
        buys = self.trail_buys
        if buys and buys[0][0] < -price:
            end = bisect_left(buys, (-price,))
            marks = sorted([(-price, arrival, order_id) for _, arrival, order_id in buys[:end]])
            del buys[:end]
            same = bisect_left(buys, (-price + 1,))
            buys[:same] = sorted(buys[:same] + marks) if same else marks
            self._move_trails(marks, price, self.buy_stops, True)

    def _move_trails(self, marks: list[Key], price: int, stops: list[Key], is_buy: bool) -> None:
        """The trailing stops of `marks` have their mark at `price` now: their triggers follow,
        re-keyed among `stops` one by one if they are few, else in one sort of the list."""
        stop_orders, keys, trail_marks, moved = (
            self.stop_orders,
            self.stops,
            self.trail_marks,
            self.trail_moved,
        )
        old_keys: list[Key] = []
        new_keys: list[Key] = []
        for mark in marks:
            order_id = mark[2]
            order = stop_orders[order_id]
            trail_marks[order_id] = mark
            order.hwm = price
            stop = trail_stop(order.side, price, order.trail_price, order.trail_rate)
            if stop != order.stop_price:
                old_keys.append(keys[order_id])
                key = ((stop or _NO_MATCH) if is_buy else -stop, mark[1], order_id)
                new_keys.append(key)
                keys[order_id] = key
                order.stop_price = stop
            moved[order_id] = order
        if len(old_keys) > _REKEY_ONE_BY_ONE:
            gone = set(old_keys)
            stops[:] = sorted([key for key in stops if key not in gone] + new_keys)
        else:
            for old, new in zip(old_keys, new_keys, strict=True):
                del stops[bisect_left(stops, old)]
                insort(stops, new)

    def _run_triggers(self, ts: int, start: int) -> None:
        """Trigger every stop that a trade since `start` (an index into `out`: this command's
        trades), or the last price, has reached: a buy stop at or below a trade's price, a sell
        stop at or above it; and move the trailing stops' marks with each trade, in order. Each
        triggered order then trades in turn, and its trades count as well. Then say where the
        trailing stops that moved stand, once each."""
        out = self.out
        symbol = self.symbol
        while True:
            if self.oco:
                self._tie_legs(start)
            prices = [event.price for event in out[start:] if type(event) is Trade]
            start = len(out)
            if self.last_price:
                prices.append(self.last_price)
            if self.phase is not OPEN:
                prices = []  # stops follow the regular session only, as Alpaca's do
            due: list[Order] = []
            buy_stops, sell_stops = self.buy_stops, self.sell_stops
            for price in prices:
                while buy_stops and buy_stops[0][0] <= price:
                    key = buy_stops[0]
                    due.append(self._take_stop(key[2], key))
                while sell_stops and -sell_stops[0][0] >= price:
                    key = sell_stops[0]
                    due.append(self._take_stop(key[2], key))
                if self.trail_marks:
                    self._follow(price)
            if not due:
                break
            for order in due:
                order_id = order.order_id
                if order_id in self.oco:
                    if not self._due_leg_goes(order, ts):
                        continue
                    # A leg no longer: the other leg goes first, so that only this one trades.
                    self._end_leg(order_id, ts)
                    order.oco = 0
                if self.trail_moved.pop(order_id, None) is not None:
                    self._emit_trail(order, ts)
                order.ts = ts
                # From here on it is an ordinary market or limit order.
                order.type = LIMIT if order.type is STOP_LIMIT else MARKET
                self.seq += 1
                out.append(
                    Triggered(symbol, self.seq, ts, order_id, order.account_id, self.last_price)
                )
                self._execute(order)
        moved = self.trail_moved
        if moved:
            for order in moved.values():
                self._emit_trail(order, ts)
            moved.clear()

    def _emit_trail(self, order: Order, ts: int) -> None:
        self.seq += 1
        self.out.append(
            TrailMoved(
                self.symbol,
                self.seq,
                ts,
                order.order_id,
                order.account_id,
                order.stop_price,
                order.hwm,
            )
        )

    # OCO pairs (`tradepit.matcher.oco`).

    def _leg(self, order_id: int) -> Order:
        return self.orders.get(order_id) or self.stop_orders[order_id]

    def _tie_legs(self, start: int) -> None:
        """Apply the pairs' rules to the events since `start` (an index into `out`): a leg
        that traded resizes its other leg to its own leaves (cancels it at none), a leg that
        was canceled cancels its other leg."""
        oco = self.oco
        for event in self.out[start:]:
            kind = type(event)
            if kind is Trade:
                trade: Trade = event  # type: ignore[assignment]
                for order_id, leaves in (
                    (trade.maker_order_id, trade.maker_leaves),
                    (trade.taker_order_id, trade.taker_leaves),
                ):
                    if order_id in oco:
                        if leaves:
                            self._resize_leg(oco[order_id], leaves, trade.ts)
                        else:
                            self._end_leg(order_id, trade.ts)
            elif kind is Canceled and event.order_id in oco:  # type: ignore[attr-defined]
                self._end_leg(event.order_id, event.ts)  # type: ignore[attr-defined]

    def _due_leg_goes(self, order: Order, ts: int) -> bool:
        """Whether a stop leg, due with other stops, still triggers when its turn comes: the
        stops due before it may have traded its other leg, and the pair's rules apply first.
        It is resized to what the other leg has left, or canceled when that is nothing."""
        other = self.get(self.oco[order.order_id])
        if other is not None:
            self._resize(order, other.leaves, ts)
            return True
        del self.oco[self.oco.pop(order.order_id)]  # the other leg traded all: the pair is done
        order.oco = 0
        self._cancel_remainder(order, OCO, ts)
        return False

    def _resize_leg(self, order_id: int, leaves: int, ts: int) -> None:
        """The other leg of `order_id` traded down to `leaves` lots: so must it."""
        self._resize(self._leg(order_id), leaves, ts)

    def _resize(self, order: Order, leaves: int, ts: int) -> None:
        """A leg down to `leaves` lots, if it has more (a resting one's level too)."""
        order_id = order.order_id
        cut = order.leaves - leaves
        if cut <= 0:
            return
        if order_id in self.orders:  # a resting leg (not one that waits): its level's lots
            level = self.bids[order.price] if order.side is BUY else self.asks[-order.price]
            level[2] -= cut
        order.leaves = leaves
        order.qty -= cut
        self.seq += 1
        self.out.append(
            Resized(
                self.symbol,
                self.seq,
                ts,
                order_id,
                order.account_id,
                order.side,
                cut,
                leaves,
            )
        )

    def _end_leg(self, order_id: int, ts: int) -> None:
        """`order_id` is a leg no longer (it filled, triggered or ended): its other leg, if
        still open, is canceled, and the pair is no more."""
        other = self.oco.pop(order_id)
        del self.oco[other]
        order = self.get(order_id)
        if order is not None:
            order.oco = 0  # a triggered stop, now a plain order
        leg = self.get(other)
        if leg is None:
            return
        leaves = leg.leaves
        self._remove(leg)
        self.seq += 1
        self.out.append(
            Canceled(
                self.symbol,
                self.seq,
                ts,
                other,
                leg.account_id,
                leg.side,
                leaves,
                OCO,
            )
        )
