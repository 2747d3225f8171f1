"""The trading page: static files the gateway serves at `/`, and the chart library from npm.

The page is plain ES modules in `tradepit/web/page`, and talks to the venue only through the
public API (Alpaca's REST and WebSocket routes, and `/v1` for the leaderboard and demo
accounts). Its one third-party part, the chart library, is installed by `npm ci` into
`tradepit/web/node_modules` (never committed) and served from there as it was published.
Without it the page still works, with a note where the chart would be.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from tradepit.gateway.errors import ApiError

__all__ = ["WEB_DIR", "PAGE_DIR", "CHART_LIBRARY", "install"]

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
PAGE_DIR = WEB_DIR / "page"
# lightweight-charts' self-contained ES module build (no imports of its own).
CHART_LIBRARY = (
    WEB_DIR
    / "node_modules"
    / "lightweight-charts"
    / "dist"
    / "lightweight-charts.standalone.production.mjs"
)
# The page's files change with the code: the browser asks again each time (a 304 when unchanged).
_NO_CACHE = {"Cache-Control": "no-cache"}


def install(app: FastAPI) -> None:
    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def index() -> Response:
        return FileResponse(PAGE_DIR / "index.html", headers=_NO_CACHE)

    @app.api_route(
        "/vendor/lightweight-charts.mjs", methods=["GET", "HEAD"], include_in_schema=False
    )
    async def chart_library() -> Response:
        if not CHART_LIBRARY.is_file():
            raise ApiError.not_found("the chart library is not installed: run `npm ci` in web/")
        return FileResponse(CHART_LIBRARY, media_type="text/javascript", headers=_NO_CACHE)

    app.mount("/page", StaticFiles(directory=PAGE_DIR, check_dir=False), name="page")
