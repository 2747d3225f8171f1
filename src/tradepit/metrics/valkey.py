"""Valkey's own state, from INFO: each node's memory, AOF size, whether its last AOF write
worked, and its delayed fsyncs (a slow disk).

A scrape never waits on Valkey: `ValkeyMetrics.sample` asks every few seconds, from the event
loop, and a scrape (on the exporter's thread) reads the last answer. A venue whose Valkey does
not answer keeps its last values; the samples stop changing, and the stages' lag says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tradepit.store.connection import open_client
from tradepit.store.errors import StoreError
from tradepit.store.server import NodeHealth, node_health

__all__ = ["ValkeyMetrics", "SAMPLE_SECONDS"]

log = logging.getLogger("tradepit.metrics")

SAMPLE_SECONDS = 2.0


class ValkeyMetrics(Collector):
    """The Valkey families, in `registry`, from the last `sample` (node: host:port, or
    "embedded" for the embedded server's Unix socket)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.nodes: list[NodeHealth] = []  # replaced whole: the exporter's thread reads it
        registry.register(self)

    def describe(self) -> Iterator[Metric]:
        return iter(self._families([]))

    def collect(self) -> Iterator[Metric]:
        return iter(self._families(self.nodes))

    @staticmethod
    def _families(nodes: list[NodeHealth]) -> list[Metric]:
        memory = GaugeMetricFamily(
            "tradepit_valkey_used_memory_bytes",
            "Memory Valkey uses (INFO used_memory)",
            labels=["node"],
        )
        aof = GaugeMetricFamily(
            "tradepit_valkey_aof_size_bytes",
            "The append-only file's size (0 with the AOF off)",
            labels=["node"],
        )
        write_ok = GaugeMetricFamily(
            "tradepit_valkey_aof_last_write_ok",
            "1 if the last write to the append-only file worked, 0 if it failed (a full disk)",
            labels=["node"],
        )
        delayed = CounterMetricFamily(
            "tradepit_valkey_aof_delayed_fsync",
            "fsyncs of the append-only file that waited for the one before (a slow disk)",
            labels=["node"],
        )
        for node in nodes:
            memory.add_metric([node.node], node.used_memory_bytes)
            aof.add_metric([node.node], node.aof_size_bytes)
            write_ok.add_metric([node.node], 1 if node.aof_last_write_ok else 0)
            delayed.add_metric([node.node], node.aof_delayed_fsync)
        return [memory, aof, write_ok, delayed]

    async def sample(self, redis_url: str, interval: float = SAMPLE_SECONDS) -> None:
        """Ask every node of `redis_url`'s server every `interval` seconds, until cancelled."""
        client = None
        try:
            while True:
                try:
                    if client is None:
                        client = await open_client(redis_url, socket_connect_timeout=2)
                    self.nodes = await node_health(client)
                except (StoreError, OSError) as error:
                    log.debug("valkey sample failed (%s)", error)
                    if client is not None:
                        with contextlib.suppress(Exception):
                            await client.aclose()
                        client = None
                await asyncio.sleep(interval)
        finally:
            if client is not None:
                await client.aclose()
