"""The API's pages at /docs, served whole by the venue, and what they say about errors.

FastAPI's own /docs loads Swagger UI from a CDN, so on a venue with no internet (a classroom's
network, a laptop on a train) the page stayed blank. Here Swagger UI comes from the npm package
`swagger-ui-dist`, installed by `npm ci` in `tradepit/web` as the chart library is, and is
served from there as published (FastAPI's documented way: `docs_url=None`, then
`get_swagger_ui_html` with URLs of our own).

Every route documents its errors with one model, Alpaca's `{"code", "message"}`:
`error_responses(...)` is what routers and routes pass as `responses=`.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from tradepit.gateway.errors import ApiError
from tradepit.gateway.page import WEB_DIR
from tradepit.gateway.web import public

__all__ = ["SWAGGER_UI", "ErrorBody", "error_responses", "BODY_ERRORS", "install"]

SWAGGER_UI = WEB_DIR / "node_modules" / "swagger-ui-dist"
_ASSETS = "/docs/assets"
# The files the page loads, and their types: nothing else of the package is served.
_ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
_NO_CACHE = {"Cache-Control": "no-cache"}  # they change with `npm ci`: a 304 when they did not


class ErrorBody(BaseModel):
    """Every error's body, as Alpaca's API answers it."""

    code: int = Field(
        description="Alpaca's code: the HTTP status times 100,000, plus 10,000",
        examples=[42210000],
    )
    message: str = Field(
        description="what was wrong", examples=["limit_price 95.001 is not a multiple of 0.01"]
    )


_MEANINGS = {
    400: "The body is empty, is not JSON, or nests too deeply.",
    401: "No key, or a wrong one: send APCA-API-KEY-ID and APCA-API-SECRET-KEY.",
    403: "Refused: buying power or shares short, trading suspended or halted, an account still "
    "opening, or a route for the venue's admin key.",
    404: "No such order, asset, symbol, watchlist, account or route.",
    413: "The body is larger than the gateway takes (64 kB by default).",
    422: "The request is invalid: a field missing, of the wrong type, off the symbol's grid or "
    "out of its range.",
    429: "Too many requests (per key; per client address for the routes that need no key and "
    "for failed authentications): wait the seconds that Retry-After says.",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "whole seconds until a request is taken again",
        "schema": {"type": "integer"},
    }
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for these error statuses, each with Alpaca's error body."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response: dict[str, Any] = {"model": ErrorBody, "description": _MEANINGS[status]}
        if status == 429:
            response["headers"] = _RETRY_AFTER
        responses[status] = response
    return responses


# What a route that takes a JSON body adds to its router's errors.
BODY_ERRORS = error_responses(400, 413, 422)


def install(app: FastAPI) -> None:
    """/docs, its assets, and /openapi.json. (Build `app` with `docs_url=None` and
    `openapi_url=None`: these routes replace FastAPI's.)"""

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(public)])
    async def openapi() -> Response:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(public)])
    async def docs() -> Response:
        if not (SWAGGER_UI / "swagger-ui-bundle.js").is_file():
            raise ApiError.not_found("the API's pages are not installed: run `npm ci` in web/")
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title}: API",
            swagger_js_url=f"{_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{_ASSETS}/favicon-32x32.png",
        )

    @app.api_route(_ASSETS + "/{name}", methods=["GET", "HEAD"], include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        media_type = _ASSET_TYPES.get(name)
        path = SWAGGER_UI / name
        if media_type is None or not path.is_file():
            raise ApiError.not_found("no such file of the API's pages")
        return FileResponse(path, media_type=media_type, headers=_NO_CACHE)
