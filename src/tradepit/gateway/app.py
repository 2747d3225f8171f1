"""The gateway's ASGI application: Alpaca's Trading API v2, its trade_updates stream, the
operator's routes, the classroom's routes, the trading page at / and the OpenAPI page at
/docs."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tradepit.gateway import (
    admin_api,
    community,
    data,
    datastream,
    docs,
    page,
    reference,
    stream,
    trading,
)
from tradepit.gateway.errors import install_error_handlers
from tradepit.gateway.hot import HotRoutes
from tradepit.gateway.service import Gateway, GatewaySettings

__all__ = ["create_app"]

_DESCRIPTION = """
tradepit speaks Alpaca's Trading API v2. Sign in with **Authorize**: your account's
`APCA-API-KEY-ID` and `APCA-API-SECRET-KEY` (from `tradepit admin create-account`), then try
any route. Prices and quantities are decimal strings on each symbol's grid; a price off the
grid is refused, never rounded.
"""


def create_app(redis_url: str, settings: GatewaySettings | None = None) -> HotRoutes:
    gateway = Gateway(redis_url, settings or GatewaySettings())

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
        # What start-up made (FastAPI's routes and models, the market) lives as long as the
        # process: out of the cyclic GC's sight, its full collections walk only what came since.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await live_feed.stop()
            await updates.stop()
            await gateway.stop()

    app = FastAPI(
        title="tradepit",
        description=_DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan,
        # /docs and /openapi.json are docs.py's: Swagger UI from the venue, not from a CDN.
        docs_url=None,
        openapi_url=None,
        redoc_url=None,
    )
    app.state.gateway = gateway
    install_error_handlers(app)
    app.include_router(trading.router)
    app.include_router(reference.router)
    app.include_router(stream.router)
    app.include_router(admin_api.router)
    app.include_router(data.router)
    app.include_router(community.router)
    page.install(app)
    docs.install(app)
    hot = HotRoutes(app, gateway)
    return hot
