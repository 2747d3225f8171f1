"""The whole order path through real streams: ledger -> matcher -> settlement, on real Valkey."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from harness import Venue, running_venue

from tradepit import operations
from tradepit.domain.ids import VENUE_ACCOUNT_ID, new_id
from tradepit.domain.orders import OrderType, Side, TimeInForce
from tradepit.ledger import CASH
from tradepit.stage.messages import CancelOrder, ReplaceOrder, Transfer
from tradepit.store.connection import is_cluster_client
from tradepit.store.keys import ShardKeys, VenueConfig
from tradepit.verify import verify

Scenario = Callable[[Venue], Awaitable[None]]


@pytest.fixture
def redis_url(any_redis_url: str) -> str:
    """Each test twice: on one server, and on a cluster of 3 primaries and 3 replicas."""
    return any_redis_url


def run(url: str, scenario: Scenario, config: VenueConfig | None = None) -> None:
    async def main() -> None:
        async with running_venue(url, config) as venue:
            await scenario(venue)
            await venue.settle()
            report = await verify(venue.redis)
            assert report.ok, report.text()

    asyncio.run(main())


# ACME trades in cents (one tick) and whole shares (one lot): 100.00 is 10_000 ticks.
PRICE = 10_000


def test_a_cross_settles_both_sides_to_the_cent(redis_url: str) -> None:
    async def scenario(venue: Venue) -> None:
        seller = await venue.account("0", ACME="100")
        buyer = await venue.account("5000.00")
        sell_id, reply = await venue.place(seller, "ACME", Side.SELL, 30, PRICE)
        assert reply.ok, reply
        buy_id, reply = await venue.place(buyer, "ACME", Side.BUY, 10, PRICE + 50)
        assert reply.ok, reply
        await venue.settle()
        ledger = await venue.ledger(buyer)
        # The buyer pays the maker's price, 100.00, and keeps the rest of its reservation.
        assert ledger.accounts[buyer].cash_free == 5000_00 - 10 * 100_00
        assert ledger.accounts[buyer].cash_reserved == 0
        assert ledger.accounts[buyer].holdings["ACME"].free == 10
        assert ledger.accounts[seller].cash_free == 10 * 100_00
        assert ledger.accounts[seller].holdings["ACME"].free == 70
        assert ledger.accounts[seller].holdings["ACME"].reserved == 20
        buy = await venue.record(buyer, buy_id)
        assert (buy.status, buy.filled_qty, buy.filled_notional) == ("filled", 10, 1000_00)
        sell = await venue.record(seller, sell_id)
        assert (sell.status, sell.filled_qty) == ("partially_filled", 10)
        book = (await venue.matcher("ACME")).books["ACME"]
        assert book.depth(Side.SELL) == [(PRICE, 20)]
        assert book.last_price == PRICE

    run(redis_url, scenario)


def test_fees_reach_the_venue_account(redis_url: str) -> None:
    async def scenario(venue: Venue) -> None:
        seller = await venue.account("0", ACME="10")
        buyer = await venue.account("2000.00")
        await venue.place(seller, "ACME", Side.SELL, 10, PRICE)
        await venue.place(buyer, "ACME", Side.BUY, 10, PRICE)
        await venue.settle()
        ledger = await venue.ledger(buyer)
        # 1000.00 traded: the maker pays 1 bps (0.10), the taker 3 bps (0.30).
        assert ledger.accounts[seller].cash_free == 1000_00 - 10
        assert ledger.accounts[buyer].cash_free == 2000_00 - 1000_00 - 30
        assert ledger.accounts[VENUE_ACCOUNT_ID].cash_free == 40

    run(redis_url, scenario, VenueConfig(maker_fee_bps=1, taker_fee_bps=3))


def test_refused_order_changes_nothing(redis_url: str) -> None:
    async def scenario(venue: Venue) -> None:
        buyer = await venue.account("50.00")
        order_id, reply = await venue.place(buyer, "ACME", Side.BUY, 1, PRICE)
        assert not reply.ok
        assert reply.code == "insufficient_buying_power"
        _, reply = await venue.place(buyer, "ACME", Side.SELL, 1, PRICE)
        assert reply.code == "insufficient_shares"
        _, reply = await venue.place(buyer, "NOPE", Side.BUY, 1, 1)
        assert reply.code == "unknown_symbol"
        await venue.settle()
        ledger = await venue.ledger(buyer)
        assert ledger.accounts[buyer].cash_free == 50_00
        assert ledger.open_orders == {}
        assert await venue.client.order_record(buyer, order_id) is None

    run(redis_url, scenario)


def test_cancel_releases_the_reservation(redis_url: str) -> None:
    async def scenario(venue: Venue) -> None:
        buyer = await venue.account("1000.00")
        order_id, reply = await venue.place(buyer, "ACME", Side.BUY, 5, PRICE)
        assert reply.ok
        await venue.settle()
        assert (await venue.ledger(buyer)).accounts[buyer].cash_reserved == 500_00
        ts = time.time_ns()
        reply = await venue.client.request(buyer, CancelOrder(0, buyer, order_id, ts))
        assert reply.ok, reply
        await venue.settle()
        ledger = await venue.ledger(buyer)
        assert ledger.accounts[buyer].cash_free == 1000_00
        assert ledger.accounts[buyer].cash_reserved == 0
        record = await venue.record(buyer, order_id)
        assert record.status == "canceled"
        assert record.canceled_at == ts
        assert (await venue.matcher("ACME")).books["ACME"].orders == {}
        # A second cancel finds no open order.
        reply = await venue.client.request(buyer, CancelOrder(0, buyer, order_id, ts))
        assert (reply.ok, reply.code) == (False, "unknown_order")

    run(redis_url, scenario)


def test_cancel_of_another_accounts_order_is_refused(redis_url: str) -> None:
    async def scenario(venue: Venue) -> None:
        owner = await venue.account("1000.00")
        other = await venue.account("1000.00")
        order_id, _ = await venue.place(owner, "ACME", Side.BUY, 5, PRICE)
        reply = await venue.client.request(other, CancelOrder(0, other, order_id, 1))
        assert (reply.ok, reply.code) == (False, "unknown_order")
        await venue.settle()
        assert (await venue.record(owner, order_id)).status == "new"

    run(redis_url, scenario)


def test_replace_moves_the_order_and_its_reservation(redis_url: str) -> None:
    async def scenario(venue: Venue) -> None:
        buyer = await venue.account("1000.00")
        order_id, _ = await venue.place(buyer, "ACME", Side.BUY, 5, PRICE)
        new_order_id = new_id()
        command = ReplaceOrder(0, buyer, order_id, new_order_id, 4, PRICE - 100, 0, "", 7)
        reply = await venue.client.request(buyer, command)
        assert reply.ok, reply
        await venue.settle()
        old = await venue.record(buyer, order_id)
        assert (old.status, old.replaced_by) == ("replaced", new_order_id)
        new = await venue.record(buyer, new_order_id)
        assert (new.status, new.replaces, new.qty, new.limit_price) == (
            "new",
            order_id,
            4,
            PRICE - 100,
        )
        ledger = await venue.ledger(buyer)
        assert ledger.accounts[buyer].cash_reserved == 4 * 99_00
        book = (await venue.matcher("ACME")).books["ACME"]
        assert book.depth(Side.BUY) == [(PRICE - 100, 4)]

    run(redis_url, scenario)


def test_session_close_expires_day_orders(redis_url: str) -> None:
    async def scenario(venue: Venue) -> None:
        seller = await venue.account("0", ACME="10")
        day_id, _ = await venue.place(seller, "ACME", Side.SELL, 4, PRICE, tif=TimeInForce.DAY)
        gtc_id, _ = await venue.place(seller, "ACME", Side.SELL, 6, PRICE + 1)
        await venue.settle()
        await operations.close_session(venue.client)
        await venue.settle()
        assert (await venue.record(seller, day_id)).status == "expired"
        assert (await venue.record(seller, gtc_id)).status == "new"
        holding = (await venue.ledger(seller)).accounts[seller].holdings["ACME"]
        assert (holding.free, holding.reserved) == (4, 6)

    run(redis_url, scenario)


def test_market_order_never_passes_its_protection_price(redis_url: str) -> None:
    async def scenario(venue: Venue) -> None:
        seller = await venue.account("0", ACME="10")
        buyer = await venue.account("10000.00")
        await venue.place(seller, "ACME", Side.SELL, 5, PRICE)
        await venue.place(seller, "ACME", Side.SELL, 5, PRICE * 2)
        order_id, reply = await venue.place(
            buyer,
            "ACME",
            Side.BUY,
            10,
            PRICE + PRICE // 10,
            kind=OrderType.MARKET,
            tif=TimeInForce.IOC,
        )
        assert reply.ok
        await venue.settle()
        record = await venue.record(buyer, order_id)
        assert (record.status, record.filled_qty) == ("canceled", 5)
        assert (await venue.ledger(buyer)).accounts[buyer].cash_free == 10000_00 - 500_00

    run(redis_url, scenario)


def test_a_passive_limit_rests_far_outside_the_band_and_a_marketable_one_is_refused(
    redis_url: str,
) -> None:
    band = {"band_bps": 1000, "reference": PRICE}

    async def scenario(venue: Venue) -> None:
        seller = await venue.account("0", ACME="10")
        buyer = await venue.account("100000.00")
        far_bid, _ = await venue.place(buyer, "ACME", Side.BUY, 1, PRICE // 100, **band)
        far_ask, _ = await venue.place(seller, "ACME", Side.SELL, 5, PRICE * 2, **band)
        through, reply = await venue.place(buyer, "ACME", Side.BUY, 5, PRICE * 3, **band)
        assert reply.ok  # the ledger reserved it; the book refuses it, and the ledger releases
        await venue.settle()
        assert (await venue.record(buyer, far_bid)).status == "new"
        assert (await venue.record(seller, far_ask)).status == "new"
        refused = await venue.record(buyer, through)
        assert (refused.status, refused.reason) == ("rejected", "outside_band")
        ledger = await venue.ledger(buyer)
        bid_reserved = ledger.open_orders[far_bid].reserved
        assert ledger.accounts[buyer].cash_free == 100000_00 - bid_reserved

    run(redis_url, scenario)


def test_a_trailing_stop_moves_in_its_record_survives_a_restart_and_triggers(
    redis_url: str,
) -> None:
    async def scenario(venue: Venue) -> None:
        seller = await venue.account("0", ACME="20")
        buyer = await venue.account("100000.00")

        async def trade(price: int) -> None:
            await venue.place(seller, "ACME", Side.SELL, 1, price)
            await venue.place(buyer, "ACME", Side.BUY, 1, price)
            await venue.settle()

        await trade(PRICE)
        stop_id, reply = await venue.place(
            seller, "ACME", Side.SELL, 5, 1, kind=OrderType.TRAILING_STOP, trail_rate=2_000
        )
        assert reply.ok
        await venue.settle()
        record = await venue.record(seller, stop_id)
        assert (record.status, record.hwm, record.stop_price) == ("new", PRICE, PRICE * 998 // 1000)
        assert (await venue.ledger(seller)).open_orders[stop_id].reserved == 5  # its shares
        await trade(PRICE + 40)
        record = await venue.record(seller, stop_id)
        assert (record.hwm, record.stop_price) == (PRICE + 40, (PRICE + 40) * 998 // 1000)

        await venue.stop_stages()  # what the matcher reloads keeps the mark
        venue.start_stages()
        reloaded = (await venue.matcher("ACME")).books["ACME"].get(stop_id)
        assert reloaded is not None and reloaded.hwm == PRICE + 40
        await venue.place(buyer, "ACME", Side.BUY, 10, PRICE)
        await trade(PRICE)  # through the trigger: a market sell, into the bid at PRICE
        record = await venue.record(seller, stop_id)
        assert (record.status, record.filled_qty) == ("filled", 5)

    run(redis_url, scenario)


def test_halted_symbol_rejects_orders_and_resumes(redis_url: str) -> None:
    async def scenario(venue: Venue) -> None:
        buyer = await venue.account("1000.00")
        await operations.set_halted(venue.client, "ACME", True)
        await venue.settle()
        order_id, reply = await venue.place(buyer, "ACME", Side.BUY, 1, PRICE)
        assert reply.ok  # the ledger accepts; the book rejects, and the ledger releases
        await venue.settle()
        record = await venue.record(buyer, order_id)
        assert (record.status, record.reason) == ("rejected", "halted")
        assert (await venue.ledger(buyer)).accounts[buyer].cash_free == 1000_00
        await operations.set_halted(venue.client, "ACME", False)
        await venue.settle()
        order_id, _ = await venue.place(buyer, "ACME", Side.BUY, 1, PRICE)
        await venue.settle()
        assert (await venue.record(buyer, order_id)).status == "new"

    run(redis_url, scenario)


def test_transfers_are_idempotent_by_id(redis_url: str) -> None:
    async def scenario(venue: Venue) -> None:
        account = await venue.account("0")
        deposit = Transfer(0, "t-1", account, CASH, 25_00)
        for _ in range(3):
            assert (await venue.client.request(account, deposit)).ok
        reply = await venue.client.request(account, Transfer(0, "t-1", account, CASH, 99))
        assert (reply.ok, reply.code) == (False, "transfer_conflict")
        reply = await venue.client.request(account, Transfer(0, "t-2", account, CASH, -26_00))
        assert (reply.ok, reply.code) == (False, "insufficient_funds")
        await venue.settle()
        assert (await venue.ledger(account)).accounts[account].cash_free == 25_00

    run(redis_url, scenario)


def test_client_order_ids_are_unique_per_account_across_restarts(redis_url: str) -> None:
    async def scenario(venue: Venue) -> None:
        account = await venue.account("1000.00")
        _, reply = await venue.place(account, "ACME", Side.BUY, 1, PRICE, client_order_id="a")
        assert reply.ok
        await venue.stop_stages()
        venue.start_stages()
        _, reply = await venue.place(account, "ACME", Side.BUY, 1, PRICE, client_order_id="a")
        assert (reply.ok, reply.code) == (False, "duplicate_client_order_id")

    run(redis_url, scenario)


def test_a_restarted_venue_resumes_with_the_same_state(redis_url: str) -> None:
    async def scenario(venue: Venue) -> None:
        seller = await venue.account("0", ACME="100", GLOBEX="100")
        buyer = await venue.account("100000.00")
        for step in range(20):
            await venue.place(seller, "ACME", Side.SELL, 3, PRICE + step % 5)
            await venue.place(seller, "GLOBEX", Side.SELL, 2, PRICE - step % 3)
            await venue.place(buyer, "ACME", Side.BUY, 2, PRICE + 2)
        await venue.settle()
        matcher = await venue.matcher("ACME")
        before = (await venue.ledger(buyer)).state_hash(), matcher.state_hash()
        asks = sum(qty for _, qty in matcher.books["ACME"].depth(Side.SELL, 100))
        in_memory = [loop.core for loop in venue.loops]
        await venue.stop_stages()
        venue.start_stages()
        await asyncio.gather(*(loop.ready.wait() for loop in venue.loops))
        after = (await venue.ledger(buyer)).state_hash(), (await venue.matcher("ACME")).state_hash()
        assert before == after
        # What Redis holds is exactly what the stages held in memory.
        reloaded = [loop.core for loop in venue.loops]
        assert in_memory[0].ledger.state_hash() == reloaded[0].ledger.state_hash()  # type: ignore[attr-defined]
        assert in_memory[1].matcher.state_hash() == reloaded[1].matcher.state_hash()  # type: ignore[attr-defined]
        # And it goes on trading from there, in queue order.
        order_id, _ = await venue.place(buyer, "ACME", Side.BUY, 50, PRICE + 4)
        await venue.settle()
        assert (await venue.record(buyer, order_id)).filled_qty == min(50, asks)

    run(redis_url, scenario)


def test_sharded_venue_settles_across_shards(redis_url: str) -> None:
    async def scenario(venue: Venue) -> None:
        accounts = [await venue.account("100000.00", ACME="500", GLOBEX="500") for _ in range(8)]
        shards = {account % 2 for account in accounts}
        assert shards == {0, 1}, "the accounts should land on both ledger shards"
        for step in range(40):
            account = accounts[step % len(accounts)]
            symbol = ("ACME", "GLOBEX")[step % 2]
            side = Side.BUY if step % 3 else Side.SELL
            await venue.place(account, symbol, side, 1 + step % 7, PRICE + step % 4 - 2)
        await venue.settle()

    run(redis_url, scenario, VenueConfig(ledgers=2, matchers=2))


def test_malformed_entries_are_dead_lettered_and_the_stage_goes_on(redis_url: str) -> None:
    async def scenario(venue: Venue) -> None:
        ledger_keys, matcher_keys = ShardKeys("l0"), ShardKeys("m0")
        await venue.redis.xadd(ledger_keys.inbox, {b"c": b"not json"})
        await venue.redis.xadd(ledger_keys.inbox, {b"c": b'[["place_order", 1, "nope"]]'})
        await venue.redis.xadd(ledger_keys.inbox, {b"x": b"no commands field"})
        await venue.redis.xadd(matcher_keys.inbox, {b"c": b'[["explode"]]'})
        account = await venue.account("1000.00")
        order_id, reply = await venue.place(account, "ACME", Side.BUY, 1, PRICE)
        assert reply.ok
        await venue.settle()
        assert (await venue.record(account, order_id)).status == "new"
        dead = await venue.redis.xrange(ledger_keys.dead_letters)
        assert len(dead) == 3
        reasons = [fields[b"reason"].decode() for _, fields in dead]
        assert all("not a list of ledger commands" in reason for reason in reasons)
        assert dead[0][1][b"field:c"] == b"not json"
        assert dead[0][1][b"stream"] == ledger_keys.inbox.encode()
        assert len(await venue.redis.xrange(matcher_keys.dead_letters)) == 1

    run(redis_url, scenario)


@pytest.mark.parametrize("garbage", [b"\xff\xfe", b"[]", b"[[]]", b"{}", b"[1,2,3]"])
def test_any_garbage_is_dead_lettered_or_ignored(redis_url: str, garbage: bytes) -> None:
    async def scenario(venue: Venue) -> None:
        await venue.redis.xadd(ShardKeys("l0").inbox, {b"c": garbage})
        await venue.append_as_stage(ShardKeys("m0"), ShardKeys("m0").link_to("l0"), {b"e": garbage})
        account = await venue.account("10.00")
        await venue.settle()
        assert (await venue.ledger(account)).accounts[account].cash_free == 10_00

    run(redis_url, scenario)


def test_a_commit_the_server_refuses_is_retried_and_lands_once(redis_url: str) -> None:
    async def scenario(venue: Venue) -> None:
        seller = await venue.account("0", ACME="10")
        buyer = await venue.account("1000.00")
        await venue.settle()
        # The server refuses the stages' writes of their tables, as a full disk refuses every
        # write (MISCONF), while the inbox still takes the order.
        # The user the stages sign in as (on the embedded server: the operator, in these tests).
        user = (await venue.redis.execute_command("ACL", "WHOAMI")).decode()
        # (On a cluster, each node keeps its own users: every node is told.)
        everywhere = {"target_nodes": "all"} if is_cluster_client(venue.redis) else {}
        await venue.redis.execute_command("ACL", "SETUSER", user, "-hset", **everywhere)
        try:
            selling = asyncio.ensure_future(venue.place(seller, "ACME", Side.SELL, 5, PRICE))
            await asyncio.sleep(1.0)
            assert not selling.done()  # refused: not accepted yet, so no answer
            assert not any(task.done() for task in venue.tasks)  # every stage goes on
        finally:
            await venue.redis.execute_command("ACL", "SETUSER", user, "+hset", **everywhere)
        _, reply = await selling
        assert reply.ok, reply
        _, reply = await venue.place(buyer, "ACME", Side.BUY, 5, PRICE)
        assert reply.ok, reply
        await venue.settle()
        bought = (await venue.ledger(buyer)).accounts[buyer]
        assert (bought.cash_free, bought.holdings["ACME"].free) == (1000_00 - 5 * 100_00, 5)
        sold = (await venue.ledger(seller)).accounts[seller]
        assert (sold.cash_free, sold.holdings["ACME"].free) == (5 * 100_00, 5)

    run(redis_url, scenario)
