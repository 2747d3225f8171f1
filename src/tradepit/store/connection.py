"""The one way a tradepit process opens its redis-py client: to one server (the embedded Valkey
or any URL), or to a Valkey Cluster, which is found by asking the server the URL names.

The hot paths (the stages' commits and reads, the gateway's appends) do not use redis-py: they
ride the thin connections of `tradepit.stage.resp`, and on a cluster `tradepit.stage.routing`
finds their nodes. Everything else (loads, the gateway's reads, the admin commands) goes
through the client `connect` returns, whose cluster flavour follows MOVED and ASK replies and
finds a promoted replica by itself.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ResponseError

__all__ = ["Client", "connect", "is_cluster", "is_cluster_client", "open_client", "ClusterAddress"]

# A client of either kind: single-key commands, and pipelines of them, work the same on both.
Client: TypeAlias = aioredis.Redis | RedisCluster
ClusterAddress: TypeAlias = tuple[str, int]

# How long a cluster client rides through a failover before it gives up on a command: a
# primary is declared failed after the cluster's node timeout (5 s for `tradepit cluster up`),
# and a replica takes over a moment later.
_CLUSTER_ATTEMPTS = 12
_CLUSTER_BACKOFF = ExponentialBackoff(cap=1.0, base=0.05)


async def is_cluster(url: str) -> bool:
    """Whether the server `url` names is a node of a Valkey Cluster."""
    probe = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        await probe.execute_command("CLUSTER", "MYID")  # type: ignore[no-untyped-call]
    except ResponseError as error:
        if "cluster support disabled" in str(error).lower():
            return False
        raise
    finally:
        await probe.aclose()
    return True


def connect(
    url: str,
    *,
    cluster: bool,
    max_connections: int | None = None,
    timeout: float | None = None,
    startup_nodes: list[ClusterAddress] | None = None,
    **options: Any,
) -> Client:
    """A redis-py client for `url`. On a cluster, `startup_nodes` are more nodes to try than
    the URL's own (a process that has seen the cluster's layout lists them: the URL's node may
    be the one that died). `max_connections` caps the pool (per node, on a cluster); past it,
    a command waits up to `timeout` seconds for a free connection rather than fail."""
    if not cluster:
        if max_connections is None:
            return aioredis.Redis.from_url(url, **options)
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout, **options
        )
        return aioredis.Redis.from_pool(pool)
    nodes = [aioredis.cluster.ClusterNode(host, port) for host, port in startup_nodes or ()]
    return RedisCluster.from_url(
        url,
        startup_nodes=nodes or None,
        max_connections=max_connections or 100,
        retry=Retry(_CLUSTER_BACKOFF, _CLUSTER_ATTEMPTS),
        # A slot whose primary died is down until its replica takes over: the rest still work.
        require_full_coverage=False,
        **options,
    )


async def open_client(url: str, **options: Any) -> Client:
    """A client of the right kind for what `url` names, found by asking it."""
    return connect(url, cluster=await is_cluster(url), **options)


def is_cluster_client(client: Client) -> bool:
    """Whether `client` talks to a cluster (which has no transaction across slots)."""
    return isinstance(client, RedisCluster)
