"""`tradepit status`: the venue at a glance, for its operator.

Each stage shard's rate, lag and last commit (`store.lag`), the gateways' own reports of their
clients and orders (`store.gateways`), and Valkey's memory and append-only file
(`store.server`). A rate needs two reads, so a view is made of two samples: `summarize` is the
pure half (two samples in, the view's numbers out, which `--json` prints as they are), `render`
lays them out as tables, and `watch` reads, summarizes and redraws every interval.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections import deque
from typing import Any

import msgspec
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from tradepit.settings import StatusSettings
from tradepit.store.catalog import load_config
from tradepit.store.connection import Client, open_client
from tradepit.store.errors import Refused, TimedOut, Unreachable
from tradepit.store.gateways import BEAT_SECONDS, GatewayBeat, gateways
from tradepit.store.keys import SESSION, VenueConfig
from tradepit.store.lag import COUNT_CAP, ShardLag, venue_lag
from tradepit.store.server import NodeHealth, node_health

__all__ = [
    "GONE_AFTER",
    "Sample",
    "Status",
    "MarketStatus",
    "read_sample",
    "summarize",
    "render",
    "snapshot",
    "status",
]

GONE_AFTER = 5 * BEAT_SECONDS  # a gateway whose last beat is older than this is gone


class Sample(msgspec.Struct, frozen=True):
    """One read of the venue."""

    taken_ms: int  # Unix ms: when the read started
    stages: list[ShardLag]
    gateways: list[GatewayBeat]
    valkey: list[NodeHealth]
    market: MarketStatus | None = None  # the last change of phase sent to the books


class MarketStatus(msgspec.Struct, frozen=True):
    """The market's session on an exchange calendar (a 24x7 venue has none)."""

    phase: str  # closed, pre_market, open, after_hours
    since: float  # Unix seconds, by the venue's clock


class InboxStatus(msgspec.Struct, frozen=True):
    stream: str
    entries: int
    seconds: float


class StageStatus(msgspec.Struct, frozen=True):
    shard: str
    commits: int
    commits_per_s: float
    lag_entries: int  # COUNT_CAP means at least that many
    lag_seconds: float
    last_commit_seconds_ago: float | None  # since its newest input applied; None: never ran
    inboxes: list[InboxStatus]


class GatewayStatus(msgspec.Struct, frozen=True):
    id: str
    host: str
    port: int
    pid: int
    up: bool  # False: its last beat is older than GONE_AFTER
    beat_seconds_ago: float
    uptime_seconds: float
    requests: int
    requests_per_s: float | None  # None: the two samples saw the same beat
    websocket_clients: dict[str, int]
    orders_accepted: int
    orders_refused: dict[str, int]


class ValkeyStatus(msgspec.Struct, frozen=True):
    used_memory_bytes: int  # over every node
    aof_size_bytes: int
    aof_last_write_ok: bool  # on every node
    aof_delayed_fsync: int
    nodes: list[NodeHealth]


class Status(msgspec.Struct, frozen=True):
    taken_at: float  # Unix seconds, of the second sample
    interval_seconds: float
    stages: list[StageStatus]
    gateways: list[GatewayStatus]
    valkey: ValkeyStatus
    refusals: dict[str, int]  # by reason, summed over the gateways listed
    market: MarketStatus | None = None  # None: a 24x7 venue, always open


# The pure half.


def summarize(before: Sample, after: Sample) -> Status:
    """What the venue was doing between two samples, and where it stood at the second."""
    elapsed = max(after.taken_ms - before.taken_ms, 1) / 1000
    earlier = {lag.shard: lag.commits for lag in before.stages}
    stages = [
        _stage(lag, after.taken_ms, lag.commits - earlier.get(lag.shard, lag.commits), elapsed)
        for lag in after.stages
    ]
    earlier_beats = {beat.id: beat for beat in before.gateways}
    now = after.taken_ms / 1000
    listed = [_gateway(beat, earlier_beats.get(beat.id), now) for beat in after.gateways]
    refusals: dict[str, int] = {}
    for gateway in listed:
        for reason, count in gateway.orders_refused.items():
            refusals[reason] = refusals.get(reason, 0) + count
    nodes = after.valkey
    valkey = ValkeyStatus(
        used_memory_bytes=sum(node.used_memory_bytes for node in nodes),
        aof_size_bytes=sum(node.aof_size_bytes for node in nodes),
        aof_last_write_ok=all(node.aof_last_write_ok for node in nodes),
        aof_delayed_fsync=sum(node.aof_delayed_fsync for node in nodes),
        nodes=nodes,
    )
    return Status(
        now, elapsed, stages, listed, valkey, dict(sorted(refusals.items())), after.market
    )


def _stage(lag: ShardLag, now_ms: int, committed: int, elapsed: float) -> StageStatus:
    last = lag.last_input_ms
    return StageStatus(
        shard=lag.shard,
        commits=lag.commits,
        commits_per_s=max(committed, 0) / elapsed,
        lag_entries=lag.entries,
        lag_seconds=lag.seconds(now_ms),
        last_commit_seconds_ago=None if last is None else max(now_ms - last, 0) / 1000,
        inboxes=[
            InboxStatus(inbox.stream, inbox.entries, inbox.seconds(now_ms)) for inbox in lag.inboxes
        ],
    )


def _gateway(beat: GatewayBeat, earlier: GatewayBeat | None, now: float) -> GatewayStatus:
    rate = None
    if earlier is not None and beat.updated_at > earlier.updated_at:
        rate = max(beat.requests - earlier.requests, 0) / (beat.updated_at - earlier.updated_at)
    age = max(now - beat.updated_at, 0.0)
    return GatewayStatus(
        id=beat.id,
        host=beat.host,
        port=beat.port,
        pid=beat.pid,
        up=age <= GONE_AFTER,
        beat_seconds_ago=age,
        uptime_seconds=max(beat.updated_at - beat.started_at, 0.0),
        requests=beat.requests,
        requests_per_s=rate,
        websocket_clients=dict(beat.websocket_clients),
        orders_accepted=beat.orders_accepted,
        orders_refused=dict(beat.orders_refused),
    )


# The view.


def render(status: Status) -> RenderableType:
    taken = time.strftime("%H:%M:%S", time.localtime(status.taken_at))
    title = f"tradepit status, {taken} (rates over {status.interval_seconds:.1f} s)"
    market = status.market
    if market is None:
        title += ", market open 24x7"
    else:
        since = time.strftime("%a %H:%M UTC", time.gmtime(market.since))
        title += f", market {market.phase.replace('_', '-')} since {since} (venue time)"
    # The small tables side by side: the whole view fits a terminal of 24 lines.
    below = Table.grid(padding=(0, 2))
    below.add_row(_refusals_table(status.refusals), _valkey_table(status.valkey))
    return Group(
        Text(title, style="bold"),
        _stages_table(status.stages),
        _gateways_table(status.gateways),
        below,
    )


def _stages_table(stages: list[StageStatus]) -> Table:
    table = _table("Stages")
    for column in ("shard", "commits/s", "commits", "lag", "lag (s)", "last commit"):
        table.add_column(column, justify="left" if column == "shard" else "right")
    for stage in stages:
        behind = stage.lag_seconds >= 1
        table.add_row(
            stage.shard,
            f"{stage.commits_per_s:.1f}",
            str(stage.commits),
            f"{stage.lag_entries}+" if stage.lag_entries >= COUNT_CAP else str(stage.lag_entries),
            Text(f"{stage.lag_seconds:.2f}", style="bold red" if behind else ""),
            "never"
            if stage.last_commit_seconds_ago is None
            else _ago(stage.last_commit_seconds_ago),
        )
    return table


def _gateways_table(listed: list[GatewayStatus]) -> Table:
    table = _table("Gateways")
    table.add_column("gateway", no_wrap=True)
    for column in ("pid", "state", "req/s", "reqs", "clients", "orders", "refused"):
        table.add_column(column, justify="left" if column == "clients" else "right")
    for gateway in listed:
        if gateway.up:
            state = Text(f"up {_duration(gateway.uptime_seconds)}", style="green")
        else:
            state = Text(f"gone {_ago(gateway.beat_seconds_ago)}", style="bold red")
        clients = ", ".join(
            f"{n} {stream}" for stream, n in sorted(gateway.websocket_clients.items())
        )
        table.add_row(
            f"{gateway.host}:{gateway.port}",
            str(gateway.pid),
            state,
            "-" if gateway.requests_per_s is None else f"{gateway.requests_per_s:.1f}",
            str(gateway.requests),
            clients or "none",
            str(gateway.orders_accepted),
            str(sum(gateway.orders_refused.values())),
        )
    if not listed:
        table.add_row("none", *[""] * 7)
    return table


def _refusals_table(refusals: dict[str, int]) -> Table:
    table = _table("Refusals")
    table.add_column("reason")
    table.add_column("orders", justify="right")
    for reason, count in refusals.items():
        table.add_row(reason, str(count))
    if not refusals:
        table.add_row("none", "")
    return table


def _valkey_table(valkey: ValkeyStatus) -> Table:
    table = _table("Valkey")
    for column in ("node", "memory", "AOF", "last write", "late fsyncs"):
        table.add_column(column, justify="left" if column == "node" else "right")
    for node in valkey.nodes:
        table.add_row(
            node.node,
            _bytes(node.used_memory_bytes),
            _bytes(node.aof_size_bytes) if node.aof_enabled else "off",
            Text("ok", style="green") if node.aof_last_write_ok else Text("failed", "bold red"),
            str(node.aof_delayed_fsync),
        )
    return table


def _table(title: str) -> Table:
    return Table(
        title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, show_edge=False
    )


def _ago(seconds: float) -> str:
    return f"{_duration(seconds)} ago"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


# The I/O half.


async def read_sample(client: Client, config: VenueConfig) -> Sample:
    taken_ms = time.time_ns() // 1_000_000
    stages = await venue_lag(client, config)
    raw: Any = await client.get(SESSION)
    market = None
    if raw is not None:
        since_ns, phase = json.loads(raw)
        market = MarketStatus(phase, since_ns / 1e9)
    return Sample(taken_ms, stages, await gateways(client), await node_health(client), market)


async def snapshot(client: Client, config: VenueConfig, interval: float) -> Status:
    """One view: two samples, `interval` seconds apart."""
    before = await read_sample(client, config)
    await asyncio.sleep(interval)
    return summarize(before, await read_sample(client, config))


async def watch(client: Client, config: VenueConfig, interval: float, console: Console) -> None:
    """Redraw the view every `interval` seconds, until interrupted. A server that cannot be
    reached is said so in place of the view, and read again at the next interval.

    The rates are over the last few samples, at least two beats of a gateway: over one interval
    of a second, a gateway's rate would be there one time in two (it beats every 2 s)."""
    kept = max(2, math.ceil(2 * BEAT_SECONDS / interval) + 1)
    samples = deque([await read_sample(client, config)], maxlen=kept)
    waiting = Text(f"reading the venue again in {interval:.1f} s...")
    with Live(waiting, console=console, auto_refresh=False, vertical_overflow="visible") as live:
        while True:
            await asyncio.sleep(interval)
            try:
                samples.append(await read_sample(client, config))
            except (Unreachable, TimedOut, Refused) as error:
                live.update(Text(f"cannot read the venue: {error}; trying again", "bold red"))
                live.refresh()
                continue
            live.update(render(summarize(samples[0], samples[-1])), refresh=True)


async def status(redis_url: str, settings: StatusSettings) -> int:
    """`tradepit status`, on the venue at `redis_url` (the operator's)."""
    client = await open_client(redis_url)
    try:
        try:
            config = await load_config(client)
        except RuntimeError as error:  # no venue there
            raise SystemExit(f"tradepit: {error}") from None
        if settings.json:
            view = await snapshot(client, config, settings.interval)
            sys.stdout.write(msgspec.json.encode(view).decode() + "\n")
        elif settings.once:
            Console().print(render(await snapshot(client, config, settings.interval)))
        else:
            await watch(client, config, settings.interval, Console())
    finally:
        await client.aclose()
    return 0
