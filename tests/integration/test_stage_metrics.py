"""The stages' metrics on a running venue: what the loops' observers count, the lag and Valkey
samplers, and the exporter serving it all in Prometheus's text format."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from harness import Venue, running_venue
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from tradepit.client import init_config
from tradepit.domain.orders import Side
from tradepit.embedded import free_port
from tradepit.metrics.exporter import Exporter
from tradepit.metrics.stage import StageMetrics, sample_lag
from tradepit.metrics.valkey import ValkeyMetrics
from tradepit.store.connection import is_cluster_client, open_client
from tradepit.store.keys import ShardKeys, VenueConfig
from tradepit.store.lag import venue_inboxes

PRICE = 100_00
TRADEPIT = [sys.executable, "-m", "tradepit.cli"]
SHARDS = ("l0", "m0", "d0")


@pytest.fixture
def redis_url(any_redis_url: str) -> str:
    """On one server, and on a cluster (whose commits wait for a replica)."""
    return any_redis_url


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("not reached")
        await asyncio.sleep(0.02)


async def _trade(venue: Venue, lots: int = 5) -> None:
    seller = await venue.account("0", ACME=str(lots))
    buyer = await venue.account(f"{lots * 100}.00")
    _, reply = await venue.place(seller, "ACME", Side.SELL, lots, PRICE)
    assert reply.ok, reply
    _, reply = await venue.place(buyer, "ACME", Side.BUY, lots, PRICE)
    assert reply.ok, reply
    await venue.settle()


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_a_trading_venue_counts_its_batches_commits_trades_and_fills(redis_url: str) -> None:
    registry = CollectorRegistry()
    metrics = StageMetrics(registry)

    async def main() -> None:
        async with running_venue(redis_url, metrics=metrics) as venue:
            await _trade(venue)
            # A batch is counted once its commit is in, which an idle stage learns at its
            # next read.
            await _until(lambda: _value(registry, "tradepit_trades_total", shard="m0") >= 1)
            await _until(lambda: _value(registry, "tradepit_order_fill_seconds_count") >= 2)

    asyncio.run(main())
    for shard in SHARDS:
        batches = _value(registry, "tradepit_stage_batches_total", shard=shard)
        assert batches > 0, shard
        commits = _value(registry, "tradepit_stage_commit_seconds_count", shard=shard)
        assert commits == batches, shard
        assert _value(registry, "tradepit_stage_apply_seconds_count", shard=shard) >= batches
        assert _value(registry, "tradepit_stage_batch_entries_sum", shard=shard) >= batches
        assert _value(registry, "tradepit_stage_last_commit_timestamp_seconds", shard=shard) > 0
        assert _value(registry, "tradepit_stage_reloads_total", shard=shard, reason="moved") == 0
    assert _value(registry, "tradepit_trades_total", shard="m0") == 1
    # Both sides of the one trade, settled by the one ledger shard.
    assert _value(registry, "tradepit_order_fill_seconds_count") == 2
    assert _value(registry, "tradepit_stage_dead_letters_total", shard="l0") == 0


def test_the_lag_sampler_sees_a_stopped_stage_fall_behind(redis_url: str) -> None:
    registry = CollectorRegistry()
    metrics = StageMetrics(registry)

    def lag(shard: str, inbox: str) -> float:
        return _value(registry, "tradepit_stage_inbox_lag_entries", shard=shard, inbox=inbox)

    async def main() -> None:
        async with running_venue(redis_url, metrics=metrics) as venue:
            await _trade(venue)
            inboxes = venue_inboxes(venue.config)
            sampler = asyncio.create_task(sample_lag(metrics, redis_url, inboxes, 0.05))
            try:
                inbox = ShardKeys("l0").inbox
                # Every gauge has a sample, and all are 0 on a settled venue.
                await _until(
                    lambda: (
                        registry.get_sample_value(
                            "tradepit_stage_inbox_lag_entries", {"shard": "l0", "inbox": inbox}
                        )
                        is not None
                    )
                )
                for shard, streams in inboxes.items():
                    for stream in streams:
                        assert lag(shard, stream) == 0, (shard, stream)
                        seconds = _value(
                            registry, "tradepit_stage_inbox_lag_seconds", shard=shard, inbox=stream
                        )
                        assert seconds == 0, (shard, stream)
                await venue.stop_stages()
                for _ in range(3):
                    await venue.redis.xadd(inbox, {b"c": b"[]"})
                await _until(lambda: lag("l0", inbox) == 3)
                seconds = _value(
                    registry, "tradepit_stage_inbox_lag_seconds", shard="l0", inbox=inbox
                )
                assert seconds >= 0
                # Started again, the stage catches up, and the sampler sees it.
                venue.start_stages()
                await _until(lambda: lag("l0", inbox) == 0)
            finally:
                sampler.cancel()

    asyncio.run(main())


def test_a_refused_commit_is_counted_as_a_reload_and_a_retry(redis_url: str) -> None:
    registry = CollectorRegistry()
    metrics = StageMetrics(registry)

    async def main() -> None:
        async with running_venue(redis_url, metrics=metrics) as venue:
            seller = await venue.account("0", ACME="10")
            await venue.settle()
            # The stages' writes of their tables are refused (as a full disk refuses every
            # write), while the inbox still takes the order (test_bus.py does the same).
            user = (await venue.redis.execute_command("ACL", "WHOAMI")).decode()
            everywhere = {"target_nodes": "all"} if is_cluster_client(venue.redis) else {}
            await venue.redis.execute_command("ACL", "SETUSER", user, "-hset", **everywhere)
            try:
                selling = asyncio.ensure_future(venue.place(seller, "ACME", Side.SELL, 5, PRICE))
                await _until(
                    lambda: (
                        _value(registry, "tradepit_stage_commits_retried_total", shard="l0") >= 1
                    )
                )
            finally:
                await venue.redis.execute_command("ACL", "SETUSER", user, "+hset", **everywhere)
            _, reply = await selling
            assert reply.ok, reply

    asyncio.run(main())
    refused = _value(registry, "tradepit_stage_reloads_total", shard="l0", reason="refused")
    assert refused >= 1
    assert _value(registry, "tradepit_stage_reloads_total", shard="l0", reason="unavailable") == 0


def test_the_exporter_serves_the_stage_and_valkey_families(redis_url: str) -> None:
    registry = CollectorRegistry()
    metrics = StageMetrics(registry)
    valkey = ValkeyMetrics(registry)

    async def main() -> list[str]:
        async with running_venue(redis_url, metrics=metrics) as venue:
            await _trade(venue)
            await _until(lambda: _value(registry, "tradepit_trades_total", shard="m0") >= 1)
            sampler = asyncio.create_task(valkey.sample(redis_url, 0.05))
            try:
                await _until(lambda: bool(valkey.nodes))
            finally:
                sampler.cancel()
            exporter = Exporter(registry, 0)
            try:
                async with httpx.AsyncClient() as client:
                    response = await client.get(exporter.url)
            finally:
                exporter.stop()
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            return [response.text]

    (text,) = asyncio.run(main())
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name in (
        "tradepit_stage_batches",
        "tradepit_stage_batch_entries",
        "tradepit_stage_apply_seconds",
        "tradepit_stage_commit_seconds",
        "tradepit_stage_last_commit_timestamp_seconds",
        "tradepit_trades",
        "tradepit_order_fill_seconds",
        "tradepit_valkey_used_memory_bytes",
        "tradepit_valkey_aof_size_bytes",
        "tradepit_valkey_aof_last_write_ok",
        "tradepit_valkey_aof_delayed_fsync",
    ):
        assert families[name].samples, name
    memory = families["tradepit_valkey_used_memory_bytes"].samples
    assert all(sample.value > 0 for sample in memory)
    assert {sample.labels["node"] for sample in memory}  # host:port of each node
    written = families["tradepit_valkey_aof_last_write_ok"].samples
    assert all(sample.value == 1 for sample in written)


def _scrape(port: int, wanted: str, process: subprocess.Popen[bytes]) -> str:
    """The text at `port`'s /metrics once it holds `wanted`."""
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, "it exited"
        with contextlib.suppress(httpx.TransportError):
            text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            if wanted in text:
                return text
        assert time.monotonic() < deadline, f"no {wanted} at :{port}/metrics"
        time.sleep(0.1)


def _stopped(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_serve_exports_its_stages_and_its_valkey_on_the_metrics_port(tmp_path: Path) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    command = [*TRADEPIT, "--data-dir", str(tmp_path), "serve", "--no-gateway"]
    serve = subprocess.Popen([*command, "--metrics-port", str(port)], env=env)
    try:
        text = _scrape(port, 'tradepit_valkey_used_memory_bytes{node="embedded"}', serve)
        text = _scrape(port, 'tradepit_stage_inbox_lag_entries{inbox="{l0}:in",shard="l0"}', serve)
    finally:
        _stopped(serve)
    families = {family.name for family in text_string_to_metric_families(text)}
    assert {"tradepit_stage_batches", "process_cpu_seconds"} <= families


def test_a_stage_run_on_its_own_exports_its_shard(redis_url: str) -> None:
    async def configure() -> None:
        redis = await open_client(redis_url)
        try:
            await init_config(redis, VenueConfig())
        finally:
            await redis.aclose()

    asyncio.run(configure())
    port = free_port()
    command = [*TRADEPIT, "--redis-url", redis_url, "run", "ledger", "--shard", "0/1"]
    ledger = subprocess.Popen([*command, "--metrics-port", str(port)])
    try:
        text = _scrape(port, 'tradepit_stage_inbox_lag_entries{inbox="{l0}:in",shard="l0"}', ledger)
    finally:
        _stopped(ledger)
    shards = {
        sample.labels.get("shard")
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert shards == {None, "l0"}  # (None: the process's own)
