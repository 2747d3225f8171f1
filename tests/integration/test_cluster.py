"""A local Valkey Cluster (`tradepit cluster up|down|status`, `LocalCluster`): real servers, from
the embedded server's binary, private as it is, that redis-py's cluster clients use as each of
the venue's roles, and that ride through a primary's kill -9."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio.cluster as aiocluster
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.retry import Retry

from tradepit.access import Role
from tradepit.cli import _parser
from tradepit.cluster import ClusterError, ClusterNode, LocalCluster
from tradepit.cluster.layout import SLOTS, new_layout
from tradepit.options import SettingsError, settings_from
from tradepit.settings import ClusterSettings

TRADEPIT = [sys.executable, "-m", "tradepit.cli"]
# Failovers within seconds, yet well above what a busy 2-core machine stalls a node for.
NODE_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    directory = tmp_path_factory.mktemp("cluster")
    with LocalCluster(directory, primaries=3, replicas=1, node_timeout=NODE_TIMEOUT) as running:
        yield running


def _primary_serving(nodes: list[ClusterNode], key: str) -> ClusterNode:
    slot = key_slot(key.encode())
    return next(
        node
        for node in nodes
        if node.role == "primary" and any(low <= slot <= high for low, high in node.slots)
    )


def _cli(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    command = [*TRADEPIT, "cluster", *args, "--data-dir", str(directory)]
    # Not waiting for the servers' exit: they outlive the command, and hold none of its pipes.
    return subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=180, env=env
    )


def _json_line(done: subprocess.CompletedProcess[str]) -> Any:
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout + done.stderr
    return json.loads(lines[0])


def _listening(port: int) -> list[str]:
    """The local addresses listening on `port`, IPv4 as hex (127.0.0.1 is 0100007F)."""
    found = []
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/net/{table}")
        if not path.exists():  # a kernel without IPv6
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.append(f"{table}:{address}")
    return found


def test_the_slots_are_shared_evenly_and_a_cluster_keeps_its_shape(tmp_path: Path) -> None:
    layout = new_layout(primaries=3, replicas=2)
    ranges = [layout.slot_range(node) for node in layout.nodes[:3]]
    assert ranges == [(0, 5460), (5461, 10921), (10922, 16383)]
    assert [node.replica_of for node in layout.nodes[3:]] == ["node-0"] * 2 + ["node-1"] * 2 + [
        "node-2"
    ] * 2
    ports = [port for node in layout.nodes for port in (node.port, node.bus_port)]
    assert len(set(ports)) == len(ports) == 18
    # The shape is the directory's, whatever a later command asks.
    layout.save(tmp_path)
    assert LocalCluster(tmp_path, primaries=1, replicas=0).layout == layout


def test_cluster_up_takes_its_options_from_the_settings_struct() -> None:
    assert settings_from(ClusterSettings, _parser().parse_args(["cluster", "up"])) == (
        ClusterSettings()
    )
    given = _parser().parse_args(["cluster", "up", "--primaries", "2", "--node-timeout", "1.5"])
    assert settings_from(ClusterSettings, given) == ClusterSettings(primaries=2, node_timeout=1.5)
    with pytest.raises(SettingsError, match="--replicas"):
        settings_from(ClusterSettings, _parser().parse_args(["cluster", "up", "--replicas", "-1"]))


def test_a_directory_that_holds_something_else_is_refused_untouched(tmp_path: Path) -> None:
    (tmp_path / "venue-id").write_text("a venue's")
    tmp_path.chmod(0o755)
    with pytest.raises(ClusterError, match="venue-id but no cluster"):
        LocalCluster(tmp_path).start()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["venue-id"]
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755
    with pytest.raises(ClusterError, match="no cluster in"):
        LocalCluster(tmp_path / "none").stop()
    assert not (tmp_path / "none").exists()


def test_a_node_that_cannot_start_says_why_and_leaves_nothing_running(tmp_path: Path) -> None:
    layout = new_layout(primaries=2, replicas=0)
    with socket.socket() as taken:  # node-1's port, in use by someone else
        taken.bind(("127.0.0.1", layout.nodes[1].port))
        taken.listen()
        layout.save(tmp_path)
        local = LocalCluster(tmp_path)
        exited = r"node-1's valkey-server exited(.|\n)*in use"
        with pytest.raises(ClusterError, match=exited), local:
            pass
    assert not any(node.running for node in local.nodes())


def test_no_node_answers_anyone_without_credentials_nor_listens_beyond_loopback(
    cluster: LocalCluster,
) -> None:
    for node in cluster.nodes():
        for credentials in ({}, {"username": "default", "password": ""}):
            # No retries: redis-py's default backs off and tries again on a refusal.
            anonymous = redis.Redis(port=node.port, retry=Retry(NoBackoff(), 0), **credentials)
            with pytest.raises(redis.exceptions.AuthenticationError):
                anonymous.ping()
            anonymous.close()
        # The client port and the cluster bus, on 127.0.0.1 alone (none on IPv6).
        assert _listening(node.port) == ["tcp:0100007F"], node.name
        assert _listening(node.bus_port) == ["tcp:0100007F"], node.name


def test_the_venues_acls_hold_on_every_node(cluster: LocalCluster) -> None:
    """ACLs are checked before a key's slot: every node refuses a gateway's write to a ledger's
    state, whichever node serves it, and lets a ledger write it, or answers where it lives."""
    operator_password = cluster.credentials()[Role.OPERATOR]
    for node in cluster.nodes():
        gateway = redis.Redis.from_url(cluster.url_for(Role.GATEWAY, node.name))
        with pytest.raises(redis.exceptions.NoPermissionError):
            gateway.hset("{l0}:accounts", "1", "x")
        with pytest.raises(redis.exceptions.NoPermissionError):
            gateway.flushall()
        gateway.close()
        ledger = redis.Redis.from_url(cluster.url_for(Role.LEDGER, node.name))
        with pytest.raises(redis.exceptions.NoPermissionError):
            ledger.hset("{m0}:books", "ACME", "x")
        ledger.close()
        operator = redis.Redis(port=node.port, username="operator", password=operator_password)
        users = {line.split()[1] for line in operator.acl_list()}
        assert users == {"default", *map(str, Role)}
        assert "off" in next(line for line in operator.acl_list() if " default " in f" {line} ")
        operator.close()


def test_every_role_uses_the_cluster_through_redis_pys_cluster_client(
    cluster: LocalCluster,
) -> None:
    for role in Role:
        client = RedisCluster.from_url(cluster.url_for(role))
        assert client.ping()
        client.close()
    operator = RedisCluster.from_url(cluster.url)
    keys = [f"tradepit:test:{index}" for index in range(300)]
    for index, key in enumerate(keys):
        operator.set(key, index)
    nodes = cluster.nodes()
    served_by = {_primary_serving(nodes, key).name for key in keys}
    assert len(served_by) == 3  # across the slots of every primary
    assert [int(value) for value in operator.mget_nonatomic(keys)] == list(range(300))

    gateway = RedisCluster.from_url(cluster.url_for(Role.GATEWAY))
    assert gateway.xadd("{l0}:in", {"command": "x"})
    assert gateway.get(keys[7]) == b"7"
    with pytest.raises(redis.exceptions.NoPermissionError):
        gateway.hset("{l0}:accounts", "1", "x")

    # One commit of a ledger shard: MULTI/EXEC in its one slot, by the hash tag.
    ledger = RedisCluster.from_url(cluster.url_for(Role.LEDGER))
    with ledger.pipeline(transaction=True) as commit:
        commit.hset("{l0}:accounts", "1", "balance")
        commit.xadd("{l0}:out", {"event": "y"})
        commit.incr("{l0}:commits")
        done = commit.execute()
    assert done[0] == 1 and done[2] == 1
    assert operator.hget("{l0}:accounts", "1") == b"balance"
    with pytest.raises(redis.exceptions.RedisClusterException), ledger.pipeline(True) as two:
        two.set("{l0}:a", 1)
        two.set("{l1}:a", 1)  # another slot: no one transaction spans two
        two.execute()
    for client in (operator, gateway, ledger):
        client.close()


def test_the_asyncio_cluster_client_too(cluster: LocalCluster) -> None:
    async def trade() -> None:
        matcher = aiocluster.RedisCluster.from_url(cluster.url_for(Role.MATCHER))
        gateway = aiocluster.RedisCluster.from_url(cluster.url_for(Role.GATEWAY))
        try:
            await gateway.xadd("{m1}:in", {"order": "1"})
            async with matcher.pipeline(transaction=True) as commit:
                commit.xrange("{m1}:in")
                commit.hset("{m1}:books", "ACME", "book")
                commit.xadd("{m1}:events", {"trade": "1"})
                read, *_ = await commit.execute()
            assert read[0][1] == {b"order": b"1"}
            assert await gateway.hget("{m1}:books", "ACME") == b"book"
            with pytest.raises(redis.exceptions.NoPermissionError):
                await matcher.hset("{l1}:accounts", "1", "x")
        finally:
            await matcher.aclose()
            await gateway.aclose()

    asyncio.run(trade())


def test_a_killed_primary_is_replaced_by_its_replica_and_comes_back_as_one(
    tmp_path: Path,
) -> None:
    with LocalCluster(tmp_path, primaries=3, replicas=1, node_timeout=NODE_TIMEOUT) as local:
        client = RedisCluster.from_url(local.url)
        keys = [f"{{l{index}}}:accounts" for index in range(64)]
        for index, key in enumerate(keys):
            client.hset(key, "cash", index)
        local.wait_replicated()  # asynchronous replication: what a kill could take otherwise
        before = local.nodes()
        victim = _primary_serving(before, "{l0}:accounts")
        heir = next(node for node in before if node.primary == victim.name)

        local.kill(victim.name)
        assert not local.node(victim.name).running
        local.wait_ready()  # the replica has taken over the slots
        promoted = local.node(heir.name)
        assert promoted.role == "primary" and promoted.slots == victim.slots
        for node in local.nodes():
            if node.running:
                info = redis.Redis.from_url(local.url_for(Role.OPERATOR, node.name))
                assert info.cluster("info")["cluster_state"] == "ok"
                info.close()
        # The same client follows the slots to their new primary; nothing is lost.
        assert [int(client.hget(key, "cash")) for key in keys] == list(range(64))
        client.hset("{l0}:accounts", "cash", 1000)

        # Started again on its port and nodes.conf, the old primary replicates its heir.
        local.restart(victim.name)
        back = local.node(victim.name)
        assert back.port == victim.port and back.id == victim.id
        assert back.role == "replica" and back.primary == heir.name and back.in_sync
        assert local.not_ready() is None

        # A manual failover hands the slots back, losing nothing.
        local.failover(victim.name)
        assert local.node(victim.name).role == "primary"
        assert local.node(heir.name).primary == victim.name
        assert client.hget("{l0}:accounts", "cash") == b"1000"
        client.close()
    assert not any(node.running for node in local.nodes())


def test_up_status_down_from_the_command_line(tmp_path: Path) -> None:
    directory = tmp_path / "cluster"
    up = _json_line(_cli(directory, "up", "--primaries", "3", "--replicas", "1"))
    try:
        nodes = up["nodes"]
        assert len(nodes) == 6 and up["already_running"] is False and len(up["started"]) == 6
        primaries = [node for node in nodes if node["role"] == "primary"]
        assert sum(high - low + 1 for node in primaries for low, high in node["slots"]) == SLOTS
        assert all(node["in_sync"] for node in nodes if node["role"] == "replica")
        # Each role's URL, with its password: printed, and kept in a file of the owner's alone.
        urls = up["urls"]
        assert set(urls) == set(map(str, Role)) and up["url"] == urls["operator"]
        assert json.loads(Path(up["urls_file"]).read_text()) == urls
        client = RedisCluster.from_url(urls["operator"])
        assert client.set("{l0}:kept", "yes")
        client.close()
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        for path in directory.rglob("*"):
            mode = stat.S_IMODE(path.lstat().st_mode)
            assert mode == (0o700 if path.is_dir() else 0o600), path

        again = _json_line(_cli(directory, "up"))
        assert again["already_running"] is True and again["started"] == []
        status = _cli(directory, "status")
        assert status.returncode == 0 and _json_line(status)["ready"] is True
        assert _operator_password(directory) not in status.stdout  # status prints none

        down = _json_line(_cli(directory, "down"))
        assert sorted(down["stopped"]) == sorted(node["name"] for node in nodes)
        assert not any(_is_valkey(node["pid"]) for node in nodes)
        stopped = _cli(directory, "status")
        assert stopped.returncode == 1 and _json_line(stopped)["running"] == 0
    finally:
        _cli(directory, "down")


def test_a_stopped_or_killed_cluster_starts_again_on_its_ports_and_nodes(tmp_path: Path) -> None:
    local = LocalCluster(tmp_path, primaries=2, replicas=1, node_timeout=NODE_TIMEOUT)
    try:
        local.start()
        before = {(node.name, node.port, node.bus_port, node.id) for node in local.nodes()}
        client = RedisCluster.from_url(local.url)
        client.set("{l0}:kept", "yes")
        client.set("{m0}:kept", "too")
        client.close()
        local.wait_replicated()
        local.stop()
        assert not any(node.running for node in local.nodes())
        assert local.not_ready() is not None
        assert local.start() == [node.name for node in local.layout.nodes]
        # Every node killed outright, the pid files left behind: started again all the same.
        for node in local.nodes():
            assert node.pid is not None
            os.kill(node.pid, signal.SIGKILL)
        _until(lambda: not any(node.running for node in local.nodes()))
        assert len(local.start()) == 4
        after = {(node.name, node.port, node.bus_port, node.id) for node in local.nodes()}
        assert after == before
        client = RedisCluster.from_url(local.url)
        assert client.mget_nonatomic(["{l0}:kept", "{m0}:kept"]) == [b"yes", b"too"]
        client.close()
    finally:
        local.stop()


@pytest.mark.slow
def test_up_starts_again_a_node_killed_outright_and_a_cluster_stopped(tmp_path: Path) -> None:
    directory = tmp_path / "cluster"
    nodes = _json_line(_cli(directory, "up", "--primaries", "2", "--replicas", "1"))["nodes"]
    try:
        replica = next(node for node in nodes if node["role"] == "replica")
        os.kill(replica["pid"], signal.SIGKILL)
        _until(lambda: not LocalCluster(directory).node(replica["name"]).running)
        status = _cli(directory, "status")
        assert status.returncode == 1
        assert replica["name"] in _json_line(status)["problem"]
        restarted = _json_line(_cli(directory, "up"))
        assert restarted["started"] == [replica["name"]] and not restarted["already_running"]
        assert _cli(directory, "status").returncode == 0

        _json_line(_cli(directory, "down"))
        back = _json_line(_cli(directory, "up"))
        assert len(back["started"]) == 4
        identity = {(node["name"], node["port"], node["id"]) for node in nodes}
        assert {(node["name"], node["port"], node["id"]) for node in back["nodes"]} == identity
    finally:
        _cli(directory, "down")


def _until(condition: Callable[[], bool]) -> None:
    """Wait for `condition`; the deadline only keeps a broken test from hanging."""
    deadline = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.02)


def _operator_password(directory: Path) -> str:
    return str(json.loads((directory / "credentials.json").read_text())["operator"])


def _is_valkey(pid: int) -> bool:
    try:
        return b"valkey-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
