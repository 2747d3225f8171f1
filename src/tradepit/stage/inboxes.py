"""A stage's inboxes on a Valkey Cluster: read one by one, woken by their doorbells.

On one server a stage reads all its inboxes with one XREAD that blocks until any has an entry.
A cluster refuses that (CROSSSLOT: the inboxes live in their writers' slots), so each inbox is
read with an XREAD of its own, those on one node pipelined into one request, every node at
once. An idle stage then sleeps until a doorbell rings: each writer publishes on the shard
channel named as the stream it appended to (SPUBLISH, in the stream's own slot) once the entry
can be read, and the stage subscribed to its inboxes' channels before its first read, so that
no entry appended after a read goes unnoticed. (A doorbell lost with its writer, stopped
between an append and its ring, delays that entry by `DOORBELL_FALLBACK` at most.)

Another shard's entry is only read once its writer has marked it: after each commit a writer
marks, in its `replicated` hash, how far each of its streams is in (with replica acks: how far
a replica holds it), and rings the doorbells after the marks; a reader applies nothing past
the mark. Otherwise a reader could apply what a failover then takes away from its writer (an
order the ledger no longer reserved for, a fill the matcher no longer made). A stage's own
inbox lives in its own slot, on its own primary, and needs no mark: a failover takes it and
the stage's commits together.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from tradepit.stage.resp import RespSubscriber, pack, raise_errors
from tradepit.stage.routing import ClusterRoutes, Node
from tradepit.store.keys import hash_tag, replicated_key

__all__ = ["ClusterInboxes", "entry_order"]

DOORBELL_FALLBACK = 5.0  # seconds an idle stage sleeps, at most, before it reads anyway
READ_TIMEOUT = 10.0  # seconds a node has to answer a read


def entry_order(entry_id: bytes) -> tuple[int, int]:
    """A stream entry id as two numbers, which compare as the stream orders them."""
    milliseconds, _, sequence = entry_id.partition(b"-")
    return int(milliseconds), int(sequence or 0)


class ClusterInboxes:
    """Reads a stage's `streams` (in their order) on the cluster `routes` knows."""

    def __init__(self, routes: ClusterRoutes, streams: Sequence[str], own_tag: str) -> None:
        self.routes = routes
        self.streams = list(streams)
        # The inboxes other shards write, read only as far as their writers' marks.
        self.marked = {stream for stream in self.streams if hash_tag(stream) != own_tag}
        self._bell = asyncio.Event()
        self._woken = False
        self._closed = False
        self._subscribers: list[RespSubscriber] = []
        self._watchers: list[asyncio.Task[Exception]] = []
        self._trims: set[asyncio.Future[None]] = set()

    async def open(self) -> None:
        """Subscribe to every inbox's doorbell, on the node that holds its slot."""
        for node, streams in self.routes.group(self.streams).items():
            subscriber = await RespSubscriber.open_sharded(
                self.routes.url_of(node), streams, self._ring
            )
            self._subscribers.append(subscriber)
            watcher = asyncio.create_task(subscriber.wait_closed())
            watcher.add_done_callback(lambda _watcher: self._bell.set())
            self._watchers.append(watcher)

    def _ring(self, _channel: bytes, _data: bytes) -> None:
        self._bell.set()

    def wake(self) -> None:
        """Make a sleeping read return (empty), as when the stage stops."""
        self._woken = True
        self._bell.set()

    def read(self, read_to: dict[str, bytes], count: int, block: bool) -> asyncio.Future[list[Any]]:
        """The next batch, shaped as one XREAD's reply (in a list, as a request's replies are);
        if `block`, waits for a doorbell when all inboxes are empty."""
        return asyncio.ensure_future(self._read(dict(read_to), count, block))

    async def _read(self, read_to: dict[str, bytes], count: int, block: bool) -> list[Any]:
        while True:
            self._bell.clear()
            batch = await self._read_each(read_to, count)
            if batch or not block or self._woken:
                self._woken = False
                return [batch]
            self._raise_if_lost()
            # A doorbell lost on its way (its writer stopped between an append and its ring)
            # costs at most this long: no read waits for one for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DOORBELL_FALLBACK):
                    await self._bell.wait()
            self._raise_if_lost()

    def _raise_if_lost(self) -> None:
        if self._closed:
            raise RedisConnectionError("the stage's inboxes were closed")
        for subscriber in self._subscribers:
            if subscriber.closed:
                raise RedisConnectionError("a doorbell subscription was lost")

    async def _read_each(self, read_to: dict[str, bytes], count: int) -> list[Any]:
        by_node = self.routes.group(self.streams)
        replies = await asyncio.gather(
            *(self._read_node(node, streams, read_to, count) for node, streams in by_node.items())
        )
        found: dict[str, Any] = {}
        for node_found in replies:
            found.update(node_found)
        # In the stage's order, which is the order a batch applies its inboxes in.
        return [[stream.encode(), found[stream]] for stream in self.streams if stream in found]

    async def _read_node(
        self, node: Node, streams: list[str], read_to: dict[str, bytes], count: int
    ) -> dict[str, Any]:
        commands: list[bytes] = []
        for stream in streams:
            if stream in self.marked:
                commands.append(pack(("HGET", replicated_key(stream), stream)))
            commands.append(pack(("XREAD", "COUNT", count, "STREAMS", stream, read_to[stream])))
        connection = await self.routes.connection(node)
        # A node cut off (not reset) answers nothing: its heir takes over in seconds, and the
        # stage loads again from there rather than wait for TCP to give up.
        async with asyncio.timeout(READ_TIMEOUT):
            replies = iter(await connection.call(b"".join(commands), len(commands)))
        found: dict[str, Any] = {}
        for stream in streams:
            mark = next(replies) if stream in self.marked else None
            reply = next(replies)
            raise_errors((mark, reply))
            if not reply:
                continue
            entries = reply[0][1]
            if stream in self.marked:
                limit = entry_order(mark) if mark else (0, 0)
                entries = [entry for entry in entries if entry_order(entry[0]) <= limit]
            if entries:
                found[stream] = entries
        return found

    def trim(self, checkpoints: dict[str, bytes]) -> None:
        """Trim what is applied off the inboxes, on their nodes; nothing waits for it (a trim
        that fails is made good by the next)."""
        commands: dict[Node, list[bytes]] = {}
        for stream, entry_id in checkpoints.items():
            if entry_id != b"0-0":
                node = self.routes.node_of(stream)
                commands.setdefault(node, []).append(
                    pack(("XTRIM", stream, "MINID", "~", entry_id))
                )
        for node, packed in commands.items():
            trim = asyncio.ensure_future(self._send(node, packed))
            self._trims.add(trim)
            trim.add_done_callback(self._trims.discard)

    async def _send(self, node: Node, packed: list[bytes]) -> None:
        with contextlib.suppress(RedisConnectionError, OSError):
            connection = await self.routes.connection(node)
            await connection.call(b"".join(packed), len(packed))

    def close(self) -> None:
        self._closed = True
        for trim in self._trims:
            trim.cancel()
        for watcher in self._watchers:
            watcher.cancel()
        for subscriber in self._subscribers:
            subscriber.close()
        self._subscribers.clear()
        self._watchers.clear()
