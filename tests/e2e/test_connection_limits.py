"""The gateway's connection caps and deadlines (`gateway/connections.py`) on the wire: a second
gateway process on the venue (gateways are stateless) with 1 s timeouts and a cap of 5
connections per address, and plain sockets.

Each test connects from a loopback address of its own (Linux routes all of 127/8 to loopback),
so that no test's connections count against another's cap. Times are asserted only as bounds
of ten times the timeout: the machine is shared.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import select
import socket
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from live import Venue, another_gateway
from websockets.sync.client import connect as websocket_connect

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs all of 127/8 on loopback")

TIMEOUT = 1.0  # seconds: the strict gateway's header, body and idle timeouts
CAP = 5  # its connections per client address
BOUND = 10 * TIMEOUT  # what "closed in time" means here

Address = tuple[str, int]
_sources = itertools.count(2)


@pytest.fixture(scope="module")
def gateway(venue: Venue) -> Iterator[Address]:
    timeouts = ["--header-timeout", "1", "--body-timeout", "1", "--idle-timeout", "1"]
    cap = ["--max-connections-per-client", str(CAP)]
    with another_gateway(venue, "--rate-limit", "0", *timeouts, *cap) as url:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        yield parts.hostname, parts.port


@pytest.fixture
def source() -> str:
    """A loopback address that no other test connects from."""
    return f"127.0.0.{next(_sources)}"


def _connect(gateway: Address, source: str) -> socket.socket:
    connection = socket.socket()
    connection.settimeout(BOUND)
    connection.bind((source, 0))
    connection.connect(gateway)
    return connection


def _read_until_closed(connection: socket.socket) -> bytes:
    """Everything the gateway sends until it closes the connection, which must be within
    BOUND."""
    chunks = []
    deadline = time.monotonic() + BOUND
    while True:
        connection.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            chunk = connection.recv(65536)
        except TimeoutError:
            pytest.fail(f"still open after {BOUND} s; it sent {b''.join(chunks)!r}")
        except ConnectionResetError:  # closed with bytes of ours unread: what came still counts
            chunk = b""
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _error(response: bytes) -> tuple[int, dict[str, object]]:
    """The status and JSON body of a response that ends its connection."""
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    assert headers["connection"] == "close", head
    assert headers["content-type"] == "application/json", head
    assert int(headers["content-length"]) == len(body), response
    return int(lines[0].split(" ")[1]), json.loads(body)


def _upgrade_head(path: str = "/stream") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: tradepit\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def _open_websocket(gateway: Address, source: str) -> socket.socket:
    """A connection upgraded to a WebSocket on /stream (which waits for its client to sign in)."""
    connection = _connect(gateway, source)
    connection.sendall(_upgrade_head())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = connection.recv(4096)
        assert chunk, f"closed during the handshake: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101 "), head
    return connection


def test_a_connection_that_sends_nothing_is_closed(gateway: Address, source: str) -> None:
    with _connect(gateway, source) as connection:
        # Nothing was asked, so nothing is answered: a 408 here would be read as the answer to
        # a request the client sent at that moment.
        assert _read_until_closed(connection) == b""


@pytest.mark.parametrize(
    "head",
    [
        b"GET /v2/clock HTTP/1.1\r\nHost: tradepit\r\n",
        _upgrade_head().removesuffix(b"\r\n"),  # a WebSocket's handshake has the same deadline
    ],
    ids=["http", "websocket-handshake"],
)
def test_a_head_trickled_a_byte_at_a_time_is_cut_at_the_timeout(
    gateway: Address, source: str, head: bytes
) -> None:
    with _connect(gateway, source) as connection:
        connection.sendall(head + b"X-Slow: ")
        # A byte every 0.1 s, for as long as the gateway takes it: each byte is new data, and
        # none of them may buy the head more time.
        started = time.monotonic()
        while not select.select([connection], [], [], 0.1)[0]:
            assert time.monotonic() - started < BOUND, "the trickle was never cut"
            try:
                connection.send(b"a")
            except (BrokenPipeError, ConnectionResetError):
                break
        status, body = _error(_read_until_closed(connection))
    assert status == 408
    assert body["code"] == 40810000 and isinstance(body["message"], str)


def test_an_idle_keep_alive_connection_is_closed(gateway: Address, source: str) -> None:
    with _connect(gateway, source) as connection:
        connection.sendall(b"GET /v2/clock HTTP/1.1\r\nHost: tradepit\r\n\r\n")
        received = _read_until_closed(connection)
    # The one answer (whatever /v2/clock says without a key), then a close without a word.
    assert received.startswith(b"HTTP/1.1 ") and received.count(b"HTTP/1.1 ") == 1, received
    assert b"connection: close" not in received.lower(), received  # kept alive, then cut


def test_a_stalled_body_is_cut(venue: Venue, gateway: Address, source: str) -> None:
    account = venue.account()
    head = [
        "POST /v2/orders HTTP/1.1",
        "Host: tradepit",
        *(f"{name}: {value}" for name, value in account.headers.items()),
        "Content-Type: application/json",
        "Content-Length: 100",
    ]
    with _connect(gateway, source) as connection:
        connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + b'{"symbol": ')
        status, body = _error(_read_until_closed(connection))
    assert status == 408 and body["code"] == 40810000


def test_a_client_address_holds_at_most_the_cap(gateway: Address, source: str) -> None:
    # WebSockets hold their places: they have no idle timeout, and they count as HTTP does.
    held = [_open_websocket(gateway, source) for _ in range(CAP)]
    try:
        for request in (b"GET /v2/clock HTTP/1.1\r\nHost: tradepit\r\n\r\n", _upgrade_head()):
            with _connect(gateway, source) as refused:
                refused.sendall(request)
                status, body = _error(_read_until_closed(refused))
            assert status == 429 and body["code"] == 42910000, body

        # Another address is not affected.
        with _connect(gateway, f"127.0.0.{next(_sources)}") as other:
            other.sendall(b"GET /v2/clock HTTP/1.1\r\nHost: tradepit\r\nConnection: close\r\n\r\n")
            assert not _read_until_closed(other).startswith(b"HTTP/1.1 429")

        held.pop().close()
        # Once the gateway has seen that close, the address has a place again.
        deadline = time.monotonic() + BOUND
        while True:
            with _connect(gateway, source) as again:
                again.sendall(
                    b"GET /v2/clock HTTP/1.1\r\nHost: tradepit\r\nConnection: close\r\n\r\n"
                )
                answer = _read_until_closed(again)
            if not answer.startswith(b"HTTP/1.1 429"):
                break
            assert time.monotonic() < deadline, "the closed connection was never uncounted"
            time.sleep(0.05)
        assert answer.startswith(b"HTTP/1.1 "), answer
    finally:
        for connection in held:
            connection.close()


def test_a_websocket_outlives_the_idle_timeout(gateway: Address, source: str) -> None:
    host, port = gateway
    with (
        _connect(gateway, source) as connection,
        websocket_connect(f"ws://{host}:{port}/stream", sock=connection) as stream,
    ):
        time.sleep(3 * TIMEOUT)  # past every deadline an HTTP connection has
        # It still answers: the listen action before signing in is refused, in a message.
        stream.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        reply = json.loads(stream.recv(timeout=BOUND))
    assert reply["stream"] == "authorization", reply
