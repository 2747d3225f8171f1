"""Serving the gateway: granian's Rust HTTP and WebSocket server, embedded in this process's
event loop, so that the app, its Redis clients and its stream tailers share one loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from granian.constants import Interfaces
from granian.log import LogLevels
from granian.server.embed import Server

from tradepit.gateway.app import create_app
from tradepit.gateway.service import GatewaySettings

__all__ = ["run_gateway"]


async def run_gateway(redis_url: str, host: str, port: int, settings: GatewaySettings) -> None:
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
    await server.serve()
