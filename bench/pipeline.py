"""Orders through the whole bus: ledger inbox -> ledger -> matcher -> settlement, on Valkey.

    python bench/pipeline.py [--fsync everysec|always] [--shards 1|2] [--orders N]
                             [--rate R] [--without-history] [--no-metrics] [--quick]
    python bench/pipeline.py --cluster [--replica-acks N] [--quick]

The venue runs as it does in production: an embedded Valkey (AOF on, the `--fsync` policy) and
the stages in their own processes, either `tradepit serve` (one process, one ledger and one
matcher shard) or `--shards 2` (two ledger and two matcher shards, a process each). This
process is the clients: 1,000 accounts with ample cash and shares, 4 symbols, limit orders
around one price (about half of them trade), built before the clock starts and sent with the
client the gateway uses (`VenueClient`: commands sent in the same moment share one XADD per
ledger shard), `--window` orders in flight at most.

- flat out (`--rate 0`, the default): orders/s = orders / (first send .. last order settled);
- paced (`--rate R`): R orders/s in 1 ms ticks; the latency is what to read.

An order is settled when its ledger shard has applied the book's answer to it (accepted, and
the fills it made at once, both sides, with fees): the ledger appends the changed order records
to its `updates` stream in each commit. The latency is the time from the order's `ts` (stamped
as it is sent) to the arrival here of that record, tailing the `updates` streams. `lost` counts
orders sent but absent from the ledgers' order tables at the end; it must be 0.
`cpu_us_per_order` is the CPU time (us) that the stage processes, Valkey, this process (the
clients and the settlement watcher) and the whole machine (everything on it, other users
included) spent from the first send to the last order settled, per order settled: on a shared
machine, the figure to compare. The last line is one JSON object.

`--cluster` runs the venue on a Valkey Cluster of its own (`LocalCluster`: 3 primaries, 1
replica each, in a temporary directory, AOF with the `--fsync` policy), 2 ledgers and 2 matchers
in their own processes (each as its role; the clients as the gateway). Each stage WAITs for
`--replica-acks` replicas after each commit before its replies go out; without the flag both
variants run, a fresh cluster each: 1 (the default with replicas; its figures at top level) and
0 (under `"without_replica_acks"`), but `--quick` runs 1 alone (20k orders). `lost` counts the
orders acknowledged (reply ok) whose record is not in their ledger's order table at the end.

`--no-metrics` runs the stages without their Prometheus metrics (`--metrics-port 0`); by default
each stage process serves them on a free port, as `serve` does (nothing scrapes them here), so
that their cost is this flag's difference in `cpu_us_per_order.stages`.

`--without-history` runs the stages through bench/no_history.py: the ledger keeps no order
records, updates or per-account indexes (what the Alpaca API lists and streams), so this
measures the path ledger -> matcher -> settlement alone. With no updates to watch, an order
counts as settled once every stage has applied everything sent (the run's end), so there is
no latency and `lost` is null (no order table to look in); `refused` still counts the
ledgers' refusals.
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
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import redis.asyncio as aioredis

from tradepit import operations
from tradepit.access import Role
from tradepit.client import VenueClient, init_config
from tradepit.cluster import LocalCluster
from tradepit.domain.ids import new_id
from tradepit.domain.orders import Order, OrderType, Side, TimeInForce
from tradepit.embedded import EmbeddedValkey, free_port
from tradepit.stage.messages import UPDATES, PlaceOrder
from tradepit.store.connection import Client, open_client
from tradepit.store.keys import VenueConfig
from tradepit.store.ledger import LedgerKeys, keys_of_account
from tradepit.store.snapshot import entries_in_flight

# Two symbols on each matcher shard when there are two (by `matcher_of`).
SYMBOLS = ("ACME", "GLOBEX", "WAYNE", "SOYLENT")
PRICE = 10_000


class Progress(msgspec.Struct, array_like=True):
    """The leading fields of an `OrderRecord`: all the latency needs (the rest is ignored)."""

    order_id: int
    account_id: int
    client_order_id: str
    symbol: str
    side: int
    type: int
    time_in_force: int
    qty: int
    limit_price: int
    stop_price: int
    status: str
    created_at: int
    updated_at: int


class ProgressUpdate(msgspec.Struct, array_like=True):
    """The leading fields of an `OrderUpdate`."""

    event: str
    ts: int
    order: Progress


CLOCK_TICK = os.sysconf("SC_CLK_TCK")
_decode_progress = msgspec.json.Decoder(list[ProgressUpdate]).decode


def server_pid(server: EmbeddedValkey) -> int:
    assert server.process is not None
    return server.process.pid


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU time (user + system) of each group of processes, and of the whole machine."""
    times = {}
    for name, group in pids.items():
        total = 0.0
        for pid in group:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / CLOCK_TICK
        times[name] = total
    # user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    ticks = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    times["machine"] = (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICK
    return times


def start_stages(
    url: str,
    shards: int,
    log_dir: Path,
    without_history: bool = False,
    *,
    stage_urls: dict[str, str] | None = None,
    replica_acks: int | None = None,
    metrics: bool = True,
) -> list[subprocess.Popen[bytes]]:
    """The stage processes; `stage_urls` gives a stage its own URL (its role's credentials on
    a cluster), `replica_acks` is passed on as `--replica-acks`; `metrics`: each serves its
    metrics on a free port."""

    def base(stage: str) -> list[str]:
        stage_url = (stage_urls or {}).get(stage, url)
        if without_history:
            # -P: not this directory first on the path, where http.py would shadow the stdlib's.
            script = str(Path(__file__).with_name("no_history.py"))
            return [sys.executable, "-P", script, "--redis-url", stage_url]
        return [sys.executable, "-m", "tradepit.cli", "--redis-url", stage_url]

    acks = [] if replica_acks is None else ["--replica-acks", str(replica_acks)]

    def metrics_port() -> list[str]:
        return ["--metrics-port", str(free_port() if metrics else 0)]

    if shards == 1:
        commands = [[*base("serve"), "serve", "--no-gateway", *metrics_port()]]
    else:
        commands = [
            [*base(stage), "run", stage, "--shard", f"{index}/{shards}", *acks, *metrics_port()]
            for stage in ("ledger", "matcher")
            for index in range(shards)
        ]
    processes = []
    for number, command in enumerate(commands):
        log = (log_dir / f"stage{number}.log").open("ab")
        processes.append(subprocess.Popen(command, stdout=log, stderr=log))
    return processes


def random_order(rng: random.Random, accounts: Sequence[int]) -> Order:
    """A limit order of one of `accounts`: buys a little below to a little above the price,
    sells the mirror, so that about half cross."""
    side = rng.choice((Side.BUY, Side.SELL))
    offset = rng.randint(-3, 2)
    price = PRICE + offset if side is Side.BUY else PRICE - offset
    return Order(
        new_id(),
        rng.choice(accounts),
        rng.choice(SYMBOLS),
        side,
        OrderType.LIMIT,
        TimeInForce.GTC,
        rng.randint(1, 5),
        price,
    )


def make_orders(accounts: list[int], count: int, seed: int) -> list[Order]:
    rng = random.Random(seed)
    return [random_order(rng, accounts) for _ in range(count)]


async def watch_settlement(
    url: str,
    shards: int,
    settled: dict[int, int],
    stop: asyncio.Event,
    only: int | None = None,
) -> None:
    """Record, per order, when its ledger committed the book's answer to it (`only`: that
    shard's updates alone, as on a cluster, where one XREAD reads one slot)."""
    redis: Client = aioredis.Redis.from_url(url) if only is None else await open_client(url)
    indexes = range(shards) if only is None else (only,)
    after: dict[Any, Any] = {LedgerKeys(f"l{index}").updates: b"0-0" for index in indexes}
    try:
        while not stop.is_set():
            response = await redis.xread(after, count=1000, block=100)
            now = time.time_ns()
            for stream, entries in response or ():
                after[stream.decode()] = entries[-1][0]
                for _entry_id, fields in entries:
                    for update in _decode_progress(fields[UPDATES]):
                        # An order's first update is the book's answer to it, applied by its
                        # ledger with the fills it made at once.
                        record = update.order
                        settled.setdefault(record.order_id, now - record.created_at)
    finally:
        await redis.aclose()


class Venue(NamedTuple):
    """The running venue, as `run` hands it to its hooks (`server` is None on a cluster)."""

    server: EmbeddedValkey | None
    redis: Client
    config: VenueConfig
    processes: list[subprocess.Popen[bytes]]
    data_dir: Path


Hook = Callable[[Venue], Awaitable[dict[str, Any]]]


async def run(
    args: argparse.Namespace,
    *,
    server_class: type[EmbeddedValkey] = EmbeddedValkey,
    before: Hook | None = None,
    after: Hook | None = None,
) -> dict[str, Any]:
    """One run; `before` is awaited as the clock starts, `after` once every order is settled
    and counted (the stages still running): what they return joins the result. The venue is
    torn down and its directory removed after that."""
    setup_started = time.perf_counter()
    data_dir = Path(tempfile.mkdtemp(prefix="tradepit-bench-"))
    on_cluster = getattr(args, "cluster", False)
    server: EmbeddedValkey | None = None
    local: LocalCluster | None = None
    processes: list[subprocess.Popen[bytes]] = []
    stage_urls: dict[str, str] | None = None
    if on_cluster:
        local = LocalCluster(data_dir / "cluster", primaries=3, replicas=1, fsync=args.fsync)
        local.start()
        url = local.url_for(Role.OPERATOR)
        client_url = local.url_for(Role.GATEWAY)
        # Each stage signs in as its role, as `serve` has them do.
        stage_urls = {
            "ledger": local.url_for(Role.LEDGER),
            "matcher": local.url_for(Role.MATCHER),
        }
    else:
        server = server_class(data_dir, fsync=args.fsync)
        server.start()
        url = client_url = server.url
    redis: Client = await open_client(url)
    try:
        config = VenueConfig(ledgers=args.shards, matchers=args.shards, taker_fee_bps=2)
        await init_config(redis, config)
        processes = start_stages(
            url,
            args.shards,
            data_dir,
            args.without_history,
            stage_urls=stage_urls,
            replica_acks=getattr(args, "replica_acks", None) if on_cluster else None,
            metrics=not getattr(args, "no_metrics", False),
        )
        client = await VenueClient(client_url, reply_timeout=60).connect()
        for symbol in SYMBOLS:
            await operations.add_symbol(client, symbol)
        positions = {symbol: "100000000" for symbol in SYMBOLS}
        accounts: list[int] = []
        while len(accounts) < args.accounts:
            created = await asyncio.gather(
                *(
                    operations.create_account(client, "100000000000.00", positions)
                    for _ in range(min(50, args.accounts - len(accounts)))
                )
            )
            accounts += [int(entry["id"].replace("-", ""), 16) for entry in created]
        accounts_made = time.perf_counter()
        orders = make_orders(accounts, args.orders, args.seed)
        # Let the setup drain before the clock starts.
        while await entries_in_flight(redis, config):
            await asyncio.sleep(0.05)

        settled: dict[int, int] = {}
        stop_watching = asyncio.Event()
        watchers = []
        if not args.without_history:
            for only in range(args.shards) if on_cluster else (None,):
                watchers.append(
                    asyncio.create_task(
                        watch_settlement(url, args.shards, settled, stop_watching, only)
                    )
                )
        await asyncio.sleep(0.2)
        # The window as a count and an event, not an asyncio.Semaphore, whose acquire (Python
        # 3.11) builds a generator over its waiters every time: ~1 us of CPU per order here.
        in_flight = refused = 0
        room = asyncio.Event()
        acknowledged: list[Order] = []

        def done(future: asyncio.Future[Any], order: Order) -> None:
            nonlocal in_flight, refused
            in_flight -= 1
            if in_flight < args.window:
                room.set()
            if future.cancelled() or future.exception() is not None or not future.result().ok:
                refused += 1
            else:
                acknowledged.append(order)

        if local is not None:
            valkey_pids = [node.pid for node in local.nodes() if node.pid is not None]
        else:
            assert server is not None
            valkey_pids = [server_pid(server)]
        pids = {"stages": [process.pid for process in processes], "valkey": valkey_pids}
        pids["bench client"] = [os.getpid()]
        venue = Venue(server, redis, config, processes, data_dir)
        before_result = await before(venue) if before is not None else {}
        cpu_before = cpu_seconds(pids)
        started = time.perf_counter()
        setup_s = {"accounts": round(accounts_made - setup_started, 1)}
        setup_s["total"] = round(started - setup_started, 1)
        tick = 0.001
        per_tick = max(1, round(args.rate * tick)) if args.rate else 0
        next_tick = started
        for index, order in enumerate(orders):
            if in_flight >= args.window:
                room.clear()
                await room.wait()
            in_flight += 1
            if per_tick and index % per_tick == 0:
                next_tick += tick
                delay = next_tick - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            order.ts = time.time_ns()
            future = client.send(order.account_id, PlaceOrder(0, order, ""))
            future.add_done_callback(lambda future, order=order: done(future, order))
        sent_at = time.perf_counter()
        deadline = time.monotonic() + 120
        if args.without_history:
            # Every order acknowledged (the ledgers have them), then every stage caught up.
            while (in_flight or await entries_in_flight(redis, config)) and (
                time.monotonic() < deadline
            ):
                await asyncio.sleep(0.005)
            if time.monotonic() < deadline:  # the orders the ledgers took, all settled
                settled = dict.fromkeys(range(len(orders) - refused), 0)
        else:
            while len(settled) < len(orders) and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        cpu_used = {name: seconds - cpu_before[name] for name, seconds in cpu_seconds(pids).items()}
        stop_watching.set()
        for watcher in watchers:
            await watcher
        while await entries_in_flight(redis, config):
            await asyncio.sleep(0.05)
        stored = 0
        for index in range(args.shards):
            stored += await redis.hlen(LedgerKeys(f"l{index}").orders)
        missing = None if args.without_history else await count_missing(redis, config, acknowledged)
        await client.close()
        latencies = [] if args.without_history else sorted(settled.values())

        def percentile(fraction: float) -> float | None:
            if not latencies:
                return None
            return round(
                latencies[min(len(latencies) - 1, int(fraction * len(latencies)))] / 1e6, 3
            )

        result = {
            "bench": "pipeline",
            "orders_per_s": round(len(settled) / elapsed),
            "p50_ms": round(statistics.median(latencies) / 1e6, 3) if latencies else None,
            "p99_ms": percentile(0.99),
            "lost": missing,
            "refused": refused,
            "orders": len(orders),
            "acknowledged": len(acknowledged),
            "stored": stored,
            "settled": len(settled),
            "send_s": round(sent_at - started, 3),
            "cpu_us_per_order": {
                name: round(seconds * 1e6 / max(1, len(settled)), 1)
                for name, seconds in cpu_used.items()
            },
            "elapsed_s": round(elapsed, 3),
            "setup_s": setup_s,
            "fsync": args.fsync,
            "shards": f"{args.shards}+{args.shards}",
            "rate": args.rate or "flat out",
            "window": args.window,
            "history": not args.without_history,
            "metrics": not getattr(args, "no_metrics", False),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            **before_result,
        }
        if local is not None:
            result["cluster"] = {"primaries": local.primaries, "replicas": local.replicas}
            result["replica_acks"] = getattr(args, "replica_acks", None)
            result["shards"] = f"{args.shards}+{args.shards}"
        if after is not None:
            result.update(await after(venue))
        return result
    except BaseException:
        for log in sorted(data_dir.glob("stage*.log")):  # what the stages said, before it goes
            sys.stderr.write(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}\n")
        raise
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        await redis.aclose()
        if server is not None:
            server.stop()
        if local is not None:
            local.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


async def count_missing(redis: Client, config: VenueConfig, orders: list[Order]) -> int:
    """How many of `orders` have no record in their ledger's order table."""
    by_table: dict[str, list[str]] = {}
    for order in orders:
        by_table.setdefault(keys_of_account(order.account_id, config).orders, []).append(
            str(order.order_id)
        )
    missing = 0
    for table, ids in by_table.items():
        for start in range(0, len(ids), 1000):
            raws: Any = await redis.hmget(table, ids[start : start + 1000])
            missing += sum(raw is None for raw in raws)
    return missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fsync", choices=("everysec", "always"), default="everysec")
    parser.add_argument("--shards", type=int, choices=(1, 2), default=1)
    parser.add_argument("--orders", type=int, default=500_000)
    parser.add_argument("--rate", type=int, default=0, help="orders/s; 0: flat out")
    parser.add_argument("--window", type=int, default=20_000, help="orders in flight at most")
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--without-history",
        action="store_true",
        help="the ledger keeps no order records, updates or indexes (bench/no_history.py)",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="on a LocalCluster of its own (3 primaries, 1 replica each), 2+2 shards",
    )
    parser.add_argument(
        "--replica-acks",
        type=int,
        default=None,
        metavar="N",
        help="with --cluster: replicas each commit waits for; default: run 1, then 0",
    )
    parser.add_argument(
        "--no-metrics", action="store_true", help="the stages without their Prometheus metrics"
    )
    parser.add_argument("--quick", action="store_true", help="100k orders: under 30 s")
    args = parser.parse_args()
    if args.cluster:
        args.shards = 2
        if "--orders" not in sys.argv:
            args.orders = 200_000
    if args.quick:
        args.orders = min(args.orders, 20_000 if args.cluster else 100_000)
        args.accounts = min(args.accounts, 200)
        if args.cluster and args.replica_acks is None:
            # One variant: a cluster's setup (cluster, stages, accounts) takes ~15 s alone.
            args.replica_acks = 1
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    if not args.cluster or args.replica_acks is not None:
        result = asyncio.run(run(args))
    else:
        result = asyncio.run(run(argparse.Namespace(**{**vars(args), "replica_acks": 1})))
        print(json.dumps(result))  # the variant alone, as it comes
        without = asyncio.run(run(argparse.Namespace(**{**vars(args), "replica_acks": 0})))
        print(json.dumps(without))
        result["without_replica_acks"] = without
        result["without_acks_speedup"] = round(
            without["orders_per_s"] / max(1, result["orders_per_s"]), 2
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
