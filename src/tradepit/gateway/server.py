"""Serving the gateway: uvicorn (httptools for HTTP/1.1, websockets' sans-I/O protocol for
WebSockets) in this process's event loop, so that the app, its Redis clients and its stream
tailers share one loop and one thread.

uvicorn rather than granian: granian does its I/O on a Rust thread and hands every request to
the Python loop and every response back (an eventfd write and a thread wake-up each way, plus
its own thread's CPU). At the paced rates a person or a bot trades at nothing amortizes that,
and it cost ~0.2 ms of CPU more per order (bench/RESULTS.md, "http"). uvicorn's WebSocket
`send` also waits while the client's transport is paused, which is what lets the market data
stream see a client that stops reading (datastream.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
from collections.abc import Iterator

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from tradepit.gateway.app import create_app
from tradepit.gateway.connections import ConnectionClock, ConnectionGuard, error_response
from tradepit.gateway.datastream import FRAME_SINK
from tradepit.gateway.service import GatewaySettings

__all__ = ["run_gateway", "listening_socket"]

log = logging.getLogger("tradepit.gateway")

TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)  # Linux's number for it

# Young-generation collections every this many allocations (CPython's default: 700). A frame
# sent to a stream client allocates a few objects that the cyclic GC tracks (its task, the
# callback handle); with thousands of clients its collections, and the full ones they lead to,
# took ~40% of the gateway's CPU (py-spy, 3,000 clients on the demo market).
GC_THRESHOLD = (50_000, 20, 20)

BACKLOG = 1024


class _Server(uvicorn.Server):
    """uvicorn's server, minus its signal handling: it re-raises a caught SIGTERM once it has
    shut down, which would end the process before `run_gateway`'s caller has cleaned up. The
    caller's loop handlers ask it to exit instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _HeadWithBody:
    """The transport uvicorn writes a response to, sending its head and its body in one write.

    uvicorn writes a response's head on `http.response.start` and its body on
    `http.response.body`: two system calls, and the client wakes up for the head alone, then
    again for the body (an order's ack took both). Here a write is held until the next one,
    which it is sent with, or the end of the event loop's turn, or an empty write (the end of an
    empty body), or a close, whichever comes first: at most one write is ever held.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        # Kept, not asked for per write: on Python 3.11 asyncio.get_running_loop() makes a
        # getpid() system call each time (py-spy: 1% of the gateway under load).
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif data:
            self._held = data
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self.flush()
        self._transport.close()


class _HttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, each response written through a `_HeadWithBody`, with the
    connection caps and deadlines of `guard` (connections.py), which replace uvicorn's
    keep-alive timeout (it has no deadline for a head, a body, or a connection that never
    sends a byte)."""

    guard: ConnectionGuard  # set by `run_gateway`, shared by its connections

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._responses = _HeadWithBody(transport, self.loop)
        self._clock: ConnectionClock | None = None
        # The request the app has (uvicorn's `cycle` is the last one read, which may be one
        # pipelined behind it).
        self._current: RequestResponseCycle | None = None
        refusal = self.guard.admit(self.client, self.server_state.default_headers)
        if refusal is not None:
            transport.write(refusal)
            transport.close()
            return
        self._clock = self.guard.clock(self._time_out, self._body_pending)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._clock is not None:  # admitted, and not handed to a WebSocket
            self._clock.stop()
            self._clock = None
            self.guard.release(self.client)

    def handle_websocket_upgrade(self) -> None:
        # The WebSocket protocol takes the connection, and its place in the count, over.
        assert self._clock is not None
        self._clock.stop()
        self._clock = None
        super().handle_websocket_upgrade()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        clock = self._clock
        if clock is not None:
            clock.request_begun()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle, clock = self.cycle, self._clock
        # The request's cycle exists and its task has not run yet, unless this is a WebSocket
        # upgrade: that makes no cycle (this one is the last request's), and keeps the
        # transport itself.
        if cycle is not None and cycle.scope is self.scope:
            cycle.transport = self._responses  # type: ignore[assignment]
            if clock is not None:
                if self.pipeline:  # queued behind a request in progress
                    clock.head_queued()
                else:
                    self._current = cycle
                    clock.head_complete()

    def on_response_complete(self) -> None:
        # uvicorn's, less its keep-alive timer: the clock's idle deadline is that.
        self.server_state.total_requests += 1
        clock = self._clock
        if self.transport.is_closing() or clock is None:
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._current = cycle
            clock.head_complete()  # its turn: the clock has its body's time from now
            self._start_asgi_task(cycle, app)
        else:
            clock.response_complete()

    def _body_pending(self) -> bool:
        cycle = self._current
        return cycle is not None and cycle.more_body and not cycle.response_complete

    def _time_out(self, answer: bool) -> None:
        """A deadline has passed: cut the connection, with a 408 if `answer` and nothing of a
        response has gone out."""
        if self.transport.is_closing():
            return
        cycle = self._current
        if cycle is not None and not cycle.response_complete:
            # Its app waits for a body that is not coming: it reads a disconnect, as if the
            # client had gone, and what it sends from now on goes nowhere.
            answer = answer and not cycle.response_started
            cycle.disconnected = True
            cycle.message_event.set()
        if answer:
            self._responses.write(
                error_response(
                    408,
                    "the request did not arrive in time",
                    self.server_state.default_headers,
                )
            )
        self._responses.close()


class _WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, with two changes for the market data streams:

    - a smaller write buffer: writing waits while more than `write_buffer_bytes` wait in the
      transport (uvloop's default is 64 KiB, which would hide a stream client that stops
      reading behind a minute of demo market data);
    - a `FrameSink` in the connection's scope (datastream.py): frames encoded once for many
      connections are written to the transport as they are. Per frame and client, uvicorn's
      `send` costs a task, the encoding of the frame and its write; a frame fanned out to
      thousands of clients then costs the write alone (bench/RESULTS.md, "fanout").

    The sink reads the state uvicorn keeps (`close_sent`, `disconnected`, `writable`); the
    stream tests run on it.

    It is made only by `_HttpProtocol`'s upgrade, whose place in `guard`'s count it takes over
    (connections.py): a WebSocket counts against its address's cap, but has no deadlines.
    """

    write_buffer_bytes = 0  # 0: the event loop's default
    guard: ConnectionGuard  # set by `run_gateway`, shared by its connections

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.write_buffer_bytes > 0 and isinstance(transport, asyncio.WriteTransport):
            transport.set_write_buffer_limits(high=self.write_buffer_bytes)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.guard.release(self.client)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # set only if the handshake is acceptable
        if scope is not None:
            scope["extensions"][FRAME_SINK] = self

    def write_frame(self, frame: bytes) -> bool:
        if (
            self.close_sent
            or self.disconnected
            or not self.handshake_complete
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(frame)
        return True

    @property
    def write_paused(self) -> bool:
        return not self.writable.is_set()

    async def write_resumed(self) -> None:
        await self.writable.wait()


async def run_gateway(
    redis_url: str,
    settings: GatewaySettings,
    *,
    fd: int | None = None,
    parent_pid: int | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, or until process `parent_pid` (if given) has exited; on
    the listening socket inherited as file descriptor `fd` if given, else on the settings'
    host and port."""
    gc.set_threshold(*GC_THRESHOLD)
    app = create_app(redis_url, settings)
    loop = asyncio.get_running_loop()
    guard = ConnectionGuard(settings, loop)
    http_protocol = type("HttpProtocol", (_HttpProtocol,), {"guard": guard})
    websocket_protocol = type(
        "WebSocketProtocol",
        (_WebSocketProtocol,),
        {"write_buffer_bytes": settings.send_buffer, "guard": guard},
    )
    config = uvicorn.Config(
        app,
        http=http_protocol,
        ws=websocket_protocol,
        # Compression would make each stream frame a client's own (deflate keeps a window per
        # connection), where now one frame serves every client with the same subscriptions.
        ws_per_message_deflate=False,
        # The apps check each message against their own, smaller, limit and answer in JSON.
        ws_max_size=1024 * 1024,
        lifespan="on",
        log_level="warning",
        access_log=False,
        server_header=False,
        # uvicorn would otherwise take X-Forwarded-For from any loopback peer as the client's
        # address: a local process could then choose the address that the per-address limits
        # (connections, failed authentications, public routes) count it under. Behind a proxy
        # every client is the proxy's address, as the README says; and its middleware cost the
        # gateway as much as one of the chain's layers (bench/RESULTS.md, "One chain").
        proxy_headers=False,
        backlog=BACKLOG,
    )
    server = _Server(config)

    def stop() -> None:
        server.should_exit = True

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop)

    def stop_unless_cancelled(task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            stop()

    orphaned = None if parent_pid is None else asyncio.create_task(_exited(parent_pid))
    if orphaned is not None:
        orphaned.add_done_callback(stop_unless_cancelled)
    if fd is not None:
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
    else:
        sock = listening_socket(settings.host, settings.port, settings.send_buffer)
    sweeper = asyncio.create_task(guard.sweep_forever())
    try:
        await server.serve(sockets=[sock])
    finally:
        sweeper.cancel()
        sock.close()
        if orphaned is not None:
            orphaned.cancel()


async def _exited(pid: int) -> None:
    """Return once process `pid`, this one's parent, has exited: the kernel then gives this
    process another parent. (Polled: there is no portable way to be told.)"""
    while os.getppid() == pid:
        await asyncio.sleep(0.5)
    log.warning("the process that started this gateway (pid %d) has exited; stopping", pid)


def listening_socket(host: str, port: int, unsent_limit: int = 0) -> socket.socket:
    """The gateway's listening socket, with TCP_NOTSENT_LOWAT set to `unsent_limit` bytes if
    that is above 0 (the connections it accepts inherit it).

    Linux grows a socket's send buffer to megabytes (net.ipv4.tcp_wmem), and a stream client
    that stops reading would have all of that written for it before the gateway could see it
    fall behind. With this option the socket takes no more once `unsent_limit` bytes wait
    unsent, while what is in flight to a client that reads stays unlimited.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if unsent_limit > 0:
            with contextlib.suppress(OSError):  # not Linux: the send buffer is the kernel's
                sock.setsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT, unsent_limit)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
