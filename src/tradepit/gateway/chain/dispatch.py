"""The end of the chain: a hot route's own handler (plain ASGI, for the routes a bot calls
most: see hot.py), else FastAPI, which routes the rest itself."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from tradepit.gateway.chain.scope import ROUTE

__all__ = ["Dispatch"]


class Dispatch:
    def __init__(self, api: ASGIApp) -> None:
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = scope.get(ROUTE)
        if route is not None and route.handler is not None:
            await route.handler(scope, receive, send)
        else:
            await self.api(scope, receive, send)
