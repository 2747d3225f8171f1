"""How far behind each stage shard is: for each of its inboxes, the entries appended after the
last one it committed, and how long the oldest of them has waited (from its stream id, which
Valkey stamps with its clock when the entry is appended).

Read by the stages' metrics, the gateway's /readyz and `tradepit status`: never on a hot path.
The count is taken in the server by a read-only script that returns only numbers, and it stops
at `COUNT_CAP`: past that, a shard is far behind, and how far is told by the wait.
"""

from __future__ import annotations

from typing import Any

import msgspec

from tradepit.store.connection import Client
from tradepit.store.keys import COMMITS, ShardKeys, VenueConfig
from tradepit.store.ledger import LedgerKeys
from tradepit.store.marketdata import FeedKeys
from tradepit.store.matcher import MatcherKeys

__all__ = ["COUNT_CAP", "InboxLag", "ShardLag", "venue_inboxes", "shard_lag", "venue_lag"]

# Entries counted after a checkpoint, at most. A stage reads 4 entries of an inbox a batch, and
# an entry is a whole flush of commands: a shard this far behind is overloaded or stopped.
COUNT_CAP = 100

# KEYS[1]: the inbox; ARGV[1]: the last entry applied. Returns the entries after it (at most
# ARGV[2]) and the id of the first of them, or false: numbers and an id, never entries.
_LAG_SCRIPT = """
local after = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
if #after == 0 then return {0, false} end
return {#after, after[1][1]}
"""
_START = "0-0"


class InboxLag(msgspec.Struct, frozen=True):
    stream: str
    entries: int  # appended after the checkpoint; COUNT_CAP means at least that
    oldest_ms: int | None  # when the oldest of them was appended (Unix ms); None: none waits

    def seconds(self, now_ms: int) -> float:
        """How long the oldest unapplied entry has waited (0: none waits)."""
        return 0.0 if self.oldest_ms is None else max(0, now_ms - self.oldest_ms) / 1000


class ShardLag(msgspec.Struct, frozen=True):
    shard: str
    commits: int  # batches committed since the shard first ran (0: never)
    inboxes: list[InboxLag]
    # The newest input applied, of any inbox (Unix ms, from its id): the last commit's input.
    last_input_ms: int | None

    def seconds(self, now_ms: int) -> float:
        return max((inbox.seconds(now_ms) for inbox in self.inboxes), default=0.0)

    @property
    def entries(self) -> int:
        return sum(inbox.entries for inbox in self.inboxes)


def venue_inboxes(config: VenueConfig) -> dict[str, list[str]]:
    """Every stage shard of the venue, and the streams it reads."""
    shards: dict[str, list[str]] = {}
    for name in config.ledger_names():
        shards[name] = LedgerKeys(name).inboxes(config)
    for name in config.matcher_names():
        shards[name] = MatcherKeys(name).inboxes(config)
    feed = FeedKeys()
    shards[feed.shard] = feed.inboxes(config)
    return shards


async def shard_lag(client: Client, shard: str, inboxes: list[str]) -> ShardLag:
    stored: Any = await client.hgetall(ShardKeys(shard).checkpoints)
    checkpoints = {key.decode(): value.decode() for key, value in stored.items()}
    commits = int(checkpoints.pop(COMMITS, 0))
    lags = []
    for stream in inboxes:
        checkpoint = checkpoints.get(stream, _START)
        # EVAL_RO: a replica could answer it, and an ACL that lets a role read lets it run it.
        count, first = await client.eval_ro(_LAG_SCRIPT, 1, stream, checkpoint, COUNT_CAP)
        lags.append(InboxLag(stream, int(count), _id_ms(first) if first else None))
    applied = [_id_ms(entry) for stream, entry in checkpoints.items() if entry != _START]
    return ShardLag(shard, commits, lags, max(applied, default=None))


async def venue_lag(client: Client, config: VenueConfig) -> list[ShardLag]:
    """Every shard's lag, in the order of `venue_inboxes`."""
    return [
        await shard_lag(client, shard, inboxes) for shard, inboxes in venue_inboxes(config).items()
    ]


def _id_ms(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.partition("-")[0])
