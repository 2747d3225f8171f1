"""Every request's duration by route and status, and every WebSocket's session: the clients
connected to each stream and the frames sent them through ASGI (the market data stream writes
most of its frames past ASGI, and counts those itself: datastream/backpressure.py).

It sits below the access log and above the error layer, so it sees every answer as sent,
refusals included. Its counts are metrics.gateway's; with metrics off the layer is left out.
"""

from __future__ import annotations

from collections.abc import Awaitable
from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradepit.gateway.chain.scope import ROUTE
from tradepit.metrics.gateway import GatewayMetrics

__all__ = ["CountRequests", "UNMATCHED"]

UNMATCHED = "unmatched"  # the route label of a request no route has: one series for them all
_STATUS_TEXT = {status: str(status) for status in range(100, 600)}


class CountRequests:
    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self.observe = metrics.requests.observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket":
                await self._session(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        # A request's work is here, not in a coroutine of its own: one frame a request less.
        started = perf_counter()
        status = "none"  # the client left before any answer

        def send_noting_status(message: Message) -> Awaitable[None]:  # as RequestId's
            nonlocal status
            if message["type"] == "http.response.start":
                status = _STATUS_TEXT.get(message["status"]) or str(message["status"])
            return send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            route = scope.get(ROUTE)
            self.observe(
                (scope["method"], route.template if route is not None else UNMATCHED, status),
                perf_counter() - started,
            )

    async def _session(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = scope.get(ROUTE)
        stream = route.template if route is not None else UNMATCHED
        metrics = self.metrics
        opened = False

        def send_counting(message: Message) -> Awaitable[None]:
            nonlocal opened
            sent = message["type"]
            if sent == "websocket.send":
                data = message.get("bytes")
                if data is None:
                    data = (message.get("text") or "").encode()
                metrics.frame_sent(stream, len(data))
            elif sent == "websocket.accept" and not opened:
                opened = True
                metrics.websocket_opened(stream)
            return send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            if opened:
                metrics.websocket_closed(stream)
