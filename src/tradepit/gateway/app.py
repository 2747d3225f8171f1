"""The gateway's ASGI application: Alpaca's Trading API v2, its trade_updates stream, the
operator's routes, the classroom's routes, the trading page at / and the OpenAPI page at
/docs, all behind the one chain of layers that every request passes (gateway/chain)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.types import ASGIApp

from tradepit.gateway import (
    admin_api,
    community,
    data,
    datastream,
    docs,
    health,
    page,
    reference,
    stream,
    trading,
)
from tradepit.gateway.chain import RouteTable, build_chain, routes_of
from tradepit.gateway.errors import install_error_handlers
from tradepit.gateway.heartbeat import Heartbeat
from tradepit.gateway.hot import HotRoutes
from tradepit.gateway.service import Gateway
from tradepit.gateway.web import ACCESS_MARKERS
from tradepit.settings import GatewaySettings

__all__ = ["create_app", "build_app", "GatewayApp", "OPEN_ROUTES"]

_DESCRIPTION = """
tradepit speaks Alpaca's Trading API v2. Sign in with **Authorize**: your account's
`APCA-API-KEY-ID` and `APCA-API-SECRET-KEY` (from `tradepit admin create-account`), then try
any route. Prices and quantities are decimal strings on each symbol's grid; a price off the
grid is refused, never rounded.
"""

# The routes that need no key and have no limit: the page's and the API pages' static files.
# A classroom behind one address loads them all at once; each costs a file read. Every other
# route declares its access by its dependency (web.ACCESS_MARKERS).
OPEN_ROUTES = frozenset(
    {"/", "/vendor/lightweight-charts.mjs", "/page/{path:path}", "/docs/assets/{name}"}
)


class _Api(FastAPI):
    """FastAPI, less the outermost layer of its own middleware stack, Starlette's
    ServerErrorMiddleware: it would answer an exception as a plain-text 500 before the chain's
    error layer, above FastAPI, could answer it in Alpaca's shape."""

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if not isinstance(stack, ServerErrorMiddleware):
            raise TypeError(
                f"FastAPI's middleware stack now begins with {type(stack).__name__}, not "
                "ServerErrorMiddleware: see what it does before the chain relies on it"
            )
        return stack.app


@dataclass(frozen=True, slots=True)
class GatewayApp:
    gateway: Gateway
    api: FastAPI
    hot: HotRoutes
    routes: RouteTable
    chain: ASGIApp  # what the server serves


def create_app(redis_url: str, settings: GatewaySettings | None = None) -> ASGIApp:
    return build_app(redis_url, settings).chain


def build_app(redis_url: str, settings: GatewaySettings | None = None) -> GatewayApp:
    """The application and its parts; nothing connects until the server starts it."""
    gateway = Gateway(redis_url, settings or GatewaySettings())
    hot = HotRoutes(gateway)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        assert gateway.market is not None
        updates = stream.TradeUpdates(gateway.redis, gateway.client.config, gateway.market)
        await updates.start()
        app.state.trade_updates = updates
        live_feed = datastream.LiveFeed(gateway.redis, gateway.market, gateway.settings)
        await live_feed.start()
        app.state.live_feed = live_feed
        hot.live_feed = live_feed
        heartbeat = Heartbeat(gateway)
        heartbeat.start()
        # What start-up made (FastAPI's routes and models, the market) lives as long as the
        # process: out of the cyclic GC's sight, its full collections walk only what came since.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await heartbeat.stop()
            await live_feed.stop()
            await updates.stop()
            await gateway.stop()

    api = _Api(
        title="tradepit",
        description=_DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan,
        # /docs and /openapi.json are docs.py's: Swagger UI from the venue, not from a CDN.
        docs_url=None,
        openapi_url=None,
        redoc_url=None,
    )
    api.state.gateway = gateway
    install_error_handlers(api)
    api.include_router(trading.router)
    api.include_router(reference.router)
    api.include_router(stream.router)
    api.include_router(admin_api.router)
    api.include_router(data.router)
    api.include_router(community.router)
    api.include_router(health.router)
    page.install(api)
    docs.install(api)
    routes = routes_of(
        api,
        markers=ACCESS_MARKERS,
        open_templates=OPEN_ROUTES,
        hot=hot.http_routes(),
        hot_websockets=hot.websocket_routes(),
    )
    return GatewayApp(gateway, api, hot, routes, build_chain(gateway, routes, api))
