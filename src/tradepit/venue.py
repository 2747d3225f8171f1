"""Running the venue: every stage in one process (`serve`), or one shard per process (`run`).

`serve` starts the embedded Valkey server unless it is given a Redis URL, fixes the venue's
configuration on first start, and runs every ledger and matcher shard as a task of one event
loop. `run_shard` runs one of them, against a Redis that `serve` (or an operator) set up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from pathlib import Path

import redis.asyncio as aioredis

from tradepit.admin import add_symbol
from tradepit.client import VenueClient, init_config, load_config
from tradepit.embedded import EmbeddedValkey, Fsync
from tradepit.stage.keys import SYMBOLS, VenueConfig
from tradepit.stage.ledger import LedgerShard
from tradepit.stage.loop import StageCore, StageLoop
from tradepit.stage.matcher import MatcherShard

__all__ = ["VENUE_FILE", "shard_core", "run_loops", "serve", "run_shard", "find_redis_url"]

log = logging.getLogger("tradepit.venue")

VENUE_FILE = "venue.json"  # in the data directory: where a running embedded venue listens
DEFAULT_SYMBOLS = ("ACME", "GLOBEX", "INITECH")


def find_redis_url(data_dir: str | os.PathLike[str], explicit: str | None = None) -> str:
    """The venue's Redis: the one named, else $REDIS_URL, else the embedded one `serve` runs."""
    url = explicit or os.environ.get("REDIS_URL")
    if url:
        return url
    venue_file = Path(data_dir) / VENUE_FILE
    try:
        return str(json.loads(venue_file.read_text())["redis_url"])
    except (OSError, ValueError, KeyError):
        raise SystemExit(
            f"no running venue found ({venue_file} is missing): start one with "
            "`tradepit serve`, or set REDIS_URL"
        ) from None


def shard_core(kind: str, index: int, config: VenueConfig) -> StageCore:
    if kind == "ledger":
        if not 0 <= index < config.ledgers:
            raise ValueError(f"this venue has ledger shards 0..{config.ledgers - 1}")
        return LedgerShard(index, config)
    if kind == "matcher":
        if not 0 <= index < config.matchers:
            raise ValueError(f"this venue has matcher shards 0..{config.matchers - 1}")
        return MatcherShard(index, config)
    raise ValueError(f"unknown stage {kind!r}: ledger or matcher")


async def run_loops(loops: list[StageLoop], stop: asyncio.Event) -> None:
    """Run stage loops until `stop` is set, then let each finish its batch and return."""
    tasks = [asyncio.create_task(loop.run(), name=loop.core.keys.shard) for loop in loops]
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    for loop in loops:
        loop.stop()
    for task in tasks:
        if task in done and task.exception() is not None:
            stopper.cancel()
            raise task.exception()  # type: ignore[misc]
    await asyncio.gather(*tasks)
    stopper.cancel()


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)


async def serve(
    data_dir: str,
    fsync: Fsync,
    config: VenueConfig,
    redis_url: str | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    embedded = EmbeddedValkey(data_dir, fsync) if redis_url is None else None
    stop = asyncio.Event()
    _stop_on_signals(stop)
    try:
        if embedded is not None:
            await asyncio.to_thread(embedded.start)
            redis_url = embedded.url
            (Path(data_dir) / VENUE_FILE).write_text(
                json.dumps({"redis_url": redis_url, "pid": os.getpid()})
            )
        assert redis_url is not None
        redis = aioredis.Redis.from_url(redis_url)
        try:
            config = await init_config(redis, config)
            first_start = not await redis.exists(SYMBOLS)
        finally:
            await redis.aclose()
        loops = [StageLoop(LedgerShard(i, config), redis_url) for i in range(config.ledgers)]
        loops += [StageLoop(MatcherShard(i, config), redis_url) for i in range(config.matchers)]
        supervisor = asyncio.create_task(embedded.supervise()) if embedded else None
        runner = asyncio.create_task(run_loops(loops, stop))
        await asyncio.gather(*(loop.ready.wait() for loop in loops))
        if first_start:
            await _add_default_symbols(redis_url)
        print(
            f"tradepit: venue up on {redis_url} ({config.ledgers} ledger and "
            f"{config.matchers} matcher shard(s)); Ctrl-C stops it",
            flush=True,
        )
        if ready is not None:
            ready.set()
        await runner
        if supervisor is not None:
            supervisor.cancel()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
            with contextlib.suppress(OSError):
                (Path(data_dir) / VENUE_FILE).unlink()


async def _add_default_symbols(redis_url: str) -> None:
    async with VenueClient(redis_url) as client:
        for name in DEFAULT_SYMBOLS:
            await add_symbol(client, name)


async def run_shard(
    kind: str, index: int, count: int, redis_url: str, *, keep_inputs: bool = False
) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    try:
        config = await load_config(redis)
    finally:
        await redis.aclose()
    expected = config.ledgers if kind == "ledger" else config.matchers
    if count != expected:
        raise SystemExit(f"this venue runs {expected} {kind} shard(s), not {count}")
    stop = asyncio.Event()
    _stop_on_signals(stop)
    loop = StageLoop(shard_core(kind, index, config), redis_url, trim_inputs=not keep_inputs)
    await run_loops([loop], stop)
