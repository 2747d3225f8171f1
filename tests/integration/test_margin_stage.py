"""Margin through the real stages on a real Redis: the operator's multiplier is stored with the
account; a short sale's buying power, the short position and a cover survive a restart of every
stage; a cash account cannot be made of one that borrows; `verify` balances the venue, with the
borrowed shares and cash, at every step, and names the account in a margin call."""

from __future__ import annotations

import asyncio
import time

from harness import Venue, running_venue

from tradepit import operations
from tradepit.domain.ids import id_to_uuid, new_id
from tradepit.domain.orders import Order, OrderType, Side, TimeInForce
from tradepit.stage.messages import CancelOrder, PlaceOrder, SetMultiplier
from tradepit.store.keys import VenueConfig
from tradepit.verify import verify

CONFIG = VenueConfig(ledgers=2, matchers=2)
SYMBOL = "ACME"


async def _balanced(venue: Venue) -> str:
    await venue.settle()
    report = await verify(venue.redis)
    assert report.ok, report.text()
    return report.text()


def test_a_short_sale_survives_a_restart_and_verify_balances_the_borrowing(
    redis_url: str,
) -> None:
    async def main() -> None:
        async with running_venue(redis_url, CONFIG, (SYMBOL,)) as venue:
            trader = await venue.account("10000.00")
            dealer = await venue.account("100000.00", **{SYMBOL: "100"})
            await operations.set_margin(venue.client, trader, 2)

            # A short sale of 150 at 100.00 holds $15,000 of the $20,000 of buying power.
            order_id, reply = await venue.place(trader, SYMBOL, Side.SELL, 150, 10_000)
            assert reply.ok, reply
            await _balanced(venue)
            ledger = await venue.ledger(trader)
            account = ledger.accounts[trader]
            assert account.multiplier == 2
            assert (account.cash_free, account.cash_reserved) == (-500_000, 1_500_000)
            assert ledger.open_orders[order_id].short == 150
            _, reply = await venue.place(trader, SYMBOL, Side.SELL, 51, 10_000)
            assert reply.code == "insufficient_buying_power"  # $5,100 of $5,000 left

            # Every stage stops and starts again: the sale and what it holds are stored.
            await venue.stop_stages()
            venue.start_stages()
            ledger = await venue.ledger(trader)
            assert ledger.open_orders[order_id].short_cash == 1_500_000
            assert ledger.check_invariants() == []

            # The dealer takes 100: 100 short; the dealer holds the 100 borrowed shares too.
            _, reply = await venue.place(dealer, SYMBOL, Side.BUY, 100, 10_000)
            assert reply.ok
            await _balanced(venue)
            ledger = await venue.ledger(trader)
            holding = ledger.accounts[trader].holdings[SYMBOL]
            assert (holding.free, holding.reserved, holding.cost) == (-100, 0, -1_000_000)
            assert (await venue.ledger(dealer)).accounts[dealer].holdings[SYMBOL].free == 200
            refused = await venue.client.request(trader, SetMultiplier(0, trader, 1))
            assert refused.code == "margin_in_use"
            # The 50 still for sale leave the book, and their buying power the order.
            reply = await venue.client.request(
                trader, CancelOrder(0, trader, order_id, time.time_ns())
            )
            assert reply.ok
            await _balanced(venue)
            ledger = await venue.ledger(trader)
            assert order_id not in ledger.open_orders
            assert ledger.accounts[trader].cash_free == 2_000_000  # 10,000 + the 10,000 sold

            # The price rises to 190.00 (the dealer trades with another account): equity is
            # 10,000 - 9,000 = 1,000 against a maintenance margin of 30% of 19,000.
            other = await venue.account("100000.00")
            _, reply = await venue.place(dealer, SYMBOL, Side.SELL, 1, 19_000)
            assert reply.ok
            _, reply = await venue.place(other, SYMBOL, Side.BUY, 1, 19_000)
            assert reply.ok
            text = await _balanced(venue)
            assert "1 in a margin call" in text and id_to_uuid(trader) in text
            listed = {entry["id"]: entry for entry in await operations.list_accounts(venue.client)}
            assert listed[id_to_uuid(trader)]["margin_call"] is True

            # In the call it may still buy back: the dealer sells 100 at 190.00.
            _, reply = await venue.place(dealer, SYMBOL, Side.SELL, 100, 19_000)
            assert reply.ok
            _, reply = await venue.place(trader, SYMBOL, Side.BUY, 100, 19_000)
            assert reply.ok, reply
            await _balanced(venue)
            ledger = await venue.ledger(trader)
            holding = ledger.accounts[trader].holdings[SYMBOL]
            assert (holding.free, holding.cost, holding.realized_pnl) == (0, 0, -900_000)
            assert ledger.accounts[trader].cash_free == 100_000  # lost $9,000 of $10,000
            # Nothing borrowed now: it may be a cash account again.
            await operations.set_margin(venue.client, trader, 1)
            assert (await venue.ledger(trader)).accounts[trader].multiplier == 1

    asyncio.run(main())


def test_the_marks_in_a_command_value_the_positions(redis_url: str) -> None:
    """A margin account's buying power is decided at the prices its command carries."""

    async def main() -> None:
        async with running_venue(redis_url, CONFIG, (SYMBOL,)) as venue:
            trader = await venue.account("10000.00", **{SYMBOL: "100"})  # at cost 0: no price
            await operations.set_margin(venue.client, trader, 2)
            _, reply = await venue.place(trader, "ACME", Side.BUY, 201, 10_000)
            assert reply.code == "insufficient_buying_power"  # $20,100 of $20,000 at cost 0
            assert (await venue.ledger(trader)).accounts[trader].cash_free == 1_000_000
            # At 50.00 the 100 held are worth $5,000: equity $15,000, initial margin $2,500.
            buy = Order(
                new_id(), trader, SYMBOL, Side.BUY, OrderType.LIMIT, TimeInForce.GTC, 250, 10_000
            )
            command = PlaceOrder(0, buy, "", marks={SYMBOL: 5_000})
            assert (await venue.client.request(trader, command)).ok  # $25,000 of $25,000
            await _balanced(venue)
            account = (await venue.ledger(trader)).accounts[trader]
            assert (account.cash_free, account.cash_reserved) == (-1_500_000, 2_500_000)

    asyncio.run(main())
