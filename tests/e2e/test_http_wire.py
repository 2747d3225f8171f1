"""The gateway's HTTP/1.1 on the wire, read with a plain socket: each response comes in one TCP
segment, its head and its body written together (`gateway/server.py`, `_HeadWithBody`), so that
a bot's ack wakes it once; requests on one keep-alive connection are answered in order."""

from __future__ import annotations

import json
import re
import socket
import struct
import sys
from urllib.parse import urlsplit

import pytest
from live import Account, Venue

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads Linux's struct tcp_info")

# Linux's struct tcp_info: tcpi_data_segs_in, the segments received that carried data.
_DATA_SEGMENTS_IN = struct.Struct("=I")
_DATA_SEGMENTS_IN_OFFSET = 152


def _request(method: str, path: str, account: Account, body: bytes = b"") -> bytes:
    head = [f"{method} {path} HTTP/1.1", "host: tradepit"]
    head += [f"{name}: {value}" for name, value in account.headers.items()]
    if body:
        head += ["content-type: application/json", f"content-length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _data_segments_in(connection: socket.socket) -> int:
    info = connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(_DATA_SEGMENTS_IN.unpack_from(info, _DATA_SEGMENTS_IN_OFFSET)[0])


def _exchange(connection: socket.socket, request: bytes) -> tuple[int, bytes]:
    """Send `request`; the status and body of its response, which must come in one segment:
    its head, and as many bytes of body as its content-length says."""
    segments = _data_segments_in(connection)
    connection.sendall(request)
    data = connection.recv(1 << 20)
    assert _data_segments_in(connection) == segments + 1, f"{data!r} came in pieces"
    head, separator, body = data.partition(b"\r\n\r\n")
    assert separator, f"the first read returned part of a head: {data!r}"
    status = int(head.split(b" ", 2)[1])
    length = re.search(rb"\r\ncontent-length: (\d+)", head, re.IGNORECASE)
    assert length is not None, head
    assert len(body) == int(length[1]), f"the first read returned {len(body)} of {length[1]} bytes"
    return status, body


def test_each_response_arrives_whole(venue: Venue) -> None:
    account = venue.account()
    address = urlsplit(venue.url)
    order = {"symbol": "ACME", "qty": "1", "side": "buy", "type": "limit"}
    order |= {"time_in_force": "day", "limit_price": "95.00"}
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        for _ in range(3):  # keep-alive: the same connection, one request after the other
            placing = _request("POST", "/v2/orders", account, json.dumps(order).encode())
            status, body = _exchange(connection, placing)
            assert status == 200, body
            order_id = json.loads(body)["id"]

            canceling = _request("DELETE", f"/v2/orders/{order_id}", account)
            assert _exchange(connection, canceling) == (204, b"")

            getting = _request("GET", f"/v2/orders/{order_id}", account)
            status, body = _exchange(connection, getting)  # a FastAPI route
            assert status == 200 and json.loads(body)["id"] == order_id

            status, body = _exchange(connection, _request("GET", "/v2/orders/nothing", account))
            assert status == 404 and set(json.loads(body)) == {"code", "message"}
