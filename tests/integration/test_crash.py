"""Crash tests: stages in their own processes, killed with SIGKILL at random moments while
orders pour in, and the Valkey server too (append-only file, fsync every second), or, on a
Valkey Cluster, the primary that serves a stage's slot (its replica takes over: a failover).

After it all, what must hold: every order whose acceptance was acknowledged exists exactly
once; no trade was applied twice; `tradepit verify` passes; and the state in Redis hashes equal
to a clean replay of the same inputs through the pure cores.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pytest
from redis.crc import key_slot

from tradepit import operations
from tradepit.access import Role
from tradepit.client import VenueClient, init_config
from tradepit.cluster import LocalCluster
from tradepit.domain.events import Accepted, Trade
from tradepit.domain.ids import new_id
from tradepit.domain.orders import Order, OrderType, Side, TimeInForce
from tradepit.embedded import EmbeddedValkey
from tradepit.ledger import CASH, Ledger
from tradepit.matcher import Matcher
from tradepit.stage.messages import (
    AddSymbol,
    OpenAccount,
    PlaceOrder,
    Transfer,
    decode_events,
    decode_ledger_commands,
    decode_record,
    symbol_of,
)
from tradepit.store.connection import open_client
from tradepit.store.keys import ShardKeys, VenueConfig, replicated_key
from tradepit.store.ledger import LedgerKeys, load_ledger
from tradepit.store.matcher import MatcherKeys, load_matcher
from tradepit.store.snapshot import entries_in_flight
from tradepit.verify import verify

SYMBOLS = ("ACME", "GLOBEX")
PRICE = 10_000
CONFIG = VenueConfig(maker_fee_bps=1, taker_fee_bps=2)
# As the session's cluster (conftest): failovers within seconds, yet well above what a busy
# 2-core machine stalls a node for.
CLUSTER_NODE_TIMEOUT = 2.0


class Store(Protocol):
    """Where the venue keeps its state: one server, or a cluster; `crash` kills the part of it
    that serves the stages (kill -9) and brings it back."""

    crashes: int

    def url_for(self, role: Role) -> str: ...

    async def crash(self, rng: random.Random) -> None: ...

    def stop(self) -> None: ...


class ServerStore:
    """One embedded Valkey (append-only file, fsync every second), killed and started again."""

    def __init__(self, directory: Path) -> None:
        self.server = EmbeddedValkey(directory, fsync="everysec")
        self.server.start()
        self.crashes = 0

    def url_for(self, role: Role) -> str:
        return self.server.url_for(role)

    async def crash(self, rng: random.Random) -> None:
        assert self.server.process is not None
        self.server.process.send_signal(signal.SIGKILL)
        self.server.process.wait()
        await asyncio.sleep(rng.uniform(0, 0.3))
        await asyncio.to_thread(self.server.restart_if_dead)
        self.crashes += 1
        assert self.server.restarts == self.crashes

    def stop(self) -> None:
        self.server.stop()


class ClusterStore:
    """A Valkey Cluster of primaries with a replica each. A crash kills -9 the primary that
    serves the ledger's or the matcher's slot (`{l0}`, `{m0}`), waits until its replica has
    taken over, and starts it again (as the new primary's replica)."""

    def __init__(
        self, cluster: LocalCluster, *, owned: bool = False, stage_roles: bool = True
    ) -> None:
        self.cluster = cluster
        self.owned = owned  # stopped at the end if this store started it
        # The stages sign in as their own roles, or, without `stage_roles`, as the operator,
        # as `serve --redis-url` runs them on a cluster.
        self.stage_roles = stage_roles
        self.crashes = 0
        self.victims: list[tuple[str, str]] = []  # (the tag, the node killed)

    def url_for(self, role: Role) -> str:
        if role in (Role.LEDGER, Role.MATCHER, Role.MARKETDATA) and not self.stage_roles:
            role = Role.OPERATOR
        return self.cluster.url_for(role)

    def primary_serving(self, tag: str) -> str:
        slot = key_slot(tag.encode())
        return next(
            node.name
            for node in self.cluster.nodes()
            if node.role == "primary"
            and node.running
            and any(low <= slot <= high for low, high in node.slots)
        )

    async def crash(self, rng: random.Random) -> None:
        tag = rng.choice(("{l0}", "{m0}"))
        victim = await asyncio.to_thread(self.primary_serving, tag)
        await asyncio.to_thread(self.cluster.kill, victim)
        self.victims.append((tag, victim))
        await asyncio.to_thread(self.cluster.wait_ready)  # its replica took its slots
        assert await asyncio.to_thread(self.primary_serving, tag) != victim
        await asyncio.sleep(rng.uniform(0, 0.5))
        await asyncio.to_thread(self.cluster.restart, victim)
        # Back as a replica, and caught up: the next crash has a replica to fail over to.
        await asyncio.to_thread(self.cluster.wait_replicated)
        self.crashes += 1

    def stop(self) -> None:
        if self.owned:
            self.cluster.stop()


class Stage:
    """One `tradepit run` process, which the test kills and starts again. `url` is asked at
    each start (on a cluster, the node it names must be one that runs)."""

    def __init__(self, kind: str, url: Callable[[], str], log_dir: Path) -> None:
        self.kind = kind
        self.url = url
        self.log = log_dir / f"{kind}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        command = [sys.executable, "-m", "tradepit.cli", "run"]
        command += [self.kind, "--shard", "0/1", "--keep-inputs"]
        environment = {**os.environ, "REDIS_URL": self.url()}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, env=environment)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


async def _feed(
    client: VenueClient,
    accounts: list[int],
    orders: int,
    rng: random.Random,
    chaos_over: asyncio.Event,
) -> set[int]:
    """Place random limit orders in bursts until at least `orders` were acknowledged and the
    chaos is over; return the ids whose acceptance was acknowledged.

    Counting acknowledged orders, not sent ones, keeps the proof the same size however long
    the server happens to be down: sends fail fast while it is."""
    acked: set[int] = set()
    deadline = time.monotonic() + 180
    while len(acked) < orders or not chaos_over.is_set():
        assert time.monotonic() < deadline, f"only {len(acked)} orders acknowledged"
        burst = []
        for _ in range(50):
            account = rng.choice(accounts)
            side = rng.choice((Side.BUY, Side.SELL))
            price = PRICE + rng.randint(-5, 5)
            order = Order(
                new_id(),
                account,
                rng.choice(SYMBOLS),
                side,
                OrderType.LIMIT,
                TimeInForce.GTC,
                rng.randint(1, 10),
                price,
                ts=time.time_ns(),
            )
            burst.append((order.order_id, client.send(account, PlaceOrder(0, order, ""))))
        # A reply can be lost in a crash (or published while this client reconnects): that
        # order was not acknowledged, so nothing was promised about it.
        await asyncio.wait([future for _, future in burst], timeout=5)
        failed = False
        for order_id, future in burst:
            if not future.done():
                future.cancel()
                failed = True
            elif future.exception() is None:
                assert future.result().ok, future.result()
                acked.add(order_id)
            else:
                failed = True
        # Back off while the venue is unreachable, as a client would.
        await asyncio.sleep(0.1 if failed else rng.uniform(0, 0.02))
    return acked


async def _replay(redis_url: str) -> tuple[Ledger, Matcher]:
    """The inputs as the stages received them, through the pure cores, with no crash."""
    redis = await open_client(redis_url)
    try:
        entries = await redis.xrange(ShardKeys("l0").inbox)
    finally:
        await redis.aclose()
    ledger = Ledger((), CONFIG.maker_fee_bps, CONFIG.taker_fee_bps)
    matcher = Matcher()
    for _entry_id, fields in entries:
        for command in decode_ledger_commands(fields[b"c"]):
            if isinstance(command, AddSymbol):
                ledger.add_symbol(symbol_of(command.symbol))
                matcher.add_symbol(command.symbol.name)
            elif isinstance(command, OpenAccount):
                ledger.open_account(command.account_id)
            elif isinstance(command, Transfer):
                if command.asset == CASH:
                    ledger.deposit_cash(command.transfer_id, command.account_id, command.amount)
                else:
                    ledger.deposit_shares(
                        command.transfer_id, command.account_id, command.asset, command.amount
                    )
            elif isinstance(command, PlaceOrder):
                ledger.place_order(command.order, None)
                matcher.submit(command.order)
                for event in matcher.take_events():
                    ledger.apply(event)
    return ledger, matcher


async def _tear_down(
    client: VenueClient | None, stages: list[Stage], server: EmbeddedValkey | Store
) -> None:
    if client is not None:
        await client.close()
    for stage in stages:
        stage.stop()
    server.stop()


async def crash_run(
    store: Store,
    log_dir: Path,
    *,
    orders: int,
    stage_kills: int,
    store_kills: int,
    seed: int,
) -> None:
    """Trade `orders` (acknowledged) through stage processes on `store` while `stage_kills`
    stage processes and `store_kills` times the store are killed -9 at random moments; then
    check that nothing acknowledged was lost or applied twice. Stops `store` at the end."""
    rng = random.Random(seed)
    # Each signed in as its role, as `serve` runs them: the ACLs hold through every crash.
    stages = [
        Stage("ledger", lambda: store.url_for(Role.LEDGER), log_dir),
        Stage("matcher", lambda: store.url_for(Role.MATCHER), log_dir),
    ]
    client = None
    try:
        operator_url = store.url_for(Role.OPERATOR)
        redis = await open_client(operator_url)
        await init_config(redis, CONFIG)
        for stage in stages:
            stage.start()
        client = await VenueClient(store.url_for(Role.GATEWAY), reply_timeout=30).connect()
        for symbol in SYMBOLS:
            await operations.add_symbol(client, symbol)
        accounts = []
        for _ in range(6):
            created = await operations.create_account(
                client, "10000000.00", {symbol: "1000000" for symbol in SYMBOLS}
            )
            accounts.append(int(created["id"].replace("-", ""), 16))

        chaos_over = asyncio.Event()

        async def chaos() -> None:
            kills = [("stage", index) for index in range(stage_kills)]
            kills += [("store", index) for index in range(store_kills)]
            rng.shuffle(kills)
            for what, _ in kills:
                await asyncio.sleep(rng.uniform(0.3, 1.0))
                if what == "stage":
                    stage = rng.choice(stages)
                    stage.kill()
                    await asyncio.sleep(rng.uniform(0, 0.3))
                    stage.start()
                else:
                    await store.crash(rng)
            chaos_over.set()

        feed = _feed(client, accounts, orders, rng, chaos_over)
        acked, _ = await asyncio.gather(feed, chaos())
        assert len(acked) >= orders
        assert sum(stage.kills for stage in stages) == stage_kills
        assert store.crashes == store_kills
        await redis.aclose()  # its connection may have died with the server
        redis = await open_client(store.url_for(Role.OPERATOR))

        deadline = time.monotonic() + 60
        while await entries_in_flight(redis, CONFIG):
            if time.monotonic() > deadline:
                raise AssertionError(
                    "the stages did not catch up:\n" + await _stuck(redis, store, stages)
                )
            await asyncio.sleep(0.1)
        report = await verify(redis)
        assert report.ok, report.text()

        # Every acknowledged order exists exactly once: one record, one acceptance by a book.
        records = await redis.hkeys(LedgerKeys("l0").orders)
        assert acked <= {int(key) for key in records}
        accepted: Counter[int] = Counter()
        fills: Counter[int] = Counter()
        trades: Counter[tuple[str, int]] = Counter()
        for _entry_id, fields in await redis.xrange(MatcherKeys("m0").events):
            for event in decode_events(fields[b"e"]):
                if isinstance(event, Accepted):
                    accepted[event.order_id] += 1
                elif isinstance(event, Trade):
                    trades[(event.symbol, event.seq)] += 1
                    fills[event.maker_order_id] += event.qty
                    fills[event.taker_order_id] += event.qty
        assert all(accepted[order_id] == 1 for order_id in acked)
        assert set(trades.values()) <= {1}
        # No fill settled twice: each order's filled quantity is what the books traded for it.
        ledger, _ = await load_ledger(redis, LedgerKeys("l0"), CONFIG)
        for key, raw in (await redis.hgetall(LedgerKeys("l0").orders)).items():
            record = decode_record(raw)
            assert record.filled_qty == fills[int(key)], record

        # The state equals a clean replay of the same inputs.
        replayed_ledger, replayed_matcher = await _replay(store.url_for(Role.OPERATOR))
        matcher, _ = await load_matcher(redis, MatcherKeys("m0"))
        assert matcher.state_hash() == replayed_matcher.state_hash()
        assert ledger.state_hash() == replayed_ledger.state_hash()
        await redis.aclose()
    finally:
        await _tear_down(client, stages, store)
        for stage in stages:
            if stage.log.exists():
                sys.stderr.write(stage.log.read_text()[-3000:])


async def _stuck(redis: Any, store: EmbeddedValkey | Store, stages: list[Stage]) -> str:
    """Where each inbox stands, for the report of stages that did not catch up."""
    lines = []
    shards: list[LedgerKeys | MatcherKeys] = [MatcherKeys("m0"), LedgerKeys("l0")]
    for keys in shards:
        checkpoints = await redis.hgetall(keys.checkpoints)
        lines.append(f"{keys.shard}: checkpoints {checkpoints}")
        for stream in keys.inboxes(CONFIG):
            last = await redis.xrevrange(stream, count=1)
            marked = await redis.hget(replicated_key(stream), stream)
            lines.append(
                f"  {stream}: last {last[0][0] if last else None}, replicated mark {marked}"
            )
    for stage in stages:
        assert stage.process is not None
        lines.append(f"{stage.kind}: pid {stage.process.pid}, exit {stage.process.poll()}")
    if isinstance(store, ClusterStore):
        lines.append(f"victims {store.victims}")
        for node in store.cluster.nodes():
            lines.append(f"  {node.name} {node.role} running={node.running} {node.slots}")
    return "\n".join(lines)


def own_cluster(directory: Path) -> ClusterStore:
    """A cluster of this test's own, of 3 primaries with a replica each: its kills disturb
    no other test."""
    cluster = LocalCluster(directory, primaries=3, replicas=1, node_timeout=CLUSTER_NODE_TIMEOUT)
    cluster.start()
    return ClusterStore(cluster, owned=True)


@pytest.fixture(params=["server", "cluster"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_killed_stages_lose_nothing(
    tmp_path: Path, store_kind: str, request: pytest.FixtureRequest
) -> None:
    if store_kind == "server":
        store: Store = ServerStore(tmp_path / "valkey")
    else:  # only stages are killed: the session's cluster is not disturbed
        cluster = request.getfixturevalue("session_cluster")
        cluster.flush()
        store = ClusterStore(cluster)
    run = crash_run(store, tmp_path, orders=3000, stage_kills=4, store_kills=0, seed=1)
    asyncio.run(run)


def test_killed_valkey_loses_nothing(tmp_path: Path) -> None:
    store = ServerStore(tmp_path / "valkey")
    asyncio.run(crash_run(store, tmp_path, orders=3000, stage_kills=0, store_kills=2, seed=2))


# The cluster's own variant of the Valkey kills, the failovers, is in test_failover.py.


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_many_crashes_lose_nothing(tmp_path: Path, seed: int, store_kind: str) -> None:
    if store_kind == "server":
        store: Store = ServerStore(tmp_path / "valkey")
    else:
        store = own_cluster(tmp_path / "cluster")
    run = crash_run(store, tmp_path, orders=20_000, stage_kills=8, store_kills=4, seed=seed)
    asyncio.run(run)


def test_a_stage_started_while_the_server_is_down_waits_for_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        server = EmbeddedValkey(tmp_path / "valkey", fsync="everysec")
        server.start()
        redis = await open_client(server.url)
        await init_config(redis, CONFIG)
        await redis.aclose()
        port = server.port
        server.stop()
        stages = [
            Stage("ledger", lambda: server.url_for(Role.LEDGER), tmp_path),
            Stage("matcher", lambda: server.url_for(Role.MATCHER), tmp_path),
        ]
        client = None
        try:
            for stage in stages:
                stage.start()
            await asyncio.sleep(1.5)  # they are up, and the server is not
            assert all(stage.process is not None for stage in stages)
            assert all(stage.process.poll() is None for stage in stages)  # type: ignore[union-attr]
            server = EmbeddedValkey(tmp_path / "valkey", fsync="everysec", port=port)
            server.start()
            client = await VenueClient(server.url, reply_timeout=30).connect()
            await operations.add_symbol(client, "ACME")
            created = await operations.create_account(client, "100.00", {})
            assert created["id"]
        finally:
            await _tear_down(client, stages, server)

    asyncio.run(scenario())
