"""`tradepit status`'s pure half: two samples of the venue in, the numbers it shows out."""

from __future__ import annotations

import msgspec
from rich.console import Console

from tradepit.status import GONE_AFTER, MarketStatus, Sample, render, summarize
from tradepit.store.gateways import GatewayBeat
from tradepit.store.lag import COUNT_CAP, InboxLag, ShardLag
from tradepit.store.server import NodeHealth

T0 = 1_800_000_000_000  # Unix ms


def _lag(shard: str, commits: int, *inboxes: InboxLag, last: int | None = T0) -> ShardLag:
    return ShardLag(shard, commits, list(inboxes), last)


def _beat(port: int, updated_at: float, requests: int, **refused: int) -> GatewayBeat:
    return GatewayBeat(
        id=f"127.0.0.1:{port}:1",
        host="127.0.0.1",
        port=port,
        pid=1,
        started_at=T0 / 1000 - 60,
        updated_at=updated_at,
        requests=requests,
        websocket_clients={"/stream": 2},
        orders_accepted=5,
        orders_refused=refused,
    )


def _node(name: str, memory: int, ok: bool = True) -> NodeHealth:
    return NodeHealth(
        node=name,
        used_memory_bytes=memory,
        aof_enabled=True,
        aof_size_bytes=memory // 2,
        aof_last_write_ok=ok,
        aof_delayed_fsync=1,
    )


def _samples() -> tuple[Sample, Sample]:
    waiting = InboxLag("{l0}:in", 3, T0 - 1500)
    before = Sample(
        T0,
        [_lag("l0", 10, InboxLag("{l0}:in", 0, None)), _lag("m0", 4)],
        [_beat(8000, T0 / 1000 - 1, 100), _beat(8001, T0 / 1000 - 60, 7)],
        [_node("a:1", 1000)],
    )
    after = Sample(
        T0 + 2000,
        [_lag("l0", 30, waiting, last=T0 - 500), _lag("m0", 4, last=None)],
        [
            _beat(8000, T0 / 1000 + 1, 140, insufficient_buying_power=2, invalid=1),
            _beat(8001, T0 / 1000 - 60, 7, insufficient_buying_power=3),
        ],
        [_node("a:1", 1000), _node("b:2", 3000, ok=False)],
    )
    return before, after


def test_rates_are_over_the_two_samples_and_lag_is_at_the_second() -> None:
    status = summarize(*_samples())
    assert status.interval_seconds == 2.0
    l0, m0 = status.stages
    assert (l0.shard, l0.commits, l0.commits_per_s) == ("l0", 30, 10.0)
    assert (l0.lag_entries, l0.lag_seconds) == (3, 3.5)
    assert l0.last_commit_seconds_ago == 2.5
    assert [(inbox.stream, inbox.entries, inbox.seconds) for inbox in l0.inboxes] == [
        ("{l0}:in", 3, 3.5)
    ]
    assert (m0.commits_per_s, m0.lag_entries, m0.last_commit_seconds_ago) == (0.0, 0, None)


def test_a_gateway_whose_beat_is_old_is_gone_and_refusals_sum_over_gateways() -> None:
    status = summarize(*_samples())
    fresh, stale = status.gateways
    assert fresh.up and fresh.beat_seconds_ago == 1.0
    assert fresh.requests_per_s == 20.0  # 40 requests between beats 2 s apart
    assert not stale.up and stale.beat_seconds_ago > GONE_AFTER
    assert stale.requests_per_s is None  # the same beat twice: no rate
    assert status.refusals == {"insufficient_buying_power": 5, "invalid": 1}
    assert fresh.websocket_clients == {"/stream": 2}


def test_valkey_sums_its_nodes_and_any_failed_write_shows() -> None:
    valkey = summarize(*_samples()).valkey
    assert (valkey.used_memory_bytes, valkey.aof_size_bytes, valkey.aof_delayed_fsync) == (
        4000,
        2000,
        2,
    )
    assert not valkey.aof_last_write_ok
    assert [node.node for node in valkey.nodes] == ["a:1", "b:2"]


def test_the_json_has_the_fields_scripts_read() -> None:
    shown = msgspec.json.decode(msgspec.json.encode(summarize(*_samples())))
    assert {"stages", "gateways", "valkey", "refusals"} <= set(shown)
    assert set(shown["stages"][0]) == {
        "shard",
        "commits",
        "commits_per_s",
        "lag_entries",
        "lag_seconds",
        "last_commit_seconds_ago",
        "inboxes",
    }


def test_the_view_shows_each_shard_gateway_and_node() -> None:
    before, after = _samples()
    far_behind = _lag("l1", 0, InboxLag("{l1}:in", COUNT_CAP, T0 - 90_000), last=None)
    after = msgspec.structs.replace(after, stages=[*after.stages, far_behind])
    console = Console(width=120, record=True)
    console.print(render(summarize(before, after)))
    text = console.export_text()
    for shown in ("l0", "m0", "l1", f"{COUNT_CAP}+", "never", "gone", "up", "b:2", "failed"):
        assert shown in text, shown
    assert "insufficient_buying_power" in text and "2 /stream" in text
    assert "market open 24x7" in text


def test_the_view_says_the_market_session_of_an_exchange_calendar() -> None:
    before, after = _samples()
    monday_open = 1796653800.0  # 2026-12-07 14:30 UTC, 09:30 US/Eastern
    after = msgspec.structs.replace(after, market=MarketStatus("pre_market", monday_open))
    status = summarize(before, after)
    assert msgspec.json.decode(msgspec.json.encode(status))["market"] == {
        "phase": "pre_market",
        "since": monday_open,
    }
    console = Console(width=120, record=True)
    console.print(render(status))
    assert "market pre-market since Mon 14:30 UTC (venue time)" in console.export_text()
