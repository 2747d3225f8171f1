"""What the chain's layers leave in a request's scope for the layers and routes beneath them.

ASGI gives each request and each WebSocket a scope of its own, a dict that every layer passes
down as it is; the keys are namespaced so that none collides with the server's or Starlette's.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from tradepit.gateway.auth import Principal

__all__ = ["REQUEST_ID", "ROUTE", "PRINCIPAL", "HEADERS", "headers_of", "principal_of"]

REQUEST_ID = "tradepit.request_id"  # str: the client's X-Request-ID, or one made for it
ROUTE = "tradepit.route"  # routes.Route, or None when no route matches
PRINCIPAL = "tradepit.principal"  # auth.Principal, on the routes that need a key
HEADERS = "tradepit.headers"  # dict[bytes, bytes]: see headers_of


def headers_of(scope: MutableMapping[str, Any]) -> dict[bytes, bytes]:
    """The request's headers by (lowercase) name, the last of a repeated one: made once a
    request, by the first layer that asks, for the rest. (One dict, built in C, costs less than
    each layer's own walk through the list. The server's parser refuses a request with two
    Content-Lengths, or one beside a Transfer-Encoding, before any of this.)"""
    headers: dict[bytes, bytes] | None = scope.get(HEADERS)
    if headers is None:
        headers = scope[HEADERS] = dict(scope["headers"])
    return headers


def principal_of(scope: MutableMapping[str, Any]) -> Principal:
    """The caller that the authentication layer let through to a route that needs a key."""
    principal = scope.get(PRINCIPAL)
    if not isinstance(principal, Principal):
        # A route asks for a key that the route table did not declare it needs: a wiring bug,
        # a 500, never a route served to no one in particular.
        raise LookupError(
            f"no principal in the scope of {scope.get('path')!r}: its route is not declared "
            "as needing a key (gateway/chain/routes.py)"
        )
    return principal
