"""Failover tests: the venue's stages as their own processes on a Valkey Cluster of 3 primaries
with a replica each, while orders pour in from several accounts, and the primary that serves
the ledger's or the matcher's slot (`{l0}`, `{m0}`) is killed -9 at random moments: its replica
takes over, and the killed node comes back as the replica of its heir. Stage processes are
killed -9 and started again too.

Each stage WAITs for a replica after each commit before its replies go out, and reads other
shards' entries only once a replica holds them, so a failover must lose nothing acknowledged.
What must hold after it all (`test_crash.crash_run`): every acknowledged order exists exactly
once, no trade was applied twice, `verify` passes, and the state hashes equal to a clean replay
of the same inputs through the pure cores.

The cluster is this module's own: its kills disturb no other test.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_crash import CLUSTER_NODE_TIMEOUT, CONFIG, ClusterStore, Stage, crash_run

from tradepit import operations
from tradepit.access import Role
from tradepit.client import VenueClient, init_config
from tradepit.cluster import LocalCluster
from tradepit.domain.ids import new_id
from tradepit.domain.orders import Order, OrderType, Side, TimeInForce
from tradepit.stage.messages import PlaceOrder
from tradepit.store.connection import open_client
from tradepit.store.keys import VenueConfig
from tradepit.store.snapshot import entries_in_flight
from tradepit.verify import verify


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    directory = tmp_path_factory.mktemp("failover-cluster")
    with LocalCluster(
        directory, primaries=3, replicas=1, node_timeout=CLUSTER_NODE_TIMEOUT
    ) as running:
        yield running


@pytest.fixture
def store(cluster: LocalCluster) -> ClusterStore:
    cluster.wait_ready()
    cluster.flush()
    return ClusterStore(cluster)


def test_failovers_and_a_killed_stage_lose_nothing(store: ClusterStore, tmp_path: Path) -> None:
    asyncio.run(crash_run(store, tmp_path, orders=1500, stage_kills=1, store_kills=2, seed=21))
    assert len(store.victims) == 2


@pytest.mark.slow
@pytest.mark.parametrize("seed", [31, 32])
def test_many_failovers_lose_nothing(store: ClusterStore, tmp_path: Path, seed: int) -> None:
    run = crash_run(store, tmp_path, orders=10_000, stage_kills=4, store_kills=6, seed=seed)
    asyncio.run(run)
    # Both stages' primaries were killed at least once in six (with these seeds).
    assert {tag for tag, _ in store.victims} == {"{l0}", "{m0}"}


def test_stages_signed_in_as_their_roles_work_on_a_cluster(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.wait_ready()
    cluster.flush()

    async def scenario() -> None:
        redis = await open_client(cluster.url)
        try:
            await init_config(redis, VenueConfig())
        finally:
            await redis.aclose()
        stages = []
        for kind, role in (("ledger", Role.LEDGER), ("matcher", Role.MATCHER)):
            environment = {**os.environ, "REDIS_URL": cluster.url_for(role)}
            with (tmp_path / f"{kind}.log").open("ab") as log:
                command = [sys.executable, "-m", "tradepit.cli", "run", kind]
                stages.append(subprocess.Popen(command, stdout=log, stderr=log, env=environment))
        client = await VenueClient(cluster.url_for(Role.GATEWAY), reply_timeout=10).connect()
        try:
            await operations.add_symbol(client, "ACME")
            created = await operations.create_account(client, "100.00", {"ACME": "10"})
            assert created["id"]
        finally:
            await client.close()
            for stage in stages:
                stage.terminate()
                stage.wait(timeout=20)

    asyncio.run(scenario())


def test_a_stage_restarted_while_a_primary_has_no_replica_still_feeds_the_other(
    store: ClusterStore, tmp_path: Path
) -> None:
    """A stage restarted while its primary's heir has no replica yet keeps waiting for one
    (and marking its streams) once replicas are back: it used to decide on none from then on,
    stop marking, and leave the other stage waiting for its entries for ever (what the many
    failovers above ran into at random)."""

    async def scenario() -> None:
        redis = await open_client(store.url_for(Role.OPERATOR))
        await init_config(redis, CONFIG)
        stages = [
            Stage("ledger", lambda: store.url_for(Role.LEDGER), tmp_path),
            Stage("matcher", lambda: store.url_for(Role.MATCHER), tmp_path),
        ]
        client = None
        try:
            for stage in stages:
                stage.start()
            client = await VenueClient(store.url_for(Role.GATEWAY), reply_timeout=30).connect()
            await operations.add_symbol(client, "ACME")
            buyer = await operations.create_account(client, "100000.00", {})
            seller = await operations.create_account(client, "0", {"ACME": "100"})
            buyer_id, seller_id = (int(a["id"].replace("-", ""), 16) for a in (buyer, seller))

            # The ledger's primary dies; while its heir has no replica, the ledger restarts.
            victim = store.primary_serving("{l0}")
            await asyncio.to_thread(store.cluster.kill, victim)
            await asyncio.to_thread(store.cluster.wait_ready)
            stages[0].kill()
            stages[0].start()
            await asyncio.sleep(5)  # it has loaded, on a cluster with a primary unreplicated
            await asyncio.to_thread(store.cluster.restart, victim)
            await asyncio.to_thread(store.cluster.wait_replicated)
            # The matcher (re)starts once every primary has a replica again.
            stages[1].kill()
            stages[1].start()
            await asyncio.sleep(5)

            for account, side in ((seller_id, Side.SELL), (buyer_id, Side.BUY)):
                order = Order(
                    new_id(),
                    account,
                    "ACME",
                    side,
                    OrderType.LIMIT,
                    TimeInForce.GTC,
                    10,
                    10_000,
                    ts=time.time_ns(),
                )
                reply = await client.request(account, PlaceOrder(0, order, ""))
                assert reply.ok, reply
            deadline = time.monotonic() + 10
            while in_flight := await entries_in_flight(redis, CONFIG):
                assert time.monotonic() < deadline, f"{in_flight} entries never applied"
                await asyncio.sleep(0.1)
            report = await verify(redis)
            assert report.ok, report.text()
        finally:
            await redis.aclose()
            if client is not None:
                await client.close()
            for stage in stages:
                stage.stop()

    asyncio.run(scenario())
