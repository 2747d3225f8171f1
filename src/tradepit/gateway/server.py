"""Serving the gateway: granian's Rust HTTP and WebSocket server, embedded in this process's
event loop, so that the app, its Redis clients and its stream tailers share one loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import stat
import sys

from granian.constants import Interfaces
from granian.log import LogLevels
from granian.server.embed import Server

from tradepit.gateway.app import create_app
from tradepit.gateway.service import GatewaySettings

__all__ = ["run_gateway", "limit_unsent_bytes"]

log = logging.getLogger("tradepit.gateway")

TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)  # Linux's number for it


# Young-generation collections every this many allocations (CPython's default: 700). A frame
# sent to a stream client allocates a few objects that the cyclic GC tracks (granian's future,
# its callback handle); with thousands of clients its collections, and the full ones they
# lead to, took ~40% of the gateway's CPU (py-spy, 3,000 clients on the demo market).
GC_THRESHOLD = (50_000, 20, 20)


async def run_gateway(redis_url: str, host: str, port: int, settings: GatewaySettings) -> None:
    gc.set_threshold(*GC_THRESHOLD)
    app = create_app(redis_url, settings)
    server = Server(
        app,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        log_level=LogLevels.warning,
        log_access=False,
        backlog=1024,
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, server.stop)
    logging.getLogger("_granian").setLevel(logging.WARNING)
    tuning = None
    if settings.send_buffer > 0 and sys.platform == "linux":
        tuning = asyncio.create_task(_limit_unsent_bytes_once_listening(port, settings.send_buffer))
    try:
        await server.serve()
    finally:
        if tuning is not None:
            tuning.cancel()


async def _limit_unsent_bytes_once_listening(port: int, limit: int) -> None:
    for _ in range(1_000):
        if limit_unsent_bytes(port, limit):
            return
        await asyncio.sleep(0.01)
    log.warning("found no socket listening on port %d: the send buffer is the kernel's", port)


def limit_unsent_bytes(port: int, limit: int) -> bool:
    """Set TCP_NOTSENT_LOWAT on this process's sockets listening on `port` (the connections
    they accept inherit it); True if there was one.

    Linux grows a socket's send buffer to megabytes (net.ipv4.tcp_wmem), and a stream client
    that stops reading would have all of that written for it before the gateway could see it
    fall behind. With this option, a write blocks once `limit` bytes wait unsent, while what
    is in flight to a client that reads stays unlimited. granian builds its listening socket
    itself and says nothing of it, so it is found among the process's descriptors.
    """
    found = False
    for name in os.listdir("/proc/self/fd"):
        try:
            fd = int(name)
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            probe = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        with probe:
            try:
                listening = probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                if (
                    listening
                    and probe.family in (socket.AF_INET, socket.AF_INET6)
                    and probe.type == socket.SOCK_STREAM
                    and probe.getsockname()[1] == port
                ):
                    probe.setsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT, limit)
                    found = True
            except OSError:
                continue
    return found
