"""How long a venue takes to come back after N orders: the embedded Valkey loading its AOF, and
the stages loading their state from it; and what the AOF and its rewrites cost on the way.

    python bench/restart.py [--orders N] [--stop kill|term] [--fsync everysec|always]
                            [--rewrite-min-size SIZE] [--rewrite-percentage P]
                            [--analyze] [--quick]

The orders go through the venue as in bench/pipeline.py (whose machinery this reuses: one
`tradepit serve` process, 1+1 shards, flat out). Once every order is settled, the stages are
stopped and the server is killed (`--stop kill`, the default: a crash) or stopped (`term`).
Then, twice:

1. as the run left the AOF (`restart_*`): the server is started again on it, timed until it
   answers PING with PONG rather than LOADING (`restart_seconds`, with the server's own
   figures from its log for the base and the increments), then each stage's state is loaded
   as `StageLoop` loads it at start (`stages_load_seconds`; `total_seconds` is both);
2. after a rewrite of that data set (`BGREWRITEAOF`, timed, with its child's CPU time and
   copy-on-write): the same again (`floor_*`: the least a restart can take at this size).

`aof_bytes_per_order` is what the server appended to the AOF per order during the run (the
kernel's count of the bytes the server's threads wrote to files), `aof_bytes` the AOF's size
as the run left it, `dataset_bytes` Valkey's `used_memory_dataset`, `rewritten_bytes` the AOF
once rewritten (an RDB base). `rewrites_during_run` and `rewrite_cpu_during_run_s` are the
automatic rewrites of the run and their children's CPU time, `orders_per_s` the run's rate.
`--rewrite-min-size` / `--rewrite-percentage` override the embedded server's thresholds (to
compare settings); `--analyze` also prints bench/aof_stats.py's breakdown of the AOF as the
run left it. `--quick` is 50,000 orders (under 30 s). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import signal
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from aof_stats import analyze, aof_files, report
from pipeline import CLOCK_TICK, Venue, run
from tradepit.embedded import EmbeddedValkey
from tradepit.stage.ledger import LedgerShard
from tradepit.stage.loop import StageCore, StageLoop
from tradepit.stage.marketdata import MarketDataShard
from tradepit.stage.matcher import MatcherShard
from tradepit.store.keys import VenueConfig

_LOADED = re.compile(
    r"DB loaded from (base file|incr file|append only file)\b.*?: ([\d.]+) seconds"
)


def child_cpu_seconds(pid: int) -> float:
    """CPU time of the children `pid` has reaped: for Valkey, its rewrites (forks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / CLOCK_TICK


def written_bytes(pid: int) -> int:
    """What the threads of `pid` have written to files (page cache included): for Valkey, its
    AOF appends. Per thread, because the process's own count also takes in the children it
    reaped (the rewrites)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            for line in (task / "io").read_text().splitlines():
                if line.startswith("write_bytes:"):
                    total += int(line.split()[1])
    return total


def aof_size(data_dir: Path) -> dict[str, int]:
    sizes = {"base": 0, "incr": 0}
    for file, kind in aof_files(data_dir):
        with contextlib.suppress(FileNotFoundError):
            sizes["base" if kind == "b" else "incr"] += file.stat().st_size
    return sizes


def server_with(min_size: str | None, percentage: int | None) -> type[EmbeddedValkey]:
    """The embedded server, with its rewrite thresholds overridden where given (the last
    occurrence of an option on Valkey's command line wins)."""
    extra = []
    if min_size is not None:
        extra += ["--auto-aof-rewrite-min-size", min_size]
    if percentage is not None:
        extra += ["--auto-aof-rewrite-percentage", str(percentage)]

    class Server(EmbeddedValkey):
        def command(self) -> list[str]:
            return [*super().command(), *extra]

    return Server


def shipped(setting: object) -> object:
    return "as shipped" if setting is None else setting


def stage_cores(config: VenueConfig) -> list[StageCore]:
    return [
        *(LedgerShard(index, config) for index in range(config.ledgers)),
        *(MatcherShard(index, config) for index in range(config.matchers)),
        MarketDataShard(config),
    ]


async def restart(server: EmbeddedValkey, config: VenueConfig, how: str) -> dict[str, Any]:
    """Stop (`kill` or `term`) and start the server again; time its load and the stages'."""
    assert server.process is not None
    server.process.send_signal(signal.SIGKILL if how == "kill" else signal.SIGTERM)
    server.process.wait(timeout=120)
    server.stop()  # nothing left to stop: this releases the data directory
    log_file = server.data_dir / "valkey.log"
    log_at = log_file.stat().st_size if log_file.exists() else 0
    started = time.perf_counter()
    server.start(timeout=30)
    answered = time.perf_counter() - started
    result: dict[str, Any] = {"seconds": round(answered, 3)}
    with log_file.open(errors="replace") as log:
        log.seek(log_at)
        for line in log:
            found = _LOADED.search(line)
            if found:
                part = {"base file": "base", "incr file": "incr", "append only file": "total"}
                name = f"server_{part[found.group(1)]}_seconds"
                result[name] = round(result.get(name, 0.0) + float(found.group(2)), 3)
    redis = aioredis.Redis.from_url(server.url)
    try:
        assert await redis.ping()
        loads = {}
        cores = stage_cores(config)
        for core in cores:  # one after another: `serve` loads its stages side by side
            loop = StageLoop(core, server.url)
            began = time.perf_counter()
            await loop._load(redis)
            loads[core.keys.shard] = round(time.perf_counter() - began, 3)
        result["stages_load_seconds"] = round(sum(loads.values()), 3)
        result["stages_load"] = loads
        result["total_seconds"] = round(answered + result["stages_load_seconds"], 3)
        ledgers = [core for core in cores if isinstance(core, LedgerShard)]
        result["open_orders"] = sum(len(core.ledger.open_orders) for core in ledgers)
        # Whether it started a rewrite once loaded (the AOF was past its thresholds): one that
        # ran beside the stages' load.
        result["rewrite_after_load"] = bool(
            (await redis.info("persistence"))["aof_rewrite_in_progress"]
            or (await redis.info("stats"))["total_forks"] > 0
        )
    finally:
        await redis.aclose()
    return result


async def no_rewrite_running(redis: aioredis.Redis) -> dict[str, Any]:
    """Wait until the server runs no rewrite and has none scheduled; its persistence info."""
    while True:
        info: dict[str, Any] = await redis.info("persistence")
        if not (info["aof_rewrite_in_progress"] or info["aof_rewrite_scheduled"]):
            return info
        await asyncio.sleep(0.01)


async def rewrite(server: EmbeddedValkey, redis: aioredis.Redis) -> dict[str, Any]:
    """One BGREWRITEAOF of the data set as it is: wall time, the child's CPU, its output."""
    assert server.process is not None
    pid = server.process.pid
    # A server that loaded more than its thresholds allow starts a rewrite of its own.
    await no_rewrite_running(redis)
    cpu = child_cpu_seconds(pid)
    started = time.perf_counter()
    await redis.bgrewriteaof()
    info = await no_rewrite_running(redis)
    seconds = time.perf_counter() - started
    if info["aof_last_bgrewrite_status"] != "ok":
        raise RuntimeError(f"the rewrite failed: {info}")
    stats = await redis.info("stats")
    return {
        "rewrite_seconds": round(seconds, 3),
        "rewrite_fork_ms": round(stats["latest_fork_usec"] / 1000, 1),
        "rewrite_cpu_seconds": round(child_cpu_seconds(pid) - cpu, 3),
        "rewrite_cow_bytes": info["aof_last_cow_size"],
        "rewritten_bytes": aof_size(server.data_dir)["base"],
    }


async def biggest_keys(redis: aioredis.Redis, top: int = 15) -> str:
    """The data set's largest keys (`MEMORY USAGE`, every element counted)."""
    sizes = []
    async for key in redis.scan_iter(count=1000):
        usage = await redis.memory_usage(key, samples=0)
        sizes.append((usage or 0, key.decode(errors="replace"), await redis.type(key)))
    sizes.sort(reverse=True)
    total = sum(size for size, _key, _kind in sizes)
    lines = [f"data set: {len(sizes):,} keys, {total:,} bytes (MEMORY USAGE); the largest:"]
    lines += [
        f"{size:>14,} {size / total:6.1%}  {kind.decode():<6} {key}"
        for size, key, kind in sizes[:top]
    ]
    return "\n".join(lines)


class Observer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.at_start: dict[str, Any] = {}

    async def before(self, venue: Venue) -> dict[str, Any]:
        pid = self._pid(venue)
        info = await venue.redis.info("persistence")
        self.at_start = {
            "written": written_bytes(pid),
            "child_cpu": child_cpu_seconds(pid),
            "rewrites": info["aof_rewrites"],
            "aof": aof_size(venue.data_dir),
            "time": time.perf_counter(),
        }
        return {}

    async def after(self, venue: Venue) -> dict[str, Any]:
        args, server, redis = self.args, venue.server, venue.redis
        pid = self._pid(venue)
        for process in venue.processes:
            process.terminate()
        for process in venue.processes:
            process.wait(timeout=60)
        # A rewrite the run started is part of the run's cost: let it finish.
        while (await redis.info("persistence"))["aof_rewrite_in_progress"]:
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - self.at_start["time"]
        persistence = await redis.info("persistence")
        memory = await redis.info("memory")
        orders = args.orders
        written = written_bytes(pid) - self.at_start["written"]
        sizes = aof_size(venue.data_dir)
        result: dict[str, Any] = {
            "bench": "restart",
            "stop": args.stop,
            "rewrite_min_size": shipped(args.rewrite_min_size),
            "rewrite_percentage": shipped(args.rewrite_percentage),
            "aof_bytes": sizes["base"] + sizes["incr"],
            "aof_base_bytes": sizes["base"],
            "aof_incr_bytes": sizes["incr"],
            "aof_bytes_per_order": round(written / orders),
            "dataset_bytes": memory["used_memory_dataset"],
            "used_memory": memory["used_memory"],
            "keys": await redis.dbsize(),
            "rewrites_during_run": persistence["aof_rewrites"] - self.at_start["rewrites"],
            "rewrite_cpu_during_run_s": round(
                child_cpu_seconds(pid) - self.at_start["child_cpu"], 2
            ),
            "run_seconds": round(seconds, 2),
        }
        if args.analyze:
            print(await biggest_keys(redis), flush=True)
            stats = await asyncio.to_thread(analyze, venue.data_dir)
            print(report(stats, orders, 25), flush=True)
        first = await restart(server, venue.config, args.stop)
        result.update({f"restart_{name}": value for name, value in first.items()})
        result["restart_seconds"] = first["seconds"]
        async with aioredis.Redis.from_url(server.url) as fresh:
            result.update(await rewrite(server, fresh))
        floor = await restart(server, venue.config, args.stop)
        result.update({f"floor_{name}": value for name, value in floor.items()})
        return result

    @staticmethod
    def _pid(venue: Venue) -> int:
        assert venue.server.process is not None
        return venue.server.process.pid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--stop", choices=("kill", "term"), default="kill")
    parser.add_argument("--fsync", choices=("everysec", "always"), default="everysec")
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--window", type=int, default=20_000, help="orders in flight at most")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rewrite-min-size", help="auto-aof-rewrite-min-size, e.g. 256mb")
    parser.add_argument("--rewrite-percentage", type=int, help="auto-aof-rewrite-percentage")
    parser.add_argument("--analyze", action="store_true", help="print the AOF's breakdown")
    parser.add_argument("--quick", action="store_true", help="50k orders: under 30 s")
    args = parser.parse_args()
    if args.quick:
        args.orders = min(args.orders, 50_000)
        args.accounts = min(args.accounts, 200)
    # What bench/pipeline.py's run reads: one process (1+1 shards), flat out, with history.
    args.shards, args.rate, args.without_history = 1, 0, False
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    observer = Observer(args)
    result = asyncio.run(
        run(
            args,
            server_class=server_with(args.rewrite_min_size, args.rewrite_percentage),
            before=observer.before,
            after=observer.after,
        )
    )
    result["bench"] = "restart"
    result["python"] = platform.python_version()
    result["cpus"] = os.cpu_count()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
