"""Idle-to-first-order latency: one order into an idle venue, until its reply, on the embedded
server and on a local Valkey Cluster (3 primaries, 1 replica each) with and without replica
acks.

On one server an idle stage blocks in one XREAD over all its inboxes; on a cluster it sleeps
on its inboxes' doorbells (SPUBLISH in the writer's slot) and then reads each inbox, so the
first order after a pause costs a wake-up and a read more. With replica acks the ledger's
commit is followed by a WAIT and its reply goes out once a replica holds it.

The stages run as tasks of this process, as the integration tests run them: every variant pays
the same Python, so the differences are the servers' round trips. Each order follows a pause
long enough that every stage is asleep; the order rests (it crosses nothing).

    python bench/idle_latency.py [--orders 200] [--pause-ms 50] [--quick]

The last line is JSON: each variant's p50/p90 in ms, and the cluster's p50 over the embedded's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tradepit import operations
from tradepit.access import Role
from tradepit.client import VenueClient
from tradepit.cluster import LocalCluster
from tradepit.domain.ids import new_id
from tradepit.domain.orders import Order, OrderType, Side, TimeInForce
from tradepit.embedded import EmbeddedValkey
from tradepit.stage.ledger import LedgerShard
from tradepit.stage.loop import StageLoop
from tradepit.stage.matcher import MatcherShard
from tradepit.stage.messages import PlaceOrder
from tradepit.store.catalog import init_config
from tradepit.store.connection import open_client
from tradepit.store.keys import VenueConfig

PRICE = 10_000  # 100.00, a bid well under any ask


@asynccontextmanager
async def running_stages(url: str, replica_acks: int | None) -> AsyncIterator[VenueClient]:
    redis = await open_client(url)
    try:
        config = await init_config(redis, VenueConfig())
    finally:
        await redis.aclose()
    loops = [
        StageLoop(LedgerShard(0, config), url, replica_acks=replica_acks),
        StageLoop(MatcherShard(0, config), url, replica_acks=replica_acks),
    ]
    tasks = [asyncio.create_task(loop.run()) for loop in loops]
    client = await VenueClient(url, reply_timeout=30).connect()
    try:
        yield client
    finally:
        for loop in loops:
            loop.stop()
        await asyncio.gather(*tasks)
        await client.close()


async def measure(url: str, replica_acks: int | None, orders: int, pause: float) -> list[float]:
    async with running_stages(url, replica_acks) as client:
        await operations.add_symbol(client, "ACME")
        created = await operations.create_account(client, "1000000.00")
        account = int(created["id"].replace("-", ""), 16)
        latencies = []
        for _ in range(orders):
            await asyncio.sleep(pause)
            order = Order(
                new_id(),
                account,
                "ACME",
                Side.BUY,
                OrderType.LIMIT,
                TimeInForce.GTC,
                1,
                PRICE,
                ts=time.time_ns(),
            )
            started = time.perf_counter()
            reply = await client.request(account, PlaceOrder(0, order, ""))
            latencies.append((time.perf_counter() - started) * 1000)
            if not reply.ok:
                raise SystemExit(f"the order was refused: {reply}")
        return latencies


def summary(latencies: list[float]) -> dict[str, float]:
    deciles = statistics.quantiles(latencies, n=10)
    return {"p50_ms": round(statistics.median(latencies), 3), "p90_ms": round(deciles[8], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--pause-ms", type=float, default=50.0)
    parser.add_argument("--quick", action="store_true", help="60 orders per variant")
    args = parser.parse_args()
    orders = 60 if args.quick else args.orders
    pause = args.pause_ms / 1000
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as directory:
        with EmbeddedValkey(Path(directory) / "embedded") as server:
            results["embedded"] = summary(asyncio.run(measure(server.url, None, orders, pause)))
        with LocalCluster(Path(directory) / "cluster", primaries=3, replicas=1) as cluster:
            url = cluster.url_for(Role.OPERATOR)
            results["cluster"] = summary(asyncio.run(measure(url, 0, orders, pause)))
            cluster.flush()  # the next variant starts anew
            results["cluster_replica_acks"] = summary(asyncio.run(measure(url, 1, orders, pause)))
    for name, figures in results.items():
        print(f"{name:22} p50 {figures['p50_ms']:7.3f} ms   p90 {figures['p90_ms']:7.3f} ms")
    embedded = results["embedded"]["p50_ms"]
    print(
        json.dumps(
            {
                "bench": "idle_latency",
                "orders": orders,
                **{name: figures for name, figures in results.items()},
                "cluster_over_embedded": round(results["cluster"]["p50_ms"] / embedded, 2),
                "acks_over_embedded": round(
                    results["cluster_replica_acks"]["p50_ms"] / embedded, 2
                ),
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
