"""A Valkey Cluster on this machine, from the embedded server's binary: for tests, benchmarks and
anyone who wants to try scale-out on one machine.

`LocalCluster(directory, primaries, replicas)` keeps everything in `directory` (0700): its
layout (`cluster.json`), the role users' passwords (`credentials.json`, 0600, as the embedded
server's), the ACL file every node loads (`users.acl`: only the passwords' hashes), each role's
URL (`urls.json`, 0600), and a subdirectory per node with its config, AOF, `nodes.conf`, log and
pid file. The first `start()` forms the cluster: the 16384 slots shared evenly among the
primaries (CLUSTER ADDSLOTSRANGE), the nodes met (CLUSTER MEET), the replicas attached (CLUSTER
REPLICATE). A later one starts what is not running on the same ports and `nodes.conf`, and the
nodes take up where they were, failovers included.

Every operation waits until the cluster is ready (see `topology`) and holds the directory's
lock meanwhile (`cluster.lock`, the kernel's flock), so two commands on one directory take
turns. The servers outlive this object and the process: `stop()` stops them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import msgspec
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tradepit.access import (
    ACL_FILE,
    Role,
    acl_file_text,
    load_or_create_credentials,
    make_private_dir,
    with_credentials,
    write_private,
)
from tradepit.cluster.errors import ClusterError
from tradepit.cluster.forming import form
from tradepit.cluster.layout import LAYOUT_FILE, Layout, NodeLayout, load_layout, new_layout
from tradepit.cluster.node import NodeProcess, command
from tradepit.cluster.topology import NodeReport, report_of, wait_until, what_is_not_ready
from tradepit.embedded import Fsync

__all__ = ["LocalCluster", "ClusterNode", "URLS_FILE"]

log = logging.getLogger("tradepit.cluster")

URLS_FILE = "urls.json"  # each role's URL, password included
_LOCK_FILE = "cluster.lock"
_STOP_TIMEOUT = 60.0  # seconds for a node to write its AOF out and exit


@dataclass(frozen=True)
class ClusterNode:
    """A node as it is now. What only a running node can say is None when it does not run."""

    name: str
    port: int
    bus_port: int
    directory: str
    pid: int | None
    id: str | None = None  # the cluster's name for it, kept in its nodes.conf
    role: Literal["primary", "replica"] | None = None
    primary: str | None = None  # a replica's primary, by name
    slots: tuple[tuple[int, int], ...] = ()  # a primary's, as ranges
    in_sync: bool | None = None  # a replica's: its link up and its sync done

    @property
    def running(self) -> bool:
        return self.pid is not None

    def as_json(self) -> dict[str, Any]:
        slots = [list(each) for each in self.slots]
        return {**asdict(self), "running": self.running, "slots": slots}


class LocalCluster:
    """`primaries` and `replicas` (of each primary) shape a new cluster; a directory that holds
    one keeps its own. `node_timeout` (seconds) is how long a node may not answer before the
    others count it failed and its replica takes over; it and `fsync` apply at every start.

    Nodes are named `node-0`, ...: the primaries first, then each primary's replicas in turn.
    One thread at a time."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        primaries: int = 3,
        replicas: int = 1,
        *,
        node_timeout: float = 5.0,
        fsync: Fsync = "everysec",
    ) -> None:
        if primaries < 1 or replicas < 0:
            raise ValueError("a cluster has at least one primary, and no fewer than 0 replicas")
        self.directory = Path(directory).resolve()
        self.primaries = primaries
        self.replicas = replicas
        self.node_timeout = node_timeout
        self.fsync: Fsync = fsync
        self._layout: Layout | None = None
        self._processes: dict[str, NodeProcess] = {}
        self._passwords: dict[Role, str] | None = None
        self._thread_lock = threading.RLock()
        self._lock: int | None = None  # the lock file, open while an operation runs
        self._depth = 0

    # What it is

    def exists(self) -> bool:
        """Whether the directory holds a cluster (running or not)."""
        return self._load_layout() is not None

    @property
    def layout(self) -> Layout:
        layout = self._load_layout()
        if layout is None:
            raise self._no_cluster()
        return layout

    def credentials(self) -> dict[Role, str]:
        """Each role's password, made on first use and kept in the directory."""
        if self._passwords is None:
            make_private_dir(self.directory)
            self._passwords = load_or_create_credentials(self.directory)
        return self._passwords

    def url_for(self, role: Role, node: str | None = None) -> str:
        """`role`'s URL, naming `node` (by default the first that runs): any node of a cluster
        is a way into all of it."""
        layout = self.layout
        if node is None:
            running = [each for each in layout.nodes if self._process(each).running()]
            chosen = (running or list(layout.nodes))[0]
        else:
            chosen = layout.node(node)
        url = f"redis://127.0.0.1:{chosen.port}/0"
        return with_credentials(url, str(role), self.credentials()[role])

    @property
    def url(self) -> str:
        """The operator's URL."""
        return self.url_for(Role.OPERATOR)

    @property
    def urls_file(self) -> Path:
        return self.directory / URLS_FILE

    def nodes(self) -> list[ClusterNode]:
        """Every node, running or not, with what each running one says of itself."""
        layout = self.layout
        names = {node.port: node.name for node in layout.nodes}
        return [self._node_now(node, names) for node in layout.nodes]

    def _node_now(self, node: NodeLayout, names: dict[int, str]) -> ClusterNode:
        process = self._process(node)
        pid = process.pid()
        known = ClusterNode(node.name, node.port, node.bus_port, str(process.directory), pid)
        report = self._report(process) if pid is not None else None
        if report is None:  # not running, or not answering
            return known
        myself = report.myself
        primary = None
        if myself.primary_id is not None:
            peer = {peer.id: peer for peer in report.peers}.get(myself.primary_id)
            primary = names.get(peer.port, myself.primary_id) if peer else myself.primary_id
        return replace(
            known,
            id=myself.id,
            role="primary" if myself.is_primary else "replica",
            primary=primary,
            slots=myself.slots,
            in_sync=None if myself.is_primary else report.in_sync,
        )

    def node(self, name: str) -> ClusterNode:
        for node in self.nodes():
            if node.name == name:
                return node
        raise KeyError(f"no node {name!r} in this cluster")

    def not_ready(self) -> str | None:
        """Why the cluster is not ready now (a node not running among others), or None."""
        layout = self.layout
        stopped = [node.name for node in layout.nodes if not self._process(node).running()]
        if stopped:
            return f"not running: {', '.join(stopped)}"
        return self._why_running_not_ready()

    # What it does

    def start(self, timeout: float = 120.0) -> list[str]:
        """Start every node that is not running (forming the cluster, the first time), wait
        until the cluster is ready, and write each role's URL to `urls_file`; the names of the
        nodes it started (none if all ran)."""
        with self._operation(create=True):
            deadline = time.monotonic() + timeout
            layout = self._layout_to_start()
            started = [node for node in layout.nodes if not self._process(node).running()]
            self._start_nodes(started, deadline)
            if not layout.formed:
                self._form(layout, deadline)
                layout = msgspec.structs.replace(layout, formed=True)
                layout.save(self.directory)
                self._layout = layout
            self._wait_ready(deadline, every_node=True)
            urls = {str(role): self.url_for(role) for role in Role}
            write_private(self.urls_file, json.dumps(urls, indent=2) + "\n")
            return [node.name for node in started]

    def stop(self, timeout: float = _STOP_TIMEOUT) -> list[str]:
        """Stop every running node cleanly (SHUTDOWN, which writes its AOF out), the replicas
        first, so that no primary waits for them, and no failover starts; the names of the
        nodes it stopped."""
        with self._operation():
            deadline = time.monotonic() + timeout
            running = [self._process(node) for node in self.layout.nodes]
            running = [process for process in running if process.running()]
            reports = {process.name: self._report(process) for process in running}
            replicas = [
                process
                for process in running
                if (report := reports[process.name]) is not None and not report.myself.is_primary
            ]
            primaries = [process for process in running if process not in replicas]
            for group in (replicas, primaries):
                for process in group:
                    self._shut_down(process)
                for process in group:
                    process.wait_exited(deadline)
            return [process.name for process in running]

    def kill(self, node: str) -> None:
        """SIGKILL one node, as a crash would, and wait until it is gone. Nothing else: its
        replica takes over once `node_timeout` has passed (`wait_ready` waits for that)."""
        with self._operation():
            process = self._process(self.layout.node(node))
            if not process.send(signal.SIGKILL):
                raise ClusterError(f"{node} is not running")
            process.wait_exited(time.monotonic() + _STOP_TIMEOUT)

    def restart(self, node: str, timeout: float = 120.0) -> None:
        """Start one node again on its port and nodes.conf (a running one is stopped cleanly
        first), and wait until the running nodes make a ready cluster with it."""
        with self._operation():
            deadline = time.monotonic() + timeout
            process = self._process(self.layout.node(node))
            if process.running():
                self._shut_down(process)
                process.wait_exited(deadline)
            self._start_nodes([process.layout], deadline)
            self._wait_ready(deadline, every_node=False)

    def failover(self, replica: str, timeout: float = 120.0) -> None:
        """Make `replica` its primary's primary, by CLUSTER FAILOVER on it: the primary stops
        taking writes, the replica catches up, takes the slots, and the old primary becomes
        its replica. Nothing acknowledged is lost."""
        with self._operation():
            deadline = time.monotonic() + timeout
            process = self._process(self.layout.node(replica))
            report = self._report(process)
            if report is None:
                raise ClusterError(f"{replica} is not running")
            if report.myself.is_primary:
                raise ClusterError(f"{replica} is a primary: fail over one of its replicas")
            with contextlib.closing(self._connect(process)) as connection:
                try:
                    command(connection, "CLUSTER", "FAILOVER")
                except ResponseError as error:  # its primary is down, say: a failover is due
                    raise ClusterError(f"{replica} refused CLUSTER FAILOVER: {error}") from None

            def promoted() -> str | None:
                now = self._report(process)
                return None if now is not None and now.myself.is_primary else "not yet"

            wait_until(promoted, deadline, f"{replica} to be promoted")
            self._wait_ready(deadline, every_node=False)

    def migrate(self, slot: int, target: str, timeout: float = 120.0) -> None:
        """Move one slot, keys and all, to the primary `target`, by Valkey's atomic slot
        migration (CLUSTER MIGRATESLOTS on the slot's owner): the keys are copied while the
        owner still serves them, then the slot changes hands at once; clients that ask the
        old owner afterwards are told MOVED. Returns once every running node sees the move."""
        with self._operation():
            deadline = time.monotonic() + timeout
            nodes = self.nodes()
            owner = next(
                (
                    node
                    for node in nodes
                    if node.role == "primary" and any(lo <= slot <= hi for lo, hi in node.slots)
                ),
                None,
            )
            destination = next((node for node in nodes if node.name == target), None)
            if owner is None or destination is None or destination.id is None:
                raise ClusterError(f"slot {slot} has no owner, or {target} is not running")
            if destination.role != "primary":
                raise ClusterError(f"{target} is not a primary")
            if owner.name == target:
                return
            source = self._process(self.layout.node(owner.name))
            with contextlib.closing(self._connect(source)) as connection:
                try:
                    command(
                        connection,
                        "CLUSTER",
                        "MIGRATESLOTS",
                        "SLOTSRANGE",
                        slot,
                        slot,
                        "NODE",
                        destination.id,
                    )
                except ResponseError as error:
                    raise ClusterError(f"{owner.name} refused to migrate {slot}: {error}") from None

            def moved() -> str | None:
                for node in self.nodes():
                    if node.running and node.role == "primary":
                        holds = any(lo <= slot <= hi for lo, hi in node.slots)
                        if holds != (node.name == target):
                            return f"{node.name} does not see slot {slot} on {target} yet"
                return None

            wait_until(moved, deadline, f"slot {slot} to move to {target}")
            self._wait_ready(deadline, every_node=False)

    def flush(self) -> None:
        """Empty the cluster: FLUSHALL on every running primary, then wait until their replicas
        have followed (for tests and benchmarks that start anew on a running cluster)."""
        with self._operation():
            for node in self.layout.nodes:
                process = self._process(node)
                report = self._report(process) if process.running() else None
                if report is not None and report.myself.is_primary:
                    with contextlib.closing(self._connect(process)) as connection:
                        command(connection, "FLUSHALL")
        self.wait_replicated()

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until the running nodes make a ready cluster: after a `kill`, until the killed
        primary's replica has taken over its slots."""
        with self._operation():
            self._wait_ready(time.monotonic() + timeout, every_node=False)

    def wait_replicated(self, timeout: float = 60.0) -> None:
        """Wait until every running replica has what its primary had when this was called.
        Replication is asynchronous: a write acknowledged just before its primary dies can be
        lost at the failover unless it had reached a replica (the venue will WAIT for that)."""
        with self._operation():
            deadline = time.monotonic() + timeout
            targets: dict[str, tuple[NodeProcess, int]] = {}  # replica: (it, offset to reach)
            for node in self.layout.nodes:
                process = self._process(node)
                if not process.running():
                    continue
                with contextlib.closing(self._connect(process)) as connection:
                    info: dict[str, Any] = connection.info("replication")
                if info.get("role") != "master":
                    continue
                for key, value in info.items():
                    if key.startswith("slave") and isinstance(value, dict):
                        replica = self._process_on_port(int(value["port"]))
                        targets[replica.name] = (replica, int(info["master_repl_offset"]))

            def caught_up() -> str | None:
                for name, (replica, offset) in targets.items():
                    with contextlib.closing(self._connect(replica)) as connection:
                        info: dict[str, Any] = connection.info("replication")
                    if int(info.get("slave_repl_offset", -1)) < offset:
                        return f"{name} is at {info.get('slave_repl_offset')} of {offset}"
                return None

            wait_until(caught_up, deadline, "the replicas to catch up")

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            # What did start must not outlive a `with` that never began.
            with contextlib.suppress(ClusterError):
                self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # How

    def _load_layout(self) -> Layout | None:
        if self._layout is None:
            try:
                self._layout = load_layout(self.directory)
            except ValueError as error:
                raise ClusterError(str(error)) from None
        return self._layout

    def _process(self, node: NodeLayout) -> NodeProcess:
        process = self._processes.get(node.name)
        if process is None or process.layout != node:
            process = self._processes[node.name] = NodeProcess(self.directory, node)
        return process

    def _process_on_port(self, port: int) -> NodeProcess:
        for node in self.layout.nodes:
            if node.port == port:
                return self._process(node)
        raise ClusterError(f"a node on port {port} is none of this cluster's")

    def _layout_to_start(self) -> Layout:
        """The directory's layout, or a new one in a directory that holds nothing else."""
        layout = self._load_layout()
        if layout is not None:
            return layout
        self._check_directory(create=True)
        layout = new_layout(self.primaries, self.replicas)
        self.credentials()
        layout.save(self.directory)
        self._layout = layout
        return layout

    def _config(self, process: NodeProcess) -> str:
        return process.config_text(
            node_timeout=self.node_timeout,
            fsync=self.fsync,
            acl_file=self.directory / ACL_FILE,
            operator_password=self.credentials()[Role.OPERATOR],
        )

    def _start_nodes(self, nodes: list[NodeLayout], deadline: float) -> None:
        # Rules come from this tradepit's `access.RULES`, anew at each start.
        write_private(self.directory / ACL_FILE, acl_file_text(self.credentials()))
        processes = [self._process(node) for node in nodes]
        for process in processes:
            log.info("starting %s on port %d", process.name, process.port)
            process.start(self._config(process))
        for process in processes:
            process.wait_answering(self.credentials()[Role.OPERATOR], deadline)

    def _form(self, layout: Layout, deadline: float) -> None:
        processes = [self._process(node) for node in layout.nodes]
        connections = {process.name: self._connect(process) for process in processes}
        try:
            form(layout, connections, deadline)
        finally:
            for connection in connections.values():
                connection.close()

    def _wait_ready(self, deadline: float, *, every_node: bool) -> None:
        check = self.not_ready if every_node else self._why_running_not_ready
        wait_until(check, deadline, "the cluster to be ready")

    def _why_running_not_ready(self) -> str | None:
        layout = self.layout
        reports: dict[str, NodeReport] = {}
        for node in layout.nodes:
            process = self._process(node)
            if not process.running():
                continue
            report = self._report(process)
            if report is None:
                return f"{node.name} does not answer"
            reports[node.name] = report
        names = {node.port: node.name for node in layout.nodes}
        return what_is_not_ready(reports, names, len(layout.nodes))

    def _connect(self, process: NodeProcess) -> redis.Redis:
        return process.connect(self.credentials()[Role.OPERATOR])

    def _report(self, process: NodeProcess) -> NodeReport | None:
        """What a node says; None if it does not answer."""
        try:
            with contextlib.closing(self._connect(process)) as connection:
                return report_of(connection)
        except (RedisConnectionError, RedisTimeoutError, OSError):
            return None

    def _shut_down(self, process: NodeProcess) -> None:
        """SHUTDOWN on the operator's connection, which writes the AOF out and exits; SIGTERM,
        which does the same, to a node that cannot be reached or refuses it."""
        with contextlib.closing(self._connect(process)) as connection:
            try:
                connection.ping()
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                log.warning("%s does not answer (%s); sending SIGTERM", process.name, error)
                process.send(signal.SIGTERM)
                return
            try:
                command(connection, "SHUTDOWN")
            except (RedisConnectionError, RedisTimeoutError, OSError):
                pass  # the server closes the connection as it exits: SHUTDOWN worked
            except ResponseError as error:
                log.warning("%s refused SHUTDOWN (%s); sending SIGTERM", process.name, error)
                process.send(signal.SIGTERM)

    def _no_cluster(self) -> ClusterError:
        return ClusterError(
            f"no cluster in {self.directory} ({LAYOUT_FILE} is missing): "
            "`tradepit cluster up` makes one"
        )

    def _check_directory(self, *, create: bool) -> None:
        """Before anything is written there: refuse a directory that holds something else
        than a cluster (a venue's data, say), and unless `create`, one with no cluster."""
        if (self.directory / LAYOUT_FILE).exists():
            return
        if not create:
            raise self._no_cluster()
        if not self.directory.exists():
            return
        if not self.directory.is_dir():
            raise ClusterError(f"{self.directory} is not a directory")
        others = sorted(path.name for path in self.directory.iterdir() if path.name != _LOCK_FILE)
        if others:
            raise ClusterError(
                f"{self.directory} holds {', '.join(others[:5])} but no cluster "
                f"({LAYOUT_FILE} is missing): give a new or empty directory"
            )

    @contextlib.contextmanager
    def _operation(self, *, create: bool = False) -> Iterator[None]:
        """Hold the directory's lock (and this object's) while an operation runs; `create`: on
        a directory that may hold no cluster yet."""
        with self._thread_lock:
            if self._depth == 0:
                self._check_directory(create=create)
                make_private_dir(self.directory)
                lock = os.open(self.directory / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                except BaseException:
                    os.close(lock)
                    raise
                self._lock = lock
                self._layout = None  # another process may have made or formed it meanwhile
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._lock is not None:
                    os.close(self._lock)  # which releases the flock
                    self._lock = None
