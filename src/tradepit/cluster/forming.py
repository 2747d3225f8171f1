"""Forming a new cluster: the slots shared among the primaries, every node met, the replicas
attached, as `valkey-cli --cluster create` does, from Python.

Each step is skipped where it is done already, so that forming again after an interruption (a
Ctrl-C during the first `up`) finishes the job rather than failing on what was done.
"""

from __future__ import annotations

import contextlib

import redis
from redis.exceptions import ResponseError

from tradepit.cluster.layout import Layout, NodeLayout
from tradepit.cluster.node import command
from tradepit.cluster.topology import report_of, wait_until

__all__ = ["form"]


def form(layout: Layout, connections: dict[str, redis.Redis], deadline: float) -> None:
    """Form `layout`'s cluster, each node reached as the operator on `connections` (by name)."""
    for epoch, node in enumerate(layout.nodes[: layout.primaries], start=1):
        connection = connections[node.name]
        if report_of(connection).myself.slots:
            continue
        # Distinct epochs before they meet, as valkey-cli gives them: otherwise they all claim
        # epoch 0 and settle the collision one bump at a time.
        with contextlib.suppress(ResponseError):  # it has one already
            command(connection, "CLUSTER", "SET-CONFIG-EPOCH", epoch)
        low, high = layout.slot_range(node)
        command(connection, "CLUSTER", "ADDSLOTSRANGE", low, high)
    first = connections[layout.nodes[0].name]
    for node in layout.nodes[1:]:
        # The bus port given: it is not the client port + 10000 that MEET assumes otherwise.
        command(first, "CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)

    def all_met() -> str | None:
        for name, connection in connections.items():
            known = report_of(connection).cluster_info.get("cluster_known_nodes")
            if known != str(len(layout.nodes)):
                return f"{name} knows {known} of {len(layout.nodes)} nodes"
        return None

    wait_until(all_met, deadline, "the nodes to meet")
    for node in layout.nodes:
        if node.replica_of is not None:
            _attach(connections[node.name], connections[node.replica_of], node, deadline)


def _attach(replica: redis.Redis, primary: redis.Redis, node: NodeLayout, deadline: float) -> None:
    primary_id = report_of(primary).myself.id

    def attached() -> str | None:
        if report_of(replica).myself.primary_id == primary_id:
            return None
        try:
            command(replica, "CLUSTER", "REPLICATE", primary_id)
        except ResponseError as error:  # "Unknown node" until gossip has told it of the primary
            return str(error)
        return None

    wait_until(attached, deadline, f"{node.name} to replicate {node.replica_of}")
