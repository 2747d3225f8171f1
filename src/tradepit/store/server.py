"""The server itself, beneath the schema: what the embedded venue's backups, restores and start
checks ask of Valkey (its data directory, snapshots, the append-only file, how many keys it
holds). One server only: these name no key, and a cluster's nodes each have their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tradepit.store.connection import Client

__all__ = [
    "persistence",
    "data_dir",
    "key_count",
    "start_snapshot",
    "append_only",
    "ping",
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
