"""How far each stage shard has got, as its checkpoints hash (`{l0}:checkpoints`) holds it: how
many batches it committed (`COMMITS`), and the last entry it applied of each inbox. Read by the
start checks (`tradepit.durability`) and backups, which compare it with what the data
directory recorded.
"""

from __future__ import annotations

from typing import Any

from tradepit.store.connection import Client
from tradepit.store.keys import COMMITS, ShardKeys

__all__ = ["committed", "committed_shards"]


async def committed(client: Client, shard: str) -> tuple[int, dict[str, str]] | None:
    """The shard's commit count and the last entry it applied of each inbox; None if it never
    committed."""
    stored: Any = await client.hgetall(ShardKeys(shard).checkpoints)
    count = stored.pop(COMMITS.encode(), None)
    if count is None:
        return None
    return int(count), {stream.decode(): entry.decode() for stream, entry in stored.items()}


async def committed_shards(client: Client) -> list[str]:
    """Every stage shard that has committed, by its checkpoints hash (one server's keys: a
    cluster node scans only its own)."""
    names = []
    async for key in client.scan_iter(match="{*}:checkpoints", count=1000):
        text = key.decode()
        names.append(text[1 : text.index("}")])
    return sorted(names)
