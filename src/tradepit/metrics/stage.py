"""The stage shards' metrics: batches, apply and commit times, dead letters, reloads and retried
commits (a `StageObserver` per shard, which its loop tells), inbox lag (sampled from Redis every
few seconds, `sample_lag`), and what the venue made: the matchers' trades and the ledgers'
order-to-fill times.

An observer's calls are a stage's hot path (thousands of batches a second): each resolves its
labelled children once, and a call is a few increments and observations, nothing per entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from tradepit.stage.ledger import LedgerShard
from tradepit.stage.loop import Reload, StageCore
from tradepit.stage.matcher import MatcherShard
from tradepit.store.connection import open_client
from tradepit.store.errors import StoreError
from tradepit.store.lag import shard_lag

__all__ = [
    "StageMetrics",
    "ShardObserver",
    "LAG_SAMPLE_SECONDS",
    "sample_lag",
    "FAST_BUCKETS",
    "FILL_BUCKETS",
]

log = logging.getLogger("tradepit.metrics")

# A batch applies in tens of microseconds to milliseconds; a commit is a round trip to Valkey
# (~100 us on one host), more with a WAIT for a replica or a slow disk.
FAST_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
ENTRY_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
# A taker fills within the milliseconds its order takes through the stages; a maker after it
# rested, which can be hours.
FILL_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    5.0,
    30.0,
    60.0,
    300.0,
    3600.0,
    21600.0,
)
LAG_SAMPLE_SECONDS = 2.0


class StageMetrics:
    """The stage families, in one registry: one of these per process, an observer per shard."""

    def __init__(self, registry: CollectorRegistry) -> None:
        # Each counter's and histogram's `_created` series would double what a scrape holds,
        # for what the process's start time already says.
        disable_created_metrics()
        self.registry = registry
        self.batches = Counter(
            "tradepit_stage_batches",
            "Batches a stage shard applied and committed",
            ["shard"],
            registry=registry,
        )
        self.batch_entries = Histogram(
            "tradepit_stage_batch_entries",
            "Inbox entries a batch applied (an entry is one flush of commands)",
            ["shard"],
            buckets=ENTRY_BUCKETS,
            registry=registry,
        )
        self.apply_seconds = Histogram(
            "tradepit_stage_apply_seconds",
            "The core's apply and write of one batch",
            ["shard"],
            buckets=FAST_BUCKETS,
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "tradepit_stage_commit_seconds",
            "A batch's EXEC sent to its reply (on a cluster, to its WAIT's)",
            ["shard"],
            buckets=FAST_BUCKETS,
            registry=registry,
        )
        self.lag_entries = Gauge(
            "tradepit_stage_inbox_lag_entries",
            "Inbox entries after the shard's checkpoint (counted up to 100)",
            ["shard", "inbox"],
            registry=registry,
        )
        self.lag_seconds = Gauge(
            "tradepit_stage_inbox_lag_seconds",
            "How long the oldest unapplied inbox entry has waited",
            ["shard", "inbox"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "tradepit_stage_dead_letters",
            "Inbox entries moved to the dead-letter stream",
            ["shard"],
            registry=registry,
        )
        self.reloads = Counter(
            "tradepit_stage_reloads",
            "Loads after a failure: unavailable, moved or refused",
            ["shard", "reason"],
            registry=registry,
        )
        self.commits_retried = Counter(
            "tradepit_stage_commits_retried",
            "Batches applied again after their commit failed",
            ["shard"],
            registry=registry,
        )
        self.last_commit = Gauge(
            "tradepit_stage_last_commit_timestamp_seconds",
            "When the shard's last commit was answered (Unix time)",
            ["shard"],
            registry=registry,
        )
        self.trades = Counter(
            "tradepit_trades",
            "Trades the matcher shards made (and committed)",
            ["shard"],
            registry=registry,
        )
        self.order_fill_seconds = Histogram(
            "tradepit_order_fill_seconds",
            "An order's submission (the gateway's clock) to each of its fills settled (the "
            "ledger's commit)",
            buckets=FILL_BUCKETS,
            registry=registry,
        )

    def observer(self, core: StageCore) -> ShardObserver:
        """The observer for `core`'s loop (`StageLoop(..., metrics=)`)."""
        if isinstance(core, MatcherShard):
            return _MatcherObserver(self, core.keys.shard)
        if isinstance(core, LedgerShard):
            return _LedgerObserver(self, core.keys.shard)
        return ShardObserver(self, core.keys.shard)


class ShardObserver:
    """A `StageObserver` for one shard: its labelled children, resolved once."""

    def __init__(self, metrics: StageMetrics, shard: str) -> None:
        self.shard = shard
        self._batches = metrics.batches.labels(shard)
        self._entries = metrics.batch_entries.labels(shard)
        self._apply = metrics.apply_seconds.labels(shard)
        self._commit = metrics.commit_seconds.labels(shard)
        self._dead_letters = metrics.dead_letters.labels(shard)
        self._retried = metrics.commits_retried.labels(shard)
        self._last_commit = metrics.last_commit.labels(shard)
        self._reloads = {
            reason: metrics.reloads.labels(shard, reason)
            for reason in (Reload.UNAVAILABLE, Reload.MOVED, Reload.REFUSED)
        }

    def applied(self, entries: int, seconds: float) -> None:
        self._entries.observe(entries)
        self._apply.observe(seconds)

    def committed(self, seconds: float, made: Any) -> None:
        self._batches.inc()
        self._commit.observe(seconds)
        self._last_commit.set(time.time())
        if made:
            self._made(made)

    def _made(self, made: Any) -> None:
        """What the core's `made()` said of the batch just committed."""

    def dead_lettered(self, entries: int) -> None:
        self._dead_letters.inc(entries)

    def reloading(self, reason: str) -> None:
        self._reloads[reason].inc()

    def retried(self, batches: int) -> None:
        self._retried.inc(batches)


class _MatcherObserver(ShardObserver):
    def __init__(self, metrics: StageMetrics, shard: str) -> None:
        super().__init__(metrics, shard)
        self._trades = metrics.trades.labels(shard)

    def _made(self, made: int) -> None:
        self._trades.inc(made)


class _LedgerObserver(ShardObserver):
    def __init__(self, metrics: StageMetrics, shard: str) -> None:
        super().__init__(metrics, shard)
        self._fill = metrics.order_fill_seconds

    def _made(self, made: list[int]) -> None:
        # The trade's own `ts` is its taker's submission: the fill is timed at its settlement.
        now_ns = time.time_ns()
        observe = self._fill.observe
        for submitted_ns in made:
            observe(max(0, now_ns - submitted_ns) / 1e9)


async def sample_lag(
    metrics: StageMetrics,
    redis_url: str,
    shards: dict[str, list[str]],
    interval: float = LAG_SAMPLE_SECONDS,
) -> None:
    """Set the lag gauges of `shards` (each one's inboxes: `tradepit.store.lag.venue_inboxes`)
    every `interval` seconds, until cancelled. Redis unavailable: the gauges keep their last
    value, and it tries again at the next sample."""
    gauges = {
        (shard, inbox): (
            metrics.lag_entries.labels(shard, inbox),
            metrics.lag_seconds.labels(shard, inbox),
        )
        for shard, inboxes in shards.items()
        for inbox in inboxes
    }
    client = None
    try:
        while True:
            try:
                if client is None:
                    client = await open_client(redis_url, socket_connect_timeout=2)
                for shard, inboxes in shards.items():
                    lag = await shard_lag(client, shard, inboxes)
                    now_ms = time.time_ns() // 1_000_000
                    for inbox in lag.inboxes:
                        entries, seconds = gauges[shard, inbox.stream]
                        entries.set(inbox.entries)
                        seconds.set(inbox.seconds(now_ms))
            except (StoreError, OSError) as error:
                log.debug("lag sample failed (%s)", error)
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.aclose()
                    client = None
            await asyncio.sleep(interval)
    finally:
        if client is not None:
            await client.aclose()
