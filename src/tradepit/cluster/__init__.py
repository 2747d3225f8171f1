"""A local Valkey Cluster from the embedded server's binary: `tradepit cluster up|down|status`,
and `LocalCluster` for tests and benchmarks. The venue itself does not run on a cluster yet."""

from tradepit.cluster.errors import ClusterError
from tradepit.cluster.local import URLS_FILE, ClusterNode, LocalCluster

__all__ = ["LocalCluster", "ClusterNode", "ClusterError", "URLS_FILE"]
