"""`tradepit verify`: read the venue's state from Redis and prove it balances.

It reads one consistent cut of the whole venue, and needs no quiet moment to do it. Each shard
commits its state together with its checkpoints (the last entry of each inbox it applied) in one
MULTI/EXEC (`stage/loop.py`), so all shards' state read in ONE MULTI/EXEC, which a server
applies atomically, is a state the whole venue was in at one moment. What such a cut holds
besides the shards' states is what was in flight between them: the entries of each link (one
shard's outbox, another's inbox) after its reader's checkpoint, such as fills a matcher has
committed and a ledger has not settled yet, or orders a ledger has reserved for and no book has
seen yet. They are read in the same transaction, and delivered, through the pure cores the
stages run, before the shards are compared with each other.

The checks:

- per ledger shard, at the cut: every asset's balances sum to deposits minus withdrawals plus
  what was settled with other shards; nothing is negative; reserved balances equal the open
  orders' reservations;
- with the cut's in-flight messages delivered: what the shards settled with each other sums to
  zero, and the ledgers' open orders are exactly the books' open orders, with the same side,
  account and lots left;
- the market data stage's L2 books, with the matchers' events it had not read at the cut, are
  the matchers' books at the cut.

Commands from clients and the operator that no stage has applied yet (`{lN}:in`, `{mK}:in`) are
not in flight between shards: they are inputs the venue had not taken at the cut, and are left
out. A stopped venue is checked the same way as a running one.

One transaction reads one server: on a Redis Cluster, whose shards' keys live in many slots,
this would need another way (reading until two successive cuts agree), not written yet.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import msgspec

from tradepit.client import load_config
from tradepit.domain.events import Event
from tradepit.domain.orders import Side
from tradepit.errors import TradepitError
from tradepit.ledger import Ledger
from tradepit.marketdata.feed import SymbolFeed
from tradepit.matcher import Matcher
from tradepit.stage.ledger import LedgerShard, restore_ledger
from tradepit.stage.loop import Fields, StageCore
from tradepit.stage.marketdata import FeedKeys, decode_feed, decode_tops
from tradepit.stage.matcher import MatcherShard, restore_matcher, top_of
from tradepit.stage.messages import (
    COMMANDS,
    DEPTH,
    EVENTS,
    decode_events,
    decode_matcher_commands,
)
from tradepit.store.connection import Client, is_cluster_client
from tradepit.store.keys import COMMITS, ShardKeys, VenueConfig

__all__ = [
    "Report",
    "Link",
    "Snapshot",
    "verify",
    "take_snapshot",
    "check",
    "deliver",
    "entries_in_flight",
]

_START = b"0-0"
_T = TypeVar("_T")


class UnsettledError(TradepitError):
    """No consistent moment to read: the venue kept committing (a cluster only)."""


# Passes at reading a cluster's shards between two unchanged counts of their commits.
_CLUSTER_TRIES = 20


class Report:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.in_flight = 0  # link entries in flight at the cut, delivered before the checks

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        lines = [*self.notes]
        lines += [f"VIOLATION {problem}" for problem in self.problems]
        lines.append("OK: the venue balances" if self.ok else f"{len(self.problems)} violation(s)")
        return "\n".join(lines)


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


# The pure half: a snapshot in, a report out.


def check(snapshot: Snapshot) -> Report:
    """Every way the venue in `snapshot` fails to balance (it is left unchanged)."""
    report = Report()
    report.in_flight = sum(len(link.in_flight) for link in snapshot.links.values())
    report.notes += _describe_cut(snapshot, report.in_flight)
    for shard, ledger in snapshot.ledgers.items():
        report.problems += [f"{shard}: {problem}" for problem in ledger.check_invariants()]
        report.notes.append(
            f"{shard}: {len(ledger.accounts)} accounts, {len(ledger.open_orders)} open orders"
        )
    for shard, matcher in snapshot.matchers.items():
        report.notes.append(f"{shard}: {len(matcher.books)} books")
    _check_feed(snapshot, report)
    ledgers, matchers = deliver(snapshot, report)
    _check_between_shards(ledgers, matchers, report)
    return report


def _describe_cut(snapshot: Snapshot, in_flight: int) -> list[str]:
    """Say where the cut was: each link's reader's checkpoint, and what came after it."""
    lines = [
        f"consistent: every shard read in one MULTI/EXEC; {in_flight} link entries were in "
        "flight then, delivered before the cross-shard checks:"
    ]
    for link in snapshot.links.values():
        line = f"  {link.stream}: applied to {link.applied.decode()}, "
        if link.in_flight:
            line += f"{len(link.in_flight)} in flight, up to {link.in_flight[-1][0].decode()}"
        else:
            line += "none in flight"
        lines.append(line)
    return lines


def deliver(snapshot: Snapshot, report: Report) -> tuple[dict[str, Ledger], dict[str, Matcher]]:
    """The ledgers and matchers once every message in flight between them at the cut is
    applied, and nothing else; copies, so that the snapshot stays as it was read.

    The order is one the stages could take: each link's entries in order, and a matcher's new
    events after those it had sent already. Every ledger gets every matcher's new events, as a
    ledger ignores events about orders it does not hold (the stage sends it only its own). A
    ledger sends no matcher anything in answer to an event, so after this nothing is in flight.
    An entry the reader cannot decode it dead-letters, and this skips, with a note."""
    ledgers = copy.deepcopy(snapshot.ledgers)
    matchers = copy.deepcopy(snapshot.matchers)
    answers: dict[str, list[Event]] = {}
    for name, matcher in matchers.items():
        for ledger_name in ledgers:
            link = snapshot.links[ShardKeys(ledger_name).link_to(name)]
            for entry_id, fields in link.in_flight:
                commands = _decoded(
                    decode_matcher_commands, fields, COMMANDS, link, entry_id, report
                )
                matcher.apply(commands)
        answers[name] = matcher.take_events()
    for name, ledger in ledgers.items():
        for matcher_name in matchers:
            link = snapshot.links[ShardKeys(matcher_name).link_to(name)]
            events: list[Event] = []
            for entry_id, fields in link.in_flight:
                events.extend(_decoded(decode_events, fields, EVENTS, link, entry_id, report))
            for event in events + answers[matcher_name]:
                ledger.apply(event)
    return ledgers, matchers


def _decoded(
    decode: Callable[[bytes], Sequence[_T]],
    fields: Fields,
    field: bytes,
    link: Link,
    entry_id: bytes,
    report: Report,
) -> Sequence[_T]:
    try:
        return decode(fields[field])
    except (KeyError, msgspec.DecodeError) as error:
        report.notes.append(
            f"{link.stream} {entry_id.decode()}: skipped, as its reader dead-letters it: {error}"
        )
        return []


def _check_between_shards(
    ledgers: dict[str, Ledger], matchers: dict[str, Matcher], report: Report
) -> None:
    flow: dict[str, int] = {}
    for ledger in ledgers.values():
        for asset, amount in ledger.trade_flow.items():
            flow[asset] = flow.get(asset, 0) + amount
    for asset, amount in sorted(flow.items()):
        if amount:
            report.problems.append(f"{asset}: shards settled {amount} more than they paid")
    ledger_orders = {
        order_id: order
        for ledger in ledgers.values()
        for order_id, order in ledger.open_orders.items()
    }
    book_orders = {}
    for matcher in matchers.values():
        for book in matcher.books.values():
            book_orders.update(book.orders)
            book_orders.update(book.stop_orders)
    for order_id, open_order in ledger_orders.items():
        book_order = book_orders.get(order_id)
        if book_order is None:
            report.problems.append(f"order {order_id}: open in the ledger, not in any book")
        elif (
            book_order.leaves != open_order.leaves
            or book_order.side != open_order.side
            or book_order.account_id != open_order.account_id
        ):
            side = "buy" if open_order.side is Side.BUY else "sell"
            report.problems.append(
                f"order {order_id}: ledger has {side} {open_order.leaves} left, "
                f"book has {book_order.leaves}"
            )
    for order_id in book_orders.keys() - ledger_orders.keys():
        report.problems.append(f"order {order_id}: in a book, not open in any ledger")


def _check_feed(snapshot: Snapshot, report: Report) -> None:
    """The feed's books, with the matchers' reports it had not read yet, are the matchers'.

    A matcher reports each book its batch touched whole (`BookTop`), and the feed takes the
    last report as the book: so the feed's book once it has read everything is the newest
    unread report, or what it shows already if there is none."""
    behind = [link.stream for link in snapshot.events.values() if not link.kept]
    if behind:
        report.notes.append(f"feed: not checked, it is behind what {', '.join(behind)} keeps")
        return
    shown = {symbol: feed.depth() for symbol, feed in snapshot.feeds.items()}
    unread = 0
    for link in snapshot.events.values():
        for entry_id, fields in link.in_flight:
            unread += 1
            if DEPTH in fields:
                for top in _decoded(decode_tops, fields, DEPTH, link, entry_id, report):
                    shown[top.symbol] = (top.bids, top.asks)
    checked = 0
    for matcher in snapshot.matchers.values():
        for name, book in sorted(matcher.books.items()):
            top = top_of(book, 0)
            feed = shown.get(name, ([], []))
            if feed != (top.bids, top.asks):
                report.problems.append(f"feed: its {name} book {feed} is not the matcher's {top}")
            checked += 1
    report.notes.append(f"feed: {checked} symbols' books checked")
    if unread:
        report.notes.append(f"feed: {unread} matcher batches it had not read yet, applied first")


# The I/O half: one read.


async def take_snapshot(redis: Client) -> Snapshot:
    """Read the venue at one moment: every shard's state and checkpoints, and the link
    entries after those checkpoints, in one MULTI/EXEC."""
    config = await load_config(redis)  # fixed at the venue's first start
    ledgers = [ShardKeys(name) for name in config.ledger_names()]
    matchers = [ShardKeys(name) for name in config.matcher_names()]
    feed = FeedKeys()
    readers: list[ShardKeys] = [*ledgers, *matchers, feed]
    # (stream, the shard that reads it)
    links = [(lk.link_to(mk.shard), mk) for lk in ledgers for mk in matchers]
    links += [(mk.link_to(lk.shard), lk) for mk in matchers for lk in ledgers]
    events = [(matcher.events, feed) for matcher in matchers]
    # Where each reader was a moment before: checkpoints only move forward, so all the cut
    # will find in flight is at or after these, and the transaction reads streams from there.
    async with redis.pipeline(transaction=False) as pipe:
        for keys in readers:
            pipe.hgetall(keys.checkpoints)
        before: dict[str, Any] = dict(
            zip([keys.shard for keys in readers], await pipe.execute(), strict=True)
        )
    # One MULTI on one server. A cluster has no transaction across slots: there the same
    # reads are taken between two counts of every shard's commits, until a pass finds them
    # unchanged (nothing committed meanwhile, so the reads are one moment's).
    cluster = is_cluster_client(redis)
    for _attempt in range(_CLUSTER_TRIES if cluster else 1):
        counted = await _commit_counts(redis, readers) if cluster else None
        async with redis.pipeline(transaction=not cluster) as tx:
            for keys in ledgers:
                # Not the transfers and client order ids: no check needs them, and they grow
                # with every transfer and order.
                tx.hgetall(keys.state)
                tx.hvals(keys.accounts)
                tx.hvals(keys.open_orders)
            for keys in matchers:
                tx.hgetall(keys.books)
                tx.hvals(keys.resting)
            tx.hgetall(feed.feeds)
            for keys in readers:
                tx.hgetall(keys.checkpoints)
            for stream, reader in links + events:
                tx.xrange(stream, min=before[reader.shard].get(stream.encode(), _START))
            replies: Iterator[Any] = iter(await tx.execute())
        if counted is None or counted == await _commit_counts(redis, readers):
            break
    else:
        raise UnsettledError(
            f"the venue committed during each of {_CLUSTER_TRIES} reads: on a cluster, verify "
            "needs a moment when no stage commits (stop the traffic, or try again)"
        )
    ledger_states = {
        keys.shard: restore_ledger(config, next(replies), next(replies), next(replies), {}, {})
        for keys in ledgers
    }
    matcher_states = {
        keys.shard: restore_matcher(next(replies), next(replies))[0] for keys in matchers
    }
    feeds = {feed.symbol: feed for feed in map(decode_feed, next(replies).values())}
    checkpoints = {keys.shard: next(replies) for keys in readers}

    def read(stream: str, reader: ShardKeys) -> Link:
        applied = checkpoints[reader.shard].get(stream.encode(), _START)
        return link_at(stream, applied, next(replies))

    return Snapshot(
        config,
        ledger_states,
        matcher_states,
        feeds,
        {stream: read(stream, reader) for stream, reader in links},
        {stream: read(stream, reader) for stream, reader in events},
    )


async def _commit_counts(redis: Client, readers: list[ShardKeys]) -> list[Any]:
    async with redis.pipeline(transaction=False) as pipe:
        for keys in readers:
            pipe.hget(keys.checkpoints, COMMITS)
        return list(await pipe.execute())


async def verify(redis: Client) -> Report:
    return check(await take_snapshot(redis))


async def entries_in_flight(redis: Client, config: VenueConfig) -> int:
    """Entries appended to any stage's inbox that it has not applied yet (for tests and
    benchmarks that wait for a venue to settle; `verify` needs no such wait).

    The matchers first: once no client command is in flight, a matcher's last commit can add
    to a ledger's inbox, never the other way round, so a count that saw the matchers empty
    and then the ledgers empty is not fooled by a commit between the two."""
    count = 0
    shards: list[StageCore] = [MatcherShard(index, config) for index in range(config.matchers)]
    shards += [LedgerShard(index, config) for index in range(config.ledgers)]
    for shard in shards:
        checkpoints: Any = await redis.hgetall(shard.keys.checkpoints)
        for stream in shard.inboxes():
            after = checkpoints.get(stream.encode(), b"0-0")
            pending: Any = await redis.xrange(stream, min=b"(" + after, count=1000)
            count += len(pending)
    return count
