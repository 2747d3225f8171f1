"""The whole venue at one moment, read for `tradepit verify`: every shard's committed state and
checkpoints, and what was in flight between shards then.

Each shard commits its state together with its checkpoints in one MULTI/EXEC, so all shards'
state read at one moment is a state the whole venue was in. On one server, one MULTI/EXEC reads
it: the server applies it atomically. On a cluster no transaction spans two slots, so the cut
is read with one command per key, bracketed by reading every shard's checkpoints before and
after; if no shard committed in between (its checkpoints, commit count included, are the
same), nothing that was read changed while it was read, and the reads are one moment's. A busy
cluster venue is read again until that holds, a few times.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from redis.asyncio.cluster import RedisCluster

from tradepit.errors import TradepitError
from tradepit.ledger import Ledger
from tradepit.marketdata.feed import SymbolFeed
from tradepit.matcher import Matcher
from tradepit.store.catalog import load_config
from tradepit.store.connection import Client
from tradepit.store.keys import ShardKeys, VenueConfig
from tradepit.store.ledger import LedgerKeys, restore_ledger
from tradepit.store.marketdata import FeedKeys, decode_feed
from tradepit.store.matcher import MatcherKeys, restore_matcher

__all__ = [
    "Fields",
    "Link",
    "Snapshot",
    "NotQuietError",
    "link_at",
    "take_snapshot",
    "entries_in_flight",
]

Fields = dict[bytes, bytes]
_START = b"0-0"
_CLUSTER_ATTEMPTS = 20


class NotQuietError(TradepitError):
    """A cluster venue committed during every attempt to read it at one moment."""


class Link(NamedTuple):
    """A stream one stage appends to and another reads, as it was at the cut."""

    stream: str
    applied: bytes  # the reader's checkpoint: the last entry it had applied
    in_flight: list[tuple[bytes, Fields]]  # the entries after that one, oldest first
    # The entry at `applied` was still in the stream (or nothing was in flight), so all after
    # it were too: `in_flight` is complete. A capped stream (a matcher's events) drops its
    # oldest entries, read or not; the links between ledgers and matchers are trimmed only up
    # to what their reader committed (`stage/loop.py`), so they never lose one in flight.
    kept: bool


@dataclass(frozen=True)
class Snapshot:
    """The venue at one moment: every shard's committed state, and what was in flight."""

    config: VenueConfig
    ledgers: dict[str, Ledger]  # by shard name
    matchers: dict[str, Matcher]
    feeds: dict[str, SymbolFeed]  # the market data stage's, by symbol
    links: dict[str, Link]  # between ledgers and matchers, both ways, by stream
    events: dict[str, Link]  # each matcher's events, which the market data stage reads

    def link(self, writer: str, reader: str) -> Link:
        """The link from shard `writer` to shard `reader`."""
        return self.links[ShardKeys(writer).link_to(reader)]


def _stream_id(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


def link_at(stream: str, applied: bytes, entries: list[tuple[bytes, Fields]]) -> Link:
    """`stream` at the cut, from its reader's checkpoint then, and its entries from some point
    at or before that checkpoint on."""
    after = _stream_id(applied)
    in_flight = [(entry_id, fields) for entry_id, fields in entries if _stream_id(entry_id) > after]
    kept = not in_flight or _stream_id(entries[0][0]) <= after
    return Link(stream, applied, in_flight, kept)


class _Plan:
    """What a cut reads, in the order its replies come back."""

    def __init__(self, config: VenueConfig) -> None:
        self.config = config
        self.ledgers = [LedgerKeys(name) for name in config.ledger_names()]
        self.matchers = [MatcherKeys(name) for name in config.matcher_names()]
        self.feed = FeedKeys()
        self.readers: list[ShardKeys] = [*self.ledgers, *self.matchers, self.feed]
        # (stream, the shard that reads it)
        self.links: list[tuple[str, ShardKeys]] = [
            (lk.link_to(mk.shard), mk) for lk in self.ledgers for mk in self.matchers
        ]
        self.links += [(mk.link_to(lk.shard), lk) for mk in self.matchers for lk in self.ledgers]
        self.events: list[tuple[str, ShardKeys]] = [
            (matcher.events, self.feed) for matcher in self.matchers
        ]

    async def checkpoints(self, client: Client) -> list[Any]:
        async with client.pipeline(transaction=False) as pipe:
            for keys in self.readers:
                pipe.hgetall(keys.checkpoints)
            return list(await pipe.execute())

    def queue_reads(self, pipe: Any, before: list[Any]) -> None:
        """Every read of the cut; the streams from where their readers were a moment before:
        checkpoints only move forward, so all the cut finds in flight is at or after these."""
        where = dict(zip([keys.shard for keys in self.readers], before, strict=True))
        for ledger in self.ledgers:
            # Not the transfers and client order ids: no check needs them, and they grow with
            # every transfer and order.
            pipe.hgetall(ledger.state)
            pipe.hvals(ledger.accounts)
            pipe.hvals(ledger.open_orders)
            pipe.hgetall(ledger.held_legs)
        for matcher in self.matchers:
            pipe.hgetall(matcher.books)
            pipe.hvals(matcher.resting)
        pipe.hgetall(self.feed.feeds)
        for keys in self.readers:
            pipe.hgetall(keys.checkpoints)
        for stream, reader in self.links + self.events:
            pipe.xrange(stream, min=where[reader.shard].get(stream.encode(), _START))

    def snapshot(self, replies: list[Any]) -> Snapshot:
        config, read = self.config, iter(replies)
        ledgers = {
            ledger.shard: restore_ledger(
                config, next(read), next(read), next(read), {}, {}, next(read)
            )
            for ledger in self.ledgers
        }
        matchers = {
            matcher.shard: restore_matcher(next(read), next(read))[0] for matcher in self.matchers
        }
        feeds = {feed.symbol: feed for feed in map(decode_feed, next(read).values())}
        checkpoints = {keys.shard: next(read) for keys in self.readers}

        def link(stream: str, reader: ShardKeys, entries: Iterator[Any]) -> Link:
            applied = checkpoints[reader.shard].get(stream.encode(), _START)
            return link_at(stream, applied, next(entries))

        return Snapshot(
            config,
            ledgers,
            matchers,
            feeds,
            {stream: link(stream, reader, read) for stream, reader in self.links},
            {stream: link(stream, reader, read) for stream, reader in self.events},
        )


async def take_snapshot(client: Client) -> Snapshot:
    """Read the venue at one moment: every shard's state and checkpoints, and the link
    entries after those checkpoints."""
    plan = _Plan(await load_config(client))  # the config is fixed at the venue's first start
    before = await plan.checkpoints(client)
    if not isinstance(client, RedisCluster):
        async with client.pipeline(transaction=True) as tx:
            plan.queue_reads(tx, before)
            return plan.snapshot(list(await tx.execute()))
    for _ in range(_CLUSTER_ATTEMPTS):
        async with client.pipeline(transaction=False) as pipe:
            plan.queue_reads(pipe, before)
            replies = list(await pipe.execute())
        after = await plan.checkpoints(client)
        if after == before:
            return plan.snapshot(replies)
        before = after
    raise NotQuietError(
        f"the venue committed during each of {_CLUSTER_ATTEMPTS} reads: a cluster is read at "
        "one moment only between commits; try again when it is quieter"
    )


async def entries_in_flight(client: Client, config: VenueConfig) -> int:
    """Entries appended to any stage's inbox that it has not applied yet (for tests and
    benchmarks that wait for a venue to settle; `verify` needs no such wait).

    The matchers first: once no client command is in flight, a matcher's last commit can add
    to a ledger's inbox, never the other way round, so a count that saw the matchers empty
    and then the ledgers empty is not fooled by a commit between the two."""
    count = 0
    shards: list[LedgerKeys | MatcherKeys] = [MatcherKeys(name) for name in config.matcher_names()]
    shards += [LedgerKeys(name) for name in config.ledger_names()]
    for keys in shards:
        checkpoints: Any = await client.hgetall(keys.checkpoints)
        for stream in keys.inboxes(config):
            after = checkpoints.get(stream.encode(), b"0-0")
            pending: Any = await client.xrange(stream, min=b"(" + after, count=1000)
            count += len(pending)
    return count
