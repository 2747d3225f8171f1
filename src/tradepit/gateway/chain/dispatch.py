"""The end of the chain: a hot route's own handler (plain ASGI, for the routes a bot calls
most: see hot.py), else FastAPI, which routes the rest itself (and refuses a WebSocket upgrade
that no route takes, which is logged: refused_upgrades.py)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from tradepit.gateway.auth import client_address
from tradepit.gateway.chain.refused_upgrades import RefusedUpgrades
from tradepit.gateway.chain.scope import ROUTE

__all__ = ["Dispatch"]


class Dispatch:
    def __init__(self, api: ASGIApp, refused: RefusedUpgrades | None = None) -> None:
        self.api = api
        self.refused = refused or RefusedUpgrades()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = scope.get(ROUTE)
        if route is not None and route.handler is not None:
            await route.handler(scope, receive, send)
        else:
            if route is None and scope["type"] == "websocket":
                self.refused.refused(client_address(scope), scope["path"])
            await self.api(scope, receive, send)
