"""The gateway's HTTP/1.1 protocol class alone: its CPU per request, without Redis or the app.

    python bench/http_protocol.py [--requests N] [--label TEXT]

`gateway/server.py`'s `_HttpProtocol` (uvicorn's httptools protocol with the gateway's
connection caps and deadlines and its one-write responses) takes N keep-alive requests, a
`POST` with a 20-byte body each, through one connection, on uvloop, and answers each from a
trivial ASGI app; the transport counts writes and keeps nothing. The figure is this process's
CPU time per request: the protocol, uvicorn's request cycle, the app's task, and the loop.

It measures what end-to-end runs (`bench/http.py`) cannot see on a shared 2-core machine: a
change of a fraction of a microsecond per request. To compare two commits, run it from a
`git worktree` of each with `PYTHONPATH=WORKTREE/src`, alternating; it also runs on commits from
before the connection layer (it then builds the protocol without a guard).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory is first on the path, where bench/http.py would shadow
# the standard library's `http`, which uvicorn imports: take the directory off the path first.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import argparse
import asyncio
import json
import time
from typing import Any

import uvicorn
import uvloop
from uvicorn.server import ServerState

from tradepit.gateway import server
from tradepit.gateway.service import GatewaySettings

REQUEST = (
    b"POST /v2/orders HTTP/1.1\r\nhost: tradepit\r\ncontent-type: application/json\r\n"
    b"content-length: 20\r\n\r\n" + b"x" * 20
)
WARMUP = 2_000


async def _app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closing = False
        self.writes = 0

    def write(self, data: Any) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        addresses = {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}
        return addresses.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _us_per_request(requests: int) -> float:
    config = uvicorn.Config(_app, http="httptools", lifespan="off", log_level="warning")
    config.load()
    protocol_class: Any = server._HttpProtocol
    guard_class = getattr(server, "ConnectionGuard", None)
    if guard_class is not None:
        guard = guard_class(GatewaySettings(), asyncio.get_running_loop())
        protocol_class = type("HttpProtocol", (protocol_class,), {"guard": guard})
    state = ServerState()
    protocol = protocol_class(config=config, server_state=state, app_state={})
    transport = _Transport()
    protocol.connection_made(transport)

    async def serve(count: int) -> None:
        for _ in range(count):
            protocol.data_received(REQUEST)
            while state.tasks:
                await asyncio.sleep(0)

    await serve(WARMUP)
    start = time.process_time()
    await serve(requests)
    elapsed = time.process_time() - start
    assert transport.writes >= requests and not transport.closing, "requests went unanswered"
    return elapsed / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--label", default="this commit")
    parser.add_argument("--quick", action="store_true", help="20,000 requests")
    args = parser.parse_args()
    if args.quick:
        args.requests = 20_000
    uvloop.install()
    us = asyncio.run(_us_per_request(args.requests))
    print(f"{args.label}: {us:.2f} us/request")
    print(json.dumps({"bench": "http_protocol", "requests": args.requests, "us_per_request": us}))


if __name__ == "__main__":
    main()
