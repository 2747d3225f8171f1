"""An in-process venue for the integration tests: every stage as a task, on a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from tradepit import operations
from tradepit.access import Role
from tradepit.client import VenueClient, init_config
from tradepit.domain.ids import new_id
from tradepit.domain.orders import Order, OrderType, Side, TimeInForce
from tradepit.ledger import Ledger
from tradepit.ledger.history import OrderRecord
from tradepit.matcher import Matcher
from tradepit.metrics.stage import StageMetrics
from tradepit.stage.ledger import LedgerShard
from tradepit.stage.loop import StageLoop
from tradepit.stage.marketdata import MarketDataShard
from tradepit.stage.matcher import MatcherShard
from tradepit.stage.messages import PlaceOrder, Reply
from tradepit.store.connection import Client, is_cluster_client, open_client
from tradepit.store.keys import ShardKeys, VenueConfig, ledger_of, matcher_of
from tradepit.store.ledger import LedgerKeys, load_ledger
from tradepit.store.matcher import MatcherKeys, load_matcher
from tradepit.store.snapshot import entries_in_flight


@dataclass
class Venue:
    url: str
    config: VenueConfig
    client: VenueClient
    loops: list[StageLoop]
    tasks: list[asyncio.Task[None]]
    role_url: Callable[[Role], str] | None = None
    metrics: StageMetrics | None = None  # each stage loop's observer's

    @property
    def redis(self) -> Client:
        return self.client.redis

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until every stage has applied everything in its inboxes."""
        deadline = time.monotonic() + timeout
        while await entries_in_flight(self.redis, self.config):
            if time.monotonic() > deadline:
                raise TimeoutError("the venue did not settle")
            await asyncio.sleep(0.01)

    async def append_as_stage(
        self, writer: ShardKeys, stream: str, fields: dict[bytes, bytes]
    ) -> None:
        """Append to a stage's outbox as the stage would: on a cluster, marked as replicated
        and with its doorbell rung (readers of other shards' streams wait for both)."""
        entry_id = await self.redis.xadd(stream, fields)  # type: ignore[arg-type]
        if is_cluster_client(self.redis):
            await self.redis.hset(writer.replicated, stream, entry_id)
            await self.redis.spublish(stream, b"")

    async def ledger(self, account_id: int) -> Ledger:
        shard = ledger_of(account_id, self.config)
        ledger, _ = await load_ledger(self.redis, LedgerKeys(shard), self.config)
        return ledger

    async def matcher(self, symbol: str) -> Matcher:
        matcher, _ = await load_matcher(self.redis, MatcherKeys(matcher_of(symbol, self.config)))
        return matcher

    async def record(self, account_id: int, order_id: int) -> OrderRecord:
        record = await self.client.order_record(account_id, order_id)
        assert record is not None, f"order {order_id} has no record"
        return record

    async def account(self, cash: str = "0", **positions: str) -> int:
        created = await operations.create_account(self.client, cash, positions)
        return int(created["id"].replace("-", ""), 16)

    async def place(
        self,
        account_id: int,
        symbol: str,
        side: Side,
        qty: int,
        price: int,
        *,
        kind: OrderType = OrderType.LIMIT,
        tif: TimeInForce = TimeInForce.GTC,
        client_order_id: str = "",
        band_bps: int = 0,
        reference: int = 0,
        trail_price: int = 0,
        trail_rate: int = 0,
    ) -> tuple[int, Reply]:
        order_id = new_id()
        order = Order(order_id, account_id, symbol, side, kind, tif, qty, price, ts=time.time_ns())
        order.band_bps, order.reference = band_bps, reference
        order.trail_price, order.trail_rate = trail_price, trail_rate
        reply = await self.client.request(account_id, PlaceOrder(0, order, client_order_id))
        return order_id, reply

    def start_stages(self) -> None:
        loops = [
            StageLoop(LedgerShard(i, self.config), self.url_of(Role.LEDGER))
            for i in range(self.config.ledgers)
        ]
        loops += [
            StageLoop(MatcherShard(i, self.config), self.url_of(Role.MATCHER))
            for i in range(self.config.matchers)
        ]
        loops.append(StageLoop(MarketDataShard(self.config), self.url_of(Role.MARKETDATA)))
        if self.metrics is not None:
            for loop in loops:
                loop.metrics = self.metrics.observer(loop.core)
        self.loops = loops
        self.tasks = [asyncio.create_task(loop.run()) for loop in loops]

    def url_of(self, role: Role) -> str:
        """The URL a part of the venue signs in with: its role's, where the server has them."""
        return self.url if self.role_url is None else self.role_url(role)

    async def stop_stages(self) -> None:
        for loop in self.loops:
            loop.stop()
        await asyncio.gather(*self.tasks)


@contextlib.asynccontextmanager
async def running_venue(
    url: str,
    config: VenueConfig | None = None,
    symbols: tuple[str, ...] = ("ACME", "GLOBEX"),
    *,
    role_url: Callable[[Role], str] | None = None,
    metrics: StageMetrics | None = None,
) -> AsyncIterator[Venue]:
    """The venue's stages as tasks, on `url`; with `role_url`, each stage signs in as its role
    and the client as the gateway (`url` is then the operator's, for the first start); with
    `metrics`, each stage loop has an observer of them."""
    redis = await open_client(url)
    try:
        config = await init_config(redis, config or VenueConfig())
    finally:
        await redis.aclose()
    client_url = url if role_url is None else role_url(Role.GATEWAY)
    client = await VenueClient(client_url, reply_timeout=10).connect()
    venue = Venue(url, config, client, [], [], role_url, metrics)
    venue.start_stages()
    try:
        for symbol in symbols:
            await operations.add_symbol(client, symbol)
        yield venue
    finally:
        await venue.stop_stages()
        await client.close()
