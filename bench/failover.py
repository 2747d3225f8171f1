"""Orders through primaries killed outright: does the venue on Valkey Cluster lose or double any?

    python bench/failover.py [--failovers N] [--traders N] [--quick]

A `LocalCluster` of its own (3 primaries, 1 replica each, `--node-timeout` 2 s, in a temporary
directory), 2 ledgers and 2 matchers in their own processes (each WAITs for 1 replica after a
commit before its replies go out: the default with replicas), and `--traders` accounts trading
continuously through `VenueClient`, one order in flight each: limit orders around one price on
4 symbols, about half of them trading. Meanwhile, over and over: SIGKILL the primary serving a
shard's slot (`{l0}`, `{m0}`, `{l1}`, `{m1}` in turn), wait until its replica has taken the slots
over (`wait_ready`), start the killed node again (it rejoins as a replica), wait until it is in
sync (`wait_replicated`), let the trading run on `--settle` seconds, repeat.

Every order whose reply came back ok is acknowledged; an order whose reply was an error or
never came (the failover's window) is not, and is counted apart (`unacknowledged`: it may or
may not be in the venue; `unacknowledged_found` says how many are). At the end the trading
stops, the venue settles, and each acknowledged order must have its record in its ledger's
order table (`found`; `lost` = acknowledged - found, must be 0) and appear exactly once in its
account's order index (`duplicated`: more than once, must be 0); then `tradepit.verify` checks
the books (`verify_ok`). `max_stall_ms` is the longest gap between two acknowledgements (any
trader's): how long the venue answered nothing across a failover. The last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from redis.cluster import key_slot

from pipeline import SYMBOLS, random_order, start_stages
from tradepit import operations
from tradepit.access import Role
from tradepit.client import VenueClient, init_config
from tradepit.cluster import LocalCluster
from tradepit.domain.orders import Order
from tradepit.stage.messages import PlaceOrder
from tradepit.store.connection import Client, open_client
from tradepit.store.keys import VenueConfig
from tradepit.store.ledger import keys_of_account
from tradepit.store.ledger import orders as stored_orders
from tradepit.store.snapshot import entries_in_flight
from tradepit.verify import verify

# The shards' hash tags, whose primaries are killed in turn.
TARGETS = ("{l0}", "{m0}", "{l1}", "{m1}")


def primary_serving(local: LocalCluster, tag: str) -> str:
    slot = key_slot(tag.encode())
    for node in local.nodes():
        if node.role == "primary" and any(low <= slot <= high for low, high in node.slots):
            return node.name
    raise RuntimeError(f"no primary serves {tag} (slot {slot})")


class Tally:
    def __init__(self) -> None:
        self.acknowledged: list[Order] = []
        self.unacknowledged: list[Order] = []
        self.refused = 0
        self.errors: dict[str, int] = {}
        self.last_ack = 0.0
        self.max_stall = 0.0
        self.stall_at: str = ""

    def ack(self, order: Order, phase: str) -> None:
        now = time.perf_counter()
        if self.last_ack and now - self.last_ack > self.max_stall:
            self.max_stall = now - self.last_ack
            self.stall_at = phase
        self.last_ack = now
        self.acknowledged.append(order)


async def trade(
    client: VenueClient,
    account: int,
    seed: int,
    tally: Tally,
    stop: asyncio.Event,
    phase: list[str],
) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        order = random_order(rng, (account,))
        order.ts = time.time_ns()
        try:
            reply = await client.request(account, PlaceOrder(0, order, ""))
        except Exception as error:  # a failover's errors and timeouts alike
            name = type(error).__name__
            tally.errors[name] = tally.errors.get(name, 0) + 1
            tally.unacknowledged.append(order)
            await asyncio.sleep(0.05)
            continue
        if reply.ok:
            tally.ack(order, phase[0])
        else:
            tally.refused += 1


def failovers(local: LocalCluster, count: int, settle: float, phase: list[str]) -> list[Any]:
    """Kill, promote, restart, resync, `count` times (in a thread: LocalCluster is blocking)."""
    done = []
    time.sleep(settle)
    for number in range(count):
        tag = TARGETS[number % len(TARGETS)]
        victim = primary_serving(local, tag)
        phase[0] = f"failover {number + 1} ({victim}, {tag})"
        killed = time.perf_counter()
        local.kill(victim)
        local.wait_ready()
        heir = primary_serving(local, tag)
        promoted = time.perf_counter()
        local.restart(victim)
        local.wait_replicated()
        back = local.node(victim)
        resynced = time.perf_counter()
        phase[0] = f"after failover {number + 1}"
        done.append(
            {
                "tag": tag,
                "killed": victim,
                "heir": heir,
                "promoted_s": round(promoted - killed, 2),
                "back_as": back.role,
                "resynced_s": round(resynced - promoted, 2),
            }
        )
        print(json.dumps({"failover": number + 1, **done[-1]}), flush=True)
        time.sleep(settle)
    return done


async def settle(redis: Client, config: VenueConfig, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if not await entries_in_flight(redis, config):
                return True
        await asyncio.sleep(0.1)
    return False


async def check_orders(
    redis: Client, config: VenueConfig, orders: list[Order]
) -> tuple[int, int, int]:
    """(found, listed exactly once, listed more than once) of `orders`: a record in their
    ledger's order table, and their entries in their account's order index."""
    found = 0
    by_table: dict[str, list[Order]] = {}
    for order in orders:
        by_table.setdefault(keys_of_account(order.account_id, config).orders, []).append(order)
    for table, group in by_table.items():
        for start in range(0, len(group), 1000):
            ids = [str(order.order_id) for order in group[start : start + 1000]]
            raws: Any = await redis.hmget(table, ids)
            found += sum(raw is not None for raw in raws)
    listed: dict[int, int] = {}
    for account in {order.account_id for order in orders}:
        async for page in stored_orders(redis, config, account, open_only=False):
            for record in page:
                listed[record.order_id] = listed.get(record.order_id, 0) + 1
    once = sum(listed.get(order.order_id, 0) == 1 for order in orders)
    twice = sum(listed.get(order.order_id, 0) > 1 for order in orders)
    return found, once, twice


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="tradepit-failover-"))
    local = LocalCluster(
        data_dir / "cluster", primaries=3, replicas=1, node_timeout=args.node_timeout
    )
    local.start()
    processes: list[subprocess.Popen[bytes]] = []
    url = local.url_for(Role.OPERATOR)
    redis = await open_client(url)
    try:
        config = VenueConfig(ledgers=2, matchers=2, taker_fee_bps=2)
        await init_config(redis, config)
        # Each stage signed in as its role.
        roles = {"ledger": local.url_for(Role.LEDGER), "matcher": local.url_for(Role.MATCHER)}
        processes = start_stages(url, 2, data_dir, stage_urls=roles)
        setup_started = time.perf_counter()
        # A long wait for the first replies (the stages start meanwhile), a short one later.
        client = await VenueClient(local.url_for(Role.GATEWAY), reply_timeout=60).connect()
        for symbol in SYMBOLS:
            await operations.add_symbol(client, symbol)
        positions = {symbol: "100000000" for symbol in SYMBOLS}
        created = await asyncio.gather(
            *(
                operations.create_account(client, "100000000000.00", positions)
                for _ in range(args.traders)
            )
        )
        accounts = [int(entry["id"].replace("-", ""), 16) for entry in created]
        await settle(redis, config, 30)
        client.reply_timeout = args.reply_timeout
        setup_s = time.perf_counter() - setup_started

        tally = Tally()
        stop = asyncio.Event()
        phase = ["before the first failover"]
        started = time.perf_counter()
        traders = [
            asyncio.create_task(trade(client, account, args.seed + number, tally, stop, phase))
            for number, account in enumerate(accounts)
        ]
        done = await asyncio.to_thread(failovers, local, args.failovers, args.settle, phase)
        stop.set()
        await asyncio.gather(*traders)
        elapsed = time.perf_counter() - started
        settled = await settle(redis, config, 60)
        found, once, twice = await check_orders(redis, config, tally.acknowledged)
        unacked_found, _, unacked_twice = await check_orders(redis, config, tally.unacknowledged)
        report = await verify(redis)
        await client.close()
        nodes = local.nodes()
        return {
            "bench": "failover",
            "acknowledged": len(tally.acknowledged),
            "found": found,
            "lost": len(tally.acknowledged) - found,
            "listed_once": once,
            "duplicated": twice,
            "unacknowledged": len(tally.unacknowledged),
            "unacknowledged_found": unacked_found,
            "unacknowledged_duplicated": unacked_twice,
            "errors": tally.errors,
            "refused": tally.refused,
            "failovers": len(done),
            "max_stall_ms": round(tally.max_stall * 1000),
            "max_stall_during": tally.stall_at,
            "orders_per_s": round(len(tally.acknowledged) / elapsed),
            "elapsed_s": round(elapsed, 1),
            "setup_s": round(setup_s, 1),
            "settled": settled,
            "verify_ok": report.ok,
            "verify_problems": report.problems[:5],
            "promoted_s": [each["promoted_s"] for each in done],
            "resynced_s": [each["resynced_s"] for each in done],
            "nodes_at_end": {node.name: node.role for node in nodes},
            "stages_alive": sum(process.poll() is None for process in processes),
            "traders": args.traders,
            "node_timeout_s": args.node_timeout,
            "cluster": {"primaries": local.primaries, "replicas": local.replicas},
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        }
    except BaseException:
        for log in sorted(data_dir.glob("*.log")):
            sys.stderr.write(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}\n")
        raise
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        with contextlib.suppress(Exception):
            await redis.aclose()
        local.stop()
        if args.keep:
            sys.stderr.write(f"kept {data_dir}\n")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failovers", type=int, default=8)
    parser.add_argument(
        "--traders", type=int, default=16, help="accounts, one order each in flight"
    )
    parser.add_argument("--node-timeout", type=float, default=2.0, help="seconds")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds between failovers")
    parser.add_argument("--reply-timeout", type=float, default=5.0, help="the clients', seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the directory and its logs")
    parser.add_argument("--quick", action="store_true", help="3 failovers: under 60 s")
    args = parser.parse_args()
    if args.quick:
        args.failovers = min(args.failovers, 3)
        args.settle = min(args.settle, 1.5)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
