"""Every metric tradepit exports follows Prometheus's conventions (base units, `_total` counters,
`_seconds`, `_bytes`), and no label could take a value per key, account, order or symbol: a
label's values are a series each, kept for as long as Prometheus keeps the data."""

from __future__ import annotations

import re
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from tradepit.metrics.gateway import GatewayMetrics
from tradepit.metrics.stage import StageMetrics
from tradepit.metrics.valkey import ValkeyMetrics
from tradepit.stage.ledger import LedgerShard
from tradepit.stage.loop import Reload
from tradepit.stage.marketdata import MarketDataShard
from tradepit.stage.matcher import MatcherShard
from tradepit.store.keys import VenueConfig
from tradepit.store.server import NodeHealth

# A label named like one of these would take a value per key, account, order or symbol.
UNBOUNDED = re.compile(r"(^|_)(id|ids|key|account|accounts|order|orders|symbol|symbols|client)$")
DURATION = re.compile(r"(second|duration|latency|elapsed|time|_ms$|millis)")
SIZE = re.compile(r"(byte|memory|size)")


def _families() -> Iterator[Metric]:
    """Every family of every metrics module, each with samples where it can have them."""
    registry = CollectorRegistry()
    stages = StageMetrics(registry)
    config = VenueConfig()
    for core in (LedgerShard(0, config), MatcherShard(0, config), MarketDataShard(config)):
        observer = stages.observer(core)
        observer.applied(3, 0.0001)
        observer.committed(0.0002, None)
        observer.dead_lettered(1)
        observer.reloading(Reload.REFUSED)
        observer.retried(1)
    stages.observer(MatcherShard(0, config)).committed(0.0002, 2)
    stages.observer(LedgerShard(0, config)).committed(0.0002, [0])
    stages.set_lag("l0", "{l0}:in", 1, 0.5)
    valkey = ValkeyMetrics(registry)
    valkey.nodes = [
        NodeHealth(
            node="embedded",
            used_memory_bytes=1,
            aof_enabled=True,
            aof_size_bytes=1,
            aof_last_write_ok=True,
            aof_delayed_fsync=0,
        )
    ]
    yield from registry.collect()
    yield from GatewayMetrics().registry.collect()


def _labels(family: Metric) -> set[str]:
    declared = set(getattr(family, "_labelnames", ()))
    return declared | {name for sample in family.samples for name in sample.labels}


def test_names_say_their_kind_and_unit() -> None:
    names = set()
    for family in _families():
        name = family.name
        if name.startswith("process_"):  # prometheus_client's own, the conventions' source
            continue
        names.add(name)
        assert name.startswith("tradepit_"), name
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
        if family.type == "counter":
            # (prometheus_client names the family without the suffix its samples carry.)
            assert all(sample.name.endswith("_total") for sample in family.samples), name
            assert not name.endswith("_total"), f"{name}: would be exported as ..._total_total"
        else:
            assert not name.endswith("_total"), f"{name}: only counters end in _total"
        if DURATION.search(name):
            assert name.endswith("_seconds"), f"{name}: durations and times are in seconds"
        if SIZE.search(name):
            assert re.search(r"_bytes(_|$)", name), f"{name}: sizes are in bytes"
    # The catalogue's stage and Valkey families, at least.
    assert {
        "tradepit_stage_batches",
        "tradepit_stage_batch_entries",
        "tradepit_stage_apply_seconds",
        "tradepit_stage_commit_seconds",
        "tradepit_stage_inbox_lag_entries",
        "tradepit_stage_inbox_lag_seconds",
        "tradepit_stage_dead_letters",
        "tradepit_stage_reloads",
        "tradepit_stage_commits_retried",
        "tradepit_stage_last_commit_timestamp_seconds",
        "tradepit_trades",
        "tradepit_order_fill_seconds",
        "tradepit_valkey_used_memory_bytes",
        "tradepit_valkey_aof_size_bytes",
        "tradepit_valkey_aof_last_write_ok",
        "tradepit_valkey_aof_delayed_fsync",
    } <= names


def test_no_label_takes_a_value_per_key_account_order_or_symbol() -> None:
    for family in _families():
        for label in _labels(family):
            assert not UNBOUNDED.search(label), f"{family.name}: label {label!r}"


def test_the_stage_families_have_samples_once_observed() -> None:
    families = {family.name: family for family in _families()}
    for name in ("tradepit_stage_batches", "tradepit_trades", "tradepit_order_fill_seconds"):
        assert families[name].samples, name
    assert _labels(families["tradepit_stage_reloads"]) == {"shard", "reason"}
    assert _labels(families["tradepit_stage_inbox_lag_entries"]) == {"shard", "inbox"}
