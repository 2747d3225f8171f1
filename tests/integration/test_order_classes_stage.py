"""Order classes through the real stages on a real Redis: a bracket's held legs are stored with
their entry and survive a restart of every stage, go live when the entry fills, and an OCO's
resized leg is recorded; `verify` balances the venue at every step."""

from __future__ import annotations

import asyncio
import time

from harness import Venue, running_venue

from tradepit.domain.ids import new_id
from tradepit.domain.orders import Order, OrderType, Side, TimeInForce
from tradepit.ledger.history import OrderClass, OrderStatus
from tradepit.stage.messages import CancelOrder, PlaceOrder
from tradepit.store.keys import VenueConfig
from tradepit.verify import verify

CONFIG = VenueConfig(ledgers=2, matchers=2)
SYMBOL = "ACME"


def _order(account: int, side: Side, kind: OrderType, qty: int, price: int, stop: int = 0) -> Order:
    return Order(
        new_id(), account, SYMBOL, side, kind, TimeInForce.GTC, qty, price, stop, ts=time.time_ns()
    )


async def _bracket(venue: Venue, account: int, qty: int, entry: int) -> tuple[Order, Order, Order]:
    """A limit buy at `entry` with a take-profit 10 ticks above and a stop-loss 10 below."""
    parent = _order(account, Side.BUY, OrderType.LIMIT, qty, entry)
    take = _order(account, Side.SELL, OrderType.LIMIT, qty, entry + 10)
    loss = _order(account, Side.SELL, OrderType.STOP, qty, 1, entry - 10)
    take.oco, loss.oco = loss.order_id, take.order_id
    command = PlaceOrder(0, parent, "", order_class=OrderClass.BRACKET, legs=[take, loss])
    reply = await venue.client.request(account, command)
    assert reply.ok, reply
    return parent, take, loss


async def _balanced(venue: Venue) -> None:
    await venue.settle()
    report = await verify(venue.redis)
    assert report.ok, report.text()


async def _statuses(venue: Venue, account: int, *orders: Order) -> list[OrderStatus]:
    return [(await venue.record(account, order.order_id)).status for order in orders]


def test_held_legs_survive_a_restart_and_go_live_when_the_entry_fills(redis_url: str) -> None:
    async def main() -> None:
        async with running_venue(redis_url, CONFIG, (SYMBOL,)) as venue:
            trader = await venue.account("10000.00")
            dealer = await venue.account("10000.00", **{SYMBOL: "100"})
            parent, take, loss = await _bracket(venue, trader, 10, 10_000)
            dropped, *dropped_legs = await _bracket(venue, trader, 5, 9_000)
            await _balanced(venue)
            assert await _statuses(venue, trader, take, loss) == [OrderStatus.HELD] * 2
            parent_record = await venue.record(trader, parent.order_id)
            assert parent_record.legs == (take.order_id, loss.order_id)
            assert (await venue.record(trader, take.order_id)).parent == parent.order_id

            # Every stage stops and starts again: the legs wait on, loaded from the store.
            await venue.stop_stages()
            venue.start_stages()
            ledger = await venue.ledger(trader)
            assert [leg.order_id for leg in ledger.held_legs[parent.order_id]] == [
                take.order_id,
                loss.order_id,
            ]
            assert ledger.check_invariants() == []

            # The entry fills in two steps; its legs go live after the second, not the first.
            _, reply = await venue.place(dealer, SYMBOL, Side.SELL, 4, 10_000)
            assert reply.ok
            await _balanced(venue)
            assert await _statuses(venue, trader, take, loss) == [OrderStatus.HELD] * 2
            _, reply = await venue.place(dealer, SYMBOL, Side.SELL, 6, 10_000)
            assert reply.ok
            await _balanced(venue)
            assert await _statuses(venue, trader, parent, take, loss) == [
                OrderStatus.FILLED,
                OrderStatus.NEW,
                OrderStatus.NEW,
            ]
            ledger = await venue.ledger(trader)
            holding = ledger.accounts[trader].holdings[SYMBOL]
            # The two exits sell the same ten shares, reserved once.
            assert (holding.free, holding.reserved) == (0, 10)
            assert parent.order_id not in ledger.held_legs
            matcher = await venue.matcher(SYMBOL)
            assert take.order_id in matcher.books[SYMBOL].oco

            # The take-profit fills partly: the stop-loss is resized, and its record says so.
            _, reply = await venue.place(dealer, SYMBOL, Side.BUY, 3, 10_010)
            assert reply.ok
            await _balanced(venue)
            take_record = await venue.record(trader, take.order_id)
            loss_record = await venue.record(trader, loss.order_id)
            assert (take_record.status, take_record.filled_qty) == (OrderStatus.PARTIALLY_FILLED, 3)
            assert (loss_record.status, loss_record.qty) == (OrderStatus.NEW, 7)

            # Cancelling the entry of the other bracket cancels the legs it held.
            reply = await venue.client.request(
                trader, CancelOrder(0, trader, dropped.order_id, time.time_ns())
            )
            assert reply.ok
            await _balanced(venue)
            assert (
                await _statuses(venue, trader, dropped, *dropped_legs) == [OrderStatus.CANCELED] * 3
            )
            ledger = await venue.ledger(trader)
            assert ledger.held_legs == {}
            account = ledger.accounts[trader]  # bought 10 at 100.00, sold 3 at 100.10
            assert (account.cash_free, account.cash_reserved) == (1_000_000 - 100_000 + 30_030, 0)

    asyncio.run(main())


def test_a_held_leg_is_its_entrys_to_cancel(redis_url: str) -> None:
    async def main() -> None:
        async with running_venue(redis_url, CONFIG, (SYMBOL,)) as venue:
            trader = await venue.account("10000.00")
            parent, take, _ = await _bracket(venue, trader, 1, 10_000)
            reply = await venue.client.request(
                trader, CancelOrder(0, trader, take.order_id, time.time_ns())
            )
            assert not reply.ok and reply.code == "order_pending"
            await _balanced(venue)
            assert (await venue.record(trader, parent.order_id)).status == OrderStatus.NEW

    asyncio.run(main())
