"""Where each key of a Valkey Cluster lives, for the thin connections (`tradepit.stage.resp`).

A cluster splits the keys into 16,384 slots by a hash of their tag (`{l0}`), and each slot has
one primary. `ClusterRoutes` learns the slots' primaries with CLUSTER SLOTS, keeps one
connection per primary for the callers that ask, and remembers every node it has seen, so
that when the node the URL names is the one that died, it asks the others.

It never follows a MOVED or ASK reply by itself: its callers (a stage, a gateway's appends)
know whether a command may be sent again, so they call `refresh` and decide.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from tradepit.stage.resp import RespConnection, pack

__all__ = ["ClusterRoutes", "Node", "node_url", "slot_moved", "slot_of"]

log = logging.getLogger("tradepit.routing")

Node = tuple[str, int]  # host, port


def slot_moved(error: Exception) -> bool:
    """Whether a refusal says the key's slot is elsewhere, or nowhere for the moment (MOVED,
    ASK, TRYAGAIN, CLUSTERDOWN): the command was not applied, and may be sent again once the
    slot's new owner is known."""
    return str(error).startswith(("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"))


def slot_of(key: str | bytes) -> int:
    return int(key_slot(key.encode() if isinstance(key, str) else key))


def node_url(url: str, node: Node) -> str:
    """`url` with its host and port replaced by the node's: the same user, TLS and options."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    host, port = node
    netloc = f"{host}:{port}" if not credentials else f"{credentials}@{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class ClusterRoutes:
    """The slots' primaries of the cluster `url` names a node of, and a connection to each."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.url = url
        self._default_host = parts.hostname or "127.0.0.1"
        self.known: list[Node] = [(self._default_host, parts.port or 6379)]
        self._starts: list[int] = []  # the first slot of each range, sorted
        self._ranges: list[tuple[int, int, Node]] = []
        self.replicas: dict[Node, list[Node]] = {}  # each primary's replicas, as last seen
        self._connections: dict[Node, RespConnection] = {}

    async def refresh(self) -> None:
        """Learn the slots' primaries anew, from the first known node that answers."""
        last: Exception | None = None
        for node in list(self.known):
            try:
                connection = await RespConnection.open(self.url_of(node), timeout=1.0)
            except (RedisConnectionError, ResponseError, OSError) as error:
                last = error
                continue
            try:
                async with asyncio.timeout(2.0):
                    (reply,) = await connection.call(pack(("CLUSTER", "SLOTS")), 1)
            except (RedisConnectionError, OSError) as error:  # TimeoutError is an OSError
                last = error
                continue
            finally:
                connection.close()
            if isinstance(reply, ResponseError):
                last = reply
                continue
            self._learn(reply)
            return
        raise RedisConnectionError(f"no node of the cluster answers: {last}")

    def _learn(self, reply: list[Any]) -> None:
        ranges: list[tuple[int, int, Node]] = []
        seen: list[Node] = []
        replicas: dict[Node, list[Node]] = {}
        for start, end, primary, *others in reply:
            owner = self._node(primary)
            ranges.append((int(start), int(end), owner))
            followers = [self._node(other) for other in others]
            replicas[owner] = followers
            seen += [owner, *followers]
        ranges.sort()
        self._ranges = ranges
        self._starts = [start for start, _end, _node in ranges]
        self.replicas = replicas
        # Nodes seen now first, then those seen before (one may be down for now).
        self.known = list(dict.fromkeys([*seen, *self.known]))

    def _node(self, entry: list[Any]) -> Node:
        host = entry[0].decode() if entry[0] else self._default_host
        return host, int(entry[1])

    @property
    def primaries(self) -> list[Node]:
        return list(dict.fromkeys(node for _start, _end, node in self._ranges))

    def has_replicas(self) -> bool:
        """Whether the cluster keeps replicas (any primary has one: a primary just promoted
        has none until its old one comes back)."""
        return any(self.replicas.values())

    def node_of(self, key: str | bytes) -> Node:
        """The primary that holds `key`'s slot, as last learned."""
        slot = slot_of(key)
        at = bisect.bisect_right(self._starts, slot) - 1
        if at >= 0:
            start, end, node = self._ranges[at]
            if start <= slot <= end:
                return node
        raise RedisConnectionError(f"no node serves slot {slot} ({key!r}): the cluster is down")

    def url_of(self, node: Node) -> str:
        return node_url(self.url, node)

    async def connection(self, node: Node) -> RespConnection:
        """This process's connection to `node`, opened on first use or once lost."""
        connection = self._connections.get(node)
        if connection is None or connection.closed:
            opened = await RespConnection.open(self.url_of(node))
            connection = self._connections.get(node)
            if connection is not None and not connection.closed:
                opened.close()  # another caller opened one meanwhile
            else:
                self._connections[node] = connection = opened
        return connection

    def group(self, keys: Iterable[str]) -> dict[Node, list[str]]:
        """`keys` by the primary that holds each, in their order."""
        nodes: dict[Node, list[str]] = {}
        for key in keys:
            nodes.setdefault(self.node_of(key), []).append(key)
        return nodes

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()
