"""The two routes a trading bot calls most, submit and cancel, answered in plain ASGI; and the
market data streams, which are plain ASGI too (see datastream.py).

Measured on this machine, ~70% of the gateway's CPU on a submit + cancel went to FastAPI and
Starlette (the middleware stack, matching the path against every route, solving dependencies),
not to the order. These two bypass that: the same checks and the same code behind them, with
the same errors, in a few dozen lines. Every other route, and these two routes' documentation
at /docs, is FastAPI's.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from tradepit.gateway.auth import client_address
from tradepit.gateway.datastream import STREAM_PATHS, LiveFeed, serve_stream
from tradepit.gateway.errors import ApiError, error_headers, error_of
from tradepit.gateway.orders import OrderRequest, decode_body
from tradepit.gateway.service import Gateway
from tradepit.gateway.trading import order_view, place_order, request_cancel
from tradepit.gateway.web import authenticate, parse_order_id
from tradepit.stage.messages import encode

__all__ = ["HotRoutes"]

_ORDERS = "/v2/orders"
_ORDER = "/v2/orders/"
_JSON = (b"content-type", b"application/json")
_CLOSE = (b"connection", b"close")


class HotRoutes:
    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway
        self.live_feed: LiveFeed | None = None  # set when the app has started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if method == "POST" and path == _ORDERS:
                await self._answer(scope, receive, send, None)
                return
            if method == "DELETE" and path.startswith(_ORDER) and "/" not in path[len(_ORDER) :]:
                await self._answer(scope, receive, send, path[len(_ORDER) :])
                return
        elif (
            scope["type"] == "websocket"
            and scope["path"] in STREAM_PATHS
            and self.live_feed is not None
        ):
            await serve_stream(scope, receive, send, self.gateway, self.live_feed)
            return
        await self.app(scope, receive, send)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, order_id: str | None
    ) -> None:
        extra: dict[str, str] = {}
        try:
            key_id = secret = None
            for name, value in scope["headers"]:
                if name == b"apca-api-key-id":
                    key_id = value.decode("latin-1")
                elif name == b"apca-api-secret-key":
                    secret = value.decode("latin-1")
            principal = await authenticate(self.gateway, key_id, secret, client_address(scope))
            if order_id is None:
                request = decode_body(await self._body(scope, receive), OrderRequest)
                record = await place_order(self.gateway, principal.account_id, request)
                status, body = 200, encode(order_view(self.gateway, record))
            else:
                await request_cancel(self.gateway, principal.account_id, parse_order_id(order_id))
                status, body = 204, b""
        except Exception as error:  # every failure answers with Alpaca's error shape
            status, body = error_of(error)
            extra = error_headers(error)
        headers: list[Any] = [(b"content-length", str(len(body)).encode())]
        if extra:  # a 429's Retry-After
            headers.extend((name.lower().encode(), value.encode()) for name, value in extra.items())
        if body:
            headers.append(_JSON)
        if status == 413:
            headers.append(_CLOSE)  # the rest of the body was never read: this connection is done
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.gateway.settings.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                raise ApiError(413, f"request body is larger than {limit} bytes")
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ApiError(400, "the client went away before sending its body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"request body is larger than {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
