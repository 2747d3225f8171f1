"""The gateway's first layer, beneath HTTP: which connections it keeps, and for how long.

Anyone who can reach the gateway could otherwise hold its file descriptors: connections that
send nothing, or a byte of a head a second, or half a body, were all still open after 75 s, and
nothing capped how many one address held (issue 18). So:

- **Caps.** One client address holds at most `max_connections_per_client` connections at once,
  HTTP and WebSocket together, and the process at most `max_connections`, always below its
  descriptor limit (`connection_cap`). A connection over either cap is answered at once, a 429
  or a 503 with Alpaca's JSON error body and `Connection: close`, and closed; it is never read.
- **Deadlines.** A request's head must arrive whole within `header_timeout` of the connection's
  start, or, on a keep-alive connection, of the request's first byte; its body within
  `body_timeout` of its head; and after a response the next request must begin within
  `idle_timeout`. A deadline is set when its phase begins and no byte moves it, so a client that
  trickles a byte a second is cut when its time is up, not kept alive by each byte. A request
  cut before anything of its response was sent is answered 408; a connection cut while it
  owed nothing (silent since it opened, or idle after a response) is closed without a word:
  a 408 there would be read as the answer to a request the client sends at that moment.
- **WebSockets.** Once upgraded, a connection has no deadline: the streams have their own
  backpressure and heartbeats (datastream.py, uvicorn's pings). Its handshake is an HTTP head,
  and has the head's deadline.

The protocol classes in server.py (`_HttpProtocol`, `_WebSocketProtocol`) call in here from
uvicorn's hooks; nothing here knows uvicorn.

Deadlines are enforced by one sweep over the HTTP connections, a quarter of the shortest
timeout apart (at most 1 s), rather than by a timer per phase of each request: a request's path
then costs a few attribute writes (~0.35 us on this VM), where uvicorn's one keep-alive timer,
which this replaces, cost ~2 us to arm and cancel; a deadline passes within two sweep intervals
of its time, never before it. A sweep over 10,000 connections takes ~0.15-0.35 ms.
"""

from __future__ import annotations

import asyncio
import http
import math
import resource
from collections.abc import Callable, Iterable
from typing import Final

from tradepit.gateway.errors import alpaca_code
from tradepit.gateway.service import GatewaySettings
from tradepit.stage.messages import encode

__all__ = [
    "ConnectionClock",
    "ConnectionCounter",
    "ConnectionGuard",
    "client_address",
    "connection_cap",
    "error_response",
]

# Descriptors kept for everything but client connections: the Redis pool (client.py's 100), the
# listening socket, the event loop's own, logs; the rest may be connections.
DESCRIPTOR_RESERVE: Final = 256

_SWEEPS_PER_TIMEOUT: Final = 4
_LONGEST_SWEEP: Final = 1.0  # seconds
_SHORTEST_SWEEP: Final = 0.05

# A connection's phases, and what it owes in each.
_HEAD: Final = 0  # the head of a request (or, on a new connection, of its first)
_BODY: Final = 1  # the rest of a request's body
_BUSY: Final = 2  # nothing: the app has the request (it has its own reply timeout)
_IDLE: Final = 3  # the first byte of its next request
_NEVER: Final = math.inf


def connection_cap(settings: GatewaySettings) -> int:
    """The connections the process may hold at once: `settings.max_connections`, but never
    more than the descriptor limit (RLIMIT_NOFILE) less DESCRIPTOR_RESERVE, so that the gateway
    always has the descriptors it needs for Redis and its own work."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20  # what Linux allows at most by default (fs.nr_open)
    bound = max(soft - DESCRIPTOR_RESERVE, soft // 2)
    wanted = settings.max_connections
    return bound if wanted <= 0 else min(wanted, bound)


def client_address(client: tuple[str, int] | None) -> str:
    """The address connections are counted by (uvicorn's `client`; None on a Unix socket)."""
    return client[0] if client else ""


def error_response(status: int, message: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> bytes:
    """A whole HTTP/1.1 response that ends its connection: Alpaca's JSON error body, `headers`
    (uvicorn's default ones: its date), `Connection: close`."""
    body = encode({"code": alpaca_code(status), "message": message})
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, http.HTTPStatus(status).phrase.encode())]
    lines += [name + b": " + value + b"\r\n" for name, value in headers]
    lines.append(b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body))
    lines.append(b"connection: close\r\n\r\n")
    return b"".join(lines) + body


class ConnectionCounter:
    """The connections held at once, per client address and in all, against their caps."""

    def __init__(self, per_client: int, total: int) -> None:
        self.per_client = per_client  # 0: no cap
        self.cap = total
        self.total = 0
        self._by_address: dict[str, int] = {}

    def admit(self, address: str) -> tuple[int, str] | None:
        """Count one more connection from `address`, or say why not: a status and a message."""
        if self.total >= self.cap:
            return 503, "the gateway holds all the connections it can; try again shortly"
        held = self._by_address.get(address, 0)
        if held >= self.per_client > 0:
            return 429, f"too many connections from your address: at most {self.per_client}"
        self._by_address[address] = held + 1
        self.total += 1
        return None

    def release(self, address: str) -> None:
        held = self._by_address[address] - 1
        if held:
            self._by_address[address] = held
        else:
            del self._by_address[address]  # an address that comes once is not kept forever
        self.total -= 1

    def held(self, address: str) -> int:
        return self._by_address.get(address, 0)


class ConnectionGuard:
    """One server's caps and deadlines: its counter, and the clocks of its HTTP connections,
    swept by `sweep_forever`.

    The clocks read the time the last sweep read (`now`), not the system's: a time read costs
    ~0.2 us on this VM, and a request moves its clock three times. A deadline is therefore set
    one sweep interval later than its timeout asks, so that it is never early, and passes at
    most two intervals late."""

    def __init__(self, settings: GatewaySettings, loop: asyncio.AbstractEventLoop) -> None:
        self.counter = ConnectionCounter(
            settings.max_connections_per_client, connection_cap(settings)
        )
        header, body, idle = (
            _seconds(timeout)
            for timeout in (settings.header_timeout, settings.body_timeout, settings.idle_timeout)
        )
        self.sweep_interval = min(
            max(min(header, body, idle) / _SWEEPS_PER_TIMEOUT, _SHORTEST_SWEEP), _LONGEST_SWEEP
        )
        # What each phase is allowed from `now`, the last sweep's time.
        self.header_allowance = header + self.sweep_interval
        self.body_allowance = body + self.sweep_interval
        self.idle_allowance = idle + self.sweep_interval
        self.time = loop.time
        self.now = self.time()
        self.clocks: set[ConnectionClock] = set()

    def admit(
        self, client: tuple[str, int] | None, headers: Iterable[tuple[bytes, bytes]] = ()
    ) -> bytes | None:
        """None if a new connection from `client` may stay (it is counted then), else the
        response that refuses it."""
        refusal = self.counter.admit(client_address(client))
        return None if refusal is None else error_response(*refusal, headers)

    def release(self, client: tuple[str, int] | None) -> None:
        """Uncount an admitted connection, once, when it is lost."""
        self.counter.release(client_address(client))

    def clock(
        self, on_expiry: Callable[[bool], None], body_pending: Callable[[], bool]
    ) -> ConnectionClock:
        """The deadlines of a new HTTP connection. `on_expiry(answer)` cuts it when one
        passes: with a 408 if `answer` (a request was under way), else silently.
        `body_pending()` says whether the request the app has is still waiting for its body."""
        return ConnectionClock(self, on_expiry, body_pending)

    def sweep(self) -> None:
        now = self.now = self.time()
        for clock in [clock for clock in self.clocks if clock.deadline <= now]:
            clock.expire()

    async def sweep_forever(self) -> None:
        if math.isinf(self.sweep_interval):
            return  # every timeout is off
        while True:
            await asyncio.sleep(self.sweep_interval)
            self.sweep()


class ConnectionClock:
    """The deadline of one HTTP connection, moved on by its protocol's hooks as its requests
    pass through their phases. While it is not stopped, its guard sweeps it.

    The end of a body moves nothing: most requests have none, and their body phase would end
    as soon as it began. A body deadline that passes asks `body_pending()` instead, and if the
    body came the app simply has the request (its own reply timeout bounds it)."""

    __slots__ = ("_begun", "_body_pending", "_guard", "_on_expiry", "_phase", "deadline")

    def __init__(
        self,
        guard: ConnectionGuard,
        on_expiry: Callable[[bool], None],
        body_pending: Callable[[], bool],
    ) -> None:
        self._guard = guard
        self._on_expiry = on_expiry
        self._body_pending = body_pending
        self._phase = _HEAD
        self._begun = False  # a byte of a head has come that has not ended yet
        self.deadline = guard.now + guard.header_allowance
        guard.clocks.add(self)

    def request_begun(self) -> None:
        """The first byte of a request's head has arrived."""
        self._begun = True
        if self._phase == _IDLE:
            self._phase = _HEAD
            self.deadline = self._guard.now + self._guard.header_allowance

    def head_complete(self) -> None:
        """The head of the request the app is given next has arrived (or, pipelined, that
        request's turn has come): its body may follow."""
        self._begun = False
        self._phase = _BODY
        self.deadline = self._guard.now + self._guard.body_allowance

    def head_queued(self) -> None:
        """The head of a request pipelined behind one in progress has arrived: it waits, and
        its body is not read, until that one's response is complete (`head_complete` then)."""
        self._begun = False

    def response_complete(self) -> None:
        """A response is complete and no request is waiting: the connection waits for one, or
        for the rest of the head of one that began while the app had the last."""
        guard = self._guard
        if self._begun:
            self._phase = _HEAD
            self.deadline = guard.now + guard.header_allowance
        else:
            self._phase = _IDLE
            self.deadline = guard.now + guard.idle_allowance

    def stop(self) -> None:
        """No more deadlines: the connection is lost, or is a WebSocket now."""
        self._phase = _BUSY
        self.deadline = _NEVER
        self._guard.clocks.discard(self)

    def expire(self) -> None:
        if self._phase == _BODY and not self._body_pending():
            self._phase = _BUSY  # the app has the whole request
            self.deadline = _NEVER
            return
        answer = self._begun or self._phase == _BODY
        self.stop()
        self._on_expiry(answer)


def _seconds(timeout: float) -> float:
    return timeout if timeout > 0 else math.inf  # 0: off
