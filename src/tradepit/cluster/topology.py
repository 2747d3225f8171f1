"""What each node says about the cluster, and whether together they make a ready one.

A node's word is its `CLUSTER INFO`, its `CLUSTER NODES` (its view of every node: roles, slots,
whom it counts failed) and its `INFO replication` (for a replica: whether its link to its
primary is up and its sync done). The cluster is ready when every running node says
`cluster_state:ok`, they all agree who serves which slots and who replicates whom, every slot is
served by a node that runs, none counts a running node failed, and every running replica is in
sync with its primary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from tradepit.cluster.errors import ClusterError
from tradepit.cluster.layout import SLOTS
from tradepit.cluster.node import command

__all__ = [
    "Peer",
    "NodeReport",
    "parse_nodes",
    "parse_info",
    "report_of",
    "what_is_not_ready",
    "wait_until",
]

_FAILING = frozenset({"fail", "fail?"})
_UNSETTLED = frozenset({"handshake", "noaddr"})


@dataclass(frozen=True)
class Peer:
    """One line of `CLUSTER NODES`: a node as one node sees it."""

    id: str
    port: int
    flags: frozenset[str]
    primary_id: str | None
    slots: tuple[tuple[int, int], ...]

    @property
    def is_primary(self) -> bool:
        return "master" in self.flags

    @property
    def failing(self) -> bool:
        return bool(self.flags & _FAILING)


def parse_nodes(text: str) -> tuple[Peer, ...]:
    """`CLUSTER NODES`: `<id> <ip:port@bus[,host]> <flags> <primary|-> <ping> <pong> <epoch>
    <link> <slot or range>...`; a slot being moved, `[slot->-id]`, is not yet its new owner's."""
    peers = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        address = fields[1].split("@", 1)[0]
        port = int(address.rsplit(":", 1)[1] or 0)
        slots = []
        for item in fields[8:]:
            if item.startswith("["):
                continue
            low, _, high = item.partition("-")
            slots.append((int(low), int(high or low)))
        primary = None if fields[3] == "-" else fields[3]
        peers.append(Peer(fields[0], port, frozenset(fields[2].split(",")), primary, tuple(slots)))
    return tuple(peers)


def parse_info(text: str) -> dict[str, str]:
    """`CLUSTER INFO`: `key:value` lines."""
    pairs = (line.partition(":") for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, _, value in pairs}


@dataclass(frozen=True)
class NodeReport:
    cluster_info: dict[str, str]
    peers: tuple[Peer, ...]
    replication: dict[str, str]

    @property
    def myself(self) -> Peer:
        return next(peer for peer in self.peers if "myself" in peer.flags)

    @property
    def in_sync(self) -> bool:
        """A replica whose link to its primary is up and whose first sync is over."""
        return (
            self.replication.get("master_link_status") == "up"
            and self.replication.get("master_sync_in_progress") == "0"
        )


def report_of(connection: redis.Redis) -> NodeReport:
    """What the node on `connection` says."""
    replication: dict[str, Any] = connection.info("replication")
    return NodeReport(
        parse_info(str(command(connection, "CLUSTER", "INFO"))),
        parse_nodes(str(command(connection, "CLUSTER", "NODES"))),
        {key: str(value) for key, value in replication.items()},
    )


def what_is_not_ready(
    reports: Mapping[str, NodeReport], names: Mapping[int, str], total: int
) -> str | None:
    """Why the running nodes (`reports`, by name) do not make a ready cluster yet, or None.

    `names` names each node by its port; `total` is how many nodes the cluster has, running
    or not."""
    if not reports:
        return "no node runs"
    running = {report.myself.id: name for name, report in reports.items()}

    def name_of(peer: Peer) -> str:
        return names.get(peer.port, peer.id)

    views: dict[str, tuple[tuple[str, bool, str | None, tuple[tuple[int, int], ...]], ...]] = {}
    for name, report in reports.items():
        info = report.cluster_info
        if info.get("cluster_state") != "ok":
            return f"{name} says cluster_state:{info.get('cluster_state')}"
        if info.get("cluster_slots_ok") != str(SLOTS):
            return f"{name} sees {info.get('cluster_slots_ok')} of {SLOTS} slots served"
        if info.get("cluster_known_nodes") != str(total):
            return f"{name} knows {info.get('cluster_known_nodes')} of {total} nodes"
        for peer in report.peers:
            if peer.flags & _UNSETTLED:
                return f"{name} is still greeting {name_of(peer)}"
            if peer.failing and peer.id in running:
                return f"{name} counts {name_of(peer)} failed"
            if peer.slots and peer.id not in running:
                return f"{name} sees slots served by {name_of(peer)}, which does not run"
        myself = report.myself
        if not myself.is_primary:
            if myself.primary_id not in running:
                return f"{name} replicates a primary that does not run"
            if not report.in_sync:
                return f"{name} is not in sync with {running[myself.primary_id]} yet"
        views[name] = tuple(
            sorted(
                (peer.id, peer.is_primary, peer.primary_id, peer.slots)
                for peer in report.peers
                if peer.id in running
            )
        )
    if len(set(views.values())) > 1:
        return "the running nodes do not agree yet who serves and who replicates what"
    return None


def wait_until(check: Callable[[], str | None], deadline: float, what: str) -> None:
    """Call `check` until it says nothing is wrong (None); past `deadline` (time.monotonic()),
    raise what it said last."""
    while (problem := check()) is not None:
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out waiting for {what}: {problem}")
        time.sleep(0.05)
