"""`tradepit cluster up|down|status`: each prints one JSON line.

`up` prints the nodes and each role's URL, passwords included, and says where they are kept
(`urls.json` in the cluster's directory, 0600): the same as `LocalCluster.url_for`. `status`
says where, but prints no password, so that it can be run and logged freely.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tradepit.access import Role
from tradepit.cluster.local import LocalCluster
from tradepit.settings import ClusterSettings

__all__ = ["cluster_command"]


def cluster_command(action: str, directory: Path, settings: ClusterSettings) -> int:
    """Run `action` (up, down or status) on the cluster in `directory`; the exit code."""
    cluster = LocalCluster(
        directory,
        settings.primaries,
        settings.replicas,
        node_timeout=settings.node_timeout,
        fsync=settings.fsync,
    )
    if action == "up":
        report, code = up(cluster, settings.timeout), 0
    elif action == "down":
        report, code = down(cluster), 0
    elif action == "status":
        report = status(cluster)
        code = 0 if report["ready"] else 1
    else:
        raise ValueError(f"no cluster action {action!r}: up, down or status")
    print(json.dumps(report))
    return code


def up(cluster: LocalCluster, timeout: float) -> dict[str, Any]:
    """Start the cluster (made the first time), once it is ready. One whose every node runs
    already is only waited for, and says so."""
    started = cluster.start(timeout)
    layout = cluster.layout
    return {
        "cluster": str(cluster.directory),
        "already_running": not started,
        "started": started,
        "primaries": layout.primaries,
        "replicas": layout.replicas,
        "nodes": [node.as_json() for node in cluster.nodes()],
        "url": cluster.url,
        "urls": {str(role): cluster.url_for(role) for role in Role},
        "urls_file": str(cluster.urls_file),
    }


def down(cluster: LocalCluster) -> dict[str, Any]:
    """Stop every node cleanly."""
    stopped = cluster.stop()
    return {"cluster": str(cluster.directory), "stopped": stopped}


def status(cluster: LocalCluster) -> dict[str, Any]:
    """Each node and whether the cluster is ready; no password."""
    layout = cluster.layout
    problem = cluster.not_ready()
    nodes = cluster.nodes()
    return {
        "cluster": str(cluster.directory),
        "ready": problem is None,
        "problem": problem,
        "running": sum(node.running for node in nodes),
        "primaries": layout.primaries,
        "replicas": layout.replicas,
        "nodes": [node.as_json() for node in nodes],
        "urls_file": str(cluster.urls_file),
    }
