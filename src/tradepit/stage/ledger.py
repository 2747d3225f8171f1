"""A ledger shard on the bus: the accounts whose id maps to it, and their orders.

Inboxes, applied in this order each batch: the matchers' events for this shard's accounts
(settling fills first frees buying power for the orders behind them), then `{lN}:in`, the
commands of clients and the operator. Outputs: orders, cancels and replaces to the matcher
shard that owns each symbol; a reply per command, published to the channel its entry named;
an `OrderUpdate` per change to an order, appended to `{lN}:updates` for the trade-update
streams; and per-account indexes of orders, open orders and fills (`Fill`s) for the API's
listings.

In Redis, each table is a hash keyed by id, and only what a batch changed is written.
"""

from __future__ import annotations

import msgspec

from tradepit.domain.events import (
    Canceled,
    Expired,
    Rejected,
    Replaced,
    ReplaceRejected,
    Resized,
    Trade,
    TrailMoved,
)
from tradepit.domain.ids import VENUE_ACCOUNT_ID
from tradepit.domain.orders import Order, Side
from tradepit.domain.refusals import Refusal
from tradepit.domain.symbols import SymbolError
from tradepit.ledger import Ledger, LedgerError, OpenOrder
from tradepit.ledger.history import (
    TERMINAL_STATUSES,
    Fill,
    OrderClass,
    OrderHistory,
    OrderRecord,
    OrderStatus,
    OrderUpdate,
    TradeEvent,
)
from tradepit.stage.loop import BadEntryError, Fields, StageCore
from tradepit.stage.messages import (
    COMMANDS,
    EVENTS,
    REPLY_TO,
    UPDATES,
    AddSymbol,
    AnyLedgerCommand,
    Cancel,
    CancelOrder,
    MatcherCommand,
    OpenAccount,
    PlaceOrder,
    Replace,
    ReplaceOrder,
    Reply,
    SetMultiplier,
    Submit,
    SubmitOco,
    Transfer,
    decode_events,
    decode_ledger_commands,
    encode,
    spec_of,
    symbol_of,
)
from tradepit.stage.resp import CommandBuffer
from tradepit.store.connection import Client
from tradepit.store.keys import VenueConfig, index_member, matcher_of
from tradepit.store.ledger import LedgerKeys, load_ledger

__all__ = ["LedgerShard", "UPDATES_KEPT"]

UPDATES_KEPT = 1_000  # batches of order updates kept in `{lN}:updates` for catching up
# The matcher's events other than trades that change an account or an open order.
_RELEASES = (Canceled, Expired, Rejected, Replaced, ReplaceRejected)


class LedgerShard(StageCore):
    keys: LedgerKeys

    def __init__(self, index: int, config: VenueConfig) -> None:
        self.index = index
        self.config = config
        self.keys = LedgerKeys(f"l{index}")
        self.ledger = Ledger((), config.maker_fee_bps, config.taker_fee_bps)
        self.history = OrderHistory(self.ledger.symbols)
        self._matcher_of: dict[str, str] = {}
        # When each order the batch written last filled was submitted (ns), one per fill: for
        # the metrics' order-to-fill time (`made`).
        self.filled_submitted: list[int] = []
        self._reset_batch()

    def inboxes(self) -> list[str]:
        return self.keys.inboxes(self.config)

    def outboxes(self) -> list[str]:
        return [self.keys.link_to(name) for name in self.config.matcher_names()]

    def owns(self, account_id: int) -> bool:
        return account_id % self.config.ledgers == self.index

    def _reset_batch(self) -> None:
        self.dirty_accounts: set[int] = set()
        self.dirty_open_orders: set[int] = set()
        self.dirty_records: dict[int, OrderRecord] = {}
        self.updates: list[bytes] = []
        self.new_orders: list[bytes] = []  # index members of orders placed this batch
        self.closed_orders: list[bytes] = []  # ... and of orders that ended
        self.fills: list[bytes] = []
        self.fill_submitted: list[int] = []
        self.new_transfers: list[str] = []
        self.new_client_order_ids: list[tuple[int, str, int]] = []
        self.totals_changed = False
        self.symbols_changed = False
        self.to_matchers: dict[str, list[MatcherCommand]] = {}
        self.replies: dict[bytes, list[Reply]] = {}

    # Loading.

    async def load(self, redis: Client) -> None:
        self.ledger, self.history = await load_ledger(redis, self.keys, self.config)
        self._reset_batch()

    # Applying.

    def apply(self, stream: str, fields: Fields) -> None:
        if stream == self.keys.inbox:
            self._apply_commands(fields)
        else:
            self._apply_events(fields)

    def _apply_events(self, fields: Fields) -> None:
        try:
            events = decode_events(fields[EVENTS])
        except (KeyError, msgspec.DecodeError) as error:
            raise BadEntryError(f"not a list of events: {error}") from None
        apply, follow = self.ledger.apply, self.history.apply
        dirty_accounts, dirty_orders = self.dirty_accounts, self.dirty_open_orders
        dirty_records = self.dirty_records
        shards, index = self.config.ledgers, self.index
        for event in events:
            # Trades are most events: they take the shortest path.
            if isinstance(event, Trade):
                # This shard settles the side(s) it owns; the matcher sent it only trades
                # with at least one.
                dirty_accounts.add(VENUE_ACCOUNT_ID)  # it collects the fees
                self.totals_changed = True  # a trade moves trade_flow
                if event.maker_account_id % shards == index:
                    dirty_accounts.add(event.maker_account_id)
                    dirty_orders.add(event.maker_order_id)
                if event.taker_account_id % shards == index:
                    dirty_accounts.add(event.taker_account_id)
                    dirty_orders.add(event.taker_order_id)
            else:
                account_id = getattr(event, "account_id", -1)
                if account_id < 0 or account_id % shards != index:
                    continue  # a status (nothing to settle), or another shard's
                if type(event) is TrailMoved:
                    # The record alone: no money moves and no trade update goes out.
                    moved = self.history.trail_moved(event)
                    if moved is not None:
                        dirty_records[moved.order_id] = moved
                    continue
                if type(event) is Resized:
                    # An OCO leg's open lots, in the ledger and its record: no trade update.
                    apply(event)
                    dirty_orders.add(event.order_id)
                    resized = self.history.resized(event)
                    if resized is not None:
                        dirty_records[resized.order_id] = resized
                    continue
                # Only these move money (`Ledger.apply`); an order's acceptance, trigger or
                # refused cancel changes its record alone, and the account and open order
                # written again would be the bytes Redis holds (6% of the AOF per order in
                # `tradepit demo`, 3% flat out: bench/RESULTS.md).
                if isinstance(event, _RELEASES):
                    if isinstance(event, Replaced | ReplaceRejected):
                        dirty_orders.add(event.new_order_id)
                    dirty_accounts.add(account_id)
                    dirty_orders.add(event.order_id)
            apply(event)
            for name, record in follow(event):
                dirty_records[record.order_id] = record
                self._order_changed(name, record, event)
            if type(event) is Replaced and event.new_order_id in self.ledger.held_legs:
                # The entry's held legs follow its replacement, and its size.
                legs = self.ledger.held_legs[event.new_order_id]
                for record in self.history.legs_resized(legs, event.new_order_id, event.ts):
                    dirty_records[record.order_id] = record
        if self.ledger.released or self.ledger.dropped:
            self._legs_decided(events[-1].ts)

    def _legs_decided(self, ts: int) -> None:
        """Send the held legs whose entries filled to their matcher, and end those that went
        with their entries (or could not be reserved for)."""
        released, dropped = self.ledger.take_legs()
        for command in released:
            if isinstance(command, SubmitOco):
                legs = [command.limit, command.stop]
            elif isinstance(command, Submit):
                legs = [command.order]
            else:
                continue
            for record in self.history.legs_released(legs, ts):
                record.short_side = self._short_side(record.order_id)
                self.dirty_records[record.order_id] = record
                self.dirty_open_orders.add(record.order_id)
                self.dirty_accounts.add(record.account_id)
            self._send(legs[0].symbol, command)
        for leg_id, why in dropped:
            change = self.history.leg_dropped(leg_id, why, ts)
            if change is not None:
                self.dirty_records[leg_id] = change[1]
                self._order_changed(change[0], change[1], None)

    def _order_changed(self, name: TradeEvent, record: OrderRecord, event: object) -> None:
        """Tell the owner (an `OrderUpdate`), and keep the account's indexes in step."""
        if isinstance(event, Trade):
            holding = self.ledger.accounts[record.account_id].holdings[record.symbol]
            update = OrderUpdate(
                name,
                event.ts,
                record,
                event.price,
                event.qty,
                holding.free + holding.reserved,
                event.seq,
            )
            encoded = encode(update)
            fill = encode(Fill.of_update(update))
            self.fills.append(index_member(record.account_id, event.ts, fill))
            self.fill_submitted.append(record.created_at)
        else:
            encoded = encode(OrderUpdate(name, record.updated_at, record))
        self.updates.append(encoded)
        if record.status in TERMINAL_STATUSES:
            self.closed_orders.append(
                index_member(record.account_id, record.created_at, b"%032x" % record.order_id)
            )

    def _apply_commands(self, fields: Fields) -> None:
        try:
            commands = decode_ledger_commands(fields[COMMANDS])
        except (KeyError, msgspec.DecodeError) as error:
            raise BadEntryError(f"not a list of ledger commands: {error}") from None
        reply_to = fields.get(REPLY_TO)
        replies = self.replies.setdefault(reply_to, []) if reply_to else None
        for command in commands:
            try:
                self._apply_command(command)
            except LedgerError as error:
                reply = Reply(command.request_id, False, error.code, error.message)
            else:
                reply = Reply(command.request_id, True)
            if replies is not None and command.request_id:
                replies.append(reply)

    def _apply_command(self, command: AnyLedgerCommand) -> None:
        if isinstance(command, PlaceOrder):
            self._place_order(command)
        elif isinstance(command, CancelOrder):
            self._cancel_order(command)
        elif isinstance(command, ReplaceOrder):
            self._replace_order(command)
        elif isinstance(command, Transfer):
            self._transfer(command)
        elif isinstance(command, OpenAccount):
            self._check_owned(command.account_id)
            self.ledger.open_account(command.account_id)
            self.dirty_accounts.add(command.account_id)
        elif isinstance(command, AddSymbol):
            try:
                symbol = symbol_of(command.symbol)
            except (SymbolError, ArithmeticError) as error:
                raise LedgerError(Refusal.INVALID_SYMBOL, str(error)) from None
            self.ledger.add_symbol(symbol)
            self.symbols_changed = True
        elif isinstance(command, SetMultiplier):
            self._check_owned(command.account_id)
            self.ledger.set_multiplier(command.account_id, command.multiplier)
            self.dirty_accounts.add(command.account_id)

    def _check_owned(self, account_id: int) -> None:
        if not self.owns(account_id):
            raise LedgerError(Refusal.WRONG_SHARD, f"account {account_id} belongs to another shard")

    def _place_order(self, command: PlaceOrder) -> None:
        order = command.order
        self._check_owned(order.account_id)
        order.leaves = 0
        if command.order_class is OrderClass.SIMPLE and not command.legs:
            self.ledger.place_order(order, command.client_order_id or None, command.marks)
            self._order_accepted(
                order, command.client_order_id, 0, command.notional, command.extended_hours
            )
            self._send(order.symbol, Submit(order))
        else:
            self._place_with_legs(command)

    def _place_with_legs(self, command: PlaceOrder) -> None:
        """An OCO pair, or a bracket's or OTO's entry and its held legs (`matcher.oco`)."""
        order, legs, order_class = command.order, command.legs, command.order_class
        client_order_id = command.client_order_id
        leg_ids = tuple(leg.order_id for leg in legs)
        for leg in legs:
            leg.leaves = 0
        if order_class is OrderClass.OCO and len(legs) == 1:
            submit: MatcherCommand = self.ledger.place_oco(
                order, legs[0], client_order_id or None, command.marks
            )
            self._order_accepted(order, client_order_id, 0, order_class=order_class, legs=leg_ids)
            self._order_accepted(legs[0], "", 0, order_class=order_class, parent=order.order_id)
            self._send(order.symbol, submit)
            return
        if order_class not in (OrderClass.BRACKET, OrderClass.OTO) or len(legs) != (
            2 if order_class is OrderClass.BRACKET else 1
        ):
            raise LedgerError(
                Refusal.INVALID_ORDER, f"{order_class.value} orders do not have {len(legs)} legs"
            )
        self.ledger.place_with_legs(order, legs, client_order_id or None, command.marks)
        self._order_accepted(
            order,
            client_order_id,
            0,
            command.notional,
            command.extended_hours,
            order_class,
            leg_ids,
        )
        for leg in legs:
            record = self.history.held(leg, order_class, order.order_id)
            self.dirty_records[leg.order_id] = record
            self.new_orders.append(index_member(leg.account_id, leg.ts, b"%032x" % leg.order_id))
        self._send(order.symbol, Submit(order))

    def _order_accepted(
        self,
        order: Order,
        client_order_id: str,
        replaces: int,
        notional: int = 0,
        extended_hours: bool = False,
        order_class: OrderClass = OrderClass.SIMPLE,
        legs: tuple[int, ...] = (),
        parent: int = 0,
    ) -> None:
        record = self.history.accepted(
            order,
            client_order_id,
            replaces,
            notional,
            extended_hours,
            order_class,
            legs,
            parent,
            self._short_side(order.order_id),
        )
        self.dirty_records[order.order_id] = record
        self.new_orders.append(index_member(order.account_id, order.ts, b"%032x" % order.order_id))
        self.dirty_open_orders.add(order.order_id)
        self.dirty_accounts.add(order.account_id)
        if client_order_id:
            self.new_client_order_ids.append((order.account_id, client_order_id, order.order_id))

    def _short_side(self, order_id: int) -> bool:
        """Whether the ledger placed the order as a short sale (no lot of it held) or a buy
        back of a short. An OCO leg that holds nothing goes by its pair, which holds it all."""
        open_order = self.ledger.open_orders.get(order_id)
        if open_order is None:
            return False
        if open_order.pair and not (open_order.reserved or open_order.short):
            open_order = self.ledger.open_orders.get(open_order.pair, open_order)
        if open_order.side is Side.BUY:
            return open_order.cover > 0
        return open_order.short > 0 and open_order.reserved == 0

    def _cancel_order(self, command: CancelOrder) -> None:
        self._check_not_held(command.order_id)
        open_order = self._own_open_order(command.account_id, command.order_id)
        record = self.history.mark_pending(command.order_id, OrderStatus.PENDING_CANCEL, command.ts)
        if record is not None:
            self.dirty_records[record.order_id] = record
            self._order_changed(TradeEvent.PENDING_CANCEL, record, command)
        self._send(
            open_order.symbol,
            Cancel(open_order.symbol, command.order_id, command.account_id, command.ts),
        )

    def _replace_order(self, command: ReplaceOrder) -> None:
        self._check_not_held(command.order_id)
        self._own_open_order(command.account_id, command.order_id)
        old = self.history.records.get(command.order_id)
        if old is None or old.status in (OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE):
            raise LedgerError(Refusal.ORDER_PENDING, "the order has a cancel or replace in flight")
        if command.new_order_id in self.history.records:
            raise LedgerError(Refusal.DUPLICATE_ORDER_ID, "an open order already has this id")
        self.ledger.reserve_replacement(
            command.order_id,
            command.account_id,
            command.new_order_id,
            command.qty,
            command.price,
            command.client_order_id or None,
            command.marks,
        )
        self._order_accepted(
            command.replacement(old),
            command.client_order_id,
            command.order_id,
            extended_hours=old.extended_hours,
            order_class=old.order_class,
            legs=old.legs,
            parent=old.parent,
        )
        pending = self.history.mark_pending(
            command.order_id, OrderStatus.PENDING_REPLACE, command.ts
        )
        if pending is not None:
            self.dirty_records[pending.order_id] = pending
            self._order_changed(TradeEvent.PENDING_REPLACE, pending, command)
        self._send(
            old.symbol,
            Replace(
                old.symbol,
                command.order_id,
                command.account_id,
                command.new_order_id,
                command.qty,
                command.price,
                command.stop_price,
                command.ts,
                command.time_in_force,
                command.trail,
            ),
        )

    def _check_not_held(self, order_id: int) -> None:
        record = self.history.records.get(order_id)
        if record is not None and record.status == OrderStatus.HELD:
            raise LedgerError(
                Refusal.ORDER_PENDING,
                "a held leg waits for its entry to fill: cancel or replace the entry instead",
            )

    def _own_open_order(self, account_id: int, order_id: int) -> OpenOrder:
        self._check_owned(account_id)
        open_order = self.ledger.open_orders.get(order_id)
        if open_order is None or open_order.account_id != account_id:
            raise LedgerError(Refusal.UNKNOWN_ORDER, "no such open order")
        return open_order

    def _transfer(self, command: Transfer) -> None:
        self._check_owned(command.account_id)
        ledger = self.ledger
        already_done = command.transfer_id in ledger.transfers
        quantity = abs(command.amount)
        withdraw = command.amount < 0
        if command.asset == "$":
            if withdraw:
                ledger.withdraw_cash(command.transfer_id, command.account_id, quantity)
            else:
                ledger.deposit_cash(command.transfer_id, command.account_id, quantity)
        elif withdraw:
            ledger.withdraw_shares(command.transfer_id, command.account_id, command.asset, quantity)
        else:
            ledger.deposit_shares(
                command.transfer_id, command.account_id, command.asset, quantity, command.cost
            )
        if not already_done:
            self.dirty_accounts.add(command.account_id)
            self.new_transfers.append(command.transfer_id)
            self.totals_changed = True

    def _send(self, symbol: str, command: MatcherCommand) -> None:
        matcher = self._matcher_of.get(symbol)
        if matcher is None:
            matcher = self._matcher_of[symbol] = matcher_of(symbol, self.config)
        commands = self.to_matchers.get(matcher)
        if commands is None:
            commands = self.to_matchers[matcher] = []
        commands.append(command)

    # Committing.

    def write(self, tx: CommandBuffer) -> list[tuple[str, bytes]]:
        keys, ledger = self.keys, self.ledger
        for matcher, commands in self.to_matchers.items():
            tx.xadd(keys.link_to(matcher), {COMMANDS: encode(commands)})
        if self.dirty_accounts:
            accounts = ledger.accounts
            tx.hset(
                keys.accounts,
                mapping={
                    account_id: encode(accounts[account_id]) for account_id in self.dirty_accounts
                },
            )
        if self.dirty_open_orders:
            open_orders = ledger.open_orders
            still_open = {}
            closed = []
            for order_id in self.dirty_open_orders:
                open_order = open_orders.get(order_id)
                if open_order is None:
                    closed.append(order_id)
                else:
                    still_open[order_id] = encode(open_order)
            if still_open:
                tx.hset(keys.open_orders, mapping=still_open)
            if closed:
                tx.hdel(keys.open_orders, *closed)
        publishes: list[tuple[str, bytes]] = []
        if self.dirty_records:
            encoded = {order_id: encode(record) for order_id, record in self.dirty_records.items()}
            tx.hset(keys.orders, mapping=encoded)
            # A record whose order is over needs no more memory here: Redis has it. A held
            # leg's stays, to be sent or ended with its entry.
            records = self.history.records
            for order_id, record in self.dirty_records.items():
                if order_id not in ledger.open_orders and record.status != OrderStatus.HELD:
                    records.pop(order_id, None)
        if ledger.legs_changed:
            held = ledger.held_legs
            still_held = {
                entry: encode(held[entry]) for entry in ledger.legs_changed if entry in held
            }
            if still_held:
                tx.hset(keys.held_legs, mapping=still_held)
            gone = [entry for entry in ledger.legs_changed if entry not in held]
            if gone:
                tx.hdel(keys.held_legs, *gone)
            ledger.legs_changed = set()
        if self.updates:
            # Live consumers (trade updates) tail this stream with XREAD BLOCK: it is ordered,
            # durable and gapless, which Pub/Sub is not, for the same one copy in Valkey.
            updates = b"[" + b",".join(self.updates) + b"]"
            tx.xadd(keys.updates, {UPDATES: updates}, maxlen=UPDATES_KEPT, approximate=True)
        if self.new_orders:
            members = dict.fromkeys(self.new_orders, 0)
            tx.zadd(keys.order_index, members)
            tx.zadd(keys.open_index, members)
        if self.closed_orders:
            tx.zrem(keys.open_index, *self.closed_orders)
        if self.fills:
            tx.zadd(keys.fills, dict.fromkeys(self.fills, 0))
        if self.new_transfers:
            tx.hset(
                keys.transfers,
                mapping={key: encode(ledger.transfers[key]) for key in self.new_transfers},
            )
        if self.new_client_order_ids:
            tx.hset(
                keys.client_order_ids,
                mapping={
                    f"{account_id}:{coid}": order_id
                    for account_id, coid, order_id in self.new_client_order_ids
                },
            )
        if self.totals_changed:
            tx.hset(
                keys.state,
                mapping={
                    "net_deposits": encode(ledger.net_deposits),
                    "trade_flow": encode(ledger.trade_flow),
                },
            )
        if self.symbols_changed:
            symbols = [spec_of(symbol) for symbol in ledger.symbols.values()]
            tx.hset(keys.state, "symbols", encode(symbols))
        for channel, replies in self.replies.items():
            publishes.append((channel.decode(), encode(replies)))
        self.filled_submitted = self.fill_submitted
        self._reset_batch()
        return publishes

    def made(self) -> list[int]:
        """When each order the batch written last filled was submitted (ns), one per fill."""
        return self.filled_submitted
