"""The embedded Valkey's process: the allocator it runs with, its hold on its data directory, and
who may talk to it."""

from __future__ import annotations

import ctypes.util
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tradepit.access import Role
from tradepit.embedded import DataDirInUseError, EmbeddedValkey, free_port


def _mapped_libraries(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
def test_the_server_runs_with_jemalloc_where_the_system_has_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with EmbeddedValkey(tmp_path / "with") as server:
        assert server.process is not None
        maps = _mapped_libraries(server.process.pid)
    assert ("libjemalloc" in maps) == (ctypes.util.find_library("jemalloc") is not None)

    monkeypatch.setenv("TRADEPIT_VALKEY_MALLOC", "libc")
    with EmbeddedValkey(tmp_path / "without") as server:
        assert server.process is not None
        assert "libjemalloc" not in _mapped_libraries(server.process.pid)


def test_a_server_that_fails_to_start_leaves_its_data_dir_free(tmp_path: Path) -> None:
    with socket.socket() as taken:  # the port the first server is told to use
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        failing = EmbeddedValkey(tmp_path, port=taken.getsockname()[1])
        with pytest.raises(RuntimeError, match="valkey-server exited"):
            failing.start()
    with EmbeddedValkey(tmp_path) as server:
        assert server.alive()
    with EmbeddedValkey(tmp_path), pytest.raises(DataDirInUseError, match="in use by another"):
        EmbeddedValkey(tmp_path).start()


def _refused(client: redis.Redis, command: Callable[[redis.Redis], object]) -> str:
    with pytest.raises(redis.exceptions.ResponseError) as refused:
        command(client)
    return str(refused.value)


def test_the_server_answers_no_one_without_credentials_and_listens_on_no_port(
    tmp_path: Path,
) -> None:
    with EmbeddedValkey(tmp_path) as server:
        assert server.process is not None
        anonymous = redis.Redis(unix_socket_path=str(server.socket_path))
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.ping()
        anonymous.close()
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(unix_socket_path=str(server.socket_path), password="guess").ping()
        # No TCP listener at all: the server's sockets are its Unix socket alone.
        net = Path(f"/proc/{server.process.pid}/net")
        listening = (net / "tcp").read_text() + (net / "tcp6").read_text()
        inodes = {
            os.readlink(f"/proc/{server.process.pid}/fd/{fd}")
            for fd in os.listdir(f"/proc/{server.process.pid}/fd")
        }
        tcp_listeners = [
            line.split()[9]
            for line in listening.splitlines()
            if len(line.split()) > 9 and line.split()[3] == "0A"  # LISTEN
        ]
        assert not any(f"socket:[{inode}]" in inodes for inode in tcp_listeners)


def test_a_tcp_port_is_opt_in_and_needs_credentials_too(tmp_path: Path) -> None:
    port = free_port()
    with EmbeddedValkey(tmp_path, port=port) as server:
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=port).ping()
        operator = redis.Redis.from_url(server.tcp_url)
        assert operator.ping()
        operator.close()


def test_each_role_writes_only_what_it_owns(tmp_path: Path) -> None:
    with EmbeddedValkey(tmp_path) as server:
        gateway = redis.Redis.from_url(server.url_for(Role.GATEWAY))
        ledger = redis.Redis.from_url(server.url_for(Role.LEDGER))
        matcher = redis.Redis.from_url(server.url_for(Role.MATCHER))
        operator = redis.Redis.from_url(server.url)
        operator.hset("{l0}:accounts", "1", "balance")
        # The gateway reads a ledger's state and appends to its inbox, never writes its state.
        assert gateway.hget("{l0}:accounts", "1") == b"balance"
        assert gateway.xadd("{l0}:in", {"c": "x"})
        assert "No permissions" in _refused(gateway, lambda r: r.hset("{l0}:accounts", "1", "x"))
        assert "No permissions" in _refused(gateway, lambda r: r.delete("{l0}:accounts"))
        assert "No permissions" in _refused(gateway, lambda r: r.xadd("{l0}:to:m0", {"c": "x"}))
        # A stage writes its own kind of shard, and reads the catalogue without writing it.
        assert ledger.hset("{l0}:accounts", "2", "x") == 1
        assert "No permissions" in _refused(ledger, lambda r: r.hset("{m0}:books", "A", "x"))
        assert "No permissions" in _refused(ledger, lambda r: r.set("tradepit:config", "x"))
        assert "No permissions" in _refused(matcher, lambda r: r.hset("{l0}:accounts", "1", "x"))
        # Nobody but the operator reconfigures, flushes or stops the server.
        for role in (gateway, ledger, matcher):
            for command in ("FLUSHALL", "SHUTDOWN", "MONITOR"):
                assert "no permissions" in _refused(
                    role, lambda r, command=command: r.execute_command(command)
                )
            assert "no permissions" in _refused(
                role, lambda r: r.execute_command("CONFIG", "SET", "dir", "/tmp")
            )
        assert operator.hget("{l0}:accounts", "1") == b"balance"
        for client in (gateway, ledger, matcher, operator):
            client.close()


def test_the_data_directory_is_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    (data_dir / "left-by-an-older-version.json").write_text("{}")
    (data_dir / "left-by-an-older-version.json").chmod(0o644)
    with EmbeddedValkey(data_dir) as server:
        redis.Redis.from_url(server.url).set("k", "v")
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for directory, subdirectories, files in os.walk(data_dir):
        for name in subdirectories:
            assert stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode) == 0o700, name
        for name in files:
            path = os.path.join(directory, name)
            assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, path


def test_a_data_directory_too_deep_for_a_socket_gets_a_private_one(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with EmbeddedValkey(deep) as server:
        assert server.socket_path.parent != deep
        assert stat.S_IMODE(server.socket_path.parent.stat().st_mode) == 0o700
        assert redis.Redis.from_url(server.url).ping()
