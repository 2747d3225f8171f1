"""Moving a slot while the venue trades loses nothing: Valkey's atomic slot migration
(`LocalCluster.migrate`) hands a shard's slot to another primary mid-traffic, and the stages and
the client follow it (MOVED, a dropped doorbell subscription) without losing or repeating
anything acknowledged.

The cluster is this module's own: its slots end up elsewhere than where they started."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest
from conftest import CLUSTER_NODE_TIMEOUT
from harness import Venue, running_venue
from redis.crc import key_slot
from redis.exceptions import RedisError

from tradepit.access import Role
from tradepit.client import ReplyTimeoutError
from tradepit.cluster import LocalCluster
from tradepit.domain.orders import Side
from tradepit.store.keys import VenueConfig
from tradepit.store.ledger import LedgerKeys, load_ledger
from tradepit.verify import verify

PRICE = 10_000
ACCOUNTS = 6
CASH_EACH, SHARES_EACH = 100_000_00, 1_000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    directory = tmp_path_factory.mktemp("migration")
    with LocalCluster(
        directory, primaries=3, replicas=1, node_timeout=CLUSTER_NODE_TIMEOUT
    ) as running:
        yield running


def _move_elsewhere(cluster: LocalCluster, tag: str) -> str:
    """Migrate the slot of `tag` to another primary; the name of its new owner."""
    slot = key_slot(tag.encode())
    primaries = [node for node in cluster.nodes() if node.role == "primary"]
    owner = next(node for node in primaries if any(lo <= slot <= hi for lo, hi in node.slots))
    target = random.choice([node for node in primaries if node.name != owner.name])
    cluster.migrate(slot, target.name)
    return target.name


async def _trade(venue: Venue, accounts: list[int], stop: asyncio.Event) -> list[tuple[int, int]]:
    """Cross orders between the accounts until `stop`; those acknowledged (order, account)."""
    acknowledged: list[tuple[int, int]] = []
    step = 0
    while not stop.is_set():
        step += 1
        account = accounts[step % len(accounts)]
        side = Side.BUY if step % 2 else Side.SELL
        try:
            order_id, reply = await venue.place(
                account, "ACME" if step % 3 else "GLOBEX", side, 1 + step % 3, PRICE
            )
        except (ReplyTimeoutError, RedisError, OSError):
            continue  # not acknowledged: it may or may not exist, never twice
        if reply.ok:
            acknowledged.append((order_id, account))
    return acknowledged


async def _totals(venue: Venue) -> tuple[int, dict[str, int]]:
    """All cash and all shares of each symbol, free or reserved, over every ledger shard (each
    keeps its own part of the venue's account, which the fees go to)."""
    cash = 0
    shares: dict[str, int] = {}
    for shard in venue.config.ledger_names():
        ledger, _ = await load_ledger(venue.redis, LedgerKeys(shard), venue.config)
        for held in ledger.accounts.values():
            cash += held.cash_free + held.cash_reserved
            for symbol, holding in held.holdings.items():
                shares[symbol] = shares.get(symbol, 0) + holding.free + holding.reserved
    return cash, shares


def test_slots_moved_while_trading_lose_nothing(cluster: LocalCluster) -> None:
    url = cluster.url_for(Role.OPERATOR)

    async def main() -> None:
        config = VenueConfig(ledgers=2, matchers=2, maker_fee_bps=1, taker_fee_bps=2)
        # Each stage signs in as its role, as `serve` has them do: a cluster's ACLs hold too.
        async with running_venue(url, config, role_url=cluster.url_for) as venue:
            accounts = [
                await venue.account(f"{CASH_EACH // 100}.00", ACME="1000", GLOBEX="1000")
                for _ in range(ACCOUNTS)
            ]
            await venue.settle()
            before = await _totals(venue)
            assert before == (ACCOUNTS * CASH_EACH, {"ACME": 6_000, "GLOBEX": 6_000})
            stop = asyncio.Event()
            traders = [asyncio.create_task(_trade(venue, accounts, stop)) for _ in range(3)]
            loop = asyncio.get_running_loop()
            for tag in ("{l0}", "{m1}", "{l1}", "{m0}"):
                await asyncio.sleep(0.5)
                await loop.run_in_executor(None, _move_elsewhere, cluster, tag)
            await asyncio.sleep(0.5)
            stop.set()
            acknowledged = [order for orders in await asyncio.gather(*traders) for order in orders]
            assert len(acknowledged) > 50, "too little traded to tell"
            await venue.settle(timeout=60)
            for order_id, account in acknowledged:
                record = await venue.client.order_record(account, order_id)
                assert record is not None, f"acknowledged order {order_id} was lost"
            assert len({order_id for order_id, _ in acknowledged}) == len(acknowledged)
            assert await _totals(venue) == before, "cash or shares were made or lost"
            report = await verify(venue.redis)
            assert report.ok, report.text()

    asyncio.run(main())
