"""Serving the gateway: uvicorn, with httptools parsing HTTP in C, on this process's event loop,
so that the app, its Redis clients and its stream tailers share one loop and one thread.

Why not granian, whose Rust server answers ~2.6x the requests per CPU-second of uvicorn on a
trivial route flat out (TOOLCHAIN.md): granian does its I/O on a Rust thread and hands each
request to the Python loop and each response back, a cross-thread wake-up each way. With the
order path's own waits in between, nothing amortizes them: measured with bench/http.py on this
machine (bench/RESULTS.md), uvicorn took ~0.41 ms of the gateway's CPU per order (submit and
cancel) against granian's ~0.62 at a paced 1,000 orders/s, and answered more orders flat out.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

import uvicorn

from tradepit.gateway.app import create_app
from tradepit.gateway.service import GatewaySettings

__all__ = ["run_gateway"]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # SIGINT and SIGTERM stop it gracefully, handled on the running loop. (uvicorn's own
        # handling raises the signal again once stopped, which would end the process by it.)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, self.handle_exit, signum, None)
        yield


async def run_gateway(redis_url: str, host: str, port: int, settings: GatewaySettings) -> None:
    config = uvicorn.Config(
        create_app(redis_url, settings),
        host=host,
        port=port,
        loop="none",  # the running one (uvloop, set by the CLI)
        http="httptools",
        ws="websockets-sansio",
        lifespan="on",
        log_level="warning",
        access_log=False,
        server_header=False,
        backlog=1024,
        timeout_graceful_shutdown=5,  # then WebSockets and requests still open are cut
    )
    await _Server(config).serve()
