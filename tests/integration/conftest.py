"""A real Valkey for the integration tests: the embedded one, started once per test session on a
free port, or the server `REDIS_URL` names. Each test starts from an empty database, so with
`REDIS_URL` set the tests FLUSHDB the database it names: point it at a scratch server.

`any_redis_url` runs a test twice: on that server, and on a local Valkey Cluster of 3 primaries
and 3 replicas (`tradepit.cluster.LocalCluster`, started once per session on first use)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from tradepit.access import Role
from tradepit.cluster import LocalCluster
from tradepit.embedded import EmbeddedValkey

# Failovers within seconds, yet well above what a busy 2-core machine stalls a node for.
CLUSTER_NODE_TIMEOUT = 2.0


@pytest.fixture(scope="session")
def session_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with EmbeddedValkey(tmp_path_factory.mktemp("valkey")) as server:
        yield server.url


@pytest.fixture
def redis_url(session_redis_url: str) -> str:
    client = redis.Redis.from_url(session_redis_url)
    try:
        client.flushdb()
    finally:
        client.close()
    return session_redis_url


@pytest.fixture(scope="session")
def session_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    directory = tmp_path_factory.mktemp("cluster")
    with LocalCluster(
        directory, primaries=3, replicas=1, node_timeout=CLUSTER_NODE_TIMEOUT
    ) as cluster:
        yield cluster


def empty_cluster(cluster: LocalCluster) -> str:
    """Flush the cluster (`LocalCluster.flush`); the operator's URL of it."""
    cluster.flush()
    return cluster.url_for(Role.OPERATOR)


@pytest.fixture(params=["server", "cluster"])
def any_redis_url(request: pytest.FixtureRequest) -> str:
    if request.param == "server":
        url: str = request.getfixturevalue("redis_url")
        return url
    return empty_cluster(request.getfixturevalue("session_cluster"))
