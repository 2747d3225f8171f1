"""Which route a request is for, decided once at the top of the chain: its template (for the
access log, and for metrics), what it needs to get in (for authentication), and the handler of
a hot route (for dispatch).

Every route's access is declared once, where the route is: a FastAPI route by the dependency it
already has for /docs (`Security(trader)`, `Security(operator)`, `Depends(public)`: see
`web.ACCESS_MARKERS`), the few without one (static files) in a list the app passes here. A route
that declares nothing stops the gateway at start, so that no route is open by omission.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIWebSocketRoute, iter_route_contexts
from starlette.routing import Mount, WebSocketRoute, compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from tradepit.gateway.chain.scope import ROUTE

__all__ = ["Access", "Route", "RouteTable", "MatchRoute", "routes_of"]


class Access(enum.Enum):
    """What a request must carry to reach a route, and which limit it is counted against."""

    OPEN = "open"  # nothing, and no limit: static files (a classroom loads them all at once)
    PUBLIC = "public"  # nothing; limited per client address
    KEY = "key"  # an API key; limited per key
    ADMIN = "admin"  # the venue's admin key; limited per key


# When a route's dependencies name several markers (operator depends on trader), the strictest.
_STRICTNESS = (Access.OPEN, Access.PUBLIC, Access.KEY, Access.ADMIN)


@dataclass(frozen=True, slots=True)
class Route:
    kind: str  # "http" or "websocket"
    methods: frozenset[str]  # empty: any method (a mount, a WebSocket)
    template: str  # as FastAPI writes it: /v2/orders/{order_id}
    access: Access  # WebSockets authenticate by message: the chain lets them through
    handler: ASGIApp | None = None  # a hot route's own handler; None: FastAPI answers


@dataclass(slots=True)
class _Template:
    regex: re.Pattern[str]
    by_method: dict[str, Route] = field(default_factory=dict)
    any_method: Route | None = None

    def route_for(self, method: str) -> Route | None:
        return self.by_method.get(method, self.any_method)


class RouteTable:
    """The routes, matched as Starlette matches them (its regexes, in declaration order), but
    cheaply: a path without parameters by one lookup, the others among the routes that share
    their first segment."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = tuple(routes)
        templates: dict[tuple[str, str], _Template] = {}  # in declaration order
        for route in self.routes:
            key = (route.kind, route.template)
            template = templates.get(key)
            if template is None:
                template = templates[key] = _Template(compile_path(route.template)[0])
                if "{" in _first_segment(route.template):
                    raise ValueError(f"{route.template}: a parameter in the first segment")
            if route.methods:
                for method in route.methods:
                    if method in template.by_method:
                        raise ValueError(f"{method} {route.template} is declared twice")
                    template.by_method[method] = route
            else:
                template.any_method = route
        parameterized = [t for t in templates.values() if t.regex.groups]
        self._exact: dict[tuple[str, str, str], Route] = {}  # by kind, method and path
        self._buckets: dict[tuple[str, str], list[_Template]] = {}  # by kind, first segment
        for (kind, path), template in templates.items():
            # A plain path is looked up directly unless a route with parameters matches it too:
            # then declaration order decides, as it does for Starlette. Looked up directly, it
            # needs no place among the others (a method it lacks, no other route has).
            if (
                not template.regex.groups
                and template.any_method is None
                and not any(other.regex.match(path) for other in parameterized)
            ):
                for method, route in template.by_method.items():
                    self._exact[(kind, method, path)] = route
            else:
                self._buckets.setdefault((kind, _first_segment(path)), []).append(template)

    def match(self, kind: str, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route and its path parameters, or None: no route has this path and method (then
        FastAPI answers its 404 or 405)."""
        route = self._exact.get((kind, method, path))
        if route is not None:
            return route, {}
        for template in self._buckets.get((kind, _first_segment(path)), ()):
            found = template.regex.match(path)
            if found is not None:
                route = template.route_for(method)
                if route is not None:
                    return route, found.groupdict()
        return None

    def __iter__(self) -> Iterator[Route]:
        return iter(self.routes)


def _first_segment(path: str) -> str:
    end = path.find("/", 1)
    return path[1:end] if end > 0 else path[1:]


class MatchRoute:
    """Puts the request's `Route` (or None) in its scope, with its path parameters. A WebSocket
    path with a trailing slash is its route's without."""

    def __init__(self, app: ASGIApp, routes: RouteTable) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind in ("http", "websocket"):
            path = scope["path"]
            found = self.routes.match(kind, scope.get("method", ""), path)
            if found is None and kind == "websocket" and len(path) > 1 and path[-1] == "/":
                # No client follows a redirect of an upgrade, as one does an HTTP request's, and
                # the legacy SDK connects to /stream/: the route without the slash takes it, as
                # the same route (one template in the log and the metrics). FastAPI, beneath,
                # routes by the path, so the path becomes the route's.
                found = self.routes.match(kind, "", path[:-1])
                if found is not None:
                    scope["path"] = path[:-1]
            if found is None:
                scope[ROUTE] = None
            else:
                scope[ROUTE], params = found
                if params:  # FastAPI sets its own; a hot route reads these
                    scope["path_params"] = params
        await self.app(scope, receive, send)


def routes_of(
    api: FastAPI,
    *,
    markers: Mapping[Callable[..., Any], Access],
    open_templates: Iterable[str],
    hot: Mapping[tuple[str, str], ASGIApp],
    hot_websockets: Mapping[str, ASGIApp],
) -> RouteTable:
    """The table of every route, FastAPI's in its order, with the hot routes' handlers: each hot
    route is also one of FastAPI's (for /docs), and takes that route's access.

    `markers` are the dependencies that declare a route's access; `open_templates` the routes
    that declare it by being listed (they have no dependency to mark); `hot` the hot HTTP
    routes' handlers by (method, template); `hot_websockets` the plain-ASGI WebSockets' by path.
    """
    open_left = set(open_templates)
    routes: list[Route] = []
    for context in iter_route_contexts(api.routes):
        # The path as declared, convertors and all (`{path:path}` matches slashes): what
        # Starlette compiles its regex from, and what the access log shows.
        template = context.path
        if template is None:
            raise ValueError(f"a route without a path: {context.original_route!r}")
        if isinstance(context.original_route, Mount):
            template += "/{path:path}"  # as Mount compiles it
        if isinstance(context.original_route, WebSocketRoute | APIWebSocketRoute):
            routes.append(Route("websocket", frozenset(), template, Access.OPEN))
            continue
        declared = _declared_access(getattr(context, "dependant", None), markers)
        if template in open_left:
            if declared is not None:
                raise ValueError(f"{template} is listed as open but declares {declared.name}")
            open_left.discard(template)
            declared = Access.OPEN
        if declared is None:
            raise ValueError(
                f"{template} declares no access: give it Depends(public), Security(trader) or "
                "Security(operator), or list it among the app's open routes"
            )
        methods = frozenset(context.methods or ())
        routes.extend(
            Route("http", frozenset({method}), template, declared, hot.get((method, template)))
            for method in sorted(methods)
        )
        if not methods:
            routes.append(Route("http", frozenset(), template, declared))
    if open_left:
        raise ValueError(f"listed as open, but no such route: {sorted(open_left)}")
    declared_hot = {(route.methods, route.template) for route in routes if route.handler}
    for method, template in hot:
        if (frozenset({method}), template) not in declared_hot:
            raise ValueError(f"hot route {method} {template} has no FastAPI route (for /docs)")
    websockets = [
        Route("websocket", frozenset(), path, Access.OPEN, handler)
        for path, handler in hot_websockets.items()
    ]
    return RouteTable([*websockets, *routes])


def _declared_access(
    dependant: Dependant | None, markers: Mapping[Callable[..., Any], Access]
) -> Access | None:
    """The strictest access that a marker among the route's dependencies declares."""
    found: Access | None = None
    pending = [dependant] if dependant is not None else []
    while pending:
        current = pending.pop()
        marked = markers.get(current.call) if current.call is not None else None
        if marked is not None and (
            found is None or _STRICTNESS.index(marked) > _STRICTNESS.index(found)
        ):
            found = marked
        pending.extend(current.dependencies)
    return found
