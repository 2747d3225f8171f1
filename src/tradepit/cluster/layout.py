"""What a local cluster's directory says it is: its nodes, their ports, who replicates whom.

`cluster.json` is written once, at the first `up`, and read by every later command: a cluster
starts again on the same ports, since each node's `nodes.conf` names the others by address, and
with the same shape, whatever the command line says (as a venue's shard counts are fixed at its
first start). Roles change at failovers; `replica_of` is only how the cluster was first formed.
"""

from __future__ import annotations

import socket
from contextlib import ExitStack
from pathlib import Path

import msgspec

from tradepit.access import write_private

__all__ = ["SLOTS", "LAYOUT_FILE", "NodeLayout", "Layout", "new_layout", "load_layout"]

SLOTS = 16384
LAYOUT_FILE = "cluster.json"


class NodeLayout(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str  # also its subdirectory
    port: int  # clients'
    bus_port: int  # the cluster bus's, where the nodes gossip
    replica_of: str | None  # the primary it was made a replica of, None for a primary


class Layout(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    primaries: int
    replicas: int  # of each primary
    nodes: tuple[NodeLayout, ...]
    formed: bool = False  # slots assigned, nodes met, replicas attached: done once, ever

    def node(self, name: str) -> NodeLayout:
        for node in self.nodes:
            if node.name == name:
                return node
        names = ", ".join(node.name for node in self.nodes)
        raise KeyError(f"no node {name!r} in this cluster: {names}")

    def slot_range(self, primary: NodeLayout) -> tuple[int, int]:
        """The slots a primary was first given: an even share, the first ones to node-0."""
        index = self.nodes.index(primary)
        if primary.replica_of is not None or index >= self.primaries:
            raise ValueError(f"{primary.name} was formed as a replica: it was given no slots")
        return SLOTS * index // self.primaries, SLOTS * (index + 1) // self.primaries - 1

    def save(self, directory: Path) -> None:
        write_private(directory / LAYOUT_FILE, msgspec.json.encode(self).decode() + "\n")


def new_layout(primaries: int, replicas: int) -> Layout:
    """`primaries` nodes (node-0...), then each primary's `replicas` in turn, on free ports."""
    count = primaries * (1 + replicas)
    ports = _free_ports(2 * count)
    nodes = []
    for index in range(count):
        primary = None if index < primaries else f"node-{(index - primaries) // replicas}"
        port, bus_port = ports[2 * index], ports[2 * index + 1]
        nodes.append(NodeLayout(f"node-{index}", port, bus_port, primary))
    return Layout(primaries, replicas, tuple(nodes))


def load_layout(directory: Path) -> Layout | None:
    """The directory's layout, or None if it holds no cluster."""
    path = directory / LAYOUT_FILE
    try:
        return msgspec.json.decode(path.read_bytes(), type=Layout)
    except FileNotFoundError:
        return None
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as error:
        raise ValueError(f"cannot read {path} ({error}): restore it") from None


def _free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that were free a moment ago: all bound at once, so the
    kernel hands out no port twice, then released for the servers to take."""
    with ExitStack() as probes:
        ports = []
        for _ in range(count):
            probe = probes.enter_context(socket.socket())
            probe.bind(("127.0.0.1", 0))
            ports.append(int(probe.getsockname()[1]))
        return ports
