"""Orders through the whole bus: ledger inbox -> ledger -> matcher -> settlement, on Valkey.

    python bench/pipeline.py [--fsync everysec|always] [--shards 1|2] [--orders N]
                             [--rate R] [--without-history] [--quick]

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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import redis.asyncio as aioredis

from tradepit import operations
from tradepit.client import VenueClient, init_config
from tradepit.domain.ids import new_id
from tradepit.domain.orders import Order, OrderType, Side, TimeInForce
from tradepit.embedded import EmbeddedValkey
from tradepit.stage.messages import UPDATES, PlaceOrder
from tradepit.store.keys import VenueConfig
from tradepit.store.ledger import LedgerKeys
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
    url: str, shards: int, log_dir: Path, without_history: bool = False
) -> list[subprocess.Popen[bytes]]:
    if without_history:
        # -P: not this directory first on the path, where http.py would shadow the stdlib's.
        script = str(Path(__file__).with_name("no_history.py"))
        base = [sys.executable, "-P", script, "--redis-url", url]
    else:
        base = [sys.executable, "-m", "tradepit.cli", "--redis-url", url]
    if shards == 1:
        commands = [[*base, "serve", "--no-gateway"]]
    else:
        commands = [
            [*base, "run", stage, "--shard", f"{index}/{shards}"]
            for stage in ("ledger", "matcher")
            for index in range(shards)
        ]
    processes = []
    for number, command in enumerate(commands):
        log = (log_dir / f"stage{number}.log").open("ab")
        processes.append(subprocess.Popen(command, stdout=log, stderr=log))
    return processes


def make_orders(accounts: list[int], count: int, seed: int) -> list[Order]:
    rng = random.Random(seed)
    orders = []
    for _ in range(count):
        side = rng.choice((Side.BUY, Side.SELL))
        # Buys a little below to a little above the price, sells the mirror: about half cross.
        offset = rng.randint(-3, 2)
        price = PRICE + offset if side is Side.BUY else PRICE - offset
        orders.append(
            Order(
                new_id(),
                rng.choice(accounts),
                rng.choice(SYMBOLS),
                side,
                OrderType.LIMIT,
                TimeInForce.GTC,
                rng.randint(1, 5),
                price,
            )
        )
    return orders


async def watch_settlement(
    url: str, shards: int, settled: dict[int, int], stop: asyncio.Event
) -> None:
    """Record, per order, when its ledger committed the book's answer to it."""
    redis = aioredis.Redis.from_url(url)
    after: dict[Any, Any] = {LedgerKeys(f"l{index}").updates: b"0-0" for index in range(shards)}
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
    """The running venue, as `run` hands it to its hooks."""

    server: EmbeddedValkey
    redis: aioredis.Redis
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
    data_dir = Path(tempfile.mkdtemp(prefix="tradepit-bench-"))
    server = server_class(data_dir, fsync=args.fsync)
    server.start()
    processes: list[subprocess.Popen[bytes]] = []
    redis = aioredis.Redis.from_url(server.url)
    try:
        config = VenueConfig(ledgers=args.shards, matchers=args.shards, taker_fee_bps=2)
        await init_config(redis, config)
        processes = start_stages(server.url, args.shards, data_dir, args.without_history)
        client = await VenueClient(server.url, reply_timeout=60).connect()
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
        orders = make_orders(accounts, args.orders, args.seed)
        # Let the setup drain before the clock starts.
        while await entries_in_flight(redis, config):
            await asyncio.sleep(0.05)

        settled: dict[int, int] = {}
        stop_watching = asyncio.Event()
        watcher = None
        if not args.without_history:
            watcher = asyncio.create_task(
                watch_settlement(server.url, args.shards, settled, stop_watching)
            )
        await asyncio.sleep(0.2)
        # The window as a count and an event, not an asyncio.Semaphore, whose acquire (Python
        # 3.11) builds a generator over its waiters every time: ~1 us of CPU per order here.
        in_flight = refused = 0
        room = asyncio.Event()

        def done(future: asyncio.Future[Any]) -> None:
            nonlocal in_flight, refused
            in_flight -= 1
            if in_flight < args.window:
                room.set()
            if future.cancelled() or future.exception() is not None or not future.result().ok:
                refused += 1

        pids = {"stages": [process.pid for process in processes], "valkey": [server_pid(server)]}
        pids["bench client"] = [os.getpid()]
        venue = Venue(server, redis, config, processes, data_dir)
        before_result = await before(venue) if before is not None else {}
        cpu_before = cpu_seconds(pids)
        started = time.perf_counter()
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
            client.send(order.account_id, PlaceOrder(0, order, "")).add_done_callback(done)
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
        if watcher is not None:
            await watcher
        while await entries_in_flight(redis, config):
            await asyncio.sleep(0.05)
        stored = 0
        for index in range(args.shards):
            stored += await redis.hlen(LedgerKeys(f"l{index}").orders)
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
            "lost": None if args.without_history else len(orders) - stored,
            "refused": refused,
            "orders": len(orders),
            "settled": len(settled),
            "send_s": round(sent_at - started, 3),
            "cpu_us_per_order": {
                name: round(seconds * 1e6 / max(1, len(settled)), 1)
                for name, seconds in cpu_used.items()
            },
            "elapsed_s": round(elapsed, 3),
            "fsync": args.fsync,
            "shards": f"{args.shards}+{args.shards}",
            "rate": args.rate or "flat out",
            "window": args.window,
            "history": not args.without_history,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            **before_result,
        }
        if after is not None:
            result.update(await after(venue))
        return result
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        await redis.aclose()
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


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
    parser.add_argument("--quick", action="store_true", help="100k orders: under 30 s")
    args = parser.parse_args()
    if args.quick:
        args.orders = min(args.orders, 100_000)
        args.accounts = min(args.accounts, 200)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    result = asyncio.run(run(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
