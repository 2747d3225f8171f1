"""What each kind of process is told at start: one frozen struct per kind, the single source of
every default.

Each field's description is its documentation: the command line's options are made from these
structs (`tradepit.options`), so `--help` shows the same words and defaults, and a flag is one
field here plus its use. `serve` hands its gateway process the whole `GatewaySettings` as JSON,
never rebuilt field by field. A field whose description says "0: off" is off at 0.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from tradepit.domain.clock import VenueClock

__all__ = [
    "GatewaySettings",
    "VenueSettings",
    "DemoSettings",
    "StageSettings",
    "ClusterSettings",
    "StatusSettings",
]

Seconds = Annotated[float, Meta(ge=0)]
Count = Annotated[int, Meta(ge=0)]


class GatewaySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A gateway process: the API's address, and the limits it holds every client to."""

    host: Annotated[str, Meta(description="the API's address")] = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535, description="the API's port")] = 8000
    rate_limit: Annotated[
        float,
        Meta(ge=0, description="API requests a second per key, bursts of twice that (0: off)"),
    ] = 200.0
    public_rate_limit: Annotated[
        float,
        Meta(
            ge=0,
            description="requests a second per client address to the routes that need no key "
            "(the leaderboard, demo accounts, the API's pages), bursts of twice that (0: off)",
        ),
    ] = 20.0
    auth_failure_burst: Annotated[
        Count,
        Meta(
            description="failed authentications a client address may make at once, then "
            "--auth-failure-rate a second; meanwhile any key it sends is refused unread (0: off)"
        ),
    ] = 10
    auth_failure_rate: Annotated[
        float, Meta(ge=0, description="failed authentications a second, after the burst")
    ] = 1.0
    max_body_bytes: Annotated[
        int, Meta(gt=0, description="the largest request body taken; larger gets a 413")
    ] = 64 * 1024
    access_log_sample: Annotated[
        float,
        Meta(
            ge=0,
            le=1,
            description="the fraction of requests and WebSocket sessions logged, a JSON line "
            "each on the tradepit.access logger (0: off, 1: every one)",
        ),
    ] = 0.0
    reply_timeout: Annotated[
        float,
        Meta(gt=0, description="seconds to wait for a stage's answer before a 504"),
    ] = 10.0
    demo: Annotated[
        bool,
        Meta(description="demo mode: the page offers one-click demo accounts (`demo` sets it)"),
    ] = False
    stream_queue_limit: Annotated[
        int,
        Meta(
            gt=0,
            description="market data messages waiting for one stream client before it is cut off",
        ),
    ] = 5_000
    stream_queue_bytes: Annotated[
        int,
        Meta(gt=0, description="bytes waiting for one stream client before it is cut off"),
    ] = 4 * 1024 * 1024
    stream_send_timeout: Annotated[
        float,
        Meta(
            gt=0,
            description="seconds a stream client may read nothing while data waits before it is "
            "cut off",
        ),
    ] = 10.0
    send_buffer: Annotated[
        Count,
        Meta(
            description="bytes held unsent per WebSocket connection, by the kernel "
            "(TCP_NOTSENT_LOWAT) and by the server's write buffer each, before a send waits "
            "(0: their defaults)"
        ),
    ] = 16 * 1024
    header_timeout: Annotated[
        Seconds,
        Meta(
            description="seconds for a request's head to arrive whole, from the connection's "
            "start or a keep-alive request's first byte; then a 408 and a close (0: off)"
        ),
    ] = 10.0
    body_timeout: Annotated[
        Seconds,
        Meta(description="seconds for a request's body to arrive whole, after its head (0: off)"),
    ] = 10.0
    idle_timeout: Annotated[
        Seconds,
        Meta(
            description="seconds a keep-alive HTTP connection may wait for its next request; "
            "long enough for a bot that polls a few times a minute (0: off)"
        ),
    ] = 30.0
    max_connections_per_client: Annotated[
        Count,
        Meta(
            description="connections one client address may hold at once, HTTP and WebSocket "
            "together; behind a proxy every client is the proxy's address (0: no cap)"
        ),
    ] = 256
    max_connections: Annotated[
        Count,
        Meta(
            description="connections the gateway may hold at once; 0, or anything more, is "
            "capped at the descriptor limit less 256 for its own use"
        ),
    ] = 0
    metrics: Annotated[
        bool,
        Meta(
            description="count requests, orders and stream clients for Prometheus, at /metrics "
            "(off: /metrics answers 404)"
        ),
    ] = True
    ready_lag: Annotated[
        float,
        Meta(
            gt=0,
            description="seconds a stage's oldest unapplied input may wait before /readyz "
            "answers 503",
        ),
    ] = 5.0
    calendar: Annotated[
        Literal["24x7", "nyse"],
        Meta(
            description="the market's hours: 24x7 (always open, DAY orders expire at UTC "
            "midnight) or nyse (the NYSE's days and hours, with extended hours)"
        ),
    ] = "24x7"
    clock_start: Annotated[
        str,
        Meta(
            description="the venue clock's time at the start, RFC 3339 (e.g. "
            "2026-12-07T14:25:00Z; empty: the real time)"
        ),
    ] = ""
    clock_speed: Annotated[
        float, Meta(gt=0, description="venue seconds per real second (60: an hour a minute)")
    ] = 1.0
    clock_anchor: Annotated[
        Count,
        Meta(
            description="the real time, in ns, at which the venue clock reads --clock-start "
            "(0: the process's start; `serve` sets it for its gateways)"
        ),
    ] = 0

    def __post_init__(self) -> None:
        try:
            self.venue_clock()
        except ValueError as error:  # said as msgspec says a field's error, for the option
            raise ValueError(f"{error} - at `$.clock_start`") from None

    def venue_clock(self) -> VenueClock:
        return VenueClock.starting(self.clock_start, self.clock_speed, self.clock_anchor or None)


class VenueSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`serve` (and `demo`): the stages it runs, and how their server keeps their data."""

    fsync: Annotated[
        Literal["everysec", "always"],
        Meta(
            description="when the embedded server's AOF reaches the disk: every second, or "
            "before every reply"
        ),
    ] = "everysec"
    ledgers: Annotated[int, Meta(ge=1, le=64, description="ledger shards (first start only)")] = 1
    matchers: Annotated[int, Meta(ge=1, le=64, description="matcher shards (first start only)")] = 1
    maker_fee_bps: Annotated[
        int, Meta(ge=0, lt=10_000, description="the maker's fee, bps (first start only)")
    ] = 0
    taker_fee_bps: Annotated[
        int, Meta(ge=0, lt=10_000, description="the taker's fee, bps (first start only)")
    ] = 0
    no_gateway: Annotated[bool, Meta(description="run the stages only, no API")] = False
    accept_data_loss: Annotated[
        bool,
        Meta(
            description="start even if Valkey holds less than this venue acknowledged (logs "
            "what is lost)"
        ),
    ] = False
    metrics_port: Annotated[
        int,
        Meta(
            ge=-1,
            le=65535,
            description="the port of the stages' /metrics, for Prometheus (-1: the API's port "
            "+ 1; 0: off)",
        ),
    ] = -1


class DemoSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`demo`'s simulated market: a random-walk reference price, market makers and takers."""

    seed: Annotated[int, Meta(description="of the reference walk and the bots")] = 1
    drift: Annotated[float, Meta(description="the reference walk's drift, per step")] = 0.0
    volatility: Annotated[
        float, Meta(ge=0, description="the reference walk's volatility, per step")
    ] = 0.0008
    interval: Annotated[float, Meta(gt=0, description="seconds between reference steps")] = 1.0
    makers_levels: Annotated[
        int, Meta(ge=1, description="price levels each market maker quotes a side")
    ] = 5
    takers: Annotated[Count, Meta(description="random order senders")] = 3


class StageSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`run ledger|matcher|marketdata`: one shard of one stage."""

    shard: Annotated[
        str,
        Meta(pattern=r"^\d+/\d+$", description="INDEX/COUNT, such as 0/2"),
    ] = "0/1"
    keep_inputs: Annotated[
        bool,
        Meta(description="never trim applied inbox entries (for audits and replay tests)"),
    ] = False
    replica_acks: Annotated[
        int,
        Meta(
            ge=-1,
            le=16,
            description="on a cluster, the replicas each commit waits for before its replies "
            "go out; -1: one once the cluster is seen to keep replicas (a primary left without one "
            "then holds its shards' replies until one is back), else none",
        ),
    ] = -1
    metrics_port: Annotated[
        int,
        Meta(
            ge=0, le=65535, description="the port of this stage's /metrics, for Prometheus (0: off)"
        ),
    ] = 0

    def __post_init__(self) -> None:
        index, count = self.index_and_count()
        if not 0 <= index < count:
            raise ValueError("a shard's index is within 0..COUNT-1, such as 0/2")

    def index_and_count(self) -> tuple[int, int]:
        index, _, count = self.shard.partition("/")
        return int(index), int(count)


class ClusterSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`cluster up`: a local Valkey Cluster, its shape fixed at its first start."""

    primaries: Annotated[
        int,
        Meta(
            ge=1,
            le=64,
            description="primaries, which share the 16384 slots evenly (first start only)",
        ),
    ] = 3
    replicas: Annotated[
        int, Meta(ge=0, le=8, description="replicas of each primary (first start only)")
    ] = 1
    node_timeout: Annotated[
        float,
        Meta(
            ge=0.1,
            le=3600,
            description="seconds a node may not answer before the others count it failed and "
            "its replica takes over",
        ),
    ] = 5.0
    fsync: Annotated[
        Literal["everysec", "always"],
        Meta(
            description="when each node's AOF reaches the disk: every second, or before every reply"
        ),
    ] = "everysec"
    timeout: Annotated[
        float,
        Meta(gt=0, description="seconds to wait for the cluster to be ready"),
    ] = 120.0


class StatusSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`status`: the venue's stages, gateways and Valkey, as a view that refreshes."""

    interval: Annotated[
        float,
        Meta(
            gt=0,
            le=3600,
            description="seconds between two reads of the venue; the rates shown are over it",
        ),
    ] = 1.0
    once: Annotated[bool, Meta(description="print one view (of two reads) and exit")] = False
    json: Annotated[
        bool,
        Meta(description="print one view as a JSON object, for scripts (implies --once)"),
    ] = False
