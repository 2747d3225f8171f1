"""The one way through the gateway: a chain of plain-ASGI layers that every HTTP request and
WebSocket passes, each concern one small module, outermost first:

0. connection caps and deadlines: beneath ASGI, in the server's protocols (server.py,
   connections.py), before a request exists;
1. `RequestId` (request_id.py): the client's X-Request-ID or a new one, in the scope and on
   the response;
2. `MatchRoute` (routes.py): which route this is, once, for the layers beneath;
3. `AccessLog` (access_log.py): one line per request or WebSocket session, if sampled (when
   its setting is 0, the layer is left out);
4. `CountRequests` (metrics.py): each request's duration by route and status, each stream's
   clients and frames (when metrics are off, the layer is left out);
5. `RenderErrors` (render_errors.py): anything raised beneath becomes Alpaca's error shape;
6. `BodyLimit` (body_limit.py): a body over the cap is a 413;
7. `Authenticate` (authentication.py): the key, its rate limit, the admin key, the limits per
   client address; the principal into the scope;
8. `Dispatch` (dispatch.py): a hot route's own handler (hot.py), else FastAPI; an upgrade no
   route takes is logged (refused_upgrades.py).

The hot routes and FastAPI both sit beneath all of it, so a limit, a log line or a metric is
written once and holds on every route. The refusals of layers 6 and 7 are exceptions like any
route's, so the error layer sits above them (the order issue 23 gave has it beneath): nothing
but `RenderErrors` writes an error response.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from starlette.types import ASGIApp

from tradepit.gateway.chain.access_log import AccessLog
from tradepit.gateway.chain.authentication import Authenticate
from tradepit.gateway.chain.body_limit import BodyLimit
from tradepit.gateway.chain.dispatch import Dispatch
from tradepit.gateway.chain.metrics import CountRequests
from tradepit.gateway.chain.render_errors import RenderErrors
from tradepit.gateway.chain.request_id import RequestId
from tradepit.gateway.chain.routes import Access, MatchRoute, Route, RouteTable, routes_of
from tradepit.gateway.service import Gateway

__all__ = ["build_chain", "Access", "Route", "RouteTable", "routes_of"]


def build_chain(gateway: Gateway, routes: RouteTable, api: ASGIApp) -> ASGIApp:
    """The gateway's ASGI application: `api` (FastAPI) and the hot routes in `routes` behind
    every layer."""
    settings = gateway.settings
    logging_access = settings.access_log_sample > 0
    layers: list[Callable[[ASGIApp], ASGIApp]] = [  # outermost first
        RequestId,
        partial(MatchRoute, routes=routes),
        # Off, the access log is left out: a layer that does nothing still costs every request.
        *([partial(AccessLog, sample=settings.access_log_sample)] if logging_access else []),
        *([partial(CountRequests, metrics=gateway.metrics)] if gateway.metrics else []),
        RenderErrors,
        partial(BodyLimit, limit=settings.max_body_bytes),
        partial(
            Authenticate,
            keys=gateway.keys,
            per_key=gateway.limiter,
            per_address=gateway.public_limiter,
        ),
    ]
    app: ASGIApp = Dispatch(api)
    for layer in reversed(layers):
        app = layer(app)
    return app
