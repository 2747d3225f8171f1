"""The server itself, beneath the schema: what the embedded venue's backups, restores and start
checks ask of Valkey (its data directory, snapshots, the append-only file, how many keys it
holds). One server only: these name no key, and a cluster's nodes each have their own; but
`node_health`, which the operator's views read, asks every node of a cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio.cluster import RedisCluster

from tradepit.store.connection import Client

__all__ = [
    "persistence",
    "data_dir",
    "key_count",
    "start_snapshot",
    "append_only",
    "ping",
    "NodeHealth",
    "node_health",
]


async def persistence(client: Client) -> dict[str, Any]:
    """INFO persistence: snapshot and append-only file counters and states."""
    info: dict[str, Any] = await client.info("persistence")
    return info


async def data_dir(client: Client) -> Path:
    """Where the server writes its snapshots and append-only file."""
    configured: Any = await client.config_get("dir")
    return Path(configured["dir"])


async def key_count(client: Client) -> int:
    return int(await client.dbsize())


async def start_snapshot(client: Client) -> None:
    """BGSAVE; if an AOF rewrite is running, it starts once that is done, not refused."""
    await client.bgsave(schedule=True)


async def append_only(client: Client) -> None:
    """Turn the append-only file on: the server writes one from memory."""
    await client.config_set("appendonly", "yes")


async def ping(client: Client) -> None:
    """Return once the server answers; `Loading` while it loads its data, `Unreachable` if it
    cannot be reached."""
    await client.ping()


class NodeHealth(msgspec.Struct, frozen=True, kw_only=True):
    """What INFO says of one server's memory and append-only file."""

    node: str  # host:port, or "embedded" for a Unix socket (the embedded server's)
    used_memory_bytes: int
    aof_enabled: bool
    aof_size_bytes: int  # 0 with the AOF off
    aof_last_write_ok: bool  # False once a write to the AOF failed (a full disk), until one works
    aof_delayed_fsync: int  # fsyncs that waited for the one before (a slow disk), since the start


async def node_health(client: Client) -> list[NodeHealth]:
    """Each node's memory and AOF: the one server's, or every node's of a cluster (replicas
    too: each keeps an AOF of its own)."""
    if isinstance(client, RedisCluster):
        await client.initialize()  # a client that has sent nothing yet knows of no node
        found = []
        for node in sorted(client.get_nodes(), key=lambda node: node.name):
            info = await client.info("memory", "persistence", target_nodes=node)
            found.append(_health(node.name, info))
        return found
    options = client.connection_pool.connection_kwargs
    name = "embedded" if "path" in options else f"{options.get('host')}:{options.get('port')}"
    return [_health(name, await client.info("memory", "persistence"))]


def _health(node: str, info: dict[str, Any]) -> NodeHealth:
    enabled = bool(info.get("aof_enabled", 0))
    return NodeHealth(
        node=node,
        used_memory_bytes=int(info.get("used_memory", 0)),
        aof_enabled=enabled,
        aof_size_bytes=int(info.get("aof_current_size", 0)) if enabled else 0,
        aof_last_write_ok=info.get("aof_last_write_status", "ok") == "ok",
        aof_delayed_fsync=int(info.get("aof_delayed_fsync", 0)),
    )
