"""The two routes a trading bot calls most, submit and cancel, answered in plain ASGI; and the
market data streams, which are plain ASGI too (see datastream).

Measured on this machine, ~70% of the gateway's CPU on a submit + cancel went to FastAPI and
Starlette (the middleware stack, matching the path against every route, solving dependencies),
not to the order. These handlers skip FastAPI, not the chain (gateway/chain): the request id,
access log, body cap, authentication, rate limits and error rendering are the chain's, for
them as for every route. Each is also one of FastAPI's routes (trading.py), which documents it
at /docs and declares its access; the chain dispatches it here instead.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from tradepit.gateway.chain.scope import principal_of
from tradepit.gateway.datastream import STREAM_PATHS, LiveFeed, serve_stream
from tradepit.gateway.errors import refusal_reason
from tradepit.gateway.order_names import ORDER_TYPE_NAMES
from tradepit.gateway.orders import OrderRequest, decode_body
from tradepit.gateway.service import Gateway
from tradepit.gateway.trading import order_view, place_order, request_cancel
from tradepit.gateway.web import parse_order_id
from tradepit.stage.messages import encode

__all__ = ["HotRoutes"]

_JSON = (b"content-type", b"application/json")
# "Try again later": the feed starts with the app, and a server accepts nothing before that.
_NOT_STARTED = 1013


class HotRoutes:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.live_feed: LiveFeed | None = None  # set when the app has started

    def http_routes(self) -> dict[tuple[str, str], ASGIApp]:
        """The handlers by (method, FastAPI's template of the route)."""
        return {
            ("POST", "/v2/orders"): self.submit,
            ("DELETE", "/v2/orders/{order_id}"): self.cancel,
        }

    def websocket_routes(self) -> dict[str, ASGIApp]:
        return dict.fromkeys(STREAM_PATHS, self.stream)

    async def submit(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = principal_of(scope)
        metrics = self.gateway.metrics
        started = time.perf_counter()
        try:
            request = decode_body(await _body(receive), OrderRequest)
            record, legs = await place_order(self.gateway, principal.account_id, request)
        except ClientDisconnect:
            raise  # no order, and no answer: not a refusal
        except Exception as error:
            if metrics is not None:
                metrics.order_refused(refusal_reason(error))
            raise
        if metrics is not None:
            metrics.order_accepted(ORDER_TYPE_NAMES[record.type], time.perf_counter() - started)
        await _answer(send, 200, encode(order_view(self.gateway, record, legs)))

    async def cancel(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = principal_of(scope)
        order_id = parse_order_id(scope["path_params"]["order_id"])
        await request_cancel(self.gateway, principal.account_id, order_id)
        await _answer(send, 204, b"")

    async def stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.live_feed is None:
            await send({"type": "websocket.close", "code": _NOT_STARTED})
            return
        await serve_stream(scope, receive, send, self.gateway, self.live_feed)


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect  # gone, or cut for sending its body too slowly
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers: list[Any] = [(b"content-length", str(len(body)).encode())]
    if body:
        headers.append(_JSON)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
