"""The route table the chain's layers read (gateway/chain/routes.py): every route declares its
access once, none is open by omission, and a request finds its route as Starlette would."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import Depends, FastAPI
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from tradepit.gateway.app import OPEN_ROUTES, build_app
from tradepit.gateway.chain import Access, routes_of
from tradepit.gateway.chain.routes import MatchRoute
from tradepit.gateway.chain.scope import ROUTE
from tradepit.gateway.web import ACCESS_MARKERS, public

# Never connected: building the app opens nothing.
APP = build_app("redis://127.0.0.1:1")

PUBLIC = {
    "/v1/leaderboard",
    "/v1/demo",
    "/v1/demo/accounts",
    "/openapi.json",
    "/docs",
    "/livez",
    "/readyz",
    "/metrics",
}
ADMIN_PREFIX = "/admin/"


def test_every_route_has_the_access_it_should() -> None:
    for route in APP.routes:
        if route.kind == "websocket":  # the streams authenticate by message
            assert route.access is Access.OPEN
        elif route.template in OPEN_ROUTES:
            assert route.access is Access.OPEN, route
        elif route.template in PUBLIC:
            assert route.access is Access.PUBLIC, route
        elif route.template.startswith(ADMIN_PREFIX):
            assert route.access is Access.ADMIN, route
        else:
            assert route.access is Access.KEY, route


def test_the_hot_routes_are_fastapis_routes_with_their_own_handlers() -> None:
    hot = {
        (method, route.template)
        for route in APP.routes
        if route.handler
        for method in route.methods
    }
    assert hot == {("POST", "/v2/orders"), ("DELETE", "/v2/orders/{order_id}")}
    streams = {
        route.template for route in APP.routes if route.kind == "websocket" and route.handler
    }
    assert streams == {"/v2/iex", "/v2/sip", "/v2/test"}


@pytest.mark.parametrize(
    ("kind", "method", "path", "template"),
    [
        ("http", "POST", "/v2/orders", "/v2/orders"),
        ("http", "DELETE", "/v2/orders/1234", "/v2/orders/{order_id}"),
        ("http", "GET", "/v2/orders:by_client_order_id", "/v2/orders:by_client_order_id"),
        ("http", "GET", "/v2/stocks/bars/latest", "/v2/stocks/bars/latest"),
        ("http", "GET", "/v2/stocks/ACME/bars/latest", "/v2/stocks/{symbol}/bars/latest"),
        ("http", "DELETE", "/v2/watchlists/w/ACME", "/v2/watchlists/{watchlist_id}/{symbol}"),
        ("http", "GET", "/v2/watchlists:by_name", "/v2/watchlists:by_name"),
        ("http", "GET", "/v2/watchlists/by_name", "/v2/watchlists/{watchlist_id}"),
        ("http", "GET", "/page/app.js", "/page/{path:path}"),
        ("http", "GET", "/page/a/b.js", "/page/{path:path}"),
        ("websocket", "", "/stream", "/stream"),
        ("websocket", "", "/v2/iex", "/v2/iex"),
    ],
)
def test_a_request_finds_its_route(kind: str, method: str, path: str, template: str) -> None:
    found = APP.routes.match(kind, method, path)
    assert found is not None and found[0].template == template


@pytest.mark.parametrize(
    ("kind", "method", "path"),
    [
        ("http", "PUT", "/v2/account"),  # FastAPI answers it 405
        ("http", "GET", "/v2/nothing-here"),  # and this 404
        ("http", "GET", "/v2/orders/a/b"),
        ("websocket", "", "/v2/orders"),
    ],
)
def test_no_route_is_none(kind: str, method: str, path: str) -> None:
    assert APP.routes.match(kind, method, path) is None


async def _hot(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("never called")


def _api_with_an_undeclared_route() -> FastAPI:
    api = FastAPI(docs_url=None, openapi_url=None, redoc_url=None)

    @api.get("/declared", dependencies=[Depends(public)])
    async def declared() -> Response:
        return Response()

    @api.get("/forgotten")
    async def forgotten() -> Response:
        return Response()

    return api


def test_a_route_that_declares_nothing_stops_the_gateway() -> None:
    with pytest.raises(ValueError, match="/forgotten declares no access"):
        routes_of(
            _api_with_an_undeclared_route(),
            markers=ACCESS_MARKERS,
            open_templates=(),
            hot={},
            hot_websockets={},
        )


def test_a_route_listed_open_must_exist_and_a_hot_route_must_be_fastapis() -> None:
    api = _api_with_an_undeclared_route()
    with pytest.raises(ValueError, match="no such route"):
        routes_of(
            api,
            markers=ACCESS_MARKERS,
            open_templates=("/forgotten", "/gone"),
            hot={},
            hot_websockets={},
        )
    with pytest.raises(ValueError, match="has no FastAPI route"):
        routes_of(
            api,
            markers=ACCESS_MARKERS,
            open_templates=("/forgotten",),
            hot={("POST", "/declared"): _hot},
            hot_websockets={},
        )


def _matched(kind: str, path: str) -> Scope:
    """The scope as MatchRoute hands it to the layers beneath."""
    seen: list[Scope] = []

    async def beneath(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    asyncio.run(MatchRoute(beneath, APP.routes)({"type": kind, "path": path}, _hot, _hot))
    return seen[0]


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/stream/", "/stream"),  # where the legacy SDK's Stream connects
        ("/v2/iex/", "/v2/iex"),
        ("/v2/test/", "/v2/test"),
        ("/stream", "/stream"),
    ],
)
def test_a_websocket_with_a_trailing_slash_takes_its_route_without(
    path: str, template: str
) -> None:
    scope = _matched("websocket", path)
    assert scope[ROUTE].template == template
    assert scope["path"] == template  # what FastAPI, beneath, routes by


@pytest.mark.parametrize("path", ["/v2/orders/", "/", "/stream//", "/nothing/"])
def test_a_trailing_slash_makes_no_route_of_a_path_without_one(path: str) -> None:
    scope = _matched("websocket", path)
    assert scope[ROUTE] is None and scope["path"] == path


def test_an_http_path_keeps_its_trailing_slash() -> None:
    # FastAPI redirects those itself; only an upgrade, which no client redirects, is aliased.
    scope = _matched("http", "/v2/account/")
    assert scope[ROUTE] is None and scope["path"] == "/v2/account/"
